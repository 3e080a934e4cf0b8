"""Pin the fast model's measured results on a set of paper-scale points.

Runs every point with the current implementation and writes, per point, the cycle count
and every counter the model measures (each ``ChipletCounters`` field of every chiplet:
busy and MAC cycles, MACs, slot high-water and end occupancy, per-link flits, header
flits, busy and stalled cycles, crossbar flits, DRAM flits, done cycle, buffer traffic).
Wall time and the event count are left out: they are not results.  A point whose plan
does not fit its budget is pinned with the refusal message.

``tests/test_fast_regression.py`` asserts that the model still reproduces the file (its
default points by default, all with ``-m slow``), so a
change to ``sim/fast`` that is meant to be a pure speed-up is checked against the
implementation the file was written with.

    .venv/bin/python benchmarks/pin_fast.py                 # write tests/data/fast_pin.json
    .venv/bin/python benchmarks/pin_fast.py --check         # compare against it, print differences
    .venv/bin/python benchmarks/pin_fast.py --check --default-only    # only the default test's points
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scheduler.plan import STRATEGIES, FitError  # noqa: E402
from scheduler.presets import MiB  # noqa: E402

PIN_FILE = ROOT / "tests" / "data" / "fast_pin.json"

#: The default test's points: (preset, model, L, weight budget, strategies), chosen to
#: cover every strategy, both mesh sizes, both L and two budgets in well under a minute.
DEFAULT = (
    ("paper-2x2", "olmoe-1b-7b", 64, 8 * MiB, STRATEGIES),
    ("paper-2x2", "mixtral-8x7b", 1024, 8 * MiB, ("fse-dp-paired", "ep", "ep-whole")),
    ("paper-2x2", "qwen3-30b-a3b", 1024, 2 * MiB, ("fse-dp", "hydra", "ep-paper")),
    ("paper-4x4", "olmoe-1b-7b", 1024, 8 * MiB, ("fse-dp-paired", "ep-whole")),
)

#: The wide set (``-m slow`` test, development): (presets, models, tokens, weight budgets),
#: every strategy at every combination.
WIDE = (
    (("paper-2x2",), ("mixtral-8x7b", "olmoe-1b-7b", "qwen3-30b-a3b", "deepseek-moe-16b"), (64, 1024),
     (8 * MiB, 2 * MiB)),
    (("paper-4x4",), ("mixtral-8x7b", "olmoe-1b-7b", "qwen3-30b-a3b"), (1024,), (8 * MiB,)),
)


def points(wide: bool = True) -> list[dict]:
    """The pinned points, each with ``default`` (in the default test's set) set."""
    out = {}
    for preset, model, L, sram, strategies in DEFAULT:
        for strategy in strategies:
            p = dict(preset=preset, model=model, tokens=L, sram=sram, strategy=strategy)
            out[key(p)] = dict(p, default=True)
    if wide:
        for presets, models, tokens, srams in WIDE:
            for preset in presets:
                for model in models:
                    for L in tokens:
                        for sram in srams:
                            for strategy in STRATEGIES:
                                p = dict(preset=preset, model=model, tokens=L, sram=sram, strategy=strategy)
                                out.setdefault(key(p), dict(p, default=False))
    return list(out.values())


def key(point: dict) -> str:
    return f"{point['preset']} {point['model']} L={point['tokens']} sram={point['sram']} {point['strategy']}"


def measure(point: dict, routing_dir: str) -> dict:
    """The pinned record of one point: cycles and every chiplet's counters (or the
    refusal)."""
    from sim import fast
    from sim.eval.realstats import real_routing
    from sim.workload import prepare

    spec = real_routing(point["model"], "c4", routing_dir).spec
    try:
        w = prepare(preset=point["preset"], model=point["model"], tokens=point["tokens"], routing_spec=spec,
                    strategy=point["strategy"], sram=point["sram"], with_data=False)
    except FitError as exc:
        return {"refused": str(exc)}
    r = fast.run([w])[0]
    return {"cycles": r.cycles, "chiplets": [dataclasses.asdict(c) for c in r.chiplets]}


def run(pts, verbose=True) -> dict:
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for p in pts:
            t0 = time.perf_counter()
            out[key(p)] = {"point": p, **measure(p, tmp)}
            if verbose:
                rec = out[key(p)]
                print(f"{key(p):60s} {rec.get('cycles', 'refused'):>10} {time.perf_counter() - t0:7.2f} s",
                      flush=True)
    return out


def diff(pinned: dict, got: dict) -> list[str]:
    """Human-readable differences between two pin files' records."""
    problems = []
    for k, want in pinned.items():
        have = got.get(k)
        if have is None:
            problems.append(f"{k}: not run")
        elif have != want:
            if "refused" in want or "refused" in have:
                problems.append(f"{k}: {want.get('refused', want.get('cycles'))} -> "
                                f"{have.get('refused', have.get('cycles'))}")
                continue
            if have["cycles"] != want["cycles"]:
                problems.append(f"{k}: cycles {want['cycles']} -> {have['cycles']}")
            for c, (a, b) in enumerate(zip(want["chiplets"], have["chiplets"])):
                for field in a:
                    if a[field] != b.get(field):
                        problems.append(f"{k}: chiplet {c} {field} {a[field]} -> {b.get(field)}")
    return problems


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--default-only", action="store_true", help="only the default test's points")
    ap.add_argument("--out", type=pathlib.Path, default=PIN_FILE)
    ap.add_argument("--check", action="store_true", help="compare against --out instead of writing it")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    got = run(points(wide=not args.default_only))
    print(f"{len(got)} points, {time.perf_counter() - t0:.1f} s")
    if args.check:
        pinned = json.loads(args.out.read_text())["points"]
        pinned = {k: v for k, v in pinned.items() if k in got}
        problems = diff(pinned, got)
        print("\n".join(problems) if problems else f"all {len(pinned)} pinned points reproduced")
        return 1 if problems else 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"points": got}, indent=None, separators=(",", ":")) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
