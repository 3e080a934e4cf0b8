"""``fsedp sweep``: design-space sweeps of hardware x models x L x strategies, on Dask.

A sweep is a union of *blocks*, each the product of its axes: base hardware presets (the
mesh size), the D2D link and the DRAM channel bandwidth (the ``[d2d] bytes_per_cycle``
and ``[dram] bytes_per_cycle`` fields of :data:`scheduler.description.HARDWARE_FIELDS`,
replaced in the base preset, which validates them), the weight buffer per chiplet
(``--sram`` of ``fsedp compare``, with ``paper`` and ``preset``), slices S (``--slices``
of the slice-streaming strategies), models, routings and L.  Flags give one block; a TOML
sweep file (``--spec``) gives top-level axes and settings and any number of ``[[block]]``
tables.  Every value is checked before anything runs.

A *point* is one hardware configuration x model x routing x L x budget x S, with the
sweep's strategies, engine and seed: one task running ``fsedp grid``'s
:func:`~sim.eval.grid.run_point` on a Dask cluster (a ``distributed.LocalCluster`` of
single-threaded worker processes, or the scheduler at ``--cluster ADDRESS``), collected
with ``as_completed`` as the tasks finish.  Each point is cached as ``<cache>/<key>.json``,
its key the sha256 of its whole configuration and of the code (:func:`code_version`),
written to a temporary file and moved in place with ``os.replace``; a rerun computes only
what is not cached, so an interrupted sweep resumes where it stopped.  Every point is
streamed to ``<out>/points.jsonl`` and ``<out>/points.csv`` (rewritten in point order at
the end) and the sweep's heatmaps (:mod:`sim.eval.heatmaps`) are drawn from them.
``fsedp grid`` runs its fast-engine points on the same executor (:func:`executor`,
:func:`execute`).  See ``docs/sweep.md``.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import functools
import hashlib
import json
import logging
import os
import pathlib
import re
import sys
import time
import tomllib
from dataclasses import dataclass

from scheduler import description, presets, routing
from scheduler.plan import STRATEGIES, FitError, PlanError
from scheduler.sizing import size_plan
from sim import results

from . import grid

__all__ = ["SweepError", "Definition", "SweepSpec", "SweepPoint", "AXES", "SETTINGS", "DEFAULT_SWEEP",
           "parse_bandwidths", "parse_slices", "parse_strategies", "definition", "read_spec", "sweep_points",
           "code_version", "point_config", "point_key", "read_cached", "write_cached", "executor", "execute",
           "run_sweep", "add_parsers", "CRASH_ONCE"]

#: The axes of a block, in point order: flag ``--<axis>``, sweep-file key ``<axis>``.
AXES = ("presets", "d2d", "dram", "sram", "slices", "models", "tokens", "routing")
#: Settings of the whole sweep: flags, or top-level keys of a sweep file (not of a block).
SETTINGS = ("strategies", "engine", "seed")
#: The hardware description field each bandwidth axis replaces.
BANDWIDTH_FIELDS = {axis: next(f for f in description.HARDWARE_FIELDS
                               if (f.section, f.key) == (axis, "bytes_per_cycle")) for axis in ("d2d", "dram")}
#: Each axis and setting where neither a flag nor the sweep file gives it.
DEFAULTS = {"presets": "paper-2x2", "d2d": "x1", "dram": "x1", "sram": "preset", "slices": "auto",
            "models": "mixtral-8x7b", "tokens": "256", "routing": "real",
            "strategies": "fse-dp-paired,ep,hydra,ep-paper", "engine": "fast", "seed": "0"}
#: The sweep without axis flags or ``--spec``, as a sweep file's contents: on the defaults
#: (paper-2x2, Mixtral-8x7B with its real routing statistics, L = 256), DRAM bandwidth at
#: 0.5x to 4x the preset's against D2D bandwidth at 0.25x to 2x the preset's (each strategy
#: at the reference model's provisioning, so that ep-paper fits), and against the weight
#: buffer (1, 2 and 8 MiB and the reference provisioning) at the preset's D2D bandwidth.
DEFAULT_SWEEP = {"dram": ["x0.5", "x1", "x2", "x4"],
                 "block": [{"d2d": ["x0.25", "x0.5", "x1", "x2"], "sram": ["paper"]},
                           {"sram": ["1MiB", "2MiB", "8MiB", "paper"]}]}
#: Test hook: an environment variable naming a marker file.  The first task on a Dask
#: worker that removes the marker ends its worker process (``os._exit(1)``), so that a
#: test can check that a lost worker's point is rerun.  Only :func:`_on_worker` reads it.
CRASH_ONCE = "FSEDP_SWEEP_CRASH_ONCE"
#: The packages whose code (and data files) a cached point depends on.
PACKAGES = ("hw", "scheduler", "sim")

_BANDWIDTH = re.compile(r"(?P<x>x)?(?P<value>[-+]?[0-9]+(?:\.[0-9]*)?(?:e[-+]?[0-9]+)?)\s*(?P<gbps>GB/s)?", re.I)


class SweepError(ValueError):
    """A bad sweep flag, sweep file, output path or cluster: one line ``sweep: ...``."""

    def __init__(self, message: str):
        super().__init__(f"sweep: {message}")


# ----------------------------------------------------------------------------- values

def parse_bandwidths(text: str, flag: str) -> tuple:
    """Comma-separated bandwidths, each ``(unit, number)``: bytes per cycle (``360``), a
    multiple of the base preset's (``x0.5``) or GB/s at its clock (``288GB/s``)."""
    out = []
    for part in (p.strip() for p in text.split(",")):
        m = _BANDWIDTH.fullmatch(part)
        if not m or (m["x"] and m["gbps"]):
            raise grid.GridError(f"{flag}: {part!r} is not a bandwidth; give bytes per cycle (e.g. 360), a multiple "
                                 f"of the base preset's (x0.5) or GB/s at its clock (288GB/s)")
        out.append(("x" if m["x"] else "GB/s" if m["gbps"] else "B/cycle", float(m["value"])))
    return tuple(dict.fromkeys(out))


def bandwidth(value: tuple, base: float, clock_ghz: float) -> float:
    """Bytes per cycle of one parsed bandwidth on a base preset whose own is ``base``."""
    unit, number = value
    return {"x": number * base, "GB/s": number / clock_ghz, "B/cycle": number}[unit]


def parse_slices(text: str) -> tuple:
    """Comma-separated S: ``auto`` (from the budget, as without ``--slices``) or positive integers."""
    out = []
    for part in (p.strip() for p in text.split(",")):
        if part == "auto":
            out.append(None)
            continue
        try:
            value = int(part)
        except ValueError:
            raise grid.GridError(f"--slices: {part!r} is not an integer or 'auto'") from None
        if value <= 0:
            raise grid.GridError(f"--slices: S must be positive, not {value}")
        out.append(value)
    return tuple(dict.fromkeys(out))


def parse_strategies(text: str) -> tuple:
    """Comma-separated strategy names, in the project's strategy order."""
    names = {n.strip() for n in text.split(",") if n.strip()}
    unknown = sorted(names - set(STRATEGIES))
    if unknown or not names:
        raise grid.GridError(f"--strategies: {'unknown strategy ' + repr(unknown[0]) if unknown else 'none given'}; "
                             f"choose from {', '.join(STRATEGIES)}")
    return tuple(s for s in STRATEGIES if s in names)


def _parse_engine(text: str) -> str:
    if text not in grid.ENGINES:
        raise grid.GridError(f"--engine: unknown engine {text!r}; choose one of: {', '.join(grid.ENGINES)}")
    return text


def _parse_seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise grid.GridError(f"--seed: {text!r} is not an integer") from None
    if not 0 <= value < 2 ** 63:
        raise grid.GridError(f"--seed must be an integer from 0 to 2**63 - 1, not {value}")
    return value


def _parse_routings(text: str) -> tuple:
    labels = tuple(dict.fromkeys(r.strip() for r in text.split(",") if r.strip()))
    if not labels:
        raise grid.GridError("--routing needs at least one routing")
    return labels


PARSERS = {"presets": lambda t: grid.parse_names(t, presets.HARDWARE_PRESETS, "hardware"),
           "models": lambda t: grid.parse_names(t, presets.MODEL_PRESETS, "model"),
           "d2d": functools.partial(parse_bandwidths, flag="--d2d"),
           "dram": functools.partial(parse_bandwidths, flag="--dram"),
           "sram": grid.parse_srams, "slices": parse_slices, "tokens": grid.parse_tokens,
           "routing": _parse_routings, "strategies": parse_strategies, "engine": _parse_engine,
           "seed": _parse_seed}


def _text(key: str, value) -> str:
    """A flag's text, or a sweep-file value (a scalar or a list of scalars) as that text."""
    items = value if isinstance(value, list) else [value]
    if not all(isinstance(v, (str, int, float)) for v in items):
        raise grid.GridError(f"--{key}: {value!r} is not a value or a list of values")
    return ",".join(map(str, items))


def _parse(key: str, value, where: str | None):
    """One axis or setting, parsed; errors name the flag, or (``where``) the file and key."""
    try:
        return PARSERS[key](_text(key, value))
    except (grid.GridError, presets.PresetError) as exc:
        if where is None:
            raise SweepError(str(exc)) from None
        raise SweepError(f"{where}: {key}: {re.sub(rf'^--{key}:? ?', '', str(exc))}") from None


# ------------------------------------------------------------------------- definition

@dataclass(frozen=True)
class Definition:
    """What a sweep runs: its blocks (``(where, {axis: values})``, ``where`` naming the
    sweep-file block or None for flags), strategies, engine and seed."""

    blocks: tuple
    strategies: tuple
    engine: str
    seed: int


def definition(doc: dict, where: str | None = None) -> Definition:
    """The sweep of a sweep file's contents (``where``: its path), or of flags (``where``
    None) in the same form: top-level axes and settings, optional ``block`` tables of axes,
    each block the top-level axes with its own replacing them."""
    allowed = AXES + SETTINGS + ("block",)
    unknown = [k for k in doc if k not in allowed]
    if unknown:
        raise SweepError(f"{where}: unknown key {unknown[0]!r}; allowed: {', '.join(allowed)}")
    blocks = doc.get("block", [{}])
    if not isinstance(blocks, list) or not blocks or not all(isinstance(b, dict) for b in blocks):
        raise SweepError(f"{where}: block must be one or more [[block]] tables of axes")
    top = {a: _parse(a, doc[a], where) if a in doc else _parse(a, DEFAULTS[a], None) for a in AXES}
    parsed = []
    for i, block in enumerate(blocks, 1):
        place = f"{where} [[block]] {i}" if "block" in doc and where else where
        bad = [k for k in block if k not in AXES]
        if bad:
            raise SweepError(f"{place}: unknown key {bad[0]!r} in a block; a block takes the axes {', '.join(AXES)}")
        parsed.append((place, top | {a: _parse(a, v, place) for a, v in block.items()}))
    settings = {s: _parse(s, doc.get(s, DEFAULTS[s]), where if s in doc else None) for s in SETTINGS}
    return Definition(tuple(parsed), **settings)


def read_spec(path) -> dict:
    """A sweep file's contents (TOML), or a one-line error."""
    try:
        return tomllib.loads(pathlib.Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise SweepError(f"--spec {path}: cannot read it: {exc.strerror}") from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SweepError(f"--spec {path}: not a TOML sweep file: {exc}") from None


# ----------------------------------------------------------------------------- points

@dataclass(frozen=True)
class SweepPoint:
    point: grid.Point    # its ``preset`` is the hardware configuration (a HardwarePreset)
    base: str            # the base preset (or description file) it was made from
    engine: str
    seed: int


def _bandwidth_text(value: tuple) -> str:
    unit, number = value
    return {"x": f"x{number:g}", "GB/s": f"{number:g}GB/s", "B/cycle": f"{number:g}"}[unit]


def hardware(base: str, d2d: tuple, dram: tuple) -> presets.HardwarePreset:
    """The base preset with its D2D link and DRAM channel bandwidths replaced (each
    checked by ``HardwarePreset``), named after the fields that differ: ``paper-2x2+d2d=90``."""
    hw = presets.get_hardware(base)
    out = hw
    for axis, value in (("d2d", d2d), ("dram", dram)):
        attr = BANDWIDTH_FIELDS[axis].attr
        v = bandwidth(value, getattr(hw, attr), hw.clock_ghz)
        if v != getattr(hw, attr):
            try:
                out = dataclasses.replace(out, name=f"{out.name}+{axis}={v:g}", **{attr: v})
            except presets.PresetError as exc:
                raise presets.PresetError(f"{axis} {_bandwidth_text(value)}: {exc}") from None
    return out


def _check_tokens_and_slices(spec: grid.GridSpec) -> None:
    """Every L fits the token buffers and every S is one the model takes on the hardware
    (a budget S does not fit is not an error: the point records it)."""
    from sim.workload import check_tokens

    for hw in spec.presets:
        for tokens in spec.tokens:
            check_tokens(hw, tokens)
        for model in spec.models:
            for s in (s for s in spec.slices if s is not None):
                try:
                    size_plan("fse-dp", presets.get_model(model), hw, s)
                except FitError:
                    pass


def _block_points(defn: Definition, axes: dict, out: pathlib.Path) -> list:
    spec = grid.GridSpec(out=out, engine=defn.engine, presets=axes["presets"], models=axes["models"],
                         tokens=axes["tokens"], routings=axes["routing"], srams=axes["sram"], seed=defn.seed,
                         slices=axes["slices"], strategies=defn.strategies)
    grid.check_spec(spec)         # the engine and the budgets, on the base presets
    routings = grid.resolve_routings(spec)
    points = []
    for base in axes["presets"]:
        configs = dataclasses.replace(spec, presets=tuple(hardware(base, d, r) for d in axes["d2d"]
                                                          for r in axes["dram"]))
        _check_tokens_and_slices(configs)
        points += [SweepPoint(p, base, defn.engine, defn.seed) for p in grid.grid_points(configs, routings)]
    return points


def sweep_points(defn: Definition, out: pathlib.Path) -> dict:
    """``{key: SweepPoint}`` of every point of every block, in order, each once; every
    hardware configuration, budget, S, L and routing checked first."""
    points = {}
    for where, axes in defn.blocks:
        try:
            block = _block_points(defn, axes, out)
        except (grid.GridError, presets.PresetError, routing.RoutingError, PlanError) as exc:
            raise SweepError(f"{where}: {exc}" if where else str(exc)) from None
        for sp in block:
            points.setdefault(point_key(sp), sp)
    return points


# ------------------------------------------------------------------------------ cache

@functools.cache
def code_version() -> str:
    """sha256 of the code a point is computed with: every ``.py`` file of the packages
    hw, scheduler and sim, and their data files (routing statistics, technology tables)."""
    root = pathlib.Path(__file__).resolve().parents[2]
    files = sorted(p for pkg in PACKAGES for p in (root / pkg).rglob("*") if p.is_file()
                   and (p.suffix == ".py" or "data" in p.relative_to(root).parts))
    h = hashlib.sha256()
    for path in files:
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def _fields(obj, table) -> dict:
    """``obj``'s fields as a description file names them (``[d2d] bytes_per_cycle``)."""
    return {f.where: list(v) if isinstance(v := getattr(obj, f.attr), tuple) else v for f in table}


def _routing_file(spec: str) -> str | None:
    """sha256 of the routing file ``spec`` names (``path.json[:layer]``, ``path.jsonl``), if any."""
    path = pathlib.Path(re.sub(r":[0-9]+$", "", spec))
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def point_config(sp: SweepPoint) -> dict:
    """Everything a point's result depends on: the hardware and model fields, the routing,
    L, budget, S, chiplet groups (grid points), strategies, engine, seed and the code
    version."""
    p = sp.point
    return {"base": sp.base, "hardware": _fields(p.preset, description.HARDWARE_FIELDS),
            "model": p.model, "model_fields": _fields(presets.get_model(p.model), description.MODEL_FIELDS),
            "routing": {"label": p.routing, "spec": p.spec, "source": p.source, "file": _routing_file(p.spec)},
            "tokens": p.tokens, "sram": p.sram, "slices": p.slices, "strategies": sorted(p.strategies),
            "engine": sp.engine, "seed": sp.seed, "code": code_version()} | (
        {} if p.groups is None else {"groups": p.groups if isinstance(p.groups, (int, str)) else
                                     [list(r) for r in p.groups]})


def point_key(sp: SweepPoint) -> str:
    """The point's cache key: sha256 of its canonical configuration."""
    text = json.dumps(point_config(sp), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def read_cached(cache: pathlib.Path, key: str) -> dict | None:
    """The cached result of ``key``; None if it is missing, unreadable, truncated or not
    the record of that key (such a file is recomputed, never trusted)."""
    try:
        record = json.loads((cache / f"{key}.json").read_text())
    except (OSError, ValueError):
        return None
    ok = isinstance(record, dict) and record.get("key") == key and isinstance(record.get("runs"), list)
    return record if ok else None


def write_cached(cache: pathlib.Path, record: dict) -> None:
    """Write a result as ``<key>.json``: to a temporary file, then moved in place, so that
    a killed sweep never leaves a partial file under the key's name."""
    path = cache / f"{record['key']}.json"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record) + "\n")
    os.replace(tmp, path)


# --------------------------------------------------------------------------- executor

@contextlib.contextmanager
def executor(jobs: int, cluster: str | None = None):
    """Where tasks run: a Dask ``Client`` of the scheduler at ``cluster``, or of a
    ``LocalCluster`` of ``jobs`` single-threaded worker processes (dashboard off, quiet
    logs); None, serially in this process, for one job and no cluster."""
    if cluster is None and jobs == 1:
        yield None
        return
    from distributed import Client, LocalCluster

    if cluster is not None:
        with _connect(cluster) as client:
            yield client
        return
    with LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=logging.ERROR) as local, Client(local) as client:
        yield client


def _connect(address: str):
    """A client of the scheduler at ``address`` whose workers run this code."""
    from distributed import Client

    try:
        client = Client(address, timeout="10s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise SweepError(f"--cluster {address}: cannot connect to a Dask scheduler ({exc}); start one with "
                         f"`dask scheduler` and workers with `dask worker {address}`") from None
    try:
        versions = client.run(code_version)
    except Exception as exc:
        client.close()
        raise SweepError(f"--cluster {address}: the workers cannot run fsedp ({exc}); start them from a checkout "
                         "with fsedp installed") from None
    other = sorted(w for w, v in versions.items() if v != code_version())
    if not versions or other:
        client.close()
        raise SweepError(f"--cluster {address}: " + (f"worker {other[0]} runs other code than this checkout (code "
                         "version differs); start the workers from this checkout" if other else
                         f"the scheduler has no workers; start some with `dask worker {address}`"))
    return client


def _on_worker(fn, *args):
    """A task on a Dask worker: ``fn(*args)``, after the :data:`CRASH_ONCE` test hook."""
    marker = os.environ.get(CRASH_ONCE)
    if marker:
        try:
            os.remove(marker)
        except FileNotFoundError:
            pass
        else:
            os._exit(1)
    return fn(*args)


def execute(client, fn, tasks: dict, lost):
    """``(key, fn(*args))`` for every ``key: args`` of ``tasks``, as each finishes.

    On ``client``, one Dask task per key, collected with ``as_completed``; a task whose
    worker process dies is rerun by the scheduler on another worker, and one that has lost
    its worker more often than ``distributed.scheduler.allowed-failures`` (3) gives
    ``lost(message)``.  Without a client, in order, in this process."""
    if client is None:
        for key, args in tasks.items():
            yield key, fn(*args)
        return
    from distributed import as_completed
    from distributed.scheduler import KilledWorker

    futures = [client.submit(_on_worker, fn, *args, key=key, pure=False) for key, args in tasks.items()]
    for future in as_completed(futures):
        try:
            result = future.result()
        except KilledWorker as exc:
            result = lost(str(exc))
        yield future.key, result


# ---------------------------------------------------------------------------- outputs

#: Columns of points.csv: the point, then one row per strategy.
POINT_COLUMNS = ("key", "base", "mesh", "d2d_bytes_per_cycle", "d2d_gbps", "dram_bytes_per_cycle", "dram_gbps",
                 "sram_label", "slices", "model", "routing", "tokens", "engine", "seed")
RUN_COLUMNS = ("strategy", "status", "S", "slots", "cycles", "mean_compute_utilization", "max_link_utilization",
               "dram_bytes", "d2d_bytes", "plan_weight_bytes", "max_peak_onchip_bytes", "energy_j", "edp_js",
               "bit_exact", "reason")
STATUS = {False: "does not fit", None: "does not apply"}


def _sweep_fields(sp: SweepPoint) -> dict:
    """What a sweep adds to grid's point record: the base, the swept hardware fields, S,
    the strategies, engine and seed."""
    hw = sp.point.preset
    return {"base": sp.base, "mesh": f"{hw.rows}x{hw.cols}", "clock_ghz": hw.clock_ghz,
            "d2d_bytes_per_cycle": hw.link_bytes_per_cycle, "dram_bytes_per_cycle": hw.dram_bytes_per_cycle,
            "slices": sp.point.slices, "strategies": list(sp.point.strategies), "engine": sp.engine,
            "seed": sp.seed}


def point_result(sp: SweepPoint, key: str, doc: dict | None, seconds: float, error: str | None) -> dict:
    """A point's record (a line of points.jsonl, a cache file): the compare document with
    the sweep's point fields, or the error of a point that failed to simulate."""
    if error:
        return {"key": key, "point": grid.point_record(sp.point, None) | _sweep_fields(sp), "error": error}
    return {"key": key, **doc, "point": doc["point"] | _sweep_fields(sp), "seconds": round(seconds, 3)}


def csv_rows(record: dict) -> list:
    """points.csv rows of one record: one per strategy (run, not run, or failed)."""
    p = record["point"]
    point = {c: p.get(c) for c in POINT_COLUMNS} | {
        "key": record["key"], "slices": p["slices"] or "auto",
        "d2d_gbps": p["d2d_bytes_per_cycle"] * p["clock_ghz"], "dram_gbps": p["dram_bytes_per_cycle"] * p["clock_ghz"]}
    if "error" in record:
        return [point | {"strategy": s, "status": "failed", "reason": record["error"]} for s in p["strategies"]]
    ran = [row | {"S": row["slices"]} | point | {"strategy": row["strategy"], "status": "ran"}
           for row in results.summarize(record["runs"])]
    return ran + [point | {"strategy": s["strategy"], "status": STATUS[s["fits"]], "reason": s["reason"]}
                  for s in record["not_run"]]


@contextlib.contextmanager
def point_files(out: pathlib.Path, suffix: str = ""):
    """``add(record)``, appending a record to ``points.jsonl<suffix>`` and its rows to
    ``points.csv<suffix>``, flushed at once."""
    with open(out / f"points.jsonl{suffix}", "w") as lines, open(out / f"points.csv{suffix}", "w", newline="") as table:
        rows = csv.DictWriter(table, POINT_COLUMNS + RUN_COLUMNS, extrasaction="ignore")
        rows.writeheader()

        def add(record):
            lines.write(json.dumps(record) + "\n")
            rows.writerows(csv_rows(record))
            lines.flush()
            table.flush()
        yield add


def write_points(out: pathlib.Path, records: list) -> None:
    """Rewrite points.jsonl and points.csv with ``records`` in this order (a finished
    sweep's files list its points in point order, whatever order they finished in)."""
    with point_files(out, ".tmp") as add:
        for record in records:
            add(record)
    for name in ("points.jsonl", "points.csv"):
        os.replace(out / f"{name}.tmp", out / name)


def _check_folder(flag: str, folder: pathlib.Path) -> None:
    """The command line's one rule for an output folder (``sim.cli.check_output_paths``, as
    for ``fsedp grid --out``): created with its parents; a file in the way or a folder that
    cannot be written is an error naming ``flag``."""
    import argparse

    from sim import cli

    try:
        cli.check_output_paths(argparse.Namespace(command="grid", out=str(folder)))
    except cli.UsageError as exc:
        raise SweepError(str(exc).replace("--out", flag, 1)) from None


def _eta(start: float, computed: int, remaining: int) -> str:
    seconds = (time.perf_counter() - start) / computed * remaining
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


# ---------------------------------------------------------------------------- running

@dataclass(frozen=True)
class SweepSpec:
    out: pathlib.Path
    definition: Definition
    cache: pathlib.Path | None = None    # default: out/cache
    jobs: int = 1
    cluster: str | None = None


def run_sweep(spec: SweepSpec, log=None) -> dict:
    """Run every point of ``spec`` that is not cached, stream and cache the results, draw
    the heatmaps.  Returns ``{points, cached, computed, failed, records, figures}``; a
    :class:`SweepError` at the end names the points that failed (the rest are written)."""
    from .heatmaps import write_heatmaps

    log = log or sys.stderr
    cache = spec.cache or spec.out / "cache"
    for flag, folder in (("--out", spec.out), ("--cache", cache)):
        _check_folder(flag, folder)
    points = sweep_points(spec.definition, spec.out)
    records = {k: r for k in points if (r := read_cached(cache, k)) is not None}
    todo = {k: (sp.point, sp.engine, sp.seed) for k, sp in points.items() if k not in records}
    cached = len(records)
    where = ("here" if spec.jobs == 1 and not spec.cluster else f"on {spec.cluster}" if spec.cluster
             else f"on a local Dask cluster of {spec.jobs} worker processes")
    print(f"sweep: {len(points)} points x {len(spec.definition.strategies)} strategies, engine "
          f"{spec.definition.engine}; {cached} cached in {cache}, {len(todo)} to compute"
          + (f" {where}" if todo else ""), file=log, flush=True)
    with executor(spec.jobs if todo else 1, spec.cluster if todo else None) as client, point_files(spec.out) as add:
        for record in records.values():
            add(record)
        start = time.perf_counter()
        for i, (key, result) in enumerate(execute(client, grid.run_point, todo, lost=grid.lost_point), 1):
            records[key] = point_result(points[key], key, *result)
            if "error" not in records[key]:
                write_cached(cache, records[key])
            add(records[key])
            line = (f"{grid.where(points[key].point)}: FAILED: {result[2][:200]}" if result[2] else
                    grid.progress_line(points[key].point, *result[:2]))
            print(f"[{cached + i}/{len(points)}, {cached} cached] {line}; ETA {_eta(start, i, len(todo) - i)}",
                  file=log, flush=True)
    ordered = [records[k] for k in points]
    write_points(spec.out, ordered)
    figures = write_heatmaps(ordered, spec.out)
    failed = [grid.where(points[r["key"]].point) for r in ordered if "error" in r]
    inexact = [f"{s} at {grid.where(points[r['key']].point)}" for r in ordered if "runs" in r
               for s in grid.not_bit_exact(r)]
    if failed or inexact:
        raise SweepError(grid.problems(failed, inexact, f"{spec.out / 'points.jsonl'} (failed points are not "
                                                       "cached: a rerun tries them again)"))
    return {"points": len(points), "cached": cached, "computed": len(todo), "records": ordered, "figures": figures}


# -------------------------------------------------------------------------------- CLI

AXIS_HELP = {
    "presets": "base hardware presets or .toml description files, one mesh size each (e.g. paper-2x2,paper-4x4)",
    "d2d": "D2D link bandwidth per direction: bytes per cycle (360), a multiple of the base preset's (x0.5) or "
           "GB/s at its clock (288GB/s)",
    "dram": "DRAM bandwidth per channel, in the same forms as --d2d",
    "sram": "weight buffers per chiplet (e.g. 2MiB,8MiB), 'paper' (each strategy at the reference model's "
            "provisioning) or 'preset' (the base preset's own)",
    "slices": "S of fse-dp, fse-dp-paired, ep and hydra: 'auto' (from the budget) or integers; ep-whole and ep-paper "
              "load whole experts",
    "models": "model presets or .toml model description files",
    "tokens": "token counts L",
    "routing": "real[:c4|book|wikipedia] (real statistics mapped per model, as fsedp grid) or any --routing of "
               "fsedp compare",
    "strategies": f"strategies to run at every point ({', '.join(STRATEGIES)})",
    "engine": "fast (the event-driven model) or rtl (Verilator; rtl-* presets only)",
    "seed": "seed of the routing sample (and, with rtl, of weights and tokens)",
}


def add_parsers(sub) -> None:
    """Add ``sweep`` to the ``fsedp`` parser."""
    p = sub.add_parser("sweep", help="design-space sweep (D2D, DRAM, SRAM, mesh, S x models x L x strategies) on "
                                     "Dask, cached and resumable, with heatmaps",
                       description="Axis flags give one block of the sweep, the axes not given at their defaults. "
                                   "With no axis flag and no --spec: the default sweep, on the defaults, DRAM "
                                   "x0.5,x1,x2,x4 against D2D x0.25,x0.5,x1,x2 at the 'paper' budget and against "
                                   "budgets 1MiB,2MiB,8MiB,paper at the preset's D2D (docs/sweep.md).")
    p.add_argument("--out", dest="out_dir", required=True, metavar="DIR",
                   help="folder for points.jsonl, points.csv, the heatmaps (PNG and CSV) and the cache")
    p.add_argument("--spec", metavar="FILE.toml", default=None,
                   help="sweep file: axes, settings and [[block]] tables (docs/sweep.md), instead of axis and "
                        "setting flags")
    for key, text in AXIS_HELP.items():
        flags = [f"--{key}"] + (["-L"] if key == "tokens" else [])
        p.add_argument(*flags, default=None, metavar="LIST" if key in AXES + ("strategies",) else None,
                       help=f"comma-separated {text} (default: {DEFAULTS[key]})" if key in AXES else
                       f"{text} (default: {DEFAULTS[key]})")
    p.add_argument("--cache", metavar="DIR", default=None, help="cache folder, one JSON per point (default: DIR/cache)")
    p.add_argument("--jobs", "-j", type=int, default=None,
                   help="worker processes of the local Dask cluster (default: every core; 1: serially, in this "
                        "process)")
    p.add_argument("--cluster", metavar="ADDRESS", default=None,
                   help="run on the Dask scheduler at ADDRESS (e.g. tcp://host:8786) instead of a local cluster")
    p.set_defaults(func=cmd_sweep)


def spec_of_args(args) -> SweepSpec:
    """The sweep the flags ask for: ``--spec`` or the axis flags (none: the default sweep)."""
    given = {k: getattr(args, k) for k in AXES + SETTINGS if getattr(args, k) is not None}
    if args.spec and given:
        raise SweepError(f"--spec {args.spec} defines the sweep; give {', '.join('--' + k for k in given)} in the "
                         "file instead")
    if args.jobs is not None and (args.jobs < 1 or args.cluster):
        raise SweepError(f"--jobs must be a positive integer, not {args.jobs}" if args.jobs < 1 else
                         "--jobs sizes the local cluster; with --cluster the scheduler's workers run the points")
    if args.spec:
        defn = definition(read_spec(args.spec), args.spec)
    else:
        defn = definition(given if any(k in given for k in AXES) else DEFAULT_SWEEP | given)
    jobs = len(os.sched_getaffinity(0)) if args.jobs is None else args.jobs
    return SweepSpec(out=pathlib.Path(args.out_dir), definition=defn, jobs=jobs, cluster=args.cluster,
                     cache=pathlib.Path(args.cache) if args.cache else None)


def cmd_sweep(args) -> None:
    summary = run_sweep(spec_of_args(args))
    out = pathlib.Path(args.out_dir)
    print(f"wrote {summary['points']} points ({summary['cached']} cached, {summary['computed']} computed) to "
          f"{out / 'points.jsonl'} and {out / 'points.csv'}; heatmaps: "
          + (", ".join(p.name for p in summary["figures"] if p.suffix == ".png") or "none (no plane of two axes)"))
