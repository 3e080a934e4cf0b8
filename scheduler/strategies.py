"""The strategies: FSE-DP (unpaired and paired), EP and Hydra, as plans on one hardware.

This is the paper's lightweight scheduler.  For L tokens, top-k, E experts, S slices,
N chiplets and C DRAM channels it costs O(L k) to count tokens per expert and place them,
O(E log E) to order the experts, and O(E S) to lay out the slice streams: no search, no
simulation, nothing iterative.  Everything dynamic (when a slice arrives, when a forward
may go, when DRAM may inject) is left to the hardware's local rules R1 to R7.
"""

from __future__ import annotations

import math

import numpy as np

from . import ring
from .golden import quantize_gate_weights
from .plan import STRATEGIES, Plan, TokenSend, Transfer
from .presets import HardwarePreset, ModelPreset
from .routing import RoutingTrace

__all__ = ["build_plan", "expert_order", "spread_tokens", "nearest_channels", "LAYOUTS", "PlanError"]

#: Slice layouts over the DRAM channels: ``round-robin`` (EVEN: consecutive slices of an
#: expert come from all channels at once) or ``contiguous`` (SEQUENTIAL: each channel
#: streams one contiguous part of the slice sequence).
LAYOUTS = ("round-robin", "contiguous")


class PlanError(ValueError):
    """A workload the strategy cannot plan (wrong shapes or options)."""


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


def nearest_channels(hw: HardwarePreset) -> list[list[int]]:
    """For each chiplet, the DRAM channels at the smallest hop distance."""
    out = []
    for c in range(hw.num_chiplets):
        dist = [ring.hop_distance(c, d, hw.cols) for d in hw.dram_chiplets]
        out.append([i for i, x in enumerate(dist) if x == min(dist)])
    return out


def _check(model: ModelPreset, hw: HardwarePreset, trace: RoutingTrace, slices: int, layout: str):
    trace.check_fits(model.num_experts, model.top_k)
    if not isinstance(slices, int) or slices <= 0 or model.d_ff % slices:
        raise PlanError(f"slices must be a positive divisor of the expert FFN size {model.d_ff}, not {slices!r}")
    if layout not in LAYOUTS:
        raise PlanError(f"unknown slice layout {layout!r}; choose one of: {', '.join(LAYOUTS)}")
    if model.num_experts > 256 or slices > 256 or hw.num_chiplets > 256:
        raise PlanError("experts, slices and chiplets are limited to 256 each by the packet format")


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


def _fse_dp(strategy, model, hw, trace, slices, layout) -> Plan:
    counts = trace.tokens_per_expert(model.num_experts)
    order = expert_order(counts, paired=strategy == "fse-dp-paired")
    home, row = spread_tokens(trace.num_tokens, hw.num_chiplets)
    gate_q = quantize_gate_weights(trace.weights)
    sequence = [(e, s) for e in order for s in range(slices)]
    channels = hw.dram_channels
    if layout == "round-robin":
        parts = [sequence[i::channels] for i in range(channels)]
    else:
        bounds = [round(i * len(sequence) / channels) for i in range(channels + 1)]
        parts = [sequence[bounds[i]:bounds[i + 1]] for i in range(channels)]
    streams = tuple(tuple(Transfer(e, s, hw.dram_chiplets[ch]) for e, s in part)
                    for ch, part in enumerate(parts))
    jobs = tuple({e: tuple(v) for e, v in _resident_jobs(trace, home, row, gate_q, c, order).items()}
                 for c in range(hw.num_chiplets))
    return Plan(strategy=strategy, model=model, hardware=hw, trace=trace, slices=slices,
                token_home=tuple(home), token_row=tuple(row), expert_order=tuple(order),
                streams=streams, jobs=jobs, slot_bytes=model.expert_bytes // slices,
                slots=hw.slice_slots, successor=tuple(ring.mesh_ring(hw.rows, hw.cols)))


def _ep_placement(model, hw, trace, order, home, popularity_aware) -> dict:
    n = hw.num_chiplets
    if not popularity_aware:
        # EP: experts dealt round-robin over the chiplets in id order.
        return {e: i % n for i, e in enumerate(sorted(order))}
    # Hydra: each expert, in schedule order, goes to the chiplet holding most of its
    # tokens, preferring one that still has a free expert slot in this round.
    per_chiplet = np.zeros((model.num_experts, n), dtype=np.int64)
    for t in range(trace.num_tokens):
        for e in trace.experts[t]:
            per_chiplet[int(e), home[t]] += 1
    capacity = math.ceil(len(order) / n)
    assigned = [0] * n
    placement = {}
    for e in order:
        candidates = sorted(range(n), key=lambda c: (-per_chiplet[e, c], assigned[c], c))
        chosen = next((c for c in candidates if assigned[c] < capacity), candidates[0])
        placement[e] = chosen
        assigned[chosen] += 1
    return placement


def _ep(strategy, model, hw, trace) -> Plan:
    counts = trace.tokens_per_expert(model.num_experts)
    hydra = strategy == "hydra"
    order = expert_order(counts, paired=hydra)
    home, row = spread_tokens(trace.num_tokens, hw.num_chiplets)
    gate_q = quantize_gate_weights(trace.weights)
    placement = _ep_placement(model, hw, trace, order, home, hydra)

    # Each expert is loaded whole from the nearest DRAM channel of its chiplet (ties go to
    # the channel with the fewest bytes so far), in schedule order.
    nearest = nearest_channels(hw)
    streams = [[] for _ in hw.dram_chiplets]
    for e in order:
        ch = min(nearest[placement[e]], key=lambda i: (len(streams[i]), i))
        streams[ch].append(Transfer(e, 0, placement[e]))

    # Dispatch: each token goes once to every other chiplet that holds one of its experts,
    # in the order those experts are scheduled; that chiplet appends it to its token buffer.
    rank_of = {e: i for i, e in enumerate(order)}
    residents = [home.count(c) for c in range(hw.num_chiplets)]
    remote_rows = [dict() for _ in range(hw.num_chiplets)]
    sends = []
    for t in range(trace.num_tokens):
        by_dst = {}
        for e in sorted((int(e) for e in trace.experts[t]), key=rank_of.get):
            if placement[e] != home[t]:
                by_dst.setdefault(placement[e], []).append(e)
        for dst, experts in by_dst.items():
            sends.append(TokenSend(t, home[t], dst, tuple(experts)))
    sends.sort(key=lambda s: (rank_of[s.experts[0]], s.token))
    for s in sends:
        remote_rows[s.dst][(s.src, s.token)] = residents[s.dst] + len(remote_rows[s.dst])

    jobs = [{} for _ in range(hw.num_chiplets)]
    for e in order:
        jobs[placement[e]][e] = []
    for t in range(trace.num_tokens):
        for rank, e in enumerate(trace.experts[t]):
            e, c = int(e), placement[int(e)]
            r = row[t] if c == home[t] else remote_rows[c][(home[t], t)]
            jobs[c][e].append((r, int(gate_q[t, rank])))
    return Plan(strategy=strategy, model=model, hardware=hw, trace=trace, slices=1,
                token_home=tuple(home), token_row=tuple(row), expert_order=tuple(order),
                streams=tuple(tuple(s) for s in streams),
                jobs=tuple({e: tuple(sorted(v)) for e, v in j.items()} for j in jobs),
                slot_bytes=model.expert_bytes, slots=hw.expert_slots, placement=placement,
                token_sends=tuple(sends), remote_rows=tuple(remote_rows))


def aligned_slices(model: ModelPreset, hardware: HardwarePreset) -> int:
    """The default micro-slice count S: among the divisors of ``d_ff`` whose slice width
    ``d_ff / S`` is a multiple of the MAC array's column count (so that no MAC cycle of
    the gate and up projections works on zero padding), the one nearest the model
    preset's S (ties: the larger S, i.e. the smaller slice).  If no such S exists, the
    preset's S.  O(d_ff / mac_cols)."""
    cols = hardware.mac_cols
    if model.d_ff % cols:
        return model.slices
    blocks = model.d_ff // cols
    candidates = [s for s in range(1, blocks + 1) if blocks % s == 0]
    return min(candidates, key=lambda s: (abs(s - model.slices), -s))


def build_plan(strategy: str, model: ModelPreset, hardware: HardwarePreset, trace: RoutingTrace, *,
               slices: int | None = None, layout: str = "round-robin") -> Plan:
    """Plan one MoE layer under ``strategy`` (one of :data:`scheduler.plan.STRATEGIES`).

    ``slices`` (FSE-DP only) defaults to :func:`aligned_slices` (the model preset's S,
    moved to the nearest S whose slices fill whole MAC-array column blocks); ``layout``
    is the slice layout over DRAM channels (FSE-DP only), one of :data:`LAYOUTS`.
    """
    if strategy not in STRATEGIES:
        raise PlanError(f"unknown strategy {strategy!r}; choose one of: {', '.join(STRATEGIES)}")
    slices = aligned_slices(model, hardware) if slices is None else slices
    _check(model, hardware, trace, slices, layout)
    if strategy.startswith("fse-dp"):
        return _fse_dp(strategy, model, hardware, trace, slices, layout)
    return _ep(strategy, model, hardware, trace)
