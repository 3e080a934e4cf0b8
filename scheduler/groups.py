"""Chiplet groups for FSE-DP: the mesh cut into several rings, each slice travelling only
the ring of the group whose DRAM channel streamed it (the reference model's spatial
grouping; rules R1 and R3 hold per ring, ``docs/groups.md``).

A grouping is given as

- ``N``: the default partition of the mesh into N rings (:func:`default_partitions`):
  ``1`` is the one ring over the whole mesh; other N cut the mesh into N equal
  rectangular blocks of at least two chiplets (the squarest blocks, ties: wider than
  tall), each block's ring laid out as :func:`scheduler.ring.ring_order` lays out a mesh
  of the block's shape; and the 3x3 mesh has two rings, ``0 1 4 3`` and ``2 5 8 7 6``.
  Only partitions that give every ring a DRAM channel of the hardware are offered;
- explicit rings in visiting order, ``"0,1,4,3;2,5,8,7,6"`` (``;`` between rings, ``,``
  between chiplets), or a sequence of sequences of chiplet ids.  Every chiplet is in
  exactly one ring; consecutive chiplets need not be mesh neighbours (a forward to a
  non-adjacent successor is XY routed through other routers, as on the 3x3 mesh ring),
  and the rings are checked by :func:`hw.topology.check_ring` and the channel
  dependency check.

:func:`resolve` turns either form into the rings, or raises :class:`GroupError` with a
one-line message.
"""

from __future__ import annotations

from hw.topology import TopologyError, check_channel_dependencies, check_ring

from . import ring
from .plan import PlanError

__all__ = ["GroupError", "default_partitions", "parse", "resolve", "successors", "describe"]

#: Default partitions that are not a tiling by equal blocks: (rows, cols, N) -> rings.
IRREGULAR = {(3, 3, 2): ((0, 1, 4, 3), (2, 5, 8, 7, 6))}

EXAMPLE = "'0,1,4,3;2,5,8,7,6'"


class GroupError(PlanError):
    """A chiplet grouping the hardware cannot run (one-line message)."""


def _block_rings(rows: int, cols: int, br: int, bc: int) -> tuple:
    """The mesh cut into ``br`` x ``bc`` blocks (row-major), each block's ring in the
    visiting order of :func:`ring.ring_order` for a ``br`` x ``bc`` mesh."""
    local = ring.ring_order(br, bc)
    out = []
    for r0 in range(0, rows, br):
        for c0 in range(0, cols, bc):
            out.append(tuple((r0 + i // bc) * cols + c0 + i % bc for i in local))
    return tuple(out)


def default_partitions(rows: int, cols: int) -> dict:
    """N -> the default partition of an R x C mesh into N rings (each a tuple of chiplets
    in visiting order), for every N that has one."""
    out = {1: (tuple(ring.ring_order(rows, cols)),)}
    shapes = {}
    for br in range(1, rows + 1):
        for bc in range(1, cols + 1):
            if rows % br or cols % bc or br * bc < 2 or (br, bc) == (rows, cols):
                continue
            n = (rows // br) * (cols // bc)
            best = shapes.get(n)
            if best is None or (abs(br - bc), br) < (abs(best[0] - best[1]), best[0]):
                shapes[n] = (br, bc)
    for n, (br, bc) in shapes.items():
        out[n] = _block_rings(rows, cols, br, bc)
    for (r, c, n), rings in IRREGULAR.items():
        if (r, c) == (rows, cols):
            out[n] = rings
    return dict(sorted(out.items()))


def successors(rings, num_chiplets: int) -> tuple:
    """The successor table (R1) of a set of rings covering every chiplet."""
    succ = [None] * num_chiplets
    for r in rings:
        for i, c in enumerate(r):
            succ[c] = r[(i + 1) % len(r)]
    return tuple(succ)


def describe(rings) -> str:
    """Rings as the command line shows them: ``0 1 4 3 | 2 5 8 7 6``."""
    return " | ".join(" ".join(map(str, r)) for r in rings)


def _chiplet(text: str, spec: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise GroupError(f"--groups {spec!r}: {text.strip()!r} is not a chiplet number; give N (a default "
                         f"partition) or rings of chiplet ids, e.g. {EXAMPLE}") from None


def parse(spec: str) -> int | tuple:
    """``"N"`` -> N; ``"0,1,4,3;2,5,8,7,6"`` -> ``((0, 1, 4, 3), (2, 5, 8, 7, 6))``
    (syntax only; :func:`resolve` checks the rings against the mesh)."""
    text = spec.strip()
    if not text:
        raise GroupError(f"--groups is empty; give N (a default partition) or rings of chiplet ids, e.g. {EXAMPLE}")
    if ";" not in text and "," not in text:
        n = _chiplet(text, spec)
        if n < 1:
            raise GroupError(f"--groups {spec!r}: the number of groups must be at least 1")
        return n
    rings = []
    for i, part in enumerate(text.split(";")):
        if not part.strip():
            raise GroupError(f"--groups {spec!r}: ring {i} is empty; rings are chiplet lists separated by ';', "
                             f"e.g. {EXAMPLE}")
        rings.append(tuple(_chiplet(c, spec) for c in part.split(",")))
    return tuple(rings)


def _check_rings(rings, hw, spec: str) -> tuple:
    n = hw.num_chiplets
    where = {}
    for g, r in enumerate(rings):
        for c in r:
            if not 0 <= c < n:
                raise GroupError(f"--groups {spec}: chiplet {c} is outside the {hw.rows}x{hw.cols} mesh "
                                 f"(chiplets 0..{n - 1})")
            if c in where:
                twice = f"twice in group {g}" if where[c] == g else f"in groups {where[c]} and {g}"
                raise GroupError(f"--groups {spec}: chiplet {c} is {twice}; every chiplet is in exactly one group")
            where[c] = g
    missing = [c for c in range(n) if c not in where]
    if missing:
        raise GroupError(f"--groups {spec}: chiplet{'s' if len(missing) > 1 else ''} "
                         f"{', '.join(map(str, missing))} {'are' if len(missing) > 1 else 'is'} in no group; "
                         f"every chiplet of the {hw.rows}x{hw.cols} mesh is in exactly one group")
    succ = successors(rings, n)
    try:
        check_ring(hw.rows, hw.cols, succ, rings)
        check_channel_dependencies(hw.rows, hw.cols, succ)
    except TopologyError as exc:
        raise GroupError(f"--groups {spec}: {exc}") from None
    return tuple(tuple(r) for r in rings)


def _has_channels(rings, hw) -> bool:
    return all(any(c in hw.dram_chiplets for c in r) for r in rings)


def resolve(groups, hw) -> tuple | None:
    """The rings of ``groups`` on hardware ``hw``: ``None`` (no grouping), a number N, a
    ``--groups`` string, or a sequence of rings.  Raises :class:`GroupError`."""
    if groups is None:
        return None
    spec = groups if isinstance(groups, str) else None
    if isinstance(groups, str):
        groups = parse(groups)
    if isinstance(groups, bool):
        raise GroupError(f"--groups must be a number of groups or a list of rings, not {groups!r}")
    if isinstance(groups, int):
        partitions = default_partitions(hw.rows, hw.cols)
        offered = [n for n, r in partitions.items() if _has_channels(r, hw)]
        if groups not in offered:
            channels = ", ".join(map(str, hw.dram_chiplets))
            why = (f"the default partition into {groups} rings ({describe(partitions[groups])}) leaves a ring "
                   f"without a DRAM channel (channels on chiplets {channels})" if groups in partitions else
                   f"the {hw.rows}x{hw.cols} mesh has no default partition into {groups} rings")
            raise GroupError(f"--groups {groups}: {why}; {hw.name} takes --groups {', '.join(map(str, offered))}, "
                             f"or explicit rings such as {EXAMPLE}")
        return partitions[groups]
    try:
        rings = tuple(tuple(int(c) for c in r) for r in groups)
    except (TypeError, ValueError):
        raise GroupError(f"groups must be a number, a --groups string or a sequence of rings of chiplet ids, "
                         f"not {groups!r}") from None
    if not rings or any(not r for r in rings):
        raise GroupError(f"--groups {spec or describe(rings)!r}: every ring needs at least one chiplet")
    return _check_rings(rings, hw, repr(spec) if spec is not None else repr(describe(rings)))
