"""The strategies, as plans on one hardware with one weight buffer per chiplet: FSE-DP
(unpaired and paired), tiled EP and Hydra, whole-expert EP and the reference model's EP
(``docs/sram.md``).

FSE-DP is the paper's lightweight scheduler.  For L tokens, top-k, E experts, S slices,
N chiplets and C DRAM channels it costs O(L k) to count tokens per expert and place them,
O(E log E) to order the experts, and O(E S) to lay out the slice streams: no search, no
simulation, nothing iterative.  The tiled EP family adds its placement, O(E S N), and
the merge of the owners' tile lists, O(E S log(E S)).  Everything dynamic (when a slice
arrives, when a forward may go, when DRAM may inject) is left to the hardware's local
rules R1 to R7.
"""

from __future__ import annotations

import numpy as np

from . import groups as groups_
from . import ring
from .golden import quantize_gate_weights
from .plan import STRATEGIES, FitError, Plan, PlanError, TokenSend, Transfer
from .presets import HardwarePreset, ModelPreset
from .routing import RoutingTrace
from .sizing import WHOLE_EXPERT, Sizing, aligned_slices, size_plan

__all__ = ["build_plan", "expert_order", "spread_tokens", "nearest_channels", "LAYOUTS", "PlanError", "FitError",
           "aligned_slices", "FSE_DP", "EP_FAMILY"]

#: Slice layouts over the DRAM channels: ``round-robin`` (EVEN: consecutive slices of an
#: expert come from all channels at once) or ``contiguous`` (SEQUENTIAL: each channel
#: streams one contiguous part of the slice sequence).  FSE-DP only.
LAYOUTS = ("round-robin", "contiguous")
DEFAULT_LAYOUT = "round-robin"

FSE_DP = ("fse-dp", "fse-dp-paired")
EP_FAMILY = ("ep", "hydra", "ep-whole", "ep-paper")


def expert_order(counts, paired: bool) -> list[int]:
    """Experts with at least one token, in schedule order.

    Unpaired: by expert id.  Paired load: sorted by token count (heaviest first, ties by
    id), then interleaved heaviest, lightest, 2nd heaviest, 2nd lightest, ... so long
    computes overlap short ones.  O(E log E).
    """
    used = [e for e, n in enumerate(counts) if n > 0]
    if not paired:
        return used
    ranked = sorted(used, key=lambda e: (-counts[e], e))
    order, lo, hi = [], 0, len(ranked) - 1
    while lo <= hi:
        order.append(ranked[lo])
        if lo != hi:
            order.append(ranked[hi])
        lo, hi = lo + 1, hi - 1
    return order


def spread_tokens(num_tokens: int, num_chiplets: int) -> tuple[list[int], list[int]]:
    """Tokens spread evenly over chiplets in contiguous blocks (sizes differ by at most
    one): returns each token's home chiplet and its row in that chiplet's token buffer."""
    home, row = [], []
    base, extra = divmod(num_tokens, num_chiplets)
    for c in range(num_chiplets):
        n = base + (c < extra)
        home += [c] * n
        row += list(range(n))
    return home, row


def _check(strategy, model: ModelPreset, hw: HardwarePreset, trace: RoutingTrace, layout, groups):
    trace.check_fits(model.num_experts, model.top_k)
    if groups is not None and strategy not in FSE_DP:
        raise PlanError(f"--groups does not apply to {strategy}: only FSE-DP streams its slices round rings "
                        f"(the EP family places experts on chiplets over the whole mesh)")
    if layout is not None and strategy not in FSE_DP:
        raise PlanError(f"--layout does not apply to {strategy}: only FSE-DP lays its slice sequence out over "
                        f"the DRAM channels (the EP family stripes each expert's tiles over every channel)")
    if layout is not None and layout not in LAYOUTS:
        raise PlanError(f"unknown slice layout {layout!r}; choose one of: {', '.join(LAYOUTS)}")


def _resident_jobs(trace, home, row, gate_q, chiplet, experts):
    """expert -> ((row, gate_q), ...) for the tokens resident on ``chiplet``."""
    jobs = {e: [] for e in experts}
    for t in range(trace.num_tokens):
        if home[t] != chiplet:
            continue
        for rank, e in enumerate(trace.experts[t]):
            e = int(e)
            if e in jobs:
                jobs[e].append((row[t], int(gate_q[t, rank])))
    return jobs


def _layout(sequence, channels: int, layout: str) -> list:
    """A slice sequence laid out over ``channels`` DRAM channels: round-robin (EVEN) or
    in contiguous parts (SEQUENTIAL)."""
    if layout == "round-robin":
        return [sequence[i::channels] for i in range(channels)]
    bounds = [round(i * len(sequence) / channels) for i in range(channels + 1)]
    return [sequence[bounds[i]:bounds[i + 1]] for i in range(channels)]


def _fse_dp(strategy, model, hw, trace, size: Sizing, layout, groups) -> Plan:
    """FSE-DP on one ring over the mesh, or on the rings of chiplet ``groups``: per ring,
    the experts its resident tokens are routed to, ordered from the ring's own token
    counts, expanded into their S slices and laid out over the DRAM channels attached to
    the ring's chiplets; every slice visits every chiplet of its ring once."""
    paired = strategy == "fse-dp-paired"
    home, row = spread_tokens(trace.num_tokens, hw.num_chiplets)
    gate_q = quantize_gate_weights(trace.weights)
    rings = groups or (tuple(ring.ring_order(hw.rows, hw.cols)),)
    streams = [()] * hw.dram_channels
    jobs = [None] * hw.num_chiplets
    for g, members in enumerate(rings):
        tokens = [t for t in range(trace.num_tokens) if home[t] in members]
        counts = np.bincount(trace.experts[tokens].ravel(), minlength=model.num_experts)
        order = expert_order(counts, paired)
        channels = [ch for ch, c in enumerate(hw.dram_chiplets) if c in members]
        if order and not channels:
            raise PlanError(f"--groups: group {g} (chiplets {' '.join(map(str, members))}) holds tokens but none of "
                            f"its chiplets has a DRAM channel (channels on chiplets "
                            f"{', '.join(map(str, hw.dram_chiplets))})")
        sequence = [(e, s) for e in order for s in range(size.slices)]
        for ch, part in zip(channels, _layout(sequence, len(channels), layout) if channels else ()):
            streams[ch] = tuple(Transfer(e, s, hw.dram_chiplets[ch]) for e, s in part)
        for c in members:
            jobs[c] = {e: tuple(v) for e, v in _resident_jobs(trace, home, row, gate_q, c, order).items()}
    counts = trace.tokens_per_expert(model.num_experts)
    return Plan(strategy=strategy, model=model, hardware=hw, trace=trace, slices=size.slices,
                token_home=tuple(home), token_row=tuple(row), expert_order=tuple(expert_order(counts, paired)),
                streams=tuple(streams), jobs=tuple(jobs), slot_bytes=size.slot_bytes, slots=size.slots,
                buffer_bytes=size.buffer_bytes, successor=groups_.successors(rings, hw.num_chiplets),
                groups=groups)


# ---------------------------------------------------------------------------- EP family

def _local_tokens(model, hw, trace, home) -> np.ndarray:
    """``[e, c]``: tokens routed to expert ``e`` that live on chiplet ``c``."""
    out = np.zeros((model.num_experts, hw.num_chiplets), dtype=np.int64)
    for t in range(trace.num_tokens):
        for e in trace.experts[t]:
            out[int(e), home[t]] += 1
    return out


def _fill(experts, counts, slices, n, prefs) -> dict:
    """Assign every tile ``(e, s)`` of ``experts`` (taken in this order) to a chiplet so
    that every chiplet gets the same work (a tile of expert ``e`` costs ``counts[e]``
    token-tile applications).  Each tile goes to the first chiplet of ``prefs(e)`` whose
    work stays within ``W / n`` with the tile's midpoint, else to the least loaded one.
    With ``prefs`` = chiplets in id order this is McNaughton's wrap-around rule: experts
    laid end to end and cut into n equal parts, so at most n - 1 experts are split (by FFN
    columns) and, with fewer experts than chiplets, each expert spans several chiplets.
    Returns ``{e: [chiplet of tile 0, ..., chiplet of tile S-1]}``."""
    total = sum(int(counts[e]) for e in experts) * slices
    cap = total / n
    load = [0.0] * n
    owner = {}
    for e in experts:
        w = int(counts[e])
        owner[e] = []
        order = prefs(e)
        for _ in range(slices):
            c = next((c for c in order if load[c] + w / 2 <= cap + 1e-9), None)
            if c is None:
                c = min(range(n), key=lambda i: (load[i], i))
            load[c] += w
            owner[e].append(c)
    return owner


def _merge_by_progress(lists: list, weight) -> list:
    """Interleave per-chiplet tile lists into one sequence in which every chiplet's tiles
    are spread by the share of its work done: tile ``i`` of chiplet ``c`` is keyed by the
    midpoint of its cumulative work over the chiplet's total (ties: chiplet id), so each
    owner is fed at the pace of its own compute."""
    keyed = []
    for c, tiles in enumerate(lists):
        total = sum(weight(t) for t in tiles) or 1
        done = 0
        for t in tiles:
            w = weight(t)
            keyed.append(((done + w / 2) / total, c, t))
            done += w
    return [t for _, _, t in sorted(keyed, key=lambda k: (k[0], k[1]))]


def _dispatch(trace, home, row, gate_q, order, chips_of, n):
    """Token sends, received rows and per-chiplet jobs once every expert's chiplets are
    known (``chips_of[e]``: the chiplets that compute tiles of ``e``).  Each token goes once
    to every other chiplet that computes any of its experts, in the order those experts are
    scheduled; that chiplet appends it to its token buffer."""
    rank_of = {e: i for i, e in enumerate(order)}
    residents = [home.count(c) for c in range(n)]
    remote_rows = [dict() for _ in range(n)]
    sends = []
    for t in range(trace.num_tokens):
        by_dst = {}
        for e in sorted((int(e) for e in trace.experts[t]), key=rank_of.get):
            for c in chips_of[e]:
                if c != home[t]:
                    by_dst.setdefault(c, []).append(e)
        for dst, experts in by_dst.items():
            sends.append(TokenSend(t, home[t], dst, tuple(experts)))
    sends.sort(key=lambda s: (rank_of[s.experts[0]], s.token, s.dst))
    for s in sends:
        remote_rows[s.dst][(s.src, s.token)] = residents[s.dst] + len(remote_rows[s.dst])
    jobs = [{} for _ in range(n)]
    for e in order:
        for c in chips_of[e]:
            jobs[c][e] = []
    for t in range(trace.num_tokens):
        for rank, e in enumerate(trace.experts[t]):
            e = int(e)
            for c in chips_of[e]:
                r = row[t] if c == home[t] else remote_rows[c][(home[t], t)]
                jobs[c][e].append((r, int(gate_q[t, rank])))
    return (tuple(sends), tuple(remote_rows),
            tuple({e: tuple(sorted(v)) for e, v in j.items()} for j in jobs))


def _ep_tiled(strategy, model, hw, trace, size: Sizing) -> Plan:
    """``ep`` and ``hydra``: each expert streamed in S tiles through the slots of the
    chiplet(s) that own it, computed tile by tile while the next tiles load.

    - Owners: ``ep`` fills chiplets in id order with experts sorted by token count,
      heaviest first, cutting where a chiplet's share of the work is reached (McNaughton's
      wrap-around); ``hydra`` takes experts in the same popularity order but gives each
      tile to the chiplet holding most of the expert's tokens that still has room (Hydra's
      popularity-aware placement, with its work cap).  Either way every chiplet gets the
      same work to within a tile, and an expert is split by FFN columns only where that
      balance needs it (always when fewer experts are active than chiplets).
    - DRAM: tile ``s`` of the ``i``-th active expert (by id) lives on channel
      ``(i S + s) mod C`` (with S a multiple of C: every expert striped over every channel),
      so every channel serves an equal share of the bytes and any channel feeds any chiplet
      over D2D.
    - Order: each chiplet's tiles in schedule order (``ep``: expert id; ``hydra``: paired),
      merged so that every owner is fed at the pace of its own work; each channel streams
      its tiles in that merged order.
    """
    n, S, C = hw.num_chiplets, size.slices, hw.dram_channels
    counts = trace.tokens_per_expert(model.num_experts)
    hydra = strategy == "hydra"
    order = expert_order(counts, paired=hydra)
    home, row = spread_tokens(trace.num_tokens, n)
    gate_q = quantize_gate_weights(trace.weights)
    by_work = sorted(order, key=lambda e: (-counts[e], e))
    if hydra:
        local = _local_tokens(model, hw, trace, home)
        prefs = lambda e: sorted(range(n), key=lambda c: (-local[e, c], c))  # noqa: E731
    else:
        prefs = lambda e: range(n)  # noqa: E731
    owner = _fill(by_work, counts, S, n, prefs)
    chips_of = {e: tuple(dict.fromkeys(owner[e])) for e in order}
    lists = [[(e, s) for e in order for s in range(S) if owner[e][s] == c] for c in range(n)]
    sequence = _merge_by_progress(lists, lambda t: int(counts[t[0]]))
    index = {e: i for i, e in enumerate(sorted(order))}
    streams = [[] for _ in range(C)]
    for e, s in sequence:
        streams[(index[e] * S + s) % C].append(Transfer(e, s, owner[e][s]))
    sends, remote_rows, jobs = _dispatch(trace, home, row, gate_q, order, chips_of, n)
    return Plan(strategy=strategy, model=model, hardware=hw, trace=trace, slices=S,
                token_home=tuple(home), token_row=tuple(row), expert_order=tuple(order),
                streams=tuple(tuple(st) for st in streams), jobs=jobs, slot_bytes=size.slot_bytes,
                slots=size.slots, buffer_bytes=size.buffer_bytes, relay=True, placement=chips_of,
                token_sends=sends, remote_rows=remote_rows)


def nearest_channels(hw: HardwarePreset) -> list[list[int]]:
    """For each chiplet, the DRAM channels at the smallest hop distance."""
    out = []
    for c in range(hw.num_chiplets):
        dist = [ring.hop_distance(c, d, hw.cols) for d in hw.dram_chiplets]
        out.append([i for i, x in enumerate(dist) if x == min(dist)])
    return out


def _ep_whole(strategy, model, hw, trace, size: Sizing) -> Plan:
    """``ep-whole`` and ``ep-paper``: whole experts, one transfer each.

    ``ep-whole`` deals the active experts to the chiplets round-robin in id order; each is
    loaded from the nearest DRAM channel of its chiplet (ties: the channel with the fewest
    experts so far) into one of the chiplet's whole-expert slots.  ``ep-paper`` follows the
    reference model (``MoeOpt``: EVEN expert distribution over the DRAM channels, NEAREST
    destination, SEQUENTIAL load order): the active experts are dealt round-robin to the
    channels in id order and each channel loads its experts, in order, into its own
    chiplet, one at a time (the plan has one slot of the two-expert budget; the next load
    starts when that expert's compute is done; an expert larger than one packet streams as
    S equal tiles through that one slot, each loaded after the previous one is computed).
    Tokens go to the expert's chiplet; results come back home.
    """
    counts = trace.tokens_per_expert(model.num_experts)
    order = expert_order(counts, paired=False)
    n = hw.num_chiplets
    home, row = spread_tokens(trace.num_tokens, n)
    gate_q = quantize_gate_weights(trace.weights)
    streams = [[] for _ in hw.dram_chiplets]
    placement = {}
    if strategy == "ep-paper":
        for i, e in enumerate(order):
            ch = i % hw.dram_channels
            placement[e] = hw.dram_chiplets[ch]
            streams[ch] += [Transfer(e, s, placement[e]) for s in range(size.slices)]
    else:
        nearest = nearest_channels(hw)
        for i, e in enumerate(order):
            placement[e] = i % n
            ch = min(nearest[placement[e]], key=lambda k: (len(streams[k]), k))
            streams[ch].append(Transfer(e, 0, placement[e]))
    chips_of = {e: (c,) for e, c in placement.items()}
    sends, remote_rows, jobs = _dispatch(trace, home, row, gate_q, order, chips_of, n)
    return Plan(strategy=strategy, model=model, hardware=hw, trace=trace, slices=size.slices,
                token_home=tuple(home), token_row=tuple(row), expert_order=tuple(order),
                streams=tuple(tuple(s) for s in streams), jobs=jobs, slot_bytes=size.slot_bytes,
                slots=size.slots, buffer_bytes=size.buffer_bytes, placement=chips_of,
                token_sends=sends, remote_rows=remote_rows)


def build_plan(strategy: str, model: ModelPreset, hardware: HardwarePreset, trace: RoutingTrace, *,
               slices: int | None = None, layout: str | None = None, groups=None) -> Plan:
    """Plan one MoE layer under ``strategy`` (one of :data:`scheduler.plan.STRATEGIES`) on
    ``hardware`` with its weight buffer (``hardware.weight_sram_bytes``).

    ``slices`` (S; not for the whole-expert strategies) and the slot count follow from the
    budget (:func:`scheduler.sizing.size_plan`) unless ``slices`` is given; ``layout``
    (FSE-DP only) is the slice layout over DRAM channels, one of :data:`LAYOUTS`;
    ``groups`` (FSE-DP only) cuts the mesh into chiplet groups, each its own ring: a
    number of groups, a ``--groups`` string or a sequence of rings
    (:func:`scheduler.groups.resolve`).  An option the strategy does not use raises
    :class:`PlanError`; a plan that does not fit the hardware raises :class:`FitError`.
    """
    if strategy not in STRATEGIES:
        raise PlanError(f"unknown strategy {strategy!r}; choose one of: {', '.join(STRATEGIES)}")
    _check(strategy, model, hardware, trace, layout, groups)
    rings = groups_.resolve(groups, hardware)
    size = size_plan(strategy, model, hardware, slices)
    if strategy in FSE_DP:
        return _fse_dp(strategy, model, hardware, trace, size, layout or DEFAULT_LAYOUT, rings)
    if strategy in WHOLE_EXPERT:
        return _ep_whole(strategy, model, hardware, trace, size)
    return _ep_tiled(strategy, model, hardware, trace, size)
