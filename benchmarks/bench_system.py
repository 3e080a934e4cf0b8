"""Whole-system speed under Verilator (or Icarus): build time per configuration, and simulated cycles
per wall-clock second of a layer run (start to done, measured inside the bench; and the
whole simulator launch including loading and readback).

Every run is checked bit-exactly against the golden model; the figures are printed,
never asserted.

    .venv/bin/python benchmarks/bench_system.py [--presets rtl-2x2,rtl-4x4] [--tokens 64]
        [--fresh-build]    # build into an empty directory to time a cold build
        [--sim icarus]     # Icarus Verilog instead (far slower)
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from scheduler.plan import STRATEGIES  # noqa: E402
from sim import rtl  # noqa: E402
from sim.workload import prepare  # noqa: E402


def bench(preset: str, model: str, tokens: int, routing: str, sim: str = "verilator") -> list[dict]:
    workloads = [prepare(preset=preset, model=model, tokens=tokens, routing_spec=routing, strategy=s)
                 for s in STRATEGIES]
    b = rtl.build(workloads[0].system, sim=sim)
    rows = []
    for r in rtl.run(workloads, built=b):
        j = r.to_json()
        rows.append({"preset": preset, "strategy": j["strategy"], "cycles": j["cycles"],
                     "bit_exact": j["bit_exact"], "build_s": round(b.seconds, 1), "converted": b.converted,
                     "run_wall_s": j["run_wall_seconds"], "launch_wall_s": j["wall_seconds"],
                     "cycles_per_s": j["cycles"] / j["run_wall_seconds"] if j["run_wall_seconds"] else None})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default="rtl-2x2,rtl-4x4")
    ap.add_argument("--model", default="tiny-8x2")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--routing", default="mixtral:c4")
    ap.add_argument("--fresh-build", action="store_true", help="time cold builds in a temporary build directory")
    ap.add_argument("--json", help="also write the figures as JSON")
    ap.add_argument("--sim", default="verilator", choices=("verilator", "icarus"), help="the simulator")
    args = ap.parse_args()
    tmp = None
    if args.fresh_build:
        tmp = tempfile.TemporaryDirectory(prefix="fsedp-bench-build-")
        os.environ["FSEDP_BUILD_DIR"] = tmp.name
    rows = []
    print(f"{'preset':8} {'strategy':14} {'cycles':>8} {'bit-exact':>9} {'build s':>8} "
          f"{'run s':>7} {'cycles/s':>10} {'launch s':>9}")
    for preset in args.presets.split(","):
        for r in bench(preset, args.model, args.tokens, args.routing, args.sim):
            rows.append(r)
            build = f"{r['build_s']}{'' if r['converted'] else '*'}"
            print(f"{r['preset']:8} {r['strategy']:14} {r['cycles']:>8} {str(r['bit_exact']):>9} {build:>8} "
                  f"{r['run_wall_s']:>7.3f} {r['cycles_per_s']:>10.0f} {r['launch_wall_s']:>9.2f}", flush=True)
    print("build s: wall time of rtl.build (* = Verilog cached, Verilator only checked or rebuilt C++); "
          "run s: start to done; launch s: the simulator launch's share per workload")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(rows, indent=2))
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main()
