"""Fast model: agreement with the RTL, and speed at paper scale.

Prints the cross-validation table (every point: RTL cycles, fast-model cycles, error,
whether the slot high-water marks are equal) with the worst error, then the wall and
CPU time of paper-scale layers at L = 1024 (best of ``--repeat``; on a loaded machine
the CPU time is the steadier figure) and the model's event count.

    .venv/bin/python benchmarks/bench_fast.py                  # full grid (~3 min) + paper scale
    .venv/bin/python benchmarks/bench_fast.py --grid small     # the default test grid (~1 min)
    .venv/bin/python benchmarks/bench_fast.py --grid none      # paper scale only
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from scheduler.plan import FitError  # noqa: E402
from scheduler.presets import format_size, parse_size  # noqa: E402
from sim import fast  # noqa: E402
from sim.fast import validate  # noqa: E402
from sim.eval.realstats import real_routing  # noqa: E402
from sim.workload import prepare  # noqa: E402

PAPER_MODELS = ("phi-3.5-moe", "mixtral-8x7b", "deepseek-moe-16b", "qwen3-30b-a3b", "yuan2-m32", "olmoe-1b-7b")


def paper(models, presets, strategies, tokens, repeat, sram):
    print(f"\nPaper-scale layers, L = {tokens}, {format_size(sram)} weight buffer (routing from real statistics, "
          f"c4; best of {repeat})")
    print(f"{'preset':10s} {'model':18s} {'strategy':14s} {'cycles':>11s} {'wall s':>7s} {'cpu s':>7s} "
          f"{'events':>8s}")
    with tempfile.TemporaryDirectory() as tmp:
        for preset in presets:
            for model in models:
                spec = real_routing(model, "c4", tmp).spec
                for strategy in strategies:
                    try:
                        w = prepare(preset=preset, model=model, tokens=tokens, routing_spec=spec,
                                    strategy=strategy, sram=sram, with_data=False)
                    except FitError as exc:
                        print(f"{preset:10s} {model:18s} {strategy:14s} {str(exc).split(': ', 1)[1][:60]}")
                        continue
                    best, cpu, r = None, None, None
                    for _ in range(repeat):
                        t0, c0 = time.perf_counter(), time.process_time()
                        r = fast.run([w])[0]
                        dt, dc = time.perf_counter() - t0, time.process_time() - c0
                        best = dt if best is None else min(best, dt)
                        cpu = dc if cpu is None else min(cpu, dc)
                    print(f"{preset:10s} {model:18s} {strategy:14s} {r.cycles:11d} {best:7.3f} {cpu:7.3f} "
                          f"{r.config['fast_model_events']:8d}", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", choices=["full", "small", "none"], default="full")
    ap.add_argument("--presets", default="paper-2x2", help="comma-separated paper-scale presets")
    ap.add_argument("--models", default=",".join(PAPER_MODELS))
    ap.add_argument("--strategies", default="fse-dp-paired,fse-dp,ep,hydra,ep-whole,ep-paper")
    ap.add_argument("--sram", default="8MiB", help="weight buffer per chiplet of the paper-scale runs")
    ap.add_argument("--tokens", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    if args.grid != "none":
        t0 = time.perf_counter()
        rows, skipped = validate.cross_validate(validate.grid(full=args.grid == "full"))
        print(f"Cross-validation against the RTL ({len(rows)} points, {time.perf_counter() - t0:.0f} s; "
              f"{len(skipped)} points do not fit their budget)")
        print(validate.table(rows))
    paper(args.models.split(","), args.presets.split(","), args.strategies.split(","), args.tokens, args.repeat,
          parse_size(args.sram))


if __name__ == "__main__":
    main()
