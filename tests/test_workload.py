"""Workload preparation: the expected accumulators of every chiplet add up to the golden
layer output, for every strategy."""

import numpy as np
import pytest

from scheduler import golden
from scheduler.plan import STRATEGIES
from sim.workload import prepare


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("routing", ["uniform", "zipf:1.5", "mixtral:c4"])
def test_expected_accumulators_reassemble_the_golden_output(strategy, routing):
    w = prepare(preset="rtl-2x2", model="tiny-8x2", tokens=13, routing_spec=routing, strategy=strategy, seed=3)
    plan = w.plan
    out = np.zeros_like(w.output, dtype=np.int64)
    for t in range(plan.trace.num_tokens):
        out[t] = w.expected[plan.token_home[t]][plan.token_row[t]]
    assert np.array_equal(golden.wrap_int32(out), w.output)
    # EP/Hydra: a token's output is its home experts' partial plus the received rows
    # that other chiplets computed for it and sent back.
    if plan.placement:
        gate_q = golden.quantize_gate_weights(plan.trace.weights)
        for t in range(plan.trace.num_tokens):
            total = np.zeros(w.output.shape[1], dtype=np.int64)
            for rank, e in enumerate(plan.trace.experts[t]):
                if plan.placement[int(e)] == plan.token_home[t]:
                    total += golden.apply_slice(w.layer, int(e), np.arange(w.layer.d_ff), w.tokens[t:t + 1],
                                                gate_q[t:t + 1, rank])[0]
            for s in plan.token_sends:
                if s.token == t:
                    total += w.expected[s.dst][plan.remote_rows[s.dst][(s.src, t)]]
            assert np.array_equal(golden.wrap_int32(total), w.output[t])
    for c, rows in enumerate(w.token_rows):
        for t in plan.resident_tokens(c):
            assert np.array_equal(rows[plan.token_row[t]], w.tokens[t])


def test_image_that_does_not_fit_dram_is_rejected():
    from hw.config import SystemConfig
    from scheduler import presets
    from scheduler.program import ProgramError

    small = SystemConfig.from_preset(presets.get_hardware("rtl-2x2"), dram_words=10)
    with pytest.raises(ProgramError, match="DRAM channel 0: image of .* words exceeds its 10 words"):
        prepare(preset="rtl-2x2", model="tiny-8x2", tokens=8, routing_spec="uniform", strategy="ep",
                system=small)
