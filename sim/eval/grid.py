"""``fsedp grid``: run the evaluation grid and write one compare JSON per point.

A *point* is (hardware preset, model preset, routing, L, weight budget); at each point
every strategy runs on the same tokens with the same weight buffer per chiplet, as
``fsedp compare --sram`` would, and a strategy that does not fit the budget (or a packet
or instruction field) is recorded as not run, with the reason.  The default is the
paper's grid on an SRAM axis: the six paper model presets x routing from real statistics
x L in {16, 64, 256, 1024} x weight buffers of 1, 2, 4, 8, 16 and 32 MiB per chiplet,
plus the ``paper`` budget (each strategy at the reference model's provisioning:
12 micro-slices of the model's S, or two whole experts), on paper-2x2, paper-3x3 and
paper-4x4 with the fast engine.

Each point is written as ``DIR/<preset>__<model>__<routing>__L<L>__<budget>.json`` in the
format of ``fsedp compare --json`` (``runs``, ``summary``, ``all_bit_exact``, ``not_run``)
plus a ``point`` object: the routing label, the spec it resolved to and where its
statistics came from, the budget, and the layer's lower bound (:mod:`sim.eval.bound`).
``DIR/index.json`` lists the grid's flags, the routing used per model and every point
written so far (rewritten after each point, so a stopped grid leaves a usable folder).

With the fast engine and more than one job the points run as tasks on a Dask local
cluster (:func:`sim.eval.sweep.executor`, the machinery of ``fsedp sweep``); with one job,
serially in this process.  The RTL engine runs points in batches per simulator launch.
A fast-engine point's file is its cache: it records the point's :func:`cache_key` (the
sweep's key: the whole configuration and the code version), and a grid run again into
the same folder takes every point whose file holds the same key as it is, so an
interrupted grid resumes where it stopped (files are written whole, then moved in
place).  RTL points are always run.

``--groups N`` (or explicit rings, as ``fsedp compare --groups`` takes them) runs the
FSE-DP strategies of every point in chiplet groups (``docs/groups.md``) and the EP family
on the whole mesh, as ``compare --groups`` does; the grouping is one value for the whole
grid (write it to its own folder and report the two folders side by side), resolved on
every preset before any point runs.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import pathlib
import re
import sys
import time
from dataclasses import dataclass

from scheduler import description, presets, routing
from scheduler import groups as chiplet_groups
from scheduler.plan import STRATEGIES, FitError, PlanError
from scheduler.sizing import WHOLE_EXPERT, paper_budget
from scheduler.strategies import FSE_DP
from sim import results

from .bound import layer_bound, lockstep_factor
from .realstats import DOMAINS, real_routing

__all__ = ["GridError", "GridSpec", "Point", "PAPER_MODELS", "PAPER_PRESETS", "PAPER_TOKENS", "PAPER_SRAM",
           "parse_names", "parse_tokens", "parse_srams", "budget_label", "check_spec", "resolve_routings",
           "grid_points", "run_point", "run_rtl_batch", "cache_key", "cached_document", "point_record",
           "lost_point", "not_bit_exact", "where", "progress_line", "problems", "run_grid"]

PAPER_PRESETS = ("paper-2x2", "paper-3x3", "paper-4x4")
PAPER_MODELS = ("deepseek-moe-16b", "qwen3-30b-a3b", "phi-3.5-moe", "yuan2-m32", "mixtral-8x7b", "olmoe-1b-7b")
PAPER_TOKENS = (16, 64, 256, 1024)
#: Weight buffers per chiplet of the default SRAM axis, and ``paper``: each strategy at
#: the reference model's provisioning (:func:`scheduler.sizing.paper_budget`).
PAPER_SRAM = tuple(n * presets.MiB for n in (1, 2, 4, 8, 16, 32)) + ("paper",)
#: ``preset``: the hardware preset's own weight buffer.
SRAM_WORDS = ("paper", "preset")
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
    srams: tuple = PAPER_SRAM
    seed: int = 0
    jobs: int = 1
    slices: tuple = (None,)         # S of the slice-streaming strategies (None: from the budget)
    strategies: tuple = STRATEGIES
    groups: object = None           # FSE-DP chiplet groups (a --groups value), the same on every point


def budget_label(sram) -> str:
    """``8MiB``, ``512KiB``, ``paper`` or ``preset`` (file names, tables)."""
    if isinstance(sram, str):
        return sram
    for unit, size in (("GiB", presets.GiB), ("MiB", presets.MiB), ("KiB", presets.KiB)):
        if sram % size == 0:
            return f"{sram // size}{unit}"
    return f"{sram}B"


@dataclass(frozen=True)
class Point:
    preset: object      # a hardware preset name, a .toml description file or a HardwarePreset
    model: str
    routing: str        # label, e.g. "real:c4" or "uniform"
    spec: str           # what routing.from_spec gets
    source: str         # where the routing comes from (one line)
    tokens: int
    sram: object = "preset"   # bytes per chiplet, "paper" or "preset"
    slices: int | None = None     # S of fse-dp, fse-dp-paired, ep and hydra (None: from the budget)
    strategies: tuple = STRATEGIES
    groups: object = None         # FSE-DP chiplet groups (a --groups value; None: one ring)

    @property
    def preset_name(self) -> str:
        return self.preset.name if isinstance(self.preset, presets.HardwarePreset) else self.preset

    @property
    def filename(self) -> str:
        label = re.sub(r"[^A-Za-z0-9.+-]+", "-", pathlib.Path(self.routing).stem if
                       self.routing.endswith((".json", ".jsonl")) else self.routing)
        preset, model = (pathlib.Path(n).stem if description.is_description_path(n) else n
                         for n in (self.preset_name, self.model))
        return f"{preset}__{model}__{label}__L{self.tokens}__{budget_label(self.sram)}.json"

    def budget(self, strategy: str):
        """The weight buffer (bytes) ``strategy`` gets at this point (None: the preset's)."""
        if self.sram == "preset":
            return None
        if self.sram == "paper":
            return paper_budget(strategy, presets.get_model(self.model), presets.get_hardware(self.preset))
        return self.sram


# ----------------------------------------------------------------------------- flags

def parse_names(text: str, table: dict, kind: str) -> tuple:
    """Comma-separated preset names or ``.toml`` description files, each checked against
    ``table`` or loaded (``kind``: "hardware" for ``--presets``, "model" for ``--models``)."""
    flag = f"--{'presets' if kind == 'hardware' else 'models'}"
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise GridError(f"{flag} needs at least one {kind} preset name")
    for n in names:
        if description.is_description_path(n):
            (description.load_hardware if kind == "hardware" else description.load_model)(n)
        elif n not in table:
            raise GridError(f"{flag}: unknown {kind} preset {n!r}; choose one of: {', '.join(table)}, or a .toml "
                            f"description file")
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


def parse_srams(text: str) -> tuple:
    """Comma-separated weight buffers per chiplet: sizes (``8MiB``), ``paper`` or ``preset``."""
    out = []
    for part in (p.strip() for p in text.split(",")):
        if part in SRAM_WORDS:
            out.append(part)
            continue
        try:
            out.append(presets.parse_size(part))
        except presets.PresetError as exc:
            raise GridError(f"--sram: {exc}; or 'paper' (each strategy at the reference model's provisioning) "
                            f"or 'preset' (the hardware preset's own)") from None
    if not out:
        raise GridError("--sram needs at least one budget")
    return tuple(dict.fromkeys(out))


def check_spec(spec: GridSpec) -> None:
    if spec.engine not in ENGINES:
        raise GridError(f"unknown engine {spec.engine!r}; choose one of: {', '.join(ENGINES)}")
    if spec.engine == "rtl":
        big = [getattr(p, "name", p) for p in spec.presets if not presets.get_hardware(p).rtl]
        if big:
            raise GridError(f"--engine rtl simulates only the rtl-* presets; {', '.join(big)} "
                            "is paper scale (use --engine fast)")
    if not isinstance(spec.jobs, int) or spec.jobs < 1:
        raise GridError(f"--jobs must be a positive integer, not {spec.jobs!r}")
    for p in spec.presets:
        hw = presets.get_hardware(p)
        for b in spec.srams:
            if not isinstance(b, str):
                try:
                    hw.with_weight_sram(b)
                except presets.PresetError as exc:
                    raise GridError(f"--sram: {exc}") from None
    if spec.groups is not None:
        for p in spec.presets:
            hw = presets.get_hardware(p)
            try:
                rings = chiplet_groups.resolve(spec.groups, hw)
            except chiplet_groups.GroupError as exc:
                raise GridError(f"{exc} (preset {hw.name})") from None
            bare = [r for r in rings if not any(c in hw.dram_chiplets for c in r)]
            if bare:
                raise GridError(f"--groups: ring {chiplet_groups.describe(bare[:1])} of {hw.name} has no DRAM channel "
                                f"(channels on chiplets {', '.join(map(str, hw.dram_chiplets))})")
    _engine(spec.engine)


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
    return [Point(p, m, *resolved[m, r], tokens=t, sram=b, slices=s, strategies=spec.strategies, groups=spec.groups)
            for p in spec.presets for m in spec.models for r in spec.routings for t in spec.tokens
            for b in spec.srams for s in spec.slices]


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


def point_workloads(point: Point, engine: str, seed: int) -> tuple[list, list]:
    """The workloads of every strategy that fits this point, and ``{strategy, fits,
    reason}`` for each that does not."""
    from sim.workload import prepare

    works, skipped = [], []
    for s in point.strategies:
        try:
            works.append(prepare(preset=point.preset, model=point.model, tokens=point.tokens,
                                 routing_spec=point.spec, strategy=s, seed=seed, sram=point.budget(s),
                                 slices=None if s in WHOLE_EXPERT else point.slices, with_data=engine == "rtl",
                                 groups=point.groups if s in FSE_DP else None))
        except FitError as exc:
            skipped.append({"strategy": s, "fits": False, "reason": str(exc)})
        except PlanError as exc:
            skipped.append({"strategy": s, "fits": None, "reason": str(exc)})
    return works, skipped


def point_record(point: Point, bound: dict | None) -> dict:
    record = {"preset": point.preset_name, "model": point.model, "routing": point.routing,
              "routing_spec": point.spec, "routing_source": point.source, "tokens": point.tokens,
              "sram": point.sram, "sram_label": budget_label(point.sram), "bound": bound}
    if point.groups is not None:
        rings = chiplet_groups.resolve(point.groups, presets.get_hardware(point.preset))
        record["groups"] = [list(r) for r in rings]
    return record


def compare_json(runs: list, record: dict, skipped: list = ()) -> dict:
    """The ``fsedp compare --json`` document of one point, plus its ``point`` record."""
    return results.compare_document(runs, skipped) | {"point": record}


def not_bit_exact(doc: dict) -> list:
    """Strategies of one point whose outputs differ from the golden model."""
    return [r["strategy"] for r in doc["runs"] if r["bit_exact"] is False]


def where(point: Point) -> str:
    """The point in one line of progress or of an error."""
    return (f"{point.preset_name} {point.model} {point.routing} L={point.tokens} {budget_label(point.sram)}"
            + (f" S={point.slices}" if point.slices else "") + (f" groups={point.groups}" if point.groups else ""))


def progress_line(point: Point, doc: dict, seconds: float) -> str:
    """One finished point: its cycles over the lower bound per strategy, what did not run."""
    cycles = {r["strategy"]: r["cycles"] for r in doc["runs"]}
    bound = (doc["point"].get("bound") or {}).get("cycles")
    parts = [f"{s} {cycles[s] / bound:.2f}x" if bound else f"{s} {cycles[s]}" for s in STRATEGIES if s in cycles]
    bad = not_bit_exact(doc)
    return (f"{where(point)}: cycles / bound: {', '.join(parts) or 'nothing fits'}"
            + (f"; not run: {', '.join(s['strategy'] for s in doc['not_run'])}" if doc["not_run"] else "")
            + f" ({seconds:.1f} s)" + (f"  NOT BIT-EXACT: {', '.join(bad)}" if bad else ""))


def _write_index(spec: GridSpec, resolved: dict, records: list) -> None:
    notes = sorted({v[2] for v in resolved.values()})
    index = {"grid": {"engine": spec.engine, "presets": list(spec.presets), "models": list(spec.models),
                      "tokens": list(spec.tokens), "routings": list(spec.routings),
                      "srams": [budget_label(b) for b in spec.srams], "seed": spec.seed,
                      "strategies": list(STRATEGIES), "groups": spec.groups},
             "routing": notes, "points": records}
    (spec.out / "index.json").write_text(json.dumps(index, indent=2) + "\n")


def lost_point(message: str) -> tuple:
    """``run_point``'s answer for a point whose worker process died on every try."""
    return None, 0.0, f"its worker process died: {message}"


def _bound(point: Point, seed: int) -> dict:
    """The layer's lower bound, with its routing's lockstep factor (``sim.eval.bound``)."""
    m, hw = presets.get_model(point.model), presets.get_hardware(point.preset)
    trace = routing.from_spec(point.spec, point.tokens, m.num_experts, m.top_k, seed)
    return layer_bound(m, hw, trace) | {"lockstep": lockstep_factor(m, hw, trace)}


def run_point(point: Point, engine_name: str, seed: int) -> tuple:
    """Run one point: ``(document, seconds, error)`` (``document`` None on error)."""
    t0 = time.perf_counter()
    try:
        works, skipped = point_workloads(point, engine_name, seed)
        bound = _bound(point, seed)
        runs = [r.to_json() for r in _engine(engine_name).run(works)] if works else []
    except RuntimeError as exc:
        return None, time.perf_counter() - t0, str(exc)
    return compare_json(runs, point_record(point, bound), skipped), time.perf_counter() - t0, None


def run_rtl_batch(batch: list) -> list:
    """RTL: ``(point, seed)`` pairs of one preset and budget share a build and a simulator
    launch; a batch whose simulation fails is rerun point by point, so a failing point
    costs only itself.  Returns ``(point, document, seconds, error)`` per pair."""
    from sim import rtl

    t0 = time.perf_counter()
    try:
        loads = [point_workloads(p, "rtl", seed) for p, seed in batch]
        flat = [w for works, _ in loads for w in works]
        by_config = {}
        for w in flat:
            by_config.setdefault(w.system.name, []).append(w)
        done = {}
        for group in by_config.values():
            for w, r in zip(group, rtl.run(group)):
                done[id(w)] = r.to_json()
    except RuntimeError as exc:
        if len(batch) == 1:
            return [(batch[0][0], None, 0.0, str(exc))]
        return [r for item in batch for r in run_rtl_batch([item])]
    seconds = (time.perf_counter() - t0) / len(batch)
    out = []
    for (p, seed), (works, skipped) in zip(batch, loads):
        runs = [done[id(w)] for w in works]
        out.append((p, compare_json(runs, point_record(p, _bound(p, seed)), skipped), seconds, None))
    return out


def cache_key(point: Point, engine: str, seed: int) -> str:
    """A fast-engine point's cache key: :func:`sim.eval.sweep.point_key`, the sha256 of its
    whole configuration (hardware and model fields, routing and its file, L, budget, S,
    groups, strategies, engine, seed) and of the code."""
    from .sweep import SweepPoint, point_key

    hw = presets.get_hardware(point.preset)
    return point_key(SweepPoint(dataclasses.replace(point, preset=hw), point.preset_name, engine, seed))


def cached_document(path: pathlib.Path, key: str) -> dict | None:
    """The point file at ``path`` if it is the complete result of ``key``; None if it is
    missing, unreadable, truncated or of another configuration or code (recomputed)."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    ok = (isinstance(doc, dict) and isinstance(doc.get("point"), dict) and doc["point"].get("cache_key") == key
          and isinstance(doc.get("runs"), list))
    return doc if ok else None


def _write_point(path: pathlib.Path, doc: dict) -> None:
    """A point file, written to a temporary file and moved in place (a killed grid never
    leaves a partial file under the point's name)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    os.replace(tmp, path)


def _results(points: list, spec: GridSpec):
    """``(point, document, seconds, error, cached)`` as points finish: RTL points batched
    per preset and budget; fast points whose file in ``spec.out`` already holds their
    result (same :func:`cache_key`) as they are, the others on ``spec.jobs`` Dask worker
    processes (one task per point), or serially here with one job."""
    if spec.engine == "rtl":
        for key in dict.fromkeys((p.preset, p.sram) for p in points):
            same = [p for p in points if (p.preset, p.sram) == key]
            for i in range(0, len(same), RTL_BATCH):
                for result in run_rtl_batch([(p, spec.seed) for p in same[i:i + RTL_BATCH]]):
                    yield (*result, False)
        return
    from .sweep import execute, executor

    keys = [cache_key(p, spec.engine, spec.seed) for p in points]
    tasks = {}
    for i, p in enumerate(points):
        doc = cached_document(spec.out / p.filename, keys[i])
        if doc is not None:
            yield p, doc, 0.0, None, True
        else:
            tasks[f"grid-point-{i}"] = (p, spec.engine, spec.seed)
    with executor(spec.jobs if tasks else 1) as client:
        for key, (doc, seconds, error) in execute(client, run_point, tasks, lost=lost_point):
            i = int(key.rpartition("-")[2])
            if doc is not None:
                doc["point"]["cache_key"] = keys[i]
            yield points[i], doc, seconds, error, False


def problems(failed: list, inexact: list, written: str) -> str:
    """The error that ends a grid or sweep whose points failed or were not bit-exact."""
    parts = []
    if failed:
        parts.append(f"{len(failed)} point(s) failed to simulate ({'; '.join(failed)})")
    if inexact:
        parts.append(f"{len(inexact)} run(s) differ from the golden model ({'; '.join(inexact)})")
    return " and ".join(parts) + f"; every other point was written to {written}"


def default_jobs() -> int:
    return max(1, min(len(os.sched_getaffinity(0)), 8))


def run_grid(spec: GridSpec, log=None) -> dict:
    """Run every point of ``spec``; write its JSON files and the index. Returns the index.
    Progress goes to ``log`` (default: standard error). Failed or not bit-exact runs are
    recorded, the rest of the grid still runs, and a :class:`GridError` names them at the end."""
    log = log or sys.stderr
    check_spec(spec)
    spec.out.mkdir(parents=True, exist_ok=True)
    resolved = resolve_routings(spec)
    for note in sorted({v[2] for v in resolved.values()}):
        print(f"routing: {note}", file=log)
    points = grid_points(spec, resolved)
    print(f"grid: {len(points)} points x {len(STRATEGIES)} strategies, engine {spec.engine}"
          + (f" on {spec.jobs} Dask worker processes" if spec.engine == "fast" and spec.jobs > 1 else "")
          + f", writing to {spec.out}", file=log, flush=True)
    records, failed, inexact = [], [], []
    for p, doc, seconds, error, cached in _results(points, spec):
        if error:
            records.append({"file": None, **point_record(p, None), "error": error})
            failed.append(where(p))
            print(f"[{len(records)}/{len(points)}] {where(p)}: FAILED: {error[:200]}", file=log, flush=True)
        else:
            if not cached:
                _write_point(spec.out / p.filename, doc)
            records.append({"file": p.filename, **doc["point"], "not_bit_exact": not_bit_exact(doc)})
            inexact += [f"{s} at {where(p)}" for s in not_bit_exact(doc)]
            line = progress_line(p, doc, seconds)
            if cached:
                line = line.rpartition(" (")[0] + " (cached: its file holds this configuration's result)"
            print(f"[{len(records)}/{len(points)}] {line}", file=log, flush=True)
        _write_index(spec, resolved, records)
    if failed or inexact:
        raise GridError(problems(failed, inexact, f"{spec.out} (see index.json and the runs' mismatches and "
                                                 "errors)"))
    return json.loads((spec.out / "index.json").read_text())
