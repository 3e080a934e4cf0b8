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
    # EP family: a token's output is the partial of the tiles its home chiplet computes
    # plus the received rows that other chiplets computed for it and sent back.
    if plan.placement:
        gate_q = golden.quantize_gate_weights(plan.trace.weights)
        for t in range(plan.trace.num_tokens):
            total = np.zeros(w.output.shape[1], dtype=np.int64)
            home_tiles = plan.tiles(plan.token_home[t])
            for rank, e in enumerate(plan.trace.experts[t]):
                for s in home_tiles.get(int(e), ()):
                    cols = golden.slice_columns(w.layer.d_ff, plan.slices, s)
                    total += golden.apply_slice(w.layer, int(e), cols, w.tokens[t:t + 1], gate_q[t:t + 1, rank])[0]
            for s in plan.token_sends:
                if s.token == t:
                    total += w.expected[s.dst][plan.remote_rows[s.dst][(s.src, t)]]
            assert np.array_equal(golden.wrap_int32(total), w.output[t])
    for c, rows in enumerate(w.token_rows):
        for t in plan.resident_tokens(c):
            assert np.array_equal(rows[plan.token_row[t]], w.tokens[t])


def test_image_that_does_not_fit_dram_is_rejected():
    import dataclasses

    from hw.config import SystemConfig
    from scheduler import presets
    from scheduler.plan import FitError

    small = dataclasses.replace(SystemConfig.from_preset(presets.get_hardware("rtl-2x2")), dram_words=10)
    with pytest.raises(FitError, match=r"ep does not fit: DRAM channel 0 holds .* of weights for this plan; "
                                       r"the channel has 640 B"):
        prepare(preset="rtl-2x2", model="tiny-8x2", tokens=8, routing_spec="uniform", strategy="ep",
                system=small)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_both_engines_check_the_plan_before_anything_runs(strategy):
    """The fit check runs without data too (the fast engine's path), with the same message."""
    from scheduler.plan import FitError

    for with_data in (True, False):
        with pytest.raises(FitError, match=f"^{strategy} does not fit: "):
            prepare(preset="rtl-2x2", model="tiny-8x2", tokens=4, routing_spec="uniform", strategy=strategy,
                    sram=512, with_data=with_data)


def test_a_dram_program_longer_than_its_program_memory_is_refused_by_both_engines():
    """The DRAM channel's program memory (``dram_program_words``, one STREAM per transfer)
    is a capacity like any other: the RTL's channel is built with it and every plan is
    checked against it, with or without data."""
    import dataclasses

    from hw.config import SystemConfig
    from hw.dram import DramChannel
    from scheduler import presets
    from scheduler.plan import FitError

    hw = dataclasses.replace(presets.get_hardware("rtl-2x2"), dram_program_words=12)
    assert DramChannel.from_config(SystemConfig.from_preset(hw)).program_depth == 12
    messages = set()
    for with_data in (True, False):
        with pytest.raises(FitError) as info:     # fse-dp: the 6 experts used, 48 slices over 4 channels
            prepare(preset=hw, model="tiny-8x2", tokens=4, routing_spec="uniform", strategy="fse-dp",
                    with_data=with_data)
        messages.add(str(info.value))
    assert messages == {"fse-dp does not fit: DRAM channel 0's program of 15 words (12 STREAMs) exceeds the "
                        "channel's program memory of 12"}
    ok = dataclasses.replace(hw, dram_program_words=15)
    assert prepare(preset=ok, model="tiny-8x2", tokens=4, routing_spec="uniform", strategy="fse-dp",
                   with_data=False).plan.slices == 8
