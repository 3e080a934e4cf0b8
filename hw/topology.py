"""Static checks of a ring configuration before any simulation: the successor table
(rule R1), the rings it forms (R3), and the channel dependencies of the routes the
routers will use (deadlock freedom).

The router (``hw.router``) routes every packet dimension-order (XY) and never lets a
slice wait inside the network for a slot: a transfer starts only once the destination
has reserved a slot for it (R5), so a packet that has entered a channel can always be
consumed at its destination.  Under those two rules the channel dependency graph is
the union of the XY routes, which has no cycle; :func:`check_channel_dependencies`
builds that graph per virtual channel for the configured rings and all unicast pairs and
looks for a cycle anyway, and can also model a router *without* slot reservations
(``reserve_slots=False``), in which a slice holds its incoming channel until its
successor takes it: there every ring closes a cycle of channels, which is exactly the
deadlock R5 (with R6's injection headroom for the slot-level wait) avoids.

Chiplet ``(r, c)`` of an R x C mesh has id ``r * cols + c``; row 0 is north.
"""

from __future__ import annotations

from .packets import VC_SLOT, VC_TILE
from .router import Dir

__all__ = ["TopologyError", "check_ring", "ring_lengths", "xy_path", "channel_dependency_graph",
           "find_cycle", "check_channel_dependencies", "check_configuration"]


class TopologyError(ValueError):
    """A ring configuration the hardware must not run (one-line message)."""


def _check_mesh(rows, cols):
    for name, v in (("rows", rows), ("cols", cols)):
        if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= 16:
            raise TopologyError(f"mesh {name} must be an integer in 1..16, not {v!r}")


def _cycles(successors) -> list[list[int]]:
    seen, out = set(), []
    for start in range(len(successors)):
        if start in seen:
            continue
        ring, c = [], start
        while c not in seen:
            seen.add(c)
            ring.append(c)
            c = successors[c]
        out.append(ring)
    return out


def check_ring(rows: int, cols: int, successors, groups=None) -> list[list[int]]:
    """Validate a successor table and return its rings (each in visiting order).

    Parameters
    ----------
    rows, cols : int
        Mesh shape.
    successors : sequence of int
        ``successors[c]``: the chiplet chiplet ``c`` forwards slices to.
    groups : sequence of sequences of int, optional
        Chiplet groups that each must form one ring (FSE-DP inside chiplet groups).
        Default: one ring over the whole mesh.

    Raises
    ------
    TopologyError
        The table has the wrong length, names a chiplet outside the mesh, is not a
        permutation, or its rings are not exactly the groups.
    """
    _check_mesh(rows, cols)
    n = rows * cols
    successors = list(successors)
    if len(successors) != n:
        raise TopologyError(f"successor table has {len(successors)} entries; a {rows}x{cols} mesh has {n} chiplets")
    for c, s in enumerate(successors):
        if not isinstance(s, int) or isinstance(s, bool) or not 0 <= s < n:
            raise TopologyError(f"successor of chiplet {c} is {s!r}, outside the {rows}x{cols} mesh "
                                f"(chiplets 0..{n - 1})")
    first = {}
    for c, s in enumerate(successors):
        if s in first:
            raise TopologyError(f"successor table is not a permutation: chiplets {first[s]} and {c} "
                                f"both have successor {s}")
        first[s] = c
    rings = _cycles(successors)
    if groups is None:
        if len(rings) != 1:
            shown = ", ".join(str(r) for r in rings)
            raise TopologyError(f"successor table forms {len(rings)} rings ({shown}), not one ring over "
                                f"all {n} chiplets")
        return rings
    groups = [sorted(g) for g in groups]
    covered = sorted(c for g in groups for c in g)
    if covered != list(range(n)):
        raise TopologyError(f"groups {groups} must cover every chiplet 0..{n - 1} exactly once")
    ring_of = {c: r for r in rings for c in r}
    for g in groups:
        ring = ring_of[g[0]]
        outside = [c for c in ring if c not in g]
        if outside:
            raise TopologyError(f"group {g} is not a single ring: ring {ring} leaves it at chiplet {outside[0]}")
        if sorted(ring) != g:
            inside = [r for r in rings if any(c in g for c in r)]
            raise TopologyError(f"group {g} is not a single ring: its chiplets lie on the rings "
                                f"{', '.join(str(r) for r in inside)}")
    return rings


def ring_lengths(successors) -> list[int]:
    """``ring_len`` register of every chiplet: the length of the ring it is on."""
    out = [0] * len(successors)
    for ring in _cycles(list(successors)):
        for c in ring:
            out[c] = len(ring)
    return out


def xy_path(src: int, dst: int, rows: int, cols: int) -> list[tuple[int, Dir]]:
    """The links a packet from ``src`` to ``dst`` uses: ``(chiplet, output direction)``
    per hop, X (columns) first, as the router routes."""
    (r, c), (rd, cd) = divmod(src, cols), divmod(dst, cols)
    path = []
    while c != cd:
        d = Dir.E if cd > c else Dir.W
        path.append((r * cols + c, d))
        c += 1 if d == Dir.E else -1
    while r != rd:
        d = Dir.S if rd > r else Dir.N
        path.append((r * cols + c, d))
        r += 1 if d == Dir.S else -1
    return path


def channel_dependency_graph(rows: int, cols: int, successors, *, reserve_slots: bool = True,
                             unicast: bool = True) -> dict:
    """Channel dependency graph of the routes the routers use.

    Nodes are ``(chiplet, direction, vc)`` link channels.  Edges join consecutive
    channels of every route: ring forwards and their RESERVE / GRANT / RELEASE packets
    (VC_SLOT), and with ``unicast`` every ordered pair of chiplets on both VCs (tokens,
    results, weight loads and their control packets).  With ``reserve_slots=False`` a
    slice arriving at a chiplet also holds its last channel until it can continue to the
    successor, adding an edge from the last channel into the chiplet to the first channel
    out of it.
    """
    _check_mesh(rows, cols)
    n = rows * cols
    graph: dict = {}

    def add_route(src, dst, vc):
        hops = [(c, d, vc) for c, d in xy_path(src, dst, rows, cols)]
        for h in hops:
            graph.setdefault(h, set())
        for a, b in zip(hops, hops[1:]):
            graph[a].add(b)
        return hops

    ring_routes = {}
    for c, s in enumerate(successors):
        if s != c:
            ring_routes[c] = add_route(c, s, VC_SLOT)
            add_route(s, c, VC_SLOT)          # GRANT back to the forwarder
    if unicast:
        for a in range(n):
            for b in range(n):
                if a != b:
                    add_route(a, b, VC_TILE)
                    add_route(a, b, VC_SLOT)
    if not reserve_slots:
        for c, s in enumerate(successors):
            if c in ring_routes and s in ring_routes and ring_routes[c] and ring_routes[s]:
                graph[ring_routes[c][-1]].add(ring_routes[s][0])
    return graph


def find_cycle(graph: dict):
    """A cycle of ``graph`` as a list of nodes, or ``None``."""
    state, stack = {}, []

    def visit(v):
        state[v] = 1
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if state.get(w) == 1:
                return stack[stack.index(w):]
            if w not in state:
                found = visit(w)
                if found:
                    return found
        stack.pop()
        state[v] = 2
        return None

    for v in sorted(graph):
        if v not in state:
            found = visit(v)
            if found:
                return found
    return None


def check_channel_dependencies(rows: int, cols: int, successors, *, reserve_slots: bool = True,
                               unicast: bool = True) -> dict:
    """Raise :class:`TopologyError` naming the cycle if the routes can deadlock; returns
    the (acyclic) graph otherwise."""
    graph = channel_dependency_graph(rows, cols, successors, reserve_slots=reserve_slots, unicast=unicast)
    cycle = find_cycle(graph)
    if cycle:
        steps = [f"{c}->{Dir(d).name}" for c, d, _ in cycle]
        raise TopologyError(f"cyclic channel dependency on VC {cycle[0][2]}: " + ", ".join(steps)
                            + f" (back to {cycle[0][0]})")
    return graph


def check_configuration(rows: int, cols: int, successors, *, groups=None, slot_count: int = 12) -> dict:
    """Every check before a run: the rings, the channel dependencies, and R6's slot
    headroom.  Returns the per-chiplet router registers ``{"successor", "ring_len"}``."""
    rings = check_ring(rows, cols, successors, groups)
    if not isinstance(slot_count, int) or isinstance(slot_count, bool) or slot_count < 2:
        raise TopologyError(f"slot count must be at least 2 so that DRAM can inject with one slot left "
                            f"for ring traffic (R6), not {slot_count!r}")
    check_channel_dependencies(rows, cols, successors)
    lengths = ring_lengths(successors)
    return {"rings": rings, "successor": list(successors), "ring_len": lengths}
