"""The weight-streaming GEMV MAC array in the Amaranth simulator."""

import numpy as np
import pytest

from hw.mac_array import MacArray
from hw.slice_layout import weight_byte
from scheduler.golden import wrap_int32
from sim.rtl.amaranth_sim import assert_rejects, run_testbench


def beat(act, block, first, last, tag):
    """One input beat: ``act`` (R,) int8 and a (R, C) int8 weight block in word byte order."""
    rows, cols = block.shape
    weights = [0] * (rows * cols)
    for r in range(rows):
        for c in range(cols):
            weights[weight_byte(r, c, cols)] = int(block[r, c])
    return {"first": first, "last": last, "act": [int(a) for a in act], "weights": weights, "tag": tag}


def run_passes(dut, passes, gaps=None):
    """Feed passes (lists of (act, block) beats), one beat per cycle (with idle ``gaps``
    cycles before beat ``i`` if given); return ``(cycle, sums, tag)`` of every result."""
    results = []

    async def driver(ctx):
        cycle = 0
        beats = [(i, k, a, w) for i, p in enumerate(passes) for k, (a, w) in enumerate(p)]
        for n, (i, k, act, block) in enumerate(beats):
            for _ in range(gaps[n] if gaps else 0):
                ctx.set(dut.i.valid, 0)
                await ctx.tick()
                cycle += 1
            ctx.set(dut.i.payload, beat(act, block, k == 0, k == len(passes[i]) - 1, i))
            ctx.set(dut.i.valid, 1)
            await ctx.tick()
            cycle += 1
        ctx.set(dut.i.valid, 0)
        for _ in range(3):
            await ctx.tick()

    async def monitor(ctx):
        cycle = 0
        while len(results) < len(passes):
            _, _, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            cycle += 1
            if valid:
                results.append((cycle, list(payload.sums), payload.tag))

    run_testbench(dut, driver, monitor)
    return results


def expected_sums(p):
    return list(wrap_int32(sum(np.asarray(a, np.int64) @ np.asarray(w, np.int64) for a, w in p)))


@pytest.mark.parametrize("rows,cols", [(8, 8), (4, 8), (8, 4)])
def test_passes_of_any_length_give_the_column_dot_products(rows, cols):
    dut = MacArray(mac_rows=rows, mac_cols=cols, tag_shape=4)
    rng = np.random.default_rng(rows * 10 + cols)
    passes = [[(rng.integers(-128, 128, rows), rng.integers(-128, 128, (rows, cols))) for _ in range(n)]
              for n in (1, 3, 1, 8, 2)]
    results = run_passes(dut, passes)
    assert [tag for _, _, tag in results] == list(range(len(passes)))
    assert [sums for _, sums, _ in results] == [expected_sums(p) for p in passes]


def test_result_leaves_the_cycle_after_the_last_beat_even_with_gaps():
    dut = MacArray(mac_rows=4, mac_cols=4, tag_shape=2)
    rng = np.random.default_rng(1)
    passes = [[(rng.integers(-128, 128, 4), rng.integers(-128, 128, (4, 4))) for _ in range(3)] for _ in range(2)]
    gaps = [0, 2, 1, 0, 0, 3]
    results = run_passes(dut, passes, gaps)
    # The last beats go in at clock edges 6 (1 + 2 gaps + 1 + 1 gap + 1) and 12 (6 + 1 + 1 +
    # 3 gaps + 1); each result is valid in the cycle after, sampled at edges 7 and 13.
    assert [c for c, _, _ in results] == [7, 13]
    assert [s for _, s, _ in results] == [expected_sums(p) for p in passes]


def test_long_pass_of_extreme_values_wraps_like_int32():
    dut = MacArray(mac_rows=32, mac_cols=2, tag_shape=1)
    act = np.full(32, -128)
    block = np.array([[-128, 127]] * 32)
    beats = 4100                          # 4100 * 32 * 16384 > 2**31: column 0 wraps
    (_, sums, _), = run_passes(dut, [[(act, block)] * beats])
    assert sums == [int(wrap_int32(beats * 32 * 16384)), int(wrap_int32(-beats * 32 * 128 * 127))]
    assert sums[0] < 0


def test_rejects_an_array_shape_that_is_not_a_power_of_two():
    assert_rejects(lambda: MacArray(mac_rows=8, mac_cols=12), ValueError,
                   "MAC array column count must be a power of two, not 12")
