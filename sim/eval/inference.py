"""``fsedp model``: every MoE layer of a model, for prefill and for decode, per strategy.

A whole-model run is a sequence of layer invocations, each one point of ``fsedp grid``
(:class:`sim.eval.grid.Point`, run by :func:`~sim.eval.grid.run_point` on the same Dask
executor, or batched on the RTL by :func:`~sim.eval.grid.run_rtl_batch`): every strategy
on the same hardware, buffers and routing.

- **Prefill:** the model's ``moe_layers`` layers in order, each with the same L tokens.
- **Decode:** T steps of B tokens each (B sequences generating one token per step); a
  step runs every layer once.  Each (step, layer) has routing of its own.

**Routing per layer.**  By default each layer's routing is sampled from real statistics
(:func:`sim.eval.realstats.real_routing`: the model's own bundled file, or statistics
derived from the closest bundled model).  The files record three layers (0, 7 and 15 of
the recorded model).  A model layer ``l`` of ``n`` uses the recorded layer *nearest in
relative depth*: ``l / (n - 1)`` of the model against ``r / (n_src - 1)`` of the recorded
model's ``n_src`` MoE layers (ties: the shallower layer); for OLMoE-1B-7B itself that is
the nearest layer by index.  Every (phase, step, layer) draws its own sample, seeded from
``--seed``, the phase, the step and the layer (:func:`layer_seed`).  ``--routing`` gives
one routing spec for every layer instead (each still drawn with its own seed).

The recorded cross-layer pair counts (which experts one token picks at layers 0 and 7, 7
and 15) are **not** used: a layer's cycles depend only on its own routing (every plan is
made from its own gate output, and tokens sit on their home chiplets whatever their
experts), so correlating consecutive layers' samples could change the spread of a total
over seeds, never any layer's distribution of cycles.

**Time.**  Routing of a layer is known only when the previous layer's outputs are done
and the attention and the gate have run on them: ``--attention-cycles A`` per layer (default 0, a
parameter, not simulated; stated in every output).  So layer ``l`` starts at
``end(l - 1) + A``, and its DRAM streams start then, the moment its routing is known: the
streams of a layer never overlap the previous layer's compute, and what the timeline
shows between layers is every chiplet that finished its part early waiting for the
layer's last one (its idle cycles are reported per layer).  Prefill time is the sum over
layers of ``A + cycles``; a decode step's time is the same sum over one step, its mean
over the T steps is the per-token decode latency, and B over it the decode throughput.

**Energy** (an estimate, :mod:`sim.eval.energy`'s default table) is the sum of the layers'
estimates; attention and the gate are not in it.

Outputs (``--out DIR``): ``model.json`` (every layer's summary and every total),
``layers.csv`` (one row per phase, step, layer and strategy), ``latency.png`` (latency
per layer per strategy) and ``timeline.json`` (Perfetto: one process per strategy and
phase, a track of layers and one per chiplet).  See ``docs/model.md``.
"""

from __future__ import annotations

import csv
import json
import math
import pathlib
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass

import numpy as np

from scheduler import presets, routing
from scheduler.plan import STRATEGIES

from . import grid
from .realstats import BUNDLED_MODELS, DOMAINS, OWN_STATS, real_routing

__all__ = ["ModelRunError", "ModelRunSpec", "LayerRouting", "PHASES", "recorded_layer", "layer_routings",
           "layer_seed", "run_model", "totals", "timeline", "add_parsers"]

PHASES = ("prefill", "decode")
#: CSV columns, one row per phase, step, layer and strategy.
LAYER_COLUMNS = ("phase", "step", "layer", "recorded_layer", "routing", "tokens", "strategy", "status", "start_cycle",
                 "cycles", "time_us", "bound_cycles", "mean_compute_utilization", "idle_chiplet_cycles", "dram_bytes",
                 "d2d_bytes", "energy_j", "bit_exact", "reason")


class ModelRunError(ValueError):
    """A bad ``fsedp model`` flag (one line from the CLI)."""


@dataclass(frozen=True)
class ModelRunSpec:
    preset: str = "paper-2x2"
    model: str = "olmoe-1b-7b"
    strategies: tuple = STRATEGIES
    engine: str = "fast"
    prefill: int = 256              # L of the prefill pass (0: no prefill)
    batch: int = 16                 # B tokens per decode step (0: no decode)
    steps: int = 4                  # T decode steps
    layers: int | None = None       # the first N MoE layers (None: all of the model's)
    domain: str = "c4"
    routing: str | None = None      # one spec for every layer instead of real statistics
    attention_cycles: int = 0       # attention and gate per layer, before its MoE (not simulated)
    sram: object = "preset"         # weight buffer: bytes, "paper" or "preset"
    slices: int | None = None
    seed: int = 0
    jobs: int = 1


@dataclass(frozen=True)
class LayerRouting:
    layer: int
    recorded: int | None     # the recorded layer its statistics are (None: --routing)
    spec: str                # what routing.from_spec gets
    label: str               # short name for tables


def _source_layers(family: str) -> int:
    """MoE layers of the model a bundled statistics family was recorded on."""
    name = next(m for m, f in OWN_STATS.items() if f == family)
    return presets.get_model(name).moe_layers


def recorded_layer(layer: int, layers: int, recorded: tuple, source_layers: int) -> int:
    """The recorded layer nearest in relative depth to ``layer`` of ``layers``
    (ties: the shallower)."""
    # |r / (n_src - 1) - layer / (layers - 1)| in integers (exact ties)
    num, den = (layer, layers - 1) if layers > 1 else (0, 1)
    return min(recorded, key=lambda r: (abs(r * den - num * max(source_layers - 1, 1)), r))


def layer_routings(spec: ModelRunSpec, work_dir) -> tuple[list, str]:
    """Each layer's routing, and one line on where it comes from."""
    m = presets.get_model(spec.model)
    n = spec.layers or m.moe_layers
    if spec.routing is not None:
        if spec.routing.endswith(".jsonl"):
            raise ModelRunError(f"--routing {spec.routing}: a .jsonl trace is one layer's fixed tokens; every layer "
                                "and step of fsedp model draws its own routing (give uniform, zipf:A or a statistics "
                                ".json)")
        routing.from_spec(spec.routing, 1, m.num_experts, m.top_k, spec.seed)    # checks it
        return [LayerRouting(l, None, spec.routing, spec.routing) for l in range(n)], \
            f"routing {spec.routing} at every layer (each layer its own sample)"
    real = real_routing(spec.model, spec.domain, work_dir)
    family = real.source.partition(":")[0]
    stats = routing.load_stats(routing.BUNDLED_STATS[real.source] if not real.derived else real.spec)
    src = _source_layers(family)
    out = []
    for l in range(n):
        r = recorded_layer(l, m.moe_layers, stats.layers, src)
        out.append(LayerRouting(l, r, f"{real.spec}:{r}", f"real:{spec.domain}:{r}"))
    note = (f"{real.note}; layer l of {m.moe_layers} uses the recorded layer ({', '.join(map(str, stats.layers))} of "
            f"{BUNDLED_MODELS[family][2]}'s {src}) nearest in relative depth")
    return out, note


def layer_seed(seed: int, phase: str, step: int, layer: int) -> int:
    """The seed of one (phase, step, layer): routing, weights and tokens."""
    state = np.random.SeedSequence([seed, PHASES.index(phase), step, layer]).generate_state(2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1])) & (2 ** 63 - 1)


def check_spec(spec: ModelRunSpec) -> None:
    """Every flag against the presets before anything runs."""
    hw = presets.get_hardware(spec.preset)
    m = presets.get_model(spec.model)
    if spec.engine not in grid.ENGINES:
        raise ModelRunError(f"--engine {spec.engine}: choose one of {', '.join(grid.ENGINES)}")
    if spec.engine == "rtl" and not hw.rtl:
        raise ModelRunError(f"--engine rtl: {hw.name} is not an RTL preset (too large to simulate as RTL); use an "
                            "rtl-* preset or --engine fast")
    if spec.domain not in DOMAINS:
        raise ModelRunError(f"--domain {spec.domain}: choose one of {', '.join(DOMAINS)}")
    if spec.layers is not None and not 1 <= spec.layers <= m.moe_layers:
        raise ModelRunError(f"--layers {spec.layers}: {m.name} has {m.moe_layers} MoE layers")
    if not spec.prefill and not spec.batch:
        raise ModelRunError("--prefill 0 and --batch 0: nothing to run")
    if spec.batch and spec.steps < 1:
        raise ModelRunError(f"--steps {spec.steps}: decode needs at least one step")
    if spec.attention_cycles < 0:
        raise ModelRunError(f"--attention-cycles {spec.attention_cycles}: must be a non-negative cycle count")
    from sim.workload import check_tokens

    for flag, tokens in (("--prefill", spec.prefill), ("--batch", spec.batch)):
        if tokens:
            try:
                check_tokens(hw, tokens)
            except presets.PresetError as exc:
                raise ModelRunError(str(exc).replace("--tokens", flag)) from None


def _invocations(spec: ModelRunSpec, layers: list) -> list:
    """``(phase, step, LayerRouting, tokens)`` of every layer invocation, in time order."""
    out = [("prefill", 0, lr, spec.prefill) for lr in layers] if spec.prefill else []
    if spec.batch:
        out += [("decode", s, lr, spec.batch) for s in range(spec.steps) for lr in layers]
    return out


def _point(spec: ModelRunSpec, lr: LayerRouting, tokens: int) -> grid.Point:
    return grid.Point(spec.preset, spec.model, lr.label, lr.spec, lr.label, tokens, sram=spec.sram,
                      slices=spec.slices, strategies=spec.strategies)


def _layer_rows(doc: dict | None, error: str | None, spec: ModelRunSpec) -> dict:
    """``{strategy: compact result}`` of one layer invocation."""
    out = {}
    if doc is None:
        return {s: {"status": "failed", "reason": error} for s in spec.strategies}
    bound = (doc["point"].get("bound") or {}).get("cycles")
    for r in doc["runs"]:
        cycles = r["cycles"]
        out[r["strategy"]] = {
            "status": "ran", "cycles": cycles, "time_us": r["time_us"], "bound_cycles": bound,
            "done_cycle": r["done_cycle"],
            "idle_chiplet_cycles": sum(cycles - d for d in r["done_cycle"]),
            "mean_compute_utilization": sum(r["compute_utilization"]) / len(r["compute_utilization"]),
            "dram_bytes": r["dram_bytes"], "d2d_bytes": r["d2d_bytes"],
            "energy_j": (r.get("energy") or {}).get("total_j"), "bit_exact": r["bit_exact"],
            "slices": r.get("slices"), "slots": r.get("slots")}
    for s in doc["not_run"]:
        out[s["strategy"]] = {"status": "does not fit" if s["fits"] is False else "does not apply",
                              "reason": s["reason"]}
    return out


def _results(spec: ModelRunSpec, points: list):
    """``(index, document, seconds, error)`` as the invocations (``(point, seed)``) finish."""
    if spec.engine == "rtl":
        for i in range(0, len(points), grid.RTL_BATCH):
            for j, (_, doc, seconds, error) in enumerate(grid.run_rtl_batch(points[i:i + grid.RTL_BATCH])):
                yield i + j, doc, seconds, error
        return
    from .sweep import execute, executor

    tasks = {f"model-layer-{i}": (p, "fast", seed) for i, (p, seed) in enumerate(points)}
    with executor(spec.jobs) as client:
        for key, (doc, seconds, error) in execute(client, grid.run_point, tasks, lost=grid.lost_point):
            yield int(key.rpartition("-")[2]), doc, seconds, error


def run_model(spec: ModelRunSpec, log=None) -> dict:
    """Run every layer invocation of ``spec``; returns the ``model.json`` document."""
    log = log or sys.stderr
    check_spec(spec)
    hw, m = presets.get_hardware(spec.preset), presets.get_model(spec.model)
    with tempfile.TemporaryDirectory(prefix="fsedp-model-") as work_dir:
        layers, note = layer_routings(spec, work_dir)
        invocations = _invocations(spec, layers)
        points = [(_point(spec, lr, tokens), layer_seed(spec.seed, phase, step, lr.layer))
                  for phase, step, lr, tokens in invocations]
        print(f"model: {m.name}, {len(layers)} of its {m.moe_layers} MoE layers on {hw.name}; "
              f"{len(invocations)} layer invocations x {len(spec.strategies)} strategies, engine {spec.engine}"
              + (f" on {spec.jobs} Dask worker processes" if spec.engine == "fast" and spec.jobs > 1 else ""),
              file=log, flush=True)
        print(f"routing: {note}", file=log, flush=True)
        done, t0 = {}, time.perf_counter()
        for i, doc, seconds, error in _results(spec, points):
            done[i] = _layer_rows(doc, error, spec)
            phase, step, lr, tokens = invocations[i]
            where = f"{phase}{f' step {step}' if phase == 'decode' else ''} layer {lr.layer} ({lr.label}, L={tokens})"
            cyc = ", ".join(f"{s} {r['cycles']}" for s, r in done[i].items() if r["status"] == "ran")
            print(f"[{len(done)}/{len(points)}] {where}: cycles {cyc or 'nothing ran'} ({seconds:.1f} s)"
                  + (f"  FAILED: {error[:200]}" if error else ""), file=log, flush=True)
    records = []
    for i, (phase, step, lr, tokens) in enumerate(invocations):
        records.append({"phase": phase, "step": step, "layer": lr.layer, "recorded_layer": lr.recorded,
                        "routing": lr.label, "tokens": tokens, "seed": points[i][1], "runs": done[i]})
    doc = {"model": m.name, "preset": hw.name, "clock_ghz": hw.clock_ghz, "engine": spec.engine,
           "moe_layers": m.moe_layers, "layers_run": len(layers), "strategies": list(spec.strategies),
           "prefill_tokens": spec.prefill, "decode_batch": spec.batch, "decode_steps": spec.steps if spec.batch else 0,
           "attention_cycles": spec.attention_cycles,
           "attention_note": f"attention and gate: {spec.attention_cycles} cycles per layer, a parameter (not "
                             "simulated); each layer's routing is known, and its DRAM streams start, only after "
                             "them",
           "routing_note": note, "sram": grid.budget_label(spec.sram), "seed": spec.seed,
           "energy_note": "energy is an estimate (measured counters x the default technology table, "
                          "docs/energy.md) of the MoE layers only; attention and gate are not in it",
           "wall_seconds": round(time.perf_counter() - t0, 1), "layers": records}
    doc["totals"] = totals(doc)
    return doc


def _sum_or_none(values):
    return None if any(v is None for v in values) else sum(values)


def totals(doc: dict) -> dict:
    """Per strategy and phase: cycles, time, tokens per second, per-token decode latency
    and energy, from the layer records (None where a layer of it did not run)."""
    clock, att = doc["clock_ghz"], doc["attention_cycles"]
    out = {}
    for s in doc["strategies"]:
        entry = {}
        for phase in PHASES:
            recs = [r for r in doc["layers"] if r["phase"] == phase]
            if not recs:
                continue
            missing = [r for r in recs if r["runs"][s]["status"] != "ran"]
            if missing:
                r = missing[0]
                entry[phase] = {"status": r["runs"][s]["status"],
                                "reason": f"layer {r['layer']}: {r['runs'][s].get('reason')}"}
                continue
            steps = sorted({r["step"] for r in recs})
            step_cycles = [sum(att + r["runs"][s]["cycles"] for r in recs if r["step"] == k) for k in steps]
            energy = _sum_or_none([r["runs"][s]["energy_j"] for r in recs])
            tokens = recs[0]["tokens"]
            mean = statistics.fmean(step_cycles)
            e = {"status": "ran", "cycles": sum(step_cycles), "time_us": sum(step_cycles) / (clock * 1e3),
                 "moe_cycles": sum(r["runs"][s]["cycles"] for r in recs),
                 "tokens_per_s": tokens * len(steps) / (sum(step_cycles) / (clock * 1e9)),
                 "energy_j": energy, "energy_per_token_j": None if energy is None else energy / (tokens * len(steps)),
                 "bit_exact": (None if any(r["runs"][s]["bit_exact"] is None for r in recs)
                               else all(r["runs"][s]["bit_exact"] for r in recs))}
            if phase == "decode":
                e |= {"steps": len(steps), "step_cycles": step_cycles,
                      "token_latency_us": mean / (clock * 1e3),
                      "token_latency_us_min": min(step_cycles) / (clock * 1e3),
                      "token_latency_us_max": max(step_cycles) / (clock * 1e3)}
            entry[phase] = e
        out[s] = entry
    return out


# ----------------------------------------------------------------------------- outputs

def layer_csv(doc: dict, path) -> None:
    starts = _starts(doc)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=LAYER_COLUMNS)
        w.writeheader()
        for i, rec in enumerate(doc["layers"]):
            for s in doc["strategies"]:
                r = rec["runs"][s]
                w.writerow({k: rec.get(k) for k in ("phase", "step", "layer", "recorded_layer", "routing", "tokens")}
                           | {"strategy": s, "status": r["status"], "start_cycle": starts[s][i],
                              "reason": r.get("reason")}
                           | {k: r.get(k) for k in LAYER_COLUMNS[9:-1]})


def _starts(doc: dict) -> dict:
    """``{strategy: [start cycle of each record]}`` (None after a layer that did not run):
    each phase from cycle 0, layer ``l`` at ``end(l - 1) + A`` (attention and gate first)."""
    att, out = doc["attention_cycles"], {}
    for s in doc["strategies"]:
        t, phase, starts = 0, None, []
        for rec in doc["layers"]:
            if rec["phase"] != phase:
                t, phase = 0, rec["phase"]
            r = rec["runs"][s]
            if t is None or r["status"] != "ran":
                starts.append(None)
                t = None
                continue
            starts.append(t + att)
            t += att + r["cycles"]
        out[s] = starts
    return out


def timeline(doc: dict) -> dict:
    """Perfetto (Chrome trace-event) JSON: per strategy and phase a process with a track
    of attention-and-gate and layer spans and one track per chiplet (its part of each
    layer, to its done cycle); times in microseconds at the preset's clock."""
    ns = 1.0 / doc["clock_ghz"]
    us = lambda c: math.floor(c * ns + 1e-6) / 1000      # noqa: E731  whole nanoseconds, as sim.fast.chrome
    ev, starts, att = [], _starts(doc), doc["attention_cycles"]
    pid = 0
    for s in doc["strategies"]:
        for phase in PHASES:
            idx = [i for i, r in enumerate(doc["layers"]) if r["phase"] == phase]
            if not idx:
                continue
            ev.append({"ph": "M", "pid": pid, "name": "process_name", "args": {"name": f"{s} {phase}"}})
            ev.append({"ph": "M", "pid": pid, "name": "thread_name", "tid": 0, "args": {"name": "MoE layers"}})
            for i in idx:
                rec, start = doc["layers"][i], starts[s][i]
                r = rec["runs"][s]
                if start is None:
                    break
                name = f"layer {rec['layer']}" + (f" (step {rec['step']})" if phase == "decode" else "")
                if att:
                    ev.append({"ph": "X", "pid": pid, "tid": 0, "name": "attention + gate (not simulated)",
                               "cat": "attention", "ts": us(start - att), "dur": us(start) - us(start - att),
                               "args": {"cycles": att}})
                ev.append({"ph": "X", "pid": pid, "tid": 0, "name": name, "cat": "layer", "ts": us(start),
                           "dur": us(start + r["cycles"]) - us(start),
                           "args": {"cycles": r["cycles"], "routing": rec["routing"], "tokens": rec["tokens"],
                                    "idle_chiplet_cycles": r["idle_chiplet_cycles"], "energy_j": r["energy_j"]}})
                ev.append({"ph": "i", "pid": pid, "tid": 0, "s": "p", "name": "routing known: DRAM streams start",
                           "ts": us(start)})
                for c, d in enumerate(r["done_cycle"]):
                    ev.append({"ph": "X", "pid": pid, "tid": 1 + c, "name": name, "cat": "chiplet", "ts": us(start),
                               "dur": us(start + d) - us(start), "args": {"done_cycle": d,
                                                                        "waits_for_last_chiplet": r["cycles"] - d}})
            for c in range(max((len(doc["layers"][i]["runs"][s].get("done_cycle") or ()) for i in idx), default=0)):
                ev.append({"ph": "M", "pid": pid, "name": "thread_name", "tid": 1 + c, "args": {"name": f"chiplet {c}"}})
            pid += 1
    return {"traceEvents": ev, "displayTimeUnit": "ns",
            "otherData": {"model": doc["model"], "preset": doc["preset"], "attention_note": doc["attention_note"]}}


def latency_plot(doc: dict, path) -> None:
    """Latency per layer per strategy: prefill, and decode (mean over steps)."""
    from matplotlib.ticker import MaxNLocator

    from .plots import STRATEGY_STYLE, plt

    phases = [p for p in PHASES if any(r["phase"] == p for r in doc["layers"])]
    fig, axes = plt.subplots(1, len(phases), figsize=(6.4 * len(phases), 4.2), squeeze=False)
    clock = doc["clock_ghz"]
    for ax, phase in zip(axes[0], phases):
        recs = [r for r in doc["layers"] if r["phase"] == phase]
        layers = sorted({r["layer"] for r in recs})
        for s in doc["strategies"]:
            colour, marker = STRATEGY_STYLE.get(s, (None, "o"))
            ys = []
            for l in layers:
                c = [r["runs"][s].get("cycles") for r in recs if r["layer"] == l]
                ys.append(statistics.fmean(c) / (clock * 1e3) if c and None not in c else float("nan"))
            ax.plot(layers, ys, label=s, color=colour, marker=marker, markersize=4)
        steps = len({r["step"] for r in recs})
        ax.set_title(f"{phase}, L = {recs[0]['tokens']}" if phase == "prefill" else
                     f"decode, B = {recs[0]['tokens']} (mean over {steps} steps)")
        ax.set_xlabel("MoE layer")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("MoE layer time (µs)")
        ax.grid(alpha=0.3)
    axes[0][0].legend(loc="upper center", bbox_to_anchor=(0.5 * len(phases), -0.15), ncol=len(doc["strategies"]))
    fig.suptitle(f"{doc['model']} on {doc['preset']}, {doc['engine']} engine")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def summary_table(doc: dict) -> str:
    """Per strategy: prefill time and tokens/s; decode per-token latency and tokens/s;
    energy per token (estimates)."""
    head = ["strategy", "prefill us", "prefill tok/s", "decode us/token", "decode tok/s", "uJ/token prefill",
            "uJ/token decode"]
    rows = []
    for s, t in doc["totals"].items():
        p, d = t.get("prefill"), t.get("decode")
        ran = lambda e: e is not None and e["status"] == "ran"       # noqa: E731
        ej = lambda e: "-" if not ran(e) or e["energy_per_token_j"] is None else f"{e['energy_per_token_j'] * 1e6:.2f}"  # noqa: E731
        rows.append([s, f"{p['time_us']:.1f}" if ran(p) else (p["status"] if p else "-"),
                     f"{p['tokens_per_s']:.0f}" if ran(p) else "-",
                     f"{d['token_latency_us']:.1f}" if ran(d) else (d["status"] if d else "-"),
                     f"{d['tokens_per_s']:.0f}" if ran(d) else "-", ej(p), ej(d)])
    return _format(head, rows)


def layer_table(doc: dict, phase: str) -> str:
    """MoE layer time (µs) per layer and strategy (decode: mean over the steps)."""
    recs = [r for r in doc["layers"] if r["phase"] == phase]
    clock = doc["clock_ghz"]
    rows = []
    for l in sorted({r["layer"] for r in recs}):
        mine = [r for r in recs if r["layer"] == l]
        row = [str(l), mine[0]["routing"]]
        for s in doc["strategies"]:
            c = [r["runs"][s].get("cycles") for r in mine]
            row.append("-" if None in c else f"{statistics.fmean(c) / (clock * 1e3):.1f}")
        rows.append(row)
    return _format(["layer", "routing"] + list(doc["strategies"]), rows)


def _format(head, rows) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    line = lambda r: "  ".join(str(x).rjust(w) for x, w in zip(r, widths))     # noqa: E731
    return "\n".join([line(head), line(["-" * w for w in widths])] + [line(r) for r in rows])


def write_outputs(doc: dict, out: pathlib.Path) -> list:
    out.mkdir(parents=True, exist_ok=True)
    files = [out / "model.json", out / "layers.csv", out / "latency.png", out / "timeline.json"]
    files[0].write_text(json.dumps(doc, indent=1) + "\n")
    layer_csv(doc, files[1])
    latency_plot(doc, files[2])
    files[3].write_text(json.dumps(timeline(doc)) + "\n")
    return files


# --------------------------------------------------------------------------------- CLI

def add_parsers(sub) -> None:
    """Add ``model`` to the ``fsedp`` parser."""
    from sim.cli import _integer, _positive_int, _seed, _size

    p = sub.add_parser("model", help="every MoE layer of a model, prefill and decode, per strategy (docs/model.md)")
    p.add_argument("--preset", default=None,
                   help=f"hardware preset or .toml hardware description file (default {ModelRunSpec.preset})")
    p.add_argument("--hardware", metavar="FILE.toml", default=None, help="hardware description file; replaces --preset")
    p.add_argument("--model", default="olmoe-1b-7b", help="model preset or .toml model file (its moe_layers layers)")
    p.add_argument("--strategies", default=",".join(STRATEGIES), metavar="LIST",
                   help=f"comma-separated strategies (default: all, {','.join(STRATEGIES)})")
    p.add_argument("--engine", default="fast", choices=grid.ENGINES, help="simulation engine (default fast)")
    nonneg = _integer(0, what="a non-negative integer")
    p.add_argument("--prefill", type=nonneg, default=ModelRunSpec.prefill, metavar="L",
                   help=f"tokens of the prefill pass (default {ModelRunSpec.prefill}; 0: no prefill)")
    p.add_argument("--batch", type=nonneg, default=ModelRunSpec.batch, metavar="B",
                   help=f"tokens per decode step (default {ModelRunSpec.batch}; 0: no decode)")
    p.add_argument("--steps", type=_positive_int, default=ModelRunSpec.steps, metavar="T",
                   help=f"decode steps, each its own routing at every layer (default {ModelRunSpec.steps})")
    p.add_argument("--layers", type=_positive_int, default=None, metavar="N",
                   help="run only the first N MoE layers (default: all of the model's)")
    p.add_argument("--domain", default="c4", choices=DOMAINS, help="text domain of the routing statistics")
    p.add_argument("--routing", dest="layer_routing", default=None, metavar="SPEC",
                   help="one --routing spec for every layer instead of the real statistics (uniform, zipf:A, ...)")
    p.add_argument("--attention-cycles", type=nonneg, default=0, metavar="A",
                   help="cycles of attention and gate before each MoE layer, a parameter, not simulated (default 0)")
    p.add_argument("--sram", type=_size, default=None, metavar="SIZE",
                   help="weight buffer per chiplet (default: the hardware preset's)")
    p.add_argument("--slices", type=_positive_int, default=None,
                   help="micro-slices or tiles per expert S (default: from the weight buffer)")
    p.add_argument("--seed", type=_seed, default=0, help="seed of every layer's routing, weights and tokens")
    p.add_argument("--jobs", "-j", type=_positive_int, default=None,
                   help="worker processes for the fast engine (default: every core; 1: serially)")
    p.add_argument("--out", default="results/model", metavar="DIR",
                   help="folder for model.json, layers.csv, latency.png and timeline.json (default results/model)")
    p.set_defaults(func=cmd_model, own_flags=True)


def spec_of_args(args) -> ModelRunSpec:
    from .sweep import parse_strategies

    try:
        strategies = parse_strategies(args.strategies)
    except grid.GridError as exc:
        raise ModelRunError(str(exc)) from None
    if args.preset and args.hardware:
        raise ModelRunError("give --preset or --hardware, not both")
    return ModelRunSpec(preset=args.hardware or args.preset or ModelRunSpec.preset, model=args.model, strategies=strategies, engine=args.engine,
                        prefill=args.prefill, batch=args.batch, steps=args.steps, layers=args.layers,
                        domain=args.domain, routing=args.layer_routing, attention_cycles=args.attention_cycles,
                        sram="preset" if args.sram is None else args.sram, slices=args.slices, seed=args.seed,
                        jobs=args.jobs or grid.default_jobs())


def cmd_model(args) -> None:
    spec = spec_of_args(args)
    doc = run_model(spec)
    failed = [f"{r['phase']}{' step ' + str(r['step']) if r['phase'] == 'decode' else ''} layer {r['layer']}"
              for r in doc["layers"] if any(v["status"] == "failed" for v in r["runs"].values())]
    if not failed and not any(e["status"] == "ran" for t in doc["totals"].values() for e in t.values()):
        raise ModelRunError("no strategy can run here: " + "; ".join(
            f"{s} {e['reason']}" for s, t in doc["totals"].items() for e in list(t.values())[:1]))
    files = write_outputs(doc, pathlib.Path(args.out))
    hw = presets.get_hardware(spec.preset)
    print(f"{doc['model']} on {doc['preset']} ({doc['layers_run']} MoE layers, engine {doc['engine']}); "
          f"{doc['attention_note']}")
    for phase in PHASES:
        if any(r["phase"] == phase for r in doc["layers"]):
            what = (f"prefill, L = {spec.prefill}" if phase == "prefill" else
                    f"decode, B = {spec.batch}, mean over {spec.steps} steps")
            print(f"\nMoE layer time (us) per layer, {what}:")
            print(layer_table(doc, phase))
    print(f"\nwhole model at {hw.clock_ghz:g} GHz (energy: an estimate, MoE layers only, docs/energy.md):")
    print(summary_table(doc))
    for s, t in doc["totals"].items():
        for phase, e in t.items():
            if e["status"] != "ran":
                print(f"{s} {phase}: {e['status']}: {e['reason']}")
    print(f"\nwrote {', '.join(str(f) for f in files)} (timeline: open it in https://ui.perfetto.dev)")
    inexact = [f"{s} at {r['phase']} layer {r['layer']}" for r in doc["layers"] for s, v in r["runs"].items()
               if v.get("bit_exact") is False]
    if failed or inexact:
        raise ModelRunError(grid.problems(failed, inexact, f"{files[0]} (see its layers)"))
