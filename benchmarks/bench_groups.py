"""FSE-DP in chiplet groups against one ring, on the fast model (docs/groups.md).

For each model and L: FSE-DP unpaired and paired on one ring and in each grouping, with
cycles, DRAM and D2D bytes, and the best of ep and hydra (which do not take groups) on
the same hardware and tokens.

    .venv/bin/python benchmarks/bench_groups.py            # paper-4x4, 8 MiB, three models, L 16..1024
    .venv/bin/python benchmarks/bench_groups.py --preset paper-3x3 --groups 2
    .venv/bin/python benchmarks/bench_groups.py --d2d 0.25        # D2D links at a quarter of the preset's
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from scheduler.presets import get_hardware, parse_size  # noqa: E402
from sim import fast  # noqa: E402
from sim.eval.realstats import real_routing  # noqa: E402
from sim.workload import prepare  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="paper-4x4")
    ap.add_argument("--models", default="mixtral-8x7b,qwen3-30b-a3b,phi-3.5-moe")
    ap.add_argument("--tokens", default="16,64,256,1024")
    ap.add_argument("--sram", default="8MiB", help="weight buffer per chiplet")
    ap.add_argument("--groups", default="2,4", help="comma-separated numbers of groups (default partitions)")
    ap.add_argument("--d2d", type=float, default=1.0, help="D2D link bandwidth as a multiple of the preset's")
    args = ap.parse_args(argv)
    sram, groupings = parse_size(args.sram), [None] + [int(g) for g in args.groups.split(",")]
    base = get_hardware(args.preset)
    hw = dataclasses.replace(base, name=f"{base.name}-d2d-x{args.d2d:g}",
                             link_bytes_per_cycle=base.link_bytes_per_cycle * args.d2d) if args.d2d != 1 else base
    print(f"{args.preset}, {args.sram} weight buffer, D2D {hw.link_bytes_per_cycle:g} B/cycle per link, DRAM "
          f"{hw.dram_bytes_per_cycle:g} B/cycle per channel, routing from real statistics (c4), fast model")
    print(f"{'model':16s} {'L':>5s} {'strategy':14s} {'groups':>6s} {'cycles':>10s} {'vs 1 ring':>9s} "
          f"{'vs best EP':>10s} {'DRAM MiB':>9s} {'D2D MiB':>9s}")
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models.split(","):
            spec = real_routing(model, "c4", tmp).spec
            for tokens in (int(t) for t in args.tokens.split(",")):
                def run(strategy, groups=None):
                    w = prepare(preset=hw, model=model, tokens=tokens, routing_spec=spec,
                                strategy=strategy, sram=sram, groups=groups, with_data=False)
                    return fast.run([w])[0].to_json()
                best = min(run(s)["cycles"] for s in ("ep", "hydra"))
                for strategy in ("fse-dp", "fse-dp-paired"):
                    one = None
                    for g in groupings:
                        r = run(strategy, g)
                        one = one or r["cycles"]
                        print(f"{model:16s} {tokens:5d} {strategy:14s} {g or 1:6d} {r['cycles']:10d} "
                              f"{one / r['cycles']:9.3f} {best / r['cycles']:10.3f} "
                              f"{r['dram_bytes'] / 2**20:9.1f} {r['d2d_bytes'] / 2**20:9.1f}", flush=True)


if __name__ == "__main__":
    main()
