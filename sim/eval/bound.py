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

__all__ = ["lower_bound", "plan_bound", "layer_bound"]


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
