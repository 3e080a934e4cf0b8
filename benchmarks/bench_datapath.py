"""Tile datapath figures: MAC-array utilization per job, and simulated cycles per
wall-clock second under Verilator (cocotb) and under Amaranth's simulator.

Utilization is MACs performed / (MAC units x busy cycles) of the slice engine, from its
own counters, for one token and for several tokens per job.  Every run's accumulators are
checked against ``scheduler.golden``.  Figures are printed, never asserted.

    .venv/bin/python benchmarks/bench_datapath.py [--preset rtl-2x2] [--quick]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from hw import slice_layout  # noqa: E402
from hw.tile_datapath import TileDatapath, tile_parameters  # noqa: E402
from scheduler import golden, presets  # noqa: E402
from sim.rtl.amaranth_sim import TileDriver, run_testbench  # noqa: E402
from sim.rtl.benches.datapath_speed import case_data  # noqa: E402
from sim.rtl.toolchain import build, build_dir_for, to_verilog, write_if_changed  # noqa: E402


def utilization_cases(params, quick):
    """(d, fs, tokens) grid: the tiny-8x2 FSE-DP slice (d 32, fs 64/8), a 4x wider slice,
    and the widest slice the default weight buffer holds at d 32 (EP-sized)."""
    d = params["d_max"]
    unit = max(params["mac_rows"], params["mac_cols"])
    widest = params["weight_words"] * params["mac_rows"] * params["mac_cols"] // (3 * d) // unit * unit
    shapes = [(d, 8), (d, 32), (d, min(widest, params["fs_max"]))]
    repeat = 3 if quick else 10
    cases = [{"d": dd, "fs": fs, "tokens": n, "repeat": repeat} for dd, fs in shapes for n in (1, 4, 16)]
    return cases + [{"d": dd, "fs": fs, "tokens": 16, "repeat": repeat, "single_token_jobs": True}
                    for dd, fs in shapes]


def speed_case(params, quick):
    d = params["d_max"]
    return {"d": d, "fs": 128, "tokens": 16 if quick else 64, "repeat": 2 if quick else 20}


def run_verilator(params, cases):
    bdir = build_dir_for("verilator", "tile_datapath", "_".join(f"{k}{v}" for k, v in params.items()))
    src = bdir / "tile_datapath.v"
    write_if_changed(src, to_verilog(TileDatapath(**params), "tile_datapath"))
    t0 = time.perf_counter()
    runner = build([src], "tile_datapath", bdir, sim="verilator")
    build_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        out = pathlib.Path(tmp) / "out.json"
        t0 = time.perf_counter()
        runner.test(hdl_toplevel="tile_datapath", test_module="sim.rtl.benches.datapath_speed", build_dir=str(bdir),
                    test_dir=tmp, extra_env={"FSEDP_TILE": json.dumps(params), "FSEDP_CASES": json.dumps(cases),
                                             "FSEDP_BENCH_OUT": str(out)})
        total_s = time.perf_counter() - t0
        return json.loads(out.read_text()), build_s, total_s


def run_amaranth(params, case):
    dut = TileDatapath(**params)
    drv = TileDriver(dut)
    d, fs, n, repeat = case["d"], case["fs"], case["tokens"], case["repeat"]
    layer, x, gate_q = case_data(d, fs, n)
    r, c = params["mac_rows"], params["mac_cols"]
    words = slice_layout.pack_slice(layer.w_gate[0], layer.w_up[0], layer.w_down[0], r, c)
    res = {}

    async def tb(ctx):
        drv.configure(ctx, d=d, fs=fs, slot_words=len(words), slot_count=1, quant=layer.quant)
        t0 = time.perf_counter()
        await drv.load_silu(ctx, layer.quant.silu)
        for t in range(n):
            await drv.write_token(ctx, t, x[t])
        await drv.write_list(ctx, [(t, int(gate_q[t])) for t in range(n)])
        await drv.write_slice(ctx, 0, words)
        res["load_s"] = time.perf_counter() - t0
        busy0, mac0 = ctx.get(dut.busy_cycles), ctx.get(dut.mac_cycles)
        t0 = time.perf_counter()
        cycles = 0
        for _ in range(repeat):
            cycles += await drv.run_job(ctx, slot=0, base=0, count=n)
        res["wall_s"] = time.perf_counter() - t0
        res["sim_cycles"] = cycles
        res["busy_cycles"] = ctx.get(dut.busy_cycles) - busy0
        res["mac_cycles"] = ctx.get(dut.mac_cycles) - mac0
        res["acc"] = np.array([await drv.read_acc(ctx, t, d) for t in range(n)])

    t0 = time.perf_counter()
    run_testbench(dut, tb)
    res["elaborate_and_run_s"] = time.perf_counter() - t0
    want = golden.wrap_int32(golden.apply_slice(layer, 0, np.arange(fs), x, gate_q).astype(np.int64) * repeat)
    assert np.array_equal(res.pop("acc"), want), "Amaranth simulation differs from golden"
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="rtl-2x2", help="hardware preset of the tile (default rtl-2x2)")
    ap.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = ap.parse_args(argv)
    params = tile_parameters(presets.get_hardware(args.preset))
    r, c = params["mac_rows"], params["mac_cols"]
    print(f"TileDatapath {r}x{c} MACs ({r * c} MAC units), preset {args.preset}: {params}")

    cases = utilization_cases(params, args.quick)
    speed = speed_case(params, args.quick)
    results, build_s, total_s = run_verilator(params, cases + [speed])
    print(f"\nVerilator build (cached if unchanged): {build_s:.1f} s; cocotb run: {total_s:.1f} s")
    print("\nMAC array utilization per job = MACs / (MAC units x busy cycles); all results bit-exact")
    print(f"  {'d':>4} {'fs':>4} {'tokens per job':>24} {'MAC cyc/token':>13} {'busy cyc/job':>12} {'utilization':>11}")
    for res in results[:-1]:
        words = slice_layout.slice_words(res["d"], res["fs"], r, c)
        single = res.get("single_token_jobs")
        jobs = res["repeat"] * (res["tokens"] if single else 1)
        per_job = res["busy_cycles"] / jobs
        label = "1 (16 jobs back to back)" if single else str(res["tokens"])
        print(f"  {res['d']:>4} {res['fs']:>4} {label:>24} {words:>13} {per_job:>12.1f} "
              f"{res['mac_cycles'] / res['busy_cycles']:>11.1%}")
    v = results[-1]
    print(f"\nSimulation speed, job phase (d {speed['d']}, fs {speed['fs']}, {speed['tokens']} tokens x "
          f"{speed['repeat']} jobs, one trigger per job)")
    print(f"  Verilator (cocotb): {v['sim_cycles']:.0f} cycles in {v['wall_s']:.2f} s = "
          f"{v['sim_cycles'] / v['wall_s']:,.0f} cycles/s (utilization {v['mac_cycles'] / v['busy_cycles']:.1%})")
    am_case = dict(speed, tokens=4, repeat=2 if args.quick else 4)
    a = run_amaranth(params, am_case)
    print(f"  Amaranth simulator: {a['sim_cycles']} cycles in {a['wall_s']:.2f} s = "
          f"{a['sim_cycles'] / a['wall_s']:,.0f} cycles/s ({am_case['tokens']} tokens x {am_case['repeat']} jobs; "
          f"loading through the ports took {a['load_s']:.2f} s)")
    same = dict(speed, tokens=am_case["tokens"], repeat=am_case["repeat"])
    check, _, _ = run_verilator(params, [same])
    print(f"  cycle-accuracy cross-check, same jobs: busy cycles Verilator {check[0]['busy_cycles']} / "
          f"Amaranth {a['busy_cycles']}; MAC cycles {check[0]['mac_cycles']} / {a['mac_cycles']}")


if __name__ == "__main__":
    main()
