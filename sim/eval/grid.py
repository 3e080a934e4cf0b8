"""``fsedp grid``: run the paper's evaluation grid and write one compare JSON per point.

A *point* is (hardware preset, model preset, routing, L); at each point the four
strategies run on the same tokens. The default is the paper's grid: the six paper model
presets x routing from real statistics x L in {16, 64, 256, 1024}, on paper-2x2,
paper-3x3 and paper-4x4, with the fast engine.

Each point is written as ``DIR/<preset>__<model>__<routing>__L<L>.json`` in the format of
``fsedp compare --json`` (``runs``, ``summary``, ``all_bit_exact``) plus a ``point`` object:
the routing label, the spec it resolved to and where its statistics came from, and the
layer's lower bound (:mod:`sim.eval.bound`). ``DIR/index.json`` lists the grid's flags, the
routing used per model and every point written so far (rewritten after each batch, so a
stopped grid leaves a usable folder).
"""

from __future__ import annotations

import importlib
import json
import pathlib
import re
import sys
import time
from dataclasses import dataclass

from scheduler import presets, routing
from scheduler.plan import STRATEGIES

from sim import results
from .bound import plan_bound
from .realstats import DOMAINS, real_routing

__all__ = ["GridError", "GridSpec", "Point", "PAPER_MODELS", "PAPER_PRESETS", "PAPER_TOKENS",
           "parse_names", "parse_tokens", "resolve_routings", "grid_points", "run_grid"]

PAPER_PRESETS = ("paper-2x2", "paper-3x3", "paper-4x4")
PAPER_MODELS = ("deepseek-moe-16b", "qwen3-30b-a3b", "phi-3.5-moe", "yuan2-m32", "mixtral-8x7b", "olmoe-1b-7b")
PAPER_TOKENS = (16, 64, 256, 1024)
ENGINES = ("fast", "rtl")
#: Points per simulator launch with the RTL engine (one launch costs about a second).
RTL_BATCH = 16


class GridError(ValueError):
    """A bad grid flag (reported as one line by the CLI)."""


@dataclass(frozen=True)
class GridSpec:
    out: pathlib.Path
    engine: str = "fast"
    presets: tuple = PAPER_PRESETS
    models: tuple = PAPER_MODELS
    tokens: tuple = PAPER_TOKENS
    routings: tuple = ("real",)
    seed: int = 0


@dataclass(frozen=True)
class Point:
    preset: str
    model: str
    routing: str        # label, e.g. "real:c4" or "uniform"
    spec: str           # what routing.from_spec gets
    source: str         # where the routing comes from (one line)
    tokens: int

    @property
    def filename(self) -> str:
        label = re.sub(r"[^A-Za-z0-9.+-]+", "-", pathlib.Path(self.routing).stem if
                       self.routing.endswith((".json", ".jsonl")) else self.routing)
        return f"{self.preset}__{self.model}__{label}__L{self.tokens}.json"


# ----------------------------------------------------------------------------- flags

def parse_names(text: str, table: dict, kind: str) -> tuple:
    """Comma-separated preset names, each checked against ``table`` (``kind``: "hardware"
    for ``--presets``, "model" for ``--models``)."""
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise GridError(f"--{'presets' if kind == 'hardware' else 'models'} needs at least one {kind} preset name")
    for n in names:
        if n not in table:
            raise GridError(f"unknown {kind} preset {n!r}; choose one of: {', '.join(table)}")
    return names


def parse_tokens(text: str) -> tuple:
    """Comma-separated positive token counts, e.g. ``16,64,256,1024``."""
    out = []
    for part in text.split(","):
        try:
            value = int(part)
        except ValueError:
            raise GridError(f"--tokens: {part.strip()!r} is not an integer (give e.g. 16,64,256,1024)") from None
        if value <= 0:
            raise GridError(f"--tokens: token counts must be positive, not {value}")
        out.append(value)
    return tuple(out)


def check_engine(spec: GridSpec) -> None:
    if spec.engine not in ENGINES:
        raise GridError(f"unknown engine {spec.engine!r}; choose one of: {', '.join(ENGINES)}")
    if spec.engine == "rtl":
        big = [p for p in spec.presets if not presets.get_hardware(p).rtl]
        if big:
            raise GridError(f"--engine rtl simulates only the rtl-* presets; {', '.join(big)} "
                            "is paper scale (use --engine fast)")


# --------------------------------------------------------------------------- routing

def _resolve(label: str, model: str, out_dir) -> tuple:
    """(label, spec, source note) of one ``--routing`` entry for one model."""
    if label == "real" or label.startswith("real:"):
        domain = label.partition(":")[2] or "c4"
        if domain not in DOMAINS:
            raise GridError(f"routing {label!r}: unknown domain {domain!r}; choose one of: {', '.join(DOMAINS)}")
        r = real_routing(model, domain, out_dir)
        return f"real:{domain}", r.spec, r.note
    return label, label, f"{model}: routing {label}"


def resolve_routings(spec: GridSpec) -> dict:
    """``{(model, label): (label, routing spec, note)}``, each checked against the model's
    experts and top-k (a trace of one token is drawn to validate it)."""
    out = {}
    for model in spec.models:
        m = presets.get_model(model)
        for label in spec.routings:
            resolved = _resolve(label, model, spec.out)
            if not resolved[1].endswith(".jsonl"):
                routing.from_spec(resolved[1], 1, m.num_experts, m.top_k, spec.seed)
            out[model, label] = resolved
    return out


def grid_points(spec: GridSpec, resolved: dict) -> list[Point]:
    return [Point(p, m, *resolved[m, r], tokens=t)
            for p in spec.presets for m in spec.models for r in spec.routings for t in spec.tokens]


# --------------------------------------------------------------------------- running

def _engine(name: str):
    if name == "rtl":
        from sim import rtl
        return rtl
    try:
        module = importlib.import_module("sim.fast")
    except ModuleNotFoundError as exc:
        if exc.name != "sim.fast":
            raise
        module = None
    if not callable(getattr(module, "run", None)):
        raise GridError("the fast engine (sim.fast.run) is not available in this checkout; "
                        "use --engine rtl with rtl-* presets")
    return module


def _workloads(point: Point, engine: str, seed: int) -> list:
    from sim.workload import prepare

    return [prepare(preset=point.preset, model=point.model, tokens=point.tokens, routing_spec=point.spec,
                    strategy=s, seed=seed, with_data=engine == "rtl") for s in STRATEGIES]


def _batches(points: list, engine: str) -> list:
    """Points run together in one engine call: one each with the fast engine; up to
    :data:`RTL_BATCH` of the same preset (one Verilator build) with the RTL engine."""
    if engine != "rtl":
        return [[p] for p in points]
    out = []
    for preset in dict.fromkeys(p.preset for p in points):
        same = [p for p in points if p.preset == preset]
        out += [same[i:i + RTL_BATCH] for i in range(0, len(same), RTL_BATCH)]
    return out


def point_record(point: Point, bound: dict) -> dict:
    return {"preset": point.preset, "model": point.model, "routing": point.routing,
            "routing_spec": point.spec, "routing_source": point.source, "tokens": point.tokens,
            "bound": bound}


def compare_json(runs: list, record: dict) -> dict:
    """The ``fsedp compare --json`` document of one point, plus its ``point`` record."""
    exact = None if any(r["bit_exact"] is None for r in runs) else all(r["bit_exact"] for r in runs)
    return {"runs": runs, "summary": results.summarize(runs), "all_bit_exact": exact, "point": record}


def not_bit_exact(doc: dict) -> list:
    """Strategies of one point whose outputs differ from the golden model."""
    return [r["strategy"] for r in doc["runs"] if r["bit_exact"] is False]


def _where(point: Point) -> str:
    return f"{point.preset} {point.model} {point.routing} L={point.tokens}"


def _progress(i: int, n: int, point: Point, doc: dict, seconds: float, log) -> None:
    paired = next(r for r in doc["summary"] if r["strategy"] == "fse-dp-paired")
    bad = not_bit_exact(doc)
    print(f"[{i}/{n}] {_where(point)}: fse-dp-paired {paired['speedup_vs_ep']:.2f}x vs EP, "
          f"{paired['speedup_vs_hydra']:.2f}x vs Hydra ({seconds:.1f} s)"
          + (f"  NOT BIT-EXACT: {', '.join(bad)}" if bad else ""), file=log, flush=True)


def _write_index(spec: GridSpec, resolved: dict, records: list) -> None:
    notes = sorted({v[2] for v in resolved.values()})
    index = {"grid": {"engine": spec.engine, "presets": list(spec.presets), "models": list(spec.models),
                      "tokens": list(spec.tokens), "routings": list(spec.routings), "seed": spec.seed,
                      "strategies": list(STRATEGIES)},
             "routing": notes, "points": records}
    (spec.out / "index.json").write_text(json.dumps(index, indent=2) + "\n")


def run_batch(batch: list, spec: GridSpec, engine) -> list:
    """Run a batch of points; returns ``(point, document, seconds)`` per point."""
    t0 = time.perf_counter()
    loads = [_workloads(p, spec.engine, spec.seed) for p in batch]
    flat = [w for ws in loads for w in ws]
    runs = [r.to_json() for r in engine.run(flat)]
    seconds = (time.perf_counter() - t0) / len(batch)
    out = []
    for i, (p, ws) in enumerate(zip(batch, loads)):
        k = len(STRATEGIES)
        doc = compare_json(runs[k * i:k * (i + 1)], point_record(p, plan_bound(ws[0].plan)))
        out.append((p, doc, seconds))
    return out


def run_isolating(batch: list, spec: GridSpec, engine) -> list:
    """:func:`run_batch`, but a batch whose simulation fails (a stall, a crashed bench) is
    rerun point by point, so a failing point costs only itself. Returns
    ``(point, document or None, seconds, error or None)`` per point."""
    try:
        return [(p, doc, sec, None) for p, doc, sec in run_batch(batch, spec, engine)]
    except RuntimeError as exc:
        if len(batch) == 1:
            return [(batch[0], None, 0.0, str(exc))]
        return [r for p in batch for r in run_isolating([p], spec, engine)]


def _problems(failed: list, inexact: list, out) -> str:
    parts = []
    if failed:
        parts.append(f"{len(failed)} point(s) failed to simulate ({'; '.join(failed)})")
    if inexact:
        parts.append(f"{len(inexact)} run(s) differ from the golden model ({'; '.join(inexact)})")
    return (" and ".join(parts) + f"; every other point was written to {out} (see index.json and the runs' "
            "mismatches and errors)")


def run_grid(spec: GridSpec, log=None) -> dict:
    """Run every point of ``spec``; write its JSON files and the index. Returns the index.
    Progress goes to ``log`` (default: standard error). Failed or not bit-exact runs are
    recorded, the rest of the grid still runs, and a :class:`GridError` names them at the end."""
    log = log or sys.stderr
    check_engine(spec)
    engine = _engine(spec.engine)
    spec.out.mkdir(parents=True, exist_ok=True)
    resolved = resolve_routings(spec)
    for note in sorted({v[2] for v in resolved.values()}):
        print(f"routing: {note}", file=log)
    points = grid_points(spec, resolved)
    print(f"grid: {len(points)} points x {len(STRATEGIES)} strategies, engine {spec.engine}, "
          f"writing to {spec.out}", file=log, flush=True)
    records, failed, inexact = [], [], []
    for batch in _batches(points, spec.engine):
        for p, doc, seconds, error in run_isolating(batch, spec, engine):
            if error:
                records.append({"file": None, **point_record(p, None), "error": error})
                failed.append(_where(p))
                print(f"[{len(records)}/{len(points)}] {_where(p)}: FAILED: {error[:200]}", file=log, flush=True)
                continue
            (spec.out / p.filename).write_text(json.dumps(doc, indent=2) + "\n")
            records.append({"file": p.filename, **doc["point"], "not_bit_exact": not_bit_exact(doc)})
            inexact += [f"{s} at {_where(p)}" for s in not_bit_exact(doc)]
            _progress(len(records), len(points), p, doc, seconds, log)
        _write_index(spec, resolved, records)
    if failed or inexact:
        raise GridError(_problems(failed, inexact, spec.out))
    return json.loads((spec.out / "index.json").read_text())
