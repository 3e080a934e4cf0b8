"""cocotb measurement bench of ``hw.tile_datapath.TileDatapath`` for
``benchmarks/bench_datapath.py``: MAC-array utilization per job and simulated cycles per
wall-clock second.  Results are checked against ``scheduler.golden`` too, so a fast wrong
datapath cannot produce a figure.

Environment: ``FSEDP_TILE`` (JSON constructor arguments), ``FSEDP_CASES`` (JSON list of
``{"d", "fs", "tokens", "repeat"}``, optionally ``"single_token_jobs": true``: one job per
token, back to back), ``FSEDP_BENCH_OUT`` (JSON file the results go to).
"""

from __future__ import annotations

import json
import os
import time

import cocotb
import numpy as np
from cocotb.triggers import FallingEdge
from cocotb.utils import get_sim_time

from hw import slice_layout
from scheduler import golden
from sim.rtl.benches.datapath_bench import TileBench


def case_data(d, fs, tokens, seed=0):
    """Random slice, tokens and gate weights for one measurement case."""
    layer = golden.random_layer(1, d, fs, seed)
    x = golden.random_tokens(tokens, d, seed)
    gate_q = np.random.default_rng([seed, 3]).integers(0, 256, tokens).astype(np.uint8)
    return layer, x, gate_q


@cocotb.test()
async def utilization_and_speed(dut):
    params = json.loads(os.environ["FSEDP_TILE"])
    cases = json.loads(os.environ["FSEDP_CASES"])
    r, c = params["mac_rows"], params["mac_cols"]
    tb = TileBench(dut, params)
    await tb.start()
    results = []
    for case in cases:
        d, fs, n, repeat = case["d"], case["fs"], case["tokens"], case["repeat"]
        layer, x, gate_q = case_data(d, fs, n)
        cols = np.arange(fs)
        words = slice_layout.pack_slice(layer.w_gate[0], layer.w_up[0], layer.w_down[0], r, c)
        tb.configure(d=d, fs=fs, slot_words=len(words), slot_count=1, quant=layer.quant)
        await tb.load_silu(layer.quant.silu)
        await tb.load_tokens(x)
        await tb.write_acc(np.zeros((n, d), np.int32))
        await tb.load_list([(t, int(gate_q[t])) for t in range(n)])
        await tb.load_slice(0, words)
        busy0, mac0 = tb.counters()
        sim0, wall0 = get_sim_time("ns"), time.perf_counter()
        if case.get("single_token_jobs"):
            # One job per token, issued back to back without waiting for `done`.
            dut.done__ready.value = 1
            for _ in range(repeat):
                for t in range(n):
                    await tb.put("job", tb.encode_job(slot=0, base=t, count=1))
            if dut.busy.value == 1:
                await FallingEdge(dut.busy)
            await FallingEdge(dut.clk)
        else:
            for _ in range(repeat):
                await tb.run_job(slot=0, base=0, count=n)
        wall = time.perf_counter() - wall0
        cycles = (get_sim_time("ns") - sim0) / 10
        busy, mac = (a - b for a, b in zip(tb.counters(), (busy0, mac0)))
        got = await tb.read_acc(n, d)
        want = golden.wrap_int32(golden.apply_slice(layer, 0, cols, x, gate_q).astype(np.int64) * repeat)
        assert np.array_equal(got, want), f"{case}: accumulators differ from golden"
        results.append(dict(case, busy_cycles=busy, mac_cycles=mac, sim_cycles=cycles, wall_s=wall))
    with open(os.environ["FSEDP_BENCH_OUT"], "w") as f:
        json.dump(results, f, indent=2)
