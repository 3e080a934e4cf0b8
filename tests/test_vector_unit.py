"""The vector unit (requantization, SiLU table, gate x up x gate weight) in the Amaranth
simulator, against ``scheduler.golden``."""

import numpy as np

from hw.vector_unit import VectorUnit
from scheduler import golden
from sim.rtl.amaranth_sim import assert_rejects, run_testbench, stream_get, stream_put

LANES = 4


def expected_hidden(quant, table, gate, up, gate_q):
    """``golden.hidden_activation`` from the projections (g, u) on, for one vector."""
    g8 = golden.requantize(gate, quant.gate_mult, quant.gate_shift)
    u8 = golden.requantize(up, quant.up_mult, quant.up_shift)
    a8 = np.asarray(table)[g8.astype(np.int64) + 128].astype(np.int64)
    return [int(v) for v in golden.requantize(a8 * u8 * int(gate_q), quant.hidden_mult, quant.hidden_shift)]


def run_vectors(quant, table, vectors, *, in_stall=0.0, out_stall=0.0, seed=0):
    """Load ``table``, push ``vectors`` of (gate, up, gate_q) with random input gaps and
    output back-pressure; return the hidden vectors in output order."""
    dut = VectorUnit(lanes=LANES, tag_shape=8)
    rng = np.random.default_rng(seed)
    got = []

    async def producer(ctx):
        for name in ("gate_mult", "gate_shift", "up_mult", "up_shift", "hidden_mult", "hidden_shift"):
            ctx.set(getattr(dut, name), getattr(quant, name))
        for i, v in enumerate(np.asarray(table, np.int8)):
            await stream_put(ctx, dut.silu_wr, {"index": i, "value": int(v)})
        for n, (gate, up, gate_q) in enumerate(vectors):
            while rng.random() < in_stall:
                await ctx.tick()
            await stream_put(ctx, dut.i, {"gate": [int(g) for g in gate], "up": [int(u) for u in up],
                                          "gate_q": int(gate_q), "tag": n % 256})

    async def consumer(ctx):
        while len(got) < len(vectors):
            while rng.random() < out_stall:
                await ctx.tick()
            payload = await stream_get(ctx, dut.o)
            assert payload.tag == len(got) % 256
            got.append(list(payload.hidden))

    run_testbench(dut, producer, consumer)
    return got


def random_vectors(rng, count, scale):
    return [(rng.integers(-scale, scale, LANES), rng.integers(-scale, scale, LANES), rng.integers(0, 256))
            for _ in range(count)]


def test_random_vectors_match_golden_hidden_activation():
    quant = golden.QuantParams.for_shape(64)
    rng = np.random.default_rng(1)
    vectors = random_vectors(rng, 60, 40000)
    assert run_vectors(quant, quant.silu, vectors) == [expected_hidden(quant, quant.silu, *v) for v in vectors]


def test_the_silu_table_is_data_loaded_at_run_time():
    quant = golden.QuantParams.for_shape(64)
    rng = np.random.default_rng(2)
    table = rng.integers(-128, 128, 256, dtype=np.int8)
    vectors = random_vectors(rng, 40, 40000)
    got = run_vectors(quant, table, vectors)
    assert got == [expected_hidden(quant, table, *v) for v in vectors]
    assert got != [expected_hidden(quant, quant.silu, *v) for v in vectors]


def test_saturation_and_half_up_rounding_at_the_extremes():
    big = (1 << 31) - 1
    extremes = [
        ([big, -(1 << 31), 0, -1], [big, -(1 << 31), 1, -1], 255),
        ([-(1 << 31), big, 3, -3], [big, big, -3, 3], 1),
        ([5, -5, 7, -7], [5, -5, 7, -7], 128),
    ]
    table = np.arange(-128, 128, dtype=np.int64)[::-1].astype(np.int8)  # decreasing: signs matter
    wants = []
    for quant in (golden.QuantParams(65535, 0, 65535, 0, 65535, 0),     # saturate everything
                  golden.QuantParams(1, 1, 1, 1, 65535, 31),             # .5 cases; tiny hidden
                  golden.QuantParams(3, 2, 5, 3, 410, 20)):
        wants.append([expected_hidden(quant, table, *v) for v in extremes])
        assert run_vectors(quant, table, extremes) == wants[-1]
    saturated = {h for vec in wants[0] for h in vec}
    assert {127, -128} <= saturated


def test_output_back_pressure_keeps_order_and_values():
    quant = golden.QuantParams.for_shape(32)
    rng = np.random.default_rng(3)
    vectors = random_vectors(rng, 50, 30000)
    got = run_vectors(quant, quant.silu, vectors, in_stall=0.3, out_stall=0.5, seed=4)
    assert got == [expected_hidden(quant, quant.silu, *v) for v in vectors]


def test_rejects_zero_lanes():
    assert_rejects(lambda: VectorUnit(lanes=0), TypeError, "Lane count must be a positive integer, not 0")
