"""The slice engine sequencing jobs on the tile datapath, in the Amaranth simulator,
bit-exact against ``scheduler.golden``."""

import numpy as np
import pytest

from hw.slice_engine import SliceEngine
from hw.slice_layout import Projection, slice_words, word_order
from hw.tile_datapath import TileDatapath
from sim.rtl.amaranth_sim import TileDriver, assert_rejects, run_testbench, stream_put
from sim.rtl.datapath_workload import DatapathWorkload


def small_tile(rows=8, cols=8, **overrides):
    params = dict(mac_rows=rows, mac_cols=cols, link_bytes=16, weight_words=96, max_slots=4,
                  token_rows=8, d_max=64, fs_max=32, table_entries=16) | overrides
    return TileDatapath(**params)


def workload(rows=8, cols=8, **kwargs):
    params = dict(mac_rows=rows, mac_cols=cols, d=32, f=32, slices=2, experts=2, tokens=4, top_k=1,
                  slots=2, seed=0) | kwargs
    return DatapathWorkload(**params)


def run(dut, wl, jobs=None, extra=None):
    """Run ``jobs`` of ``wl``; return (accumulators, cycles per job, busy, MAC cycles)."""
    drv = TileDriver(dut)
    out = {}

    async def tb(ctx):
        out["acc"], out["cycles"] = await drv.run_workload(ctx, wl, jobs)
        out["busy"], out["mac"] = ctx.get(dut.busy_cycles), ctx.get(dut.mac_cycles)
        if extra:
            await extra(ctx, drv, out)

    run_testbench(dut, tb)
    return out


def single_job(wl, expert, index, tokens, slot=0):
    """A job of slice ``index`` of ``expert`` on the first ``tokens`` entries of the list."""
    wl.token_list = [(t, int(q)) for t, q in zip(range(tokens), np.random.default_rng(9).integers(0, 256, tokens))]
    job = next(j for j in wl.jobs if j.expert == expert and j.index == index)
    job.slot, job.base, job.count = slot, 0, tokens
    return job


def test_one_token_gets_exactly_the_golden_slice_output():
    wl = workload()
    job = single_job(wl, expert=1, index=1, tokens=1)
    out = run(small_tile(), wl, [job])
    np.testing.assert_array_equal(out["acc"], wl.expected([job]))
    assert np.any(out["acc"][0]) and not np.any(out["acc"][1:])


def test_an_expert_without_local_tokens_costs_two_cycles():
    wl = workload(random_initial=True)
    job = single_job(wl, expert=0, index=0, tokens=0)
    out = run(small_tile(), wl, [job])
    assert out["cycles"] == [2]
    assert out["mac"] == 0 and out["busy"] <= 1
    np.testing.assert_array_equal(out["acc"], wl.initial)


def test_a_job_over_the_whole_token_list():
    dut = small_tile(token_rows=8, table_entries=8)
    wl = workload(tokens=8, random_initial=True)
    job = single_job(wl, expert=0, index=1, tokens=8)
    out = run(dut, wl, [job])
    np.testing.assert_array_equal(out["acc"], wl.expected([job]))


def test_every_slice_of_every_expert_adds_up_to_the_moe_layer():
    wl = workload(d=16, f=64, slices=4, experts=4, tokens=6, top_k=2, slots=3, seed=15)
    assert 1 in wl.count and 6 in wl.count  # ... one, and all of the local tokens
    assert 0 in wl.count  # some expert has no local token: its slices are 2-cycle jobs
    out = run(small_tile(), wl)
    np.testing.assert_array_equal(out["acc"], wl.expected_layer())


@pytest.mark.parametrize("rows,cols", [(4, 8), (8, 4), (2, 2)])
def test_non_square_and_tiny_arrays_match_golden(rows, cols):
    wl = workload(rows, cols, d=16, f=32, slices=2, experts=2, tokens=4, top_k=2, random_initial=True, seed=rows)
    out = run(small_tile(rows, cols, link_bytes=min(16, rows * cols), weight_words=2 * wl.slice_words), wl)
    np.testing.assert_array_equal(out["acc"], wl.expected())


def test_a_slice_shorter_than_the_pipeline_waits_for_its_hidden_vectors():
    # d = fs = 8 on an 8 x 8 array: a token's gate/up phase is 2 cycles, less than the
    # MAC + vector-unit latency, so every down projection must wait for its hidden vector.
    wl = workload(d=8, f=16, slices=2, experts=2, tokens=5, top_k=2, random_initial=True, seed=3)
    out = run(small_tile(), wl)
    np.testing.assert_array_equal(out["acc"], wl.expected())


def test_weight_and_token_reads_follow_the_slice_layout():
    rows, cols, d, fs, n = 4, 8, 16, 16, 3
    dut = small_tile(rows, cols)
    wl = workload(rows, cols, d=d, f=2 * fs, slices=2, tokens=n)
    job = single_job(wl, expert=0, index=0, tokens=n)
    reads = []

    async def monitor(ctx):
        while True:
            _, _, busy, en, word, token, tword = await ctx.tick().sample(
                dut.busy, dut.engine.weight_rd.en, dut.engine.weight_rd.word,
                dut.engine.token_rd.slot, dut.engine.token_rd.word)
            if en:
                reads.append((word, token, tword))

    sim_out = {}

    async def tb(ctx):
        sim_out["acc"], _ = await TileDriver(dut).run_workload(ctx, wl, [job])

    from amaranth.sim import Simulator
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.add_process(monitor)
    sim.run()
    order = list(word_order(d, fs, rows, cols))
    gu = [k for k, (p, _, _) in enumerate(order) if p != Projection.DOWN]
    down = [k for k, (p, _, _) in enumerate(order) if p == Projection.DOWN]
    # Schedule GU(0) GU(1) D(0) GU(2) D(1) D(2); gate/up words read the token's row block.
    expect_words = gu + gu + down + gu + down + down
    assert [w for w, _, _ in reads] == expect_words
    gu_reads = [(t, tw) for w, t, tw in reads[:2 * len(gu)]]
    assert gu_reads == [(t, order[k][1]) for t in (0, 1) for k in gu]
    assert len(expect_words) == n * slice_words(d, fs, rows, cols)
    np.testing.assert_array_equal(sim_out["acc"], wl.expected([job]))


def test_back_to_back_tokens_keep_the_array_busy():
    wl = workload(d=32, f=32, slices=2, tokens=6)
    job = single_job(wl, expert=0, index=0, tokens=6)
    out = run(small_tile(), wl, [job])
    per_token = 3 * 32 * 16 // 64
    assert out["mac"] == 6 * per_token
    # Only job start (2), drain (2) and done (1) are not MAC cycles.
    assert out["cycles"][0] <= 6 * per_token + 5
    np.testing.assert_array_equal(out["acc"], wl.expected([job]))


def test_done_waits_in_a_fifo_and_holds_off_jobs_when_full():
    dut = small_tile()
    wl = workload()
    depth = SliceEngine.DONE_DEPTH
    log = {"accepted": [], "done": []}

    async def tb(ctx):
        drv = TileDriver(dut)
        drv.configure(ctx, d=wl.d, fs=wl.fs, slot_words=wl.slice_words, slot_count=4, quant=wl.quant)
        ctx.set(dut.done.ready, 0)
        for slot in [3, 1, 2, 0, 1, 2]:       # empty jobs: nothing to compute, done at once
            ctx.set(dut.job.payload, {"slot": slot, "base": 0, "count": 0})
            ctx.set(dut.job.valid, 1)
            _, _, ready = await ctx.tick().sample(dut.job.ready)
            if ready:
                log["accepted"].append(slot)
        ctx.set(dut.job.valid, 0)
        for _ in range(3):
            assert ctx.get(dut.busy) and ctx.get(dut.done.valid) and not ctx.get(dut.job.ready)
            await ctx.tick()
        ctx.set(dut.done.ready, 1)
        while ctx.get(dut.done.valid):
            log["done"].append(ctx.get(dut.done.payload.slot))
            await ctx.tick()
        log["idle"] = not ctx.get(dut.busy) and ctx.get(dut.job.ready)

    run_testbench(dut, tb)
    assert log["accepted"] == [3, 1, 2, 0][:depth] and log["done"] == log["accepted"] and log["idle"]


def test_consecutive_single_token_jobs_overlap_like_tokens_of_one_job():
    wl = workload(d=32, f=32, slices=2, experts=2, tokens=8, top_k=1, slots=2, seed=1)
    wl.token_list = [(t, 100 + t) for t in range(8)]
    jobs = wl.jobs[:2]
    for k, job in enumerate(jobs):
        job.slot = k
    singles = [type(jobs[0])(jobs[t % 2].expert, jobs[t % 2].index, t % 2, t, 1, jobs[t % 2].columns)
               for t in range(8)]
    dut = small_tile()
    drv = TileDriver(dut)
    out = {}

    async def tb(ctx):
        drv.configure(ctx, d=wl.d, fs=wl.fs, slot_words=wl.slice_words, slot_count=2, quant=wl.quant)
        await drv.load_silu(ctx, wl.quant.silu)
        for t in range(8):
            await drv.write_token(ctx, t, wl.x[t])
        await drv.write_list(ctx, wl.token_list)
        for job in jobs:
            await drv.write_slice(ctx, job.slot, wl.slice_image(job))
        ctx.set(dut.done.ready, 1)
        busy0 = ctx.get(dut.busy_cycles)
        for job in singles:                   # back to back, without waiting for done
            await stream_put(ctx, dut.job, {"slot": job.slot, "base": job.base, "count": 1})
        while ctx.get(dut.busy):
            await ctx.tick()
        out["busy"] = ctx.get(dut.busy_cycles) - busy0
        out["acc"] = np.array([await drv.read_acc(ctx, t, wl.d) for t in range(8)])

    run_testbench(dut, tb)
    np.testing.assert_array_equal(out["acc"], wl.expected(singles))
    per_token = 3 * 32 * 16 // 64
    assert out["busy"] <= 8 * per_token + 8   # one start-up and one drain, not eight


def test_counters_clear():
    dut = small_tile()
    wl = workload()
    job = single_job(wl, expert=0, index=0, tokens=2)

    async def clear(ctx, drv, out):
        ctx.set(dut.counters_clear, 1)
        await ctx.tick()
        ctx.set(dut.counters_clear, 0)
        out["cleared"] = (ctx.get(dut.busy_cycles), ctx.get(dut.mac_cycles), ctx.get(dut.macs))

    out = run(dut, wl, [job], extra=clear)
    assert out["mac"] == 2 * 3 * 32 * 16 // 64 and out["cleared"] == (0, 0, 0)


@pytest.mark.parametrize("kwargs,exc,message", [
    (dict(list_depth=0), TypeError, "Token list depth must be a positive integer, not 0"),
    (dict(mac_cols=8, fs_max=20), ValueError, "Maximum slice columns 20 must be a multiple of 8"),
    (dict(mac_rows=3), ValueError, "MAC array row count must be a power of two, not 3"),
])
def test_engine_rejects_bad_parameters(kwargs, exc, message):
    assert_rejects(lambda: SliceEngine(**kwargs), exc, message)


def test_workload_rejects_shapes_the_array_cannot_take():
    with pytest.raises(ValueError, match="slice columns fs = 12 must be a multiple"):
        workload(d=16, f=24, slices=2)
