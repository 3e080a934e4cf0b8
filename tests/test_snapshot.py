"""The committed grid snapshot (docs/results/paper-grid) and the README's figures from it.

The figures the README quotes are recomputed here from the snapshot's ``points.csv``,
independently of the report code, and must appear in the README as printed; a few of the
snapshot's points are simulated again with the fast engine and must give the same
cycles, so the snapshot describes the code as it is.
"""

import csv
import pathlib
import statistics

import pytest

from sim import fast
from sim.eval import grid as eval_grid
from sim.eval.realstats import real_routing
from sim.workload import prepare

ROOT = pathlib.Path(__file__).resolve().parents[1]
SNAP = ROOT / "docs" / "results" / "paper-grid"
README = " ".join((ROOT / "README.md").read_text().split())   # line breaks do not matter
FSE, PAIRED = ("fse-dp", "fse-dp-paired"), "fse-dp-paired"
BASELINES = ("ep", "hydra", "ep-whole", "ep-paper")
TIE = 0.02


def _rows(name):
    with open(SNAP / name) as f:
        return list(csv.DictReader(f))


def _points():
    """{(preset, model, L, budget): {strategy: row}} of the runs that fit."""
    out = {}
    for r in _rows("points.csv"):
        if r["fits"] == "True":
            out.setdefault((r["preset"], r["model"], int(r["tokens"]), r["budget"]), {})[r["strategy"]] = r
    return out


def _iso():
    """(paired speedup, unpaired speedup, runs) at every numeric budget where FSE-DP and
    a baseline both ran, from the cycles alone."""
    out = []
    for (_, _, _, budget), runs in _points().items():
        if budget == "paper":
            continue
        base = [int(runs[b]["cycles"]) for b in BASELINES if b in runs]
        if not base or not any(s in runs for s in FSE):
            continue
        sp = [min(base) / int(runs[s]["cycles"]) if s in runs else None for s in (PAIRED, "fse-dp")]
        out.append((sp[0], sp[1], runs, min(base)))
    return out


def test_readme_quotes_the_snapshot_verdict():
    iso = _iso()
    paired = [x[0] for x in iso if x[0] is not None]
    wins = sum(v > 1 + TIE for v in paired)
    losses = sum(v < 1 - TIE for v in paired)
    ties = len(paired) - wins - losses
    assert (f"FSE-DP paired wins {wins}, ties {ties} and loses {losses} of {len(paired)} points" in README)
    assert (f"median {statistics.median_low(paired):.2f}x, range {min(paired):.2f}x to {max(paired):.2f}x"
            in README)
    at_bound = sum(1 for x in iso
                   if min(float(x[2][b]["distance"]) for b in BASELINES if b in x[2]
                          and int(x[2][b]["cycles"]) == x[3]) <= 1 + TIE)
    assert f"At {at_bound} of them the best baseline already runs within 2% of the lower bound" in README
    lost = [x for x in iso if x[0] is not None and x[0] < 1 - TIE]
    small = sum(int(x[2][PAIRED]["slots"]) <= 3 for x in lost)
    assert f"2 or 3 slots ({small} of the losses)" in README
    hot = [float(x[2][PAIRED]["lockstep_factor"]) for x in lost if x[2][PAIRED]["busiest"] == "compute"]
    assert f"lockstep factor, {min(hot):.2f} to {max(hot):.2f} there" in README
    worst = min(lost, key=lambda x: x[0])[2][PAIRED]
    assert (f"{min(paired):.2f}x, {worst['model']} on {worst['preset']} at L = {worst['tokens']} with a "
            f"{worst['budget']} buffer") in README
    slower = [x for x in iso if x[0] is not None and x[1] is not None and x[0] < x[1] * (1 - 0.005)]
    most = max(1 - x[0] / x[1] for x in slower)
    assert f"slower than unpaired FSE-DP at {len(slower)} of {len(paired)} points, by up to {100 * most:.0f}%" in README


def test_readme_quotes_the_memory_and_the_paper_baseline():
    need = {}
    for r in _rows("sram_needed.csv"):
        need.setdefault((r["preset"], r["model"], r["tokens"]), {})[r["strategy"]] = (
            int(r["sram_needed_bytes"]) if r["sram_needed_bytes"] else None)
    savings = []
    for n in need.values():
        base = [n[b] for b in BASELINES if n[b] is not None]
        if n[PAIRED] is not None and base:
            savings.append(1 - n[PAIRED] / min(base))
    assert (f"0% or better at {sum(s >= 0 for s in savings)} of {len(savings)} model and L groups, never better "
            f"than {100 * max(savings):.0f}%, and as low as {100 * min(savings):.0f}%") in README
    paper = {}
    for r in _rows("paper.csv"):
        if r["cycles"]:
            paper.setdefault((r["preset"], r["model"], r["tokens"]), {})[r["strategy"]] = r
    pts = [(int(p["ep-paper"]["cycles"]) / int(p[PAIRED]["cycles"]),
            1 - int(p[PAIRED]["provisioned_weight_bytes"]) / int(p["ep-paper"]["provisioned_weight_bytes"]))
           for p in paper.values() if "ep-paper" in p and PAIRED in p]
    inside = sum(1.22 <= s <= 2.00 for s, _ in pts)
    most = max(int(p["ep-paper"]["provisioned_weight_bytes"]) for p in paper.values() if "ep-paper" in p)
    assert f"two whole experts per chiplet, up to {most >> 20} MiB" in README
    assert (f"{min(s for s, _ in pts):.2f}x to {max(s for s, _ in pts):.2f}x ({inside} of {len(pts)} points inside "
            f"1.22x-2.00x) with {100 * min(w for _, w in pts):.1f}% to {100 * max(w for _, w in pts):.1f}% less "
            "weight SRAM") in README


# A few of the snapshot's points, simulated again: the snapshot is of this code.
RERUN = [("paper-2x2", "olmoe-1b-7b", 16, "8 MiB"), ("paper-2x2", "deepseek-moe-16b", 64, "2 MiB"),
         ("paper-3x3", "qwen3-30b-a3b", 16, "paper")]


@pytest.mark.parametrize("preset,model,tokens,budget", RERUN)
def test_snapshot_points_simulate_to_the_same_cycles(tmp_path, preset, model, tokens, budget):
    runs = _points()[preset, model, tokens, budget]
    spec = real_routing(model, "c4", tmp_path).spec
    label = "paper" if budget == "paper" else budget.replace(" ", "")
    point = eval_grid.Point(preset, model, "real:c4", spec, "", tokens, eval_grid.parse_srams(label)[0])
    for strategy, row in runs.items():
        w = prepare(preset=preset, model=model, tokens=tokens, routing_spec=spec, strategy=strategy,
                    sram=point.budget(strategy), with_data=False)
        assert fast.run([w])[0].cycles == int(row["cycles"]), (strategy, preset, model, tokens, budget)


ENERGY = ROOT / "docs" / "results" / "energy-8MiB"


def _energy_points():
    with open(ENERGY / "energy.csv") as f:
        rows = list(csv.DictReader(f))
    points = {}
    for r in rows:
        points.setdefault((r["preset"], r["model"], int(r["tokens"])), {})[r["strategy"]] = r
    return points


def test_readme_quotes_the_energy_snapshot():
    """The README's energy figures, recomputed from the energy snapshot's CSV."""
    ratios, edps, extra = [], [], {"weight_sram": 0.0, "router": 0.0, "d2d": 0.0}
    points = _energy_points()
    for runs in points.values():
        paired = runs[PAIRED]
        base = [runs[s] for s in ("ep", "hydra") if s in runs]
        by_energy = min(base, key=lambda r: float(r["energy_j"]))
        by_edp = min(base, key=lambda r: float(r["edp_js"]))
        ratios.append(float(paired["energy_j"]) / float(by_energy["energy_j"]))
        edps.append(float(paired["edp_js"]) / float(by_edp["edp_js"]))
        for c in extra:
            extra[c] += float(paired[f"{c}_j"]) - float(by_energy[f"{c}_j"])
    total = sum(extra.values())
    more = sum(r > 1 for r in ratios)
    assert more == len(ratios)      # "at every point"
    assert (f"paper-2x2 and paper-4x4 ({len(points)} points), FSE-DP paired spends more energy per layer than the "
            f"best of EP and Hydra at every point, {min(ratios):.2f}x to {max(ratios):.2f}x (median "
            f"{statistics.median(ratios):.2f}x), and has the better energy-delay product at "
            f"{sum(e < 1 for e in edps)} of {len(points)}") in README
    assert (f"{100 * extra['weight_sram'] / total:.0f}% is weight-buffer traffic" in README
            and f"{100 * extra['router'] / total:.0f}% router and {100 * extra['d2d'] / total:.0f}% D2D links"
            in README)


def test_energy_snapshot_points_simulate_to_the_same_energy(tmp_path):
    """One point of the energy snapshot, simulated again: the same cycles and energy."""
    preset, model, tokens = "paper-2x2", "olmoe-1b-7b", 64
    runs = _energy_points()[preset, model, tokens]
    spec = real_routing(model, "c4", tmp_path).spec
    assert {r["table"] for r in runs.values()} == {"default"}
    for strategy in ("fse-dp-paired", "ep"):
        w = prepare(preset=preset, model=model, tokens=tokens, routing_spec=spec, strategy=strategy,
                    sram=8 << 20, with_data=False)
        j = fast.run([w])[0].to_json()
        assert j["cycles"] == int(runs[strategy]["cycles"])
        assert abs(j["energy"]["total_j"] - float(runs[strategy]["energy_j"])) <= 1e-9 * j["energy"]["total_j"]
