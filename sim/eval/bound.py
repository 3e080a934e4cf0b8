"""The physical lower bound of one MoE layer on one hardware preset, in cycles.

No strategy can finish a layer faster than it can read every weight it needs once from
DRAM, or do every MAC on every MAC array at once::

    bound = max(unique weight bytes / total DRAM bandwidth, MACs / total MAC rate)

*Unique weight bytes* are the whole SwiGLU experts (3 d f INT8 bytes each) of every
expert with at least one token; *MACs* are L x k x 3 d f. Both come from the plan (the
same for every strategy of one workload); the bandwidth and MAC rate come from the
hardware preset. Latencies, D2D traffic and the token dispatch are left out on purpose:
the bound is what no schedule can beat, not an estimate.
"""

from __future__ import annotations

from scheduler.presets import HardwarePreset
from scheduler.plan import Plan

__all__ = ["lower_bound", "plan_bound", "layer_bound", "lockstep_factor"]


def lower_bound(unique_weight_bytes: int, macs: int, hw: HardwarePreset) -> dict:
    """The bound and its two terms (cycles), with which term limits (``dram``/``compute``)."""
    dram_rate = hw.dram_bytes_per_cycle * hw.dram_channels
    mac_rate = hw.macs_per_chiplet * hw.num_chiplets
    dram, compute = unique_weight_bytes / dram_rate, macs / mac_rate
    return {"cycles": max(dram, compute), "dram_cycles": dram, "compute_cycles": compute,
            "limit": "dram" if dram >= compute else "compute",
            "unique_weight_bytes": int(unique_weight_bytes), "macs": int(macs)}


def layer_bound(model, hw: HardwarePreset, trace) -> dict:
    """:func:`lower_bound` of a layer without a plan (for points where no strategy fits):
    the experts with at least one token, and every token-expert pair's MACs."""
    used = int((trace.tokens_per_expert(model.num_experts) > 0).sum())
    return lower_bound(used * model.expert_bytes, trace.num_tokens * trace.top_k * model.macs_per_token_expert(), hw)


def plan_bound(plan: Plan) -> dict:
    """:func:`lower_bound` of a plan: its scheduled experts, its MACs, its hardware."""
    return lower_bound(len(plan.expert_order) * plan.model.expert_bytes, plan.macs(), plan.hardware)


def lockstep_factor(model, hw: HardwarePreset, trace) -> float:
    """How much longer the layer's MACs take if every micro-slice waits for its busiest
    chiplet: ``sum_e max_c n[e, c] / max_c sum_e n[e, c]``, with ``n[e, c]`` the tokens
    resident on chiplet ``c`` (FSE-DP's and every strategy's token homes) routed to
    expert ``e``.  1.0 when every expert's tokens are spread evenly over the chiplets.

    Not simulated: a property of the routing and the token placement.  FSE-DP sends every
    slice of an expert to every chiplet, where it takes time in proportion to that
    chiplet's tokens of the expert; with few slots around the ring the slices advance at
    the pace of their slowest chiplet, so where the layer is compute-heavy FSE-DP's
    compute time approaches this factor times the busiest chiplet's total work, while a
    strategy that gives each chiplet whole tiles of balanced work does not."""
    import numpy as np

    from scheduler.strategies import spread_tokens

    home, _ = spread_tokens(trace.num_tokens, hw.num_chiplets)
    n = np.zeros((model.num_experts, hw.num_chiplets))
    for t in range(trace.num_tokens):
        for e in trace.experts[t]:
            n[int(e), home[t]] += 1
    busiest = n.sum(axis=0).max()
    return float(n.max(axis=1).sum() / busiest) if busiest else 1.0
