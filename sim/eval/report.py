"""``fsedp grid`` and ``fsedp report``: the evaluation on an SRAM axis, and its report.

``fsedp report DIR`` reads every compare JSON under DIR (the files ``fsedp grid`` or
``fsedp compare --json`` write) and writes, to ``--out`` (default ``DIR/report``):
``report.md`` with the verdict and the tables; ``points.csv`` (every run and every
strategy that did not fit), ``iso_sram.csv``, ``sram_needed.csv``, ``paper.csv`` and
``energy.csv``; and PNG plots.  Every number is computed here from the runs' measured
fields (cycles, utilizations, bytes moved, provisioned buffers) and the hardware preset;
nothing is copied from a summary.  Energy and EDP are estimates: each run's counted
quantities (``energy.inputs``) priced with one technology table for the whole report
(``--tech``, ``sim.eval.energy``, docs/energy.md); runs without them (compare files
written before the energy model) have no energy, and the report says so.  See
``docs/report.md``.

A *group* is (preset, model, routing, L); its points are the budgets it ran at.  The
definitions the report uses:

- best EP-family baseline at a budget: the fastest of ``ep``, ``hydra``, ``ep-whole`` and
  ``ep-paper`` among those that fit that budget;
- iso-SRAM speedup: best baseline cycles / FSE-DP cycles at the same budget;
- SRAM needed: the smallest budget of the axis at which a strategy comes within
  :data:`NEAR` (5%) of its own best time on the axis; the iso-performance memory saving
  is ``1 - needed(FSE-DP) / needed(baseline)``;
- win / tie / loss: an iso-SRAM speedup above ``1 + TIE``, within ``TIE`` (2%), below.
"""

from __future__ import annotations

import csv
import json
import pathlib
import sys

from scheduler import presets
from scheduler.plan import STRATEGIES

from . import die_area as _die_area
from . import energy as _energy
from .bound import lockstep_factor, lower_bound, plan_bound

__all__ = ["add_parsers", "load_points", "point_row", "groups", "write_report", "PAPER_SPEEDUP", "PAPER_SAVING",
           "NEAR", "TIE"]

#: The paper's claims (FSE-DP, arXiv 2603.27624: 1.22x-2.00x over EP and Hydra, up to 78.8% less memory).
PAPER_SPEEDUP = (1.22, 2.00)
PAPER_SAVING = 0.788
PAIRED, UNPAIRED = "fse-dp-paired", "fse-dp"
FSE = (UNPAIRED, PAIRED)
BASELINES = ("ep", "hydra", "ep-whole", "ep-paper")
NAMES = {"ep": "EP", "hydra": "Hydra", "ep-whole": "EP (whole experts)", "ep-paper": "EP (reference model)",
         UNPAIRED: "FSE-DP", PAIRED: "FSE-DP paired"}
#: Within this fraction of a strategy's own best time counts as reaching it.
NEAR = 0.05
#: Speedups within this fraction of 1 count as a tie.
TIE = 0.02
PAPER_BUDGET = "paper"


class ReportError(ValueError):
    """A folder the report cannot use (reported as one line by the CLI)."""


# --------------------------------------------------------------------------- loading

def _is_compare(doc) -> bool:
    return (isinstance(doc, dict) and isinstance(doc.get("runs"), list)
            and all(isinstance(r, dict) and {"strategy", "cycles", "config"} <= set(r) for r in doc["runs"])
            and (doc["runs"] or doc.get("not_run")))


def _grid_file(folder: pathlib.Path, path: pathlib.Path) -> bool:
    """``fsedp grid``'s own non-result files: ``index.json`` and derived ``routing/`` statistics."""
    rel = path.relative_to(folder).parts
    return rel == ("index.json",) or rel[0] == "routing"


def load_points(folder) -> tuple[list, list]:
    """``([(path, compare document)], [skipped paths])`` for every ``*.json`` under
    ``folder`` (the report's own output folder excluded)."""
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        raise ReportError(f"{folder}: no such folder")
    found, skipped = [], []
    for path in sorted(folder.rglob("*.json")):
        try:
            doc = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            skipped.append(path)
            continue
        if _is_compare(doc):
            found.append((path, doc))
        elif not _grid_file(folder, path):
            skipped.append(path)
    if not found:
        raise ReportError(f"{folder}: no compare JSON files (objects with a 'runs' list, as "
                          "`fsedp grid` or `fsedp compare --json` write)")
    return found, skipped


# --------------------------------------------------------------------------- metrics

def _ratio(a, b):
    return a / b if a is not None and b else None


def point_bound(doc: dict, hw) -> dict | None:
    """The layer's lower bound: from the ``point`` record's bound inputs when the grid
    stored them, else by re-planning the workload from the run's config (plan only)."""
    stored = (doc.get("point") or {}).get("bound") or {}
    if "unique_weight_bytes" in stored and "macs" in stored:
        return lower_bound(stored["unique_weight_bytes"], stored["macs"], hw)
    from sim.workload import prepare

    if not doc["runs"]:
        return None
    cfg = doc["runs"][0]["config"]
    try:
        w = prepare(preset=cfg["preset"], model=cfg["model"], tokens=cfg["tokens"], routing_spec=cfg["routing"],
                    strategy=cfg["strategy"], seed=cfg.get("seed", 0), sram=cfg.get("sram"),
                    slices=cfg.get("slices") if cfg["strategy"] not in ("ep-whole", "ep-paper") else None,
                    with_data=False)
    except (KeyError, ValueError, OSError):
        return None
    return plan_bound(w.plan)


def point_lockstep(doc: dict, hw):
    """The routing's lockstep factor: stored by the grid, else computed from the point's
    routing (None if it no longer resolves)."""
    meta = doc.get("point") or {}
    if (meta.get("bound") or {}).get("lockstep") is not None:
        return meta["bound"]["lockstep"]
    from scheduler import routing

    cfg = doc["runs"][0]["config"] if doc["runs"] else {}
    try:
        m = presets.get_model(meta.get("model", cfg.get("model")))
        trace = routing.from_spec(meta.get("routing_spec", cfg.get("routing")), meta.get("tokens", cfg.get("tokens")),
                                  m.num_experts, m.top_k, cfg.get("seed", 0))
    except (KeyError, ValueError, OSError, TypeError):
        return None
    return lockstep_factor(m, hw, trace)


def run_energy(run: dict, table=None) -> dict | None:
    """The run's energy priced with ``table`` from the quantities it counted
    (``energy.inputs``); None for a run without them (written before the energy model)."""
    inputs = (run.get("energy") or {}).get("inputs")
    if not isinstance(inputs, dict):
        return None
    try:
        return _energy.price(inputs, table)
    except (KeyError, TypeError, ZeroDivisionError):
        return None


def _run_metrics(run: dict, hw) -> dict:
    """Utilizations and the busiest resource of one run."""
    cycles = run["cycles"]
    util = {"compute": max(run["compute_utilization"], default=0.0),
            "D2D link": max((max(u, default=0.0) for u in run.get("link_utilization", [])), default=0.0)}
    if hw is not None and cycles:
        util["DRAM"] = run["dram_bytes"] / (cycles * hw.dram_bytes_per_cycle * hw.dram_channels)
    return {"cycles": cycles, "util": util, "busiest": max(util, key=util.get),
            "weight_bytes": run.get("plan_weight_bytes"), "provisioned": run.get("provisioned_weight_bytes"),
            "slices": run.get("slices"), "slots": run.get("slots"), "d2d_bytes": run.get("d2d_bytes"),
            "peak": max(run["peak_onchip_bytes"]), "token_peak": max(run.get("token_bytes") or [0])}


def _budget_of(doc: dict):
    """The point's weight budget: bytes, or ``"paper"``."""
    meta = doc.get("point") or {}
    if "sram" in meta and meta["sram"] not in (None, "preset"):
        return meta["sram"]
    for r in doc["runs"]:
        if r.get("provisioned_weight_bytes"):
            return r["provisioned_weight_bytes"]
    return None


def point_row(path, doc: dict, table=None) -> dict:
    """Everything the report shows about one point, computed from its runs (energy
    priced with technology table ``table``, default :data:`sim.eval.energy.DEFAULT_TABLE`)."""
    runs = {r["strategy"]: r for r in doc["runs"]}
    meta = doc.get("point") or {}
    cfg = doc["runs"][0]["config"] if doc["runs"] else {}
    preset = meta.get("preset", cfg.get("preset", "?"))
    try:
        hw = presets.get_hardware(preset)
    except (KeyError, presets.PresetError):
        hw = None
    m = {s: _run_metrics(r, hw) for s, r in runs.items()}
    for s, r in runs.items():
        m[s]["energy"] = run_energy(r, table)
    bound = point_bound(doc, hw) if hw is not None else None
    lockstep = point_lockstep(doc, hw) if hw is not None else None
    return {"lockstep": lockstep,"file": str(path), "preset": preset, "model": meta.get("model", cfg.get("model", "?")),
            "routing": meta.get("routing", cfg.get("routing", "?")), "tokens": meta.get("tokens", cfg.get("tokens")),
            "budget": _budget_of(doc), "routing_source": meta.get("routing_source"),
            "engine": doc["runs"][0].get("engine") if doc["runs"] else None,
            "strategies": [r["strategy"] for r in doc["runs"]],
            "bit_exact": [r.get("bit_exact") for r in doc["runs"]], "bound": bound,
            "not_run": {s["strategy"]: s["reason"] for s in doc.get("not_run", [])},
            "metrics": m, "cycles": {s: v["cycles"] for s, v in m.items()},
            "distance": {s: _ratio(v["cycles"], bound and bound["cycles"]) for s, v in m.items()}}


def best_baseline(row: dict):
    """``(strategy, cycles)`` of the fastest EP-family run of a point, or ``(None, None)``."""
    have = [(row["cycles"][b], b) for b in BASELINES if b in row["cycles"]]
    if not have:
        return None, None
    cycles, s = min(have)
    return s, cycles


def _order_key(row):
    hw, mod = list(presets.HARDWARE_PRESETS), list(presets.MODEL_PRESETS)
    rank = lambda name, table: (table.index(name), name) if name in table else (len(table), name)  # noqa: E731
    b = row["budget"]
    return (rank(row["preset"], hw), rank(row["model"], mod), str(row["routing"]), row["tokens"] or 0,
            (1, 0) if b == PAPER_BUDGET else (0, b or 0))


def groups(rows: list) -> list:
    """Rows grouped by (preset, model, routing, L): ``[(key, {budget: row})]``, ordered."""
    out = {}
    for r in sorted(rows, key=_order_key):
        out.setdefault((r["preset"], r["model"], r["routing"], r["tokens"]), {})[r["budget"]] = r
    return list(out.items())


def _axis(points: dict) -> list:
    """The numeric budgets of a group, ascending."""
    return sorted(b for b in points if isinstance(b, int))


def sram_needed(points: dict, strategy: str):
    """The smallest budget on the axis at which ``strategy`` comes within :data:`NEAR` of
    its own best time on the axis (None if it never runs), and that best time."""
    have = [(b, points[b]["cycles"][strategy]) for b in _axis(points) if strategy in points[b]["cycles"]]
    if not have:
        return None, None
    best = min(c for _, c in have)
    return next(b for b, c in have if c <= (1 + NEAR) * best), best


def _outcome(speedup) -> str:
    if speedup is None:
        return "n/a"
    return "win" if speedup > 1 + TIE else "loss" if speedup < 1 - TIE else "tie"


# --------------------------------------------------------------------------- formatting

def _f(v, spec=".2f", suffix=""):
    return "-" if v is None else f"{v:{spec}}{suffix}"


def _pct(v):
    return "-" if v is None else f"{100 * v:.1f}%"


def _mib(v):
    if v is None:
        return "-"
    if v == PAPER_BUDGET:
        return "paper"
    return presets.format_size(v)


def md_table(headers: list, rows: list) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _where(key, budget=None) -> str:
    preset, model, routing, tokens = key
    return f"{preset} {model} L={tokens}" + (f" at {_mib(budget)}" if budget is not None else "")


def _pct_util(r, s):
    u = r["metrics"][s]["util"]
    return ", ".join(f"{k} {100 * v:.0f}%" for k, v in sorted(u.items(), key=lambda kv: -kv[1]))


# --------------------------------------------------------------------------- tables

def iso_sram_table(items: list) -> str:
    """(b) Per group: FSE-DP paired / unpaired speedup over the best EP-family baseline at
    each budget (which baseline in brackets)."""
    budgets = sorted({b for _, pts in items for b in _axis(pts)})
    head = ["model", "L"] + [_mib(b) for b in budgets]
    body = []
    for key, pts in items:
        cells = []
        for b in budgets:
            r = pts.get(b)
            if r is None:
                cells.append("")
                continue
            base, cycles = best_baseline(r)
            p, u = (_ratio(cycles, r["cycles"].get(s)) for s in (PAIRED, UNPAIRED))
            if base is None and (PAIRED in r["cycles"] or UNPAIRED in r["cycles"]):
                cells.append("no EP fits")
            elif PAIRED not in r["cycles"] and UNPAIRED not in r["cycles"]:
                cells.append("FSE-DP does not fit" if base else "nothing fits")
            else:
                cells.append(f"{_f(p)} / {_f(u)} ({base})")
        body.append([key[1], key[3]] + cells)
    return md_table(head, body)


def need_table(items: list) -> str:
    """(c) Per group: the SRAM each strategy needs to come within 5% of its own best time,
    and the iso-performance saving of FSE-DP paired and unpaired against the baseline that
    needs least."""
    head = ["model", "L"] + [NAMES[s] for s in STRATEGIES] + ["paired saving", "unpaired saving"]
    body = []
    for key, pts in items:
        need = {s: sram_needed(pts, s)[0] for s in STRATEGIES}
        base = [need[b] for b in BASELINES if need[b] is not None]
        least = min(base) if base else None
        body.append([key[1], key[3]] + [_mib(need[s]) for s in STRATEGIES]
                    + [_pct(1 - need[s] / least) if need[s] is not None and least else "-" for s in FSE[::-1]])
    return md_table(head, body)


def paper_table(items: list) -> str:
    """(d) FSE-DP against the reference model's EP at the reference model's provisioning,
    and FSE-DP paired at 8 MiB against the same."""
    head = ["model", "L", "ep-paper cycles (weight SRAM)", "paired cycles (weight SRAM)", "paired vs ep-paper",
            "unpaired vs ep-paper", "weight-SRAM saving", "paired at 8 MiB vs ep-paper"]
    body = []
    for key, pts in items:
        r = pts.get(PAPER_BUDGET)
        if r is None:
            continue
        e, p, u = (r["metrics"].get(s) for s in ("ep-paper", PAIRED, UNPAIRED))
        at8 = pts.get(8 * presets.MiB)
        body.append([key[1], key[3],
                     f"{e['cycles']} ({_mib(e['provisioned'])})" if e else "does not fit",
                     f"{p['cycles']} ({_mib(p['provisioned'])})" if p else "does not fit",
                     _f(_ratio(e and e["cycles"], p and p["cycles"]), ".2f", "x"),
                     _f(_ratio(e and e["cycles"], u and u["cycles"]), ".2f", "x"),
                     _pct(1 - p["provisioned"] / e["provisioned"]) if e and p else "-",
                     _f(_ratio(e and e["cycles"], at8 and at8["cycles"].get(PAIRED)), ".2f", "x")])
    return md_table(head, body)


def bound_table(items: list, budget) -> str:
    """Distance to the lower bound at one budget, and each strategy's busiest resource."""
    head = ["model", "L", "bound (cycles)", "limited by", "lockstep factor"] + [NAMES[s] for s in STRATEGIES] + \
        ["paired: busiest resource", "best EP: busiest resource"]
    body = []
    for key, pts in items:
        r = pts.get(budget)
        if r is None:
            continue
        b = r["bound"] or {}
        base, _ = best_baseline(r)
        cell = lambda s: (_f(r["distance"].get(s), ".2f", "x") if s in r["cycles"] else "does not fit")  # noqa: E731
        busy = lambda s: (f"{r['metrics'][s]['busiest']} {100 * r['metrics'][s]['util'][r['metrics'][s]['busiest']]:.0f}%"  # noqa: E501,E731
                          if s and s in r["metrics"] else "-")
        body.append([key[1], key[3], _f(b.get("cycles"), ".0f"), b.get("limit", "-"), _f(r["lockstep"])]
                    + [cell(s) for s in STRATEGIES]
                    + [busy(PAIRED), f"{base}: {busy(base)}" if base else "-"])
    return md_table(head, body)


def _energy_field(r, s, field):
    """``field`` (``edp_js``, ``total_j``) of strategy ``s``'s energy at a point, or None."""
    e = r["metrics"][s].get("energy") if s in r["metrics"] else None
    return e and e[field]


def _edp(r, s):
    return _energy_field(r, s, "edp_js")


def _total_j(r, s):
    return _energy_field(r, s, "total_j")


def best_edp_baseline(row: dict):
    """``(strategy, EDP)`` of the EP-family run with the lowest EDP, or ``(None, None)``."""
    have = [(_edp(row, b), b) for b in BASELINES if _edp(row, b) is not None]
    if not have:
        return None, None
    edp, s = min(have)
    return s, edp


def edp_table(items: list, budget) -> str:
    """Energy-delay product per strategy at one budget (J*s; estimates), and FSE-DP
    paired's energy and EDP over the EP-family run of lowest EDP."""
    head = ["model", "L"] + [f"{NAMES[s]} EDP (J*s)" for s in STRATEGIES] + \
        ["paired energy / best EP-family's", "paired EDP / best EP-family's (which)"]
    body = []
    for key, pts in items:
        r = pts.get(budget)
        if r is None:
            continue
        cell = lambda s: (("-" if _edp(r, s) is None else f"{_edp(r, s):.3g}") if s in r["cycles"]  # noqa: E731
                          else "does not fit")
        base, edp = best_edp_baseline(r)
        mine = _edp(r, PAIRED)
        body.append([key[1], key[3]] + [cell(s) for s in STRATEGIES]
                    + [_f(_ratio(_total_j(r, PAIRED), base and _total_j(r, base)), ".2f", "x"),
                       f"{_f(_ratio(mine, edp), '.2f', 'x')} ({base})" if base and mine is not None else "-"])
    return md_table(head, body)


def _energy_counts(rows: list) -> tuple:
    """(runs, runs without energy, runs with energy but components not counted: {component: n})."""
    runs = none = 0
    missing = {}
    for r in rows:
        for m in r["metrics"].values():
            runs += 1
            e = m.get("energy")
            if e is None:
                none += 1
                continue
            for c in e["missing"]:
                missing[c] = missing.get(c, 0) + 1
    return runs, none, missing


def _energy_caption(table) -> str:
    t = _energy.load_table(table)
    return (f"estimates, not measured: each run's counters x the per-action energies of technology table "
            f"'{t.name}' ({t.path}); EDP = energy x time at the preset clock; docs/energy.md")


# --------------------------------------------------------------------------- verdict

def _iso(items):
    """Every (group, budget, paired speedup, unpaired speedup, best baseline, row) on the
    numeric axis where FSE-DP and a baseline both ran."""
    out = []
    for key, pts in items:
        for b in _axis(pts):
            r = pts[b]
            base, cycles = best_baseline(r)
            if base is None:
                continue
            p, u = (_ratio(cycles, r["cycles"].get(s)) for s in (PAIRED, UNPAIRED))
            if p is None and u is None:
                continue
            out.append((key, b, p, u, base, r))
    return out


def _count(iso, idx) -> dict:
    out = {"win": 0, "tie": 0, "loss": 0}
    for entry in iso:
        if entry[idx] is not None:
            out[_outcome(entry[idx])] += 1
    return out


def _reason(r, s, base) -> str:
    """Why one point came out as it did, from its measured resources."""
    d = r["distance"]
    return (f"{NAMES[s]} runs at {_f(d.get(s))}x of the lower bound ({_pct_util(r, s)}); the best baseline, "
            f"{NAMES[base]}, at {_f(d.get(base))}x ({_pct_util(r, base)})")


def _tally(entries, key) -> str:
    """``"compute at 7, DRAM at 3"``: how often each value of ``key(entry)`` occurs."""
    out = {}
    for e in entries:
        out[key(e)] = out.get(key(e), 0) + 1
    return ", ".join(f"{k} at {n}" for k, n in sorted(out.items(), key=lambda kv: (-kv[1], str(kv[0]))))


def _slot_class(entry) -> str:
    slots = entry[5]["metrics"][PAIRED]["slots"]
    return "FSE-DP with 2-3 slots" if slots is not None and slots <= 3 else "FSE-DP with 4 or more slots"


def _limit(entry) -> str:
    return f"{(entry[5]['bound'] or {}).get('limit', '?')}-bound layers"


def _median(values):
    values = sorted(v for v in values if v is not None)
    return values[len(values) // 2] if values else None


def _lockstep_sentence(losses) -> str | None:
    """Where FSE-DP loses with compute its busiest resource: its distance to the bound
    against the routing's lockstep factor at those points."""
    hot = [e for e in losses if e[5]["metrics"][PAIRED]["busiest"] == "compute" and e[5]["lockstep"] is not None]
    if not hot:
        return None
    return (f"At the {len(hot)} of these losses where FSE-DP paired's busiest resource is compute, the routing's "
            f"lockstep factor (sum over experts of the busiest chiplet's tokens of that expert, over the busiest "
            f"chiplet's tokens: the compute time if every slice waits for its slowest chiplet, relative to the compute term of the bound; "
            f"sim/eval/bound.py) is {_f(min(e[5]['lockstep'] for e in hot))} to "
            f"{_f(max(e[5]['lockstep'] for e in hot))} (median {_f(_median(e[5]['lockstep'] for e in hot))}), and "
            f"FSE-DP paired runs at a median {_f(_median(e[5]['distance'][PAIRED] for e in hot))}x of the bound: "
            "every slice visits every chiplet, so with the ring's few slots each slice advances at the pace of the "
            "chiplet holding most of its expert's tokens, while tiled EP gives each chiplet whole tiles of balanced "
            "work.")


def _paper_points(items):
    out = []
    for key, pts in items:
        r = pts.get(PAPER_BUDGET)
        if r and "ep-paper" in r["cycles"] and PAIRED in r["cycles"]:
            e, p = r["metrics"]["ep-paper"], r["metrics"][PAIRED]
            out.append((e["cycles"] / p["cycles"], 1 - p["provisioned"] / e["provisioned"], key, e["provisioned"]))
    return out


def _needs(items):
    out = []
    for key, pts in items:
        n = {s: sram_needed(pts, s)[0] for s in STRATEGIES}
        base = [n[b] for b in BASELINES if n[b] is not None]
        if n[PAIRED] is not None and base:
            out.append((1 - n[PAIRED] / min(base), key))
    return out


def _needs_sentence(needs, lead: str) -> str:
    lo, hi = min(needs), max(needs)
    text = (f"{lead} FSE-DP paired's saving against the EP-family baseline that needs least ranges from "
            f"{_pct(lo[0])} (at {_where(lo[1])}) to {_pct(hi[0])} (at {_where(hi[1])}); it is 0% or better at "
            f"{sum(x[0] >= 0 for x in needs)} of {len(needs)} groups (negative: FSE-DP needs more)")
    if hi[0] < PAPER_SAVING:
        text += f" and never reaches the paper's {_pct(PAPER_SAVING)}"
    return text + "."


def _paper_sentence(paper, lead: str) -> str:
    lo, hi = min(paper), max(paper)
    inside = sum(PAPER_SPEEDUP[0] <= x[0] <= PAPER_SPEEDUP[1] for x in paper)
    return (f"{lead} FSE-DP paired measures {lo[0]:.2f}x (at {_where(lo[2])}) to {hi[0]:.2f}x (at {_where(hi[2])}), "
            f"{inside} of {len(paper)} points inside the paper's {PAPER_SPEEDUP[0]:.2f}x-{PAPER_SPEEDUP[1]:.2f}x, "
            f"with {_pct(min(x[1] for x in paper))} to {_pct(max(x[1] for x in paper))} less weight SRAM (the paper: "
            f"up to {_pct(PAPER_SAVING)} less on-chip memory).")


def _overall(items) -> list:
    iso = _iso(items)
    if not iso:
        return []
    c = _count(iso, 2)
    vals = sorted(e[2] for e in iso if e[2] is not None)
    lines = [f"- **At equal weight SRAM** FSE-DP paired wins {c['win']}, ties {c['tie']} and loses {c['loss']} of "
             f"{len(vals)} points against the best EP-family baseline (median {vals[len(vals) // 2]:.2f}x, range "
             f"{vals[0]:.2f}x to {vals[-1]:.2f}x); unpaired FSE-DP: "
             + ", ".join(f"{n} {k}{'s' if k != 'loss' else 'es'}" for k, n in _count(iso, 3).items()) + "."]
    at_bound = [e for e in iso if e[5]["distance"].get(e[4]) is not None and e[5]["distance"][e[4]] <= 1 + TIE]
    lines.append(f"- At {len(at_bound)} of {len(iso)} of those points the best baseline already runs within "
                 f"{TIE:.0%} of the physical lower bound: there no schedule can be faster, and the honest speedup is "
                 "1.00x.")
    losses = [e for e in iso if e[2] is not None and _outcome(e[2]) == "loss"]
    if losses:
        lines.append(f"- FSE-DP paired's losses: {_tally(losses, _slot_class)}; {_tally(losses, _limit)}. With 2 or 3 "
                     "slots, rule R6 lets a DRAM channel inject only while its chiplet holds at most one (or two) "
                     "slices, so the channels wait on the ring." + (f" {_lockstep_sentence(losses)}"
                                                                    if _lockstep_sentence(losses) else ""))
    needs = _needs(items)
    if needs:
        lines.append(_needs_sentence(needs, f"- **Memory at equal speed** (the weight SRAM to come within {NEAR:.0%} "
                                            "of its own best time):"))
    paper = _paper_points(items)
    if paper:
        big = max(paper, key=lambda x: x[3])
        lines.append(_paper_sentence(paper, "- **What the paper's claim rests on.** Against the reference model's EP "
                                            "(`ep-paper`: whole experts into the channel's own chiplet, one at a time, "
                                            "loads never overlapping compute), each at the reference model's "
                                            "provisioning,")
                     + f" That baseline needs two whole experts of weight SRAM per chiplet (up to {_mib(big[3])}, "
                       f"{big[2][1]}), which no chiplet provisions; against the EP a designer would build at the same "
                       "SRAM, the speedup is the one above.")
    return lines


def verdict(items: list, presets_seen: list) -> str:
    lines = ["## Verdict", "",
             "Written from the measured numbers below; win / tie / loss is an iso-SRAM speedup over the best "
             f"EP-family baseline above {1 + TIE:.2f}x, within {TIE:.0%} of 1, or below {1 - TIE:.2f}x, counted "
             "over every (model, L, budget) where both ran.", ""]
    lines += _overall(items)
    for preset in presets_seen:
        mine = [it for it in items if it[0][0] == preset]
        iso = _iso(mine)
        if not iso:
            continue
        lines += ["", f"### {preset}", ""]
        for idx, s in ((2, PAIRED), (3, UNPAIRED)):
            vals = [e[idx] for e in iso if e[idx] is not None]
            if not vals:
                continue
            c = _count(iso, idx)
            lo = min((e for e in iso if e[idx] is not None), key=lambda e: e[idx])
            hi = max((e for e in iso if e[idx] is not None), key=lambda e: e[idx])
            lines.append(f"- **{NAMES[s]}** against the best EP-family baseline at equal weight SRAM: "
                         f"{c['win']} wins, {c['tie']} ties, {c['loss']} losses of {len(vals)}; speedup "
                         f"{lo[idx]:.2f}x (at {_where(lo[0], lo[1])}) to {hi[idx]:.2f}x (at {_where(hi[0], hi[1])}).")
        lines.append(f"- The best baseline was {_tally(iso, lambda e: NAMES[e[4]])} of those points.")
        losses = sorted((e for e in iso if e[2] is not None and _outcome(e[2]) == "loss"), key=lambda e: e[2])
        wins = sorted((e for e in iso if e[2] is not None and _outcome(e[2]) == "win"), key=lambda e: -e[2])
        for verb, noun, entries, whose, busy in (
                ("loses", "losses", losses, "its", lambda x: x[5]["metrics"][PAIRED]["busiest"]),
                ("wins", "wins", wins, "the best baseline's", lambda x: x[5]["metrics"][x[4]]["busiest"])):
            if not entries:
                continue
            e = entries[0]
            lines.append(f"- Where FSE-DP paired {verb} most ({_where(e[0], e[1])}, {e[2]:.2f}x): "
                         f"{_reason(e[5], PAIRED, e[4])}.")
            lines.append(f"  Its {len(entries)} {noun}: {_tally(entries, _slot_class)}; {_tally(entries, _limit)}; "
                         f"{whose} busiest resource there: {_tally(entries, busy)}."
                         + (f" {_lockstep_sentence(entries)}" if verb == "loses" and _lockstep_sentence(entries)
                            else ""))
        at_bound = [e for e in iso if e[5]["distance"].get(e[4]) is not None and e[5]["distance"][e[4]] <= 1 + TIE]
        if at_bound:
            lines.append(f"- At {len(at_bound)} of {len(iso)} points the best baseline already runs within {TIE:.0%} "
                         "of the lower bound, so no schedule could beat it by more than that.")
        pu = [e for e in iso if e[2] is not None and e[3] is not None]
        slower = [e for e in pu if e[2] < e[3] * (1 - 0.005)]
        if pu:
            worst = min(pu, key=lambda e: e[2] / e[3])
            lines.append(f"- Pairing: FSE-DP paired is slower than unpaired FSE-DP (by more than 0.5%) at {len(slower)} "
                         f"of {len(pu)} points, by up to {100 * (1 - worst[2] / worst[3]):.1f}% "
                         f"(at {_where(worst[0], worst[1])}).")
        needs = _needs(mine)
        if needs:
            lines.append(_needs_sentence(needs, f"- Weight SRAM to come within {NEAR:.0%} of its own best time:"))
        paper = _paper_points(mine)
        if paper:
            lines.append(_paper_sentence(paper, "- Against the paper's own baseline (ep-paper with two whole-expert "
                                                "buffers, FSE-DP paired with 12 micro-slices: the reference model's "
                                                "provisioning):"))
    return "\n".join(lines)


# --------------------------------------------------------------------------- CSV

POINT_COLS = ["preset", "model", "routing", "tokens", "budget", "strategy", "fits", "reason", "slices", "slots",
              "weight_bytes", "provisioned_weight_bytes", "cycles", "bound_cycles", "bound_limit", "distance",
              "busiest", "compute_util", "dram_util", "d2d_util", "d2d_bytes", "peak_occupancy_bytes",
              "token_bytes", "best_baseline", "iso_sram_speedup", "lockstep_factor"]


def _write_csv(path, cols, rows) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if v is None else v) for k, v in r.items()})


def point_records(items: list) -> list:
    out = []
    for key, pts in items:
        for b, r in pts.items():
            base, bc = best_baseline(r)
            for s in STRATEGIES:
                rec = dict(zip(("preset", "model", "routing", "tokens"), key), budget=_mib(b), strategy=s,
                           bound_cycles=(r["bound"] or {}).get("cycles"), bound_limit=(r["bound"] or {}).get("limit"),
                           best_baseline=base, lockstep_factor=r["lockstep"])
                if s in r["metrics"]:
                    m = r["metrics"][s]
                    rec.update(fits=True, slices=m["slices"], slots=m["slots"], weight_bytes=m["weight_bytes"],
                               provisioned_weight_bytes=m["provisioned"], cycles=m["cycles"],
                               distance=r["distance"].get(s), busiest=m["busiest"], compute_util=m["util"]["compute"],
                               dram_util=m["util"].get("DRAM"), d2d_util=m["util"]["D2D link"],
                               d2d_bytes=m["d2d_bytes"], peak_occupancy_bytes=m["peak"], token_bytes=m["token_peak"],
                               iso_sram_speedup=_ratio(bc, m["cycles"]) if s in FSE else None)
                elif s in r["not_run"]:
                    rec.update(fits=False, reason=r["not_run"][s])
                else:
                    continue
                out.append(rec)
    return out


ENERGY_COLS = ["preset", "model", "routing", "tokens", "budget", "strategy", "cycles", "time_s", "energy_j",
               "edp_js"] + [f"{c}_j" for c in _energy.COMPONENTS] + ["missing", "table"]


def energy_records(items: list) -> list:
    """Every run with energy (an estimate), at every point of the grid."""
    out = []
    for key, pts in items:
        for b, r in pts.items():
            for s in STRATEGIES:
                e = r["metrics"].get(s, {}).get("energy")
                if e is None:
                    continue
                out.append(dict(zip(("preset", "model", "routing", "tokens"), key), budget=_mib(b), strategy=s,
                                cycles=r["cycles"][s], time_s=e["time_s"], energy_j=e["total_j"], edp_js=e["edp_js"],
                                missing="; ".join(f"{c}: {why}" for c, why in e["missing"].items()),
                                table=e["table"]["name"],
                                **{f"{c}_j": v for c, v in e["by_component_j"].items()}))
    return out


def need_records(items: list) -> list:
    out = []
    for key, pts in items:
        for s in STRATEGIES:
            need, best = sram_needed(pts, s)
            out.append(dict(zip(("preset", "model", "routing", "tokens"), key), strategy=s,
                            sram_needed_bytes=need, best_cycles=best))
    return out


def paper_records(items: list) -> list:
    out = []
    for key, pts in items:
        r = pts.get(PAPER_BUDGET)
        if r is None:
            continue
        for s in STRATEGIES:
            m = r["metrics"].get(s)
            out.append(dict(zip(("preset", "model", "routing", "tokens"), key), strategy=s,
                            provisioned_weight_bytes=m and m["provisioned"], cycles=m and m["cycles"],
                            speedup_of_paired=_ratio(m and m["cycles"], r["cycles"].get(PAIRED)),
                            reason=r["not_run"].get(s)))
    return out


# --------------------------------------------------------------------------- iso-area

def die_runs(pts: dict, die) -> list:
    """Every run of a group with its die area per chiplet (:mod:`sim.eval.die_area`):
    ``[(strategy, budget, cycles, provisioned weight bytes, {weight_sram, ..., total} in
    mm^2)]``."""
    out = []
    for b, r in pts.items():
        try:
            hw = presets.get_hardware(r["preset"])
        except (KeyError, presets.PresetError):
            continue
        for s, m in r["metrics"].items():
            if m["provisioned"]:
                out.append((s, b, m["cycles"], m["provisioned"], die.breakdown(hw, m["provisioned"])))
    return out


def area_needed(runs: list, strategy: str):
    """``(mm^2, cycles, weight bytes)``: the smallest die on which ``strategy`` comes
    within :data:`NEAR` of its own best time in the group, or None."""
    mine = [(a["total"], c, w) for s, _, c, w, a in runs if s == strategy]
    if not mine:
        return None
    best = min(c for _, c, _ in mine)
    return min(x for x in mine if x[1] <= (1 + NEAR) * best)


def fastest_within(runs: list, strategies, mm2: float):
    """``(cycles, strategy, weight bytes)`` of the fastest run of ``strategies`` whose die
    is at most ``mm2``, or None."""
    have = [(c, s, w) for s, _, c, w, a in runs if s in strategies and a["total"] <= mm2 * (1 + 1e-9)]
    return min(have) if have else None


def iso_area_table(items: list, die) -> str:
    """(f) Per group: the die FSE-DP paired and the least-needing baseline need to come
    within 5% of their own best times, the saving in die area (beside the saving in
    weight SRAM), and on that die the fastest FSE-DP paired run against the fastest
    baseline run."""
    head = ["model", "L", "paired: die (weight SRAM)", "least baseline: die (weight SRAM)", "die saving",
            "weight-SRAM saving", "fastest baseline on the paired die (weight SRAM)", "speedup at equal die"]
    body = []
    for key, pts in items:
        runs = die_runs(pts, die)
        p = area_needed(runs, PAIRED)
        base = [(n, s) for s in BASELINES if (n := area_needed(runs, s))]
        least, ls = min(base) if base else (None, None)
        at = fastest_within(runs, BASELINES, p[0]) if p else None
        mine = fastest_within(runs, (PAIRED,), p[0]) if p else None
        body.append([
            key[1], key[3],
            f"{p[0]:.1f} mm2 ({_mib(p[2])})" if p else "does not fit",
            f"{least[0]:.1f} mm2 ({_mib(least[2])}, {ls})" if least else "none fits",
            _pct(1 - p[0] / least[0]) if p and least else "-",
            _pct(1 - p[2] / least[2]) if p and least else "-",
            f"{at[1]} ({_mib(at[2])})" if at else "none fits",
            _f(_ratio(at and at[0], mine and mine[0]), ".2f", "x")])
    return md_table(head, body)


def _die_caption(die) -> str:
    return ("an estimate at 7 nm: the run's weight buffer and the preset's token and accumulator buffers by "
            "LLMCompass's SRAM model, the other macros and the logic (per MAC) of the synthesised tile "
            f"{die.source}, the UCIe advanced-package PHY; docs/area.md")


DIE_COLS = ["preset", "model", "routing", "tokens", "budget", "strategy", "cycles", "weight_bytes", "die_mm2",
            "weight_sram_mm2", "token_sram_mm2", "other_sram_mm2", "logic_mm2", "phy_mm2"]


def die_records(items: list, die) -> list:
    out = []
    for key, pts in items:
        for s, b, c, w, a in die_runs(pts, die):
            out.append(dict(zip(("preset", "model", "routing", "tokens"), key), budget=_mib(b), strategy=s,
                            cycles=c, weight_bytes=w, die_mm2=a["total"], weight_sram_mm2=a["weight_sram"],
                            token_sram_mm2=a["token_sram"], other_sram_mm2=a["other_sram"],
                            logic_mm2=a["logic"], phy_mm2=a["phy"]))
    return out


# --------------------------------------------------------------------------- output

def failed_points(folder) -> list:
    """Points a grid's ``index.json`` records as failed to simulate (none without an index)."""
    try:
        index = json.loads((pathlib.Path(folder) / "index.json").read_text())
        return [f"{p['preset']} {p['model']} ({p['routing']}) L={p['tokens']} {p.get('sram_label', '')}"
                for p in index.get("points", []) if isinstance(p, dict) and p.get("error")]
    except (OSError, ValueError, KeyError, AttributeError):
        return []


def _energy_header(rows: list, table) -> str | None:
    runs, none, missing = _energy_counts(rows)
    if not runs:
        return None
    t = _energy.load_table(table)
    if none == runs:
        return ("Energy: omitted; none of these compare files carries the runs' energy counters (`energy.inputs`: "
                "they were written before the energy model, docs/energy.md). Run the grid again for energy and EDP.")
    text = (f"Energy and EDP are estimates, not measurements: each run's counters x the per-action energies of "
            f"technology table '{t.name}' ({t.path}; docs/energy.md), one table for the whole report.")
    if none:
        text += (f" {none} of {runs} runs have no energy (their compare files were written before the energy "
                 "model); they are left out of the energy table, plot and energy.csv.")
    if missing:
        text += (" No energy total for runs whose engine did not count every component: "
                 + ", ".join(f"{c} at {n} runs" for c, n in missing.items()) + ".")
    return text


def _header(rows: list, folder, skipped: list, source: str | None, table=None) -> str:
    engines = sorted({str(r["engine"]) for r in rows if r["engine"]})
    exact = [b for r in rows for b in r["bit_exact"]]
    checked = [b for b in exact if b is not None]
    budgets = sorted({r["budget"] for r in rows if isinstance(r["budget"], int)})
    text = ["# FSE-DP at physical SRAM budgets: evaluation report",
            f"{len(rows)} points from `{source or folder}` (engine: {', '.join(engines)}; presets: "
            f"{', '.join(dict.fromkeys(r['preset'] for r in rows))}; weight buffers per chiplet: "
            f"{', '.join(_mib(b) for b in budgets)}"
            + (", and each strategy at the reference model's provisioning ('paper')"
               if any(r["budget"] == PAPER_BUDGET for r in rows) else "")
            + "). "
            + (f"Bit-exact against the golden model: {sum(checked)} of {len(checked)} checked runs"
               + (f"; {len(exact) - len(checked)} runs of the fast engine, which computes no data (validated "
                  "against the RTL: docs/fast_model.md)." if len(checked) < len(exact) else ".")
               if checked else f"{len(exact)} runs, all of the fast engine, which computes no data (its timing is "
               "validated against the RTL: docs/fast_model.md)."),
            "Every strategy at a point runs on the same hardware with the same weight buffer per chiplet (its "
            "slots are carved out of it, docs/sram.md) and the same token and accumulator buffers; a strategy "
            "that cannot fit the budget, or a packet or instruction field, is listed as not fitting, never run "
            "on a bigger buffer. Baselines: " + "; ".join(f"`{b}` {NAMES[b]}" for b in BASELINES) + "."]
    bad = [f"{s} at {r['preset']} {r['model']} L={r['tokens']}" for r in rows
           for s, b in zip(r["strategies"], r["bit_exact"]) if b is False]
    if bad:
        text.append(f"**Not bit-exact ({len(bad)} runs): {'; '.join(bad)}.** Their outputs differ from the golden "
                    "model; their cycles are shown but not trustworthy.")
    failed = failed_points(folder)
    if failed:
        text.append(f"**Failed to simulate ({len(failed)} points, from index.json; not in the tables): "
                    f"{'; '.join(failed)}.**")
    if skipped:
        text.append(f"Skipped {len(skipped)} JSON files that are not compare results: "
                    + ", ".join(f"`{p.name}`" for p in skipped[:5]) + (" ..." if len(skipped) > 5 else "") + ".")
    energy_note = _energy_header(rows, table)
    if energy_note:
        text.append(energy_note)
    sources = sorted({r["routing_source"] for r in rows if r["routing_source"]})
    if sources:
        text.append("Routing used (docs/report.md explains the mapping):\n\n" + "\n".join(f"- {s}" for s in sources))
    return "\n\n".join(text)


def reference_budget(items: list):
    """The budget of the per-preset tables at one budget: 8 MiB if on the axis, else the
    middle of the axis (None without a numeric budget)."""
    axis = sorted({b for _, pts in items for b in _axis(pts)})
    return 8 * presets.MiB if 8 * presets.MiB in axis else (axis[len(axis) // 2] if axis else None)


def energy_panels(items: list, budget) -> list:
    """``[((model, routing, L), {strategy: by_component_j or None})]`` at ``budget``: the
    stacks of the energy plot (None: the strategy ran but has no energy)."""
    out = []
    for key, pts in items:
        r = pts.get(budget)
        if r is None:
            continue
        stacks = {s: (r["metrics"][s]["energy"] or {}).get("by_component_j") for s in STRATEGIES if s in r["metrics"]}
        if any(v is not None for v in stacks.values()):
            out.append(((key[1], key[2], key[3]), stacks))
    return out


def _plots(items: list, out: pathlib.Path, table=None) -> list:
    """Write the PNG plots; returns ``(title, file)`` pairs in report order."""
    from . import plots

    made = []
    for preset in dict.fromkeys(k[0] for k, _ in items):
        mine = [(k, pts) for k, pts in items if k[0] == preset]
        for model in dict.fromkeys(k[1] for k, _ in mine):
            panels = [(k, pts) for k, pts in mine if k[1] == model]
            name = f"sram_{preset}_{model}.png"
            if plots.sram_curves(panels, f"{preset}, {model}", out / name):
                made.append((f"cycles / lower bound against the weight buffer, {preset}, {model}", name))
        name = f"iso_sram_{preset}.png"
        if plots.iso_sram_speedup(mine, f"{preset}", out / name):
            made.append((f"iso-SRAM speedup of FSE-DP over the best EP-family baseline, {preset}", name))
        ref = reference_budget(mine)
        name = f"energy_{preset}.png"
        caption = _energy_caption(table)
        if ref is not None and plots.energy_bars(energy_panels(mine, ref), f"{preset} at {_mib(ref)}", caption,
                                                 out / name):
            t = _energy.load_table(table)
            made.append((f"energy per layer by component and strategy, {preset} at {_mib(ref)} (estimates, not "
                         f"measured: counters x technology table '{t.name}', docs/energy.md)", name))
    return made


def write_report(folder, out=None, source: str | None = None, tech=None, area=None) -> pathlib.Path:
    """Read the compare JSONs under ``folder``; write the report to ``out``. Returns the
    path of ``report.md``.  ``source``: how to name the folder in the report (default:
    the path given); ``tech``: the technology table energy is priced with (anything
    :func:`sim.eval.energy.load_table` takes); ``area``: the ``fsedp area --top tile
    --json`` report the die areas are priced with (default
    :data:`sim.eval.die_area.DEFAULT_AREA`)."""
    tech = _energy.load_table(tech)
    die = _die_area.load_model(area)
    folder = pathlib.Path(folder)
    out = pathlib.Path(out) if out else folder / "report"
    points, skipped = load_points(folder)
    points = [(p, d) for p, d in points if out.resolve() not in p.resolve().parents]
    rows = [point_row(p, d, tech) for p, d in points]
    seen = {}
    for r in rows:
        key = (r["preset"], r["model"], r["routing"], r["tokens"], r["budget"])
        if key in seen:
            raise ReportError(f"{r['file']} and {seen[key]} are the same point ({key[0]} {key[1]} {key[2]} "
                              f"L={key[3]} at {_mib(key[4])}); keep one")
        seen[key] = r["file"]
    items = groups(rows)
    out.mkdir(parents=True, exist_ok=True)
    _write_csv(out / "points.csv", POINT_COLS, point_records(items))
    _write_csv(out / "sram_needed.csv", ["preset", "model", "routing", "tokens", "strategy", "sram_needed_bytes",
                                         "best_cycles"], need_records(items))
    _write_csv(out / "paper.csv", ["preset", "model", "routing", "tokens", "strategy", "provisioned_weight_bytes",
                                   "cycles", "speedup_of_paired", "reason"], paper_records(items))
    _write_csv(out / "die_area.csv", DIE_COLS, die_records(items, die))
    energy_rows = energy_records(items)
    if energy_rows:
        _write_csv(out / "energy.csv", ENERGY_COLS, energy_rows)
    figures = _plots(items, out, tech)
    presets_seen = list(dict.fromkeys(k[0] for k, _ in items))
    parts = [_header(rows, folder, skipped, source, tech), verdict(items, presets_seen)]
    for preset in presets_seen:
        mine = [(k, pts) for k, pts in items if k[0] == preset]
        ref = reference_budget(mine)
        parts += [f"## {preset}",
                  "### (b) Iso-SRAM speedup over the best EP-family baseline (FSE-DP paired / unpaired; the baseline "
                  "in brackets; weight buffer per chiplet across)", iso_sram_table(mine),
                  f"### (c) Weight SRAM each strategy needs to come within {NEAR:.0%} of its own best time on the axis "
                  "(savings of FSE-DP against the baseline that needs least; negative: FSE-DP needs more)",
                  need_table(mine)]
        parts += ["### (f) Iso-area: die area per chiplet each strategy needs to come within "
                  f"{NEAR:.0%} of its own best time, and FSE-DP paired against the fastest baseline that fits on "
                  f"its die ({_die_caption(die)}; every run's die, by component, in die_area.csv)",
                  iso_area_table(mine, die)]
        if any(PAPER_BUDGET in pts for _, pts in mine):
            parts += ["### (d) The paper's baseline: FSE-DP against ep-paper, each at the reference model's "
                      "provisioning (ep-paper: two whole-expert buffers; FSE-DP: 12 micro-slices of the model's S)",
                      paper_table(mine)]
        if ref is not None:
            parts += [f"### Distance to the lower bound at {_mib(ref)} (cycles / bound; bound = max(unique weight "
                      "bytes / DRAM bandwidth, MACs / MAC rate)) and the busiest resource", bound_table(mine, ref)]
            if energy_panels(mine, ref):
                parts += [f"### Energy-delay product at {_mib(ref)} ({_energy_caption(tech)}; every point of the grid, "
                          "with each component, in energy.csv)", edp_table(mine, ref)]
    parts.append("## (a) Plots\n\n" + "\n".join(f"- {t}: ![{t}]({f})" for t, f in figures))
    (out / "report.md").write_text("\n\n".join(parts) + "\n")
    return out / "report.md"


# --------------------------------------------------------------------------- CLI

def cmd_grid(args) -> None:
    from . import grid

    spec = grid.GridSpec(out=pathlib.Path(args.out), engine=args.engine,
                         presets=grid.parse_names(args.presets, presets.HARDWARE_PRESETS, "hardware"),
                         models=grid.parse_names(args.models, presets.MODEL_PRESETS, "model"),
                         tokens=grid.parse_tokens(args.tokens),
                         routings=tuple(r.strip() for r in args.routing.split(",") if r.strip()) or ("real",),
                         srams=grid.parse_srams(args.sram) if args.sram else
                         (grid.PAPER_SRAM if args.engine == "fast" else ("preset",)),
                         seed=args.seed, jobs=grid.default_jobs() if args.jobs is None else args.jobs,
                         groups=args.groups)
    index = grid.run_grid(spec)
    print(f"wrote {len(index['points'])} compare JSON files and index.json to {spec.out}; "
          f"`fsedp report {spec.out}` turns them into tables and plots")


def cmd_report(args) -> None:
    path = write_report(args.folder, args.out, tech=args.tech, area=args.area)
    print(f"wrote {path} (tables, CSV and PNG plots in {path.parent})")


def add_parsers(sub) -> None:
    """Add ``grid`` and ``report`` to the ``fsedp`` parser."""
    from . import grid

    p = sub.add_parser("grid", help="run the evaluation grid (models x routing x L x SRAM budgets x strategies)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for one compare JSON per point + index.json")
    p.add_argument("--engine", default="fast", help="fast (default; paper scale) or rtl (rtl-* presets only)")
    p.add_argument("--presets", default=",".join(grid.PAPER_PRESETS), help="comma-separated hardware presets or .toml hardware description files")
    p.add_argument("--models", default=",".join(grid.PAPER_MODELS), help="comma-separated model presets or .toml model description files")
    p.add_argument("--tokens", "-L", default=",".join(map(str, grid.PAPER_TOKENS)),
                   help="comma-separated token counts L")
    p.add_argument("--routing", default="real",
                   help="comma-separated: real[:c4|book|wikipedia] (real statistics, mapped per model; "
                        "see docs/report.md) or any --routing value of `fsedp compare`")
    p.add_argument("--sram", default=None, metavar="SIZES",
                   help="comma-separated weight buffers per chiplet (e.g. 1MiB,8MiB), 'paper' (each strategy at "
                        "the reference model's provisioning) or 'preset' (default with --engine fast: "
                        + ",".join(grid.budget_label(b) for b in grid.PAPER_SRAM) + "; with rtl: preset)")
    p.add_argument("--seed", type=int, default=0, help="seed for routing (and weights and tokens with rtl)")
    p.add_argument("--jobs", "-j", type=int, default=None,
                   help="worker processes for the fast engine (default: the machine's cores, at most 8)")
    p.add_argument("--groups", default=None, metavar="N|RINGS",
                   help="run FSE-DP in chiplet groups at every point, as `fsedp compare --groups` (the EP family "
                        "on the whole mesh; docs/groups.md); one value for the whole grid")
    p.set_defaults(func=cmd_grid)

    p = sub.add_parser("report", help="verdict, tables, CSV and plots from a folder of compare JSON files")
    p.add_argument("folder", metavar="DIR", help="folder written by `fsedp grid` (or of `fsedp compare --json` files)")
    p.add_argument("--out", metavar="REPORTDIR", default=None, help="output folder (default: DIR/report)")
    p.add_argument("--tech", type=_energy.tech_argument, default=_energy.DEFAULT_TABLE, metavar="NAME|FILE.toml",
                   help="technology table that prices every run's counters as energy, an estimate (docs/energy.md): "
                        f"a bundled table ({', '.join(_energy.BUNDLED)}) or a .toml file (default: "
                        f"{_energy.DEFAULT_TABLE})")
    p.add_argument("--area", default=None, metavar="FILE.json",
                   help="the `fsedp area --top tile --json` report that prices die areas, an estimate "
                        "(default: the measured rtl-2x2 tile shipped with fsedp; docs/area.md)")
    p.set_defaults(func=cmd_report)


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use `fsedp grid` or `fsedp report`")
