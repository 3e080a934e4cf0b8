"""``fsedp``: the command-line entry point.

Every error a user can cause (a bad flag, an unknown preset, a malformed routing file or
description file, an output path that cannot be written) ends in one line
``fsedp: error: ...`` and exit status 2, before any long work starts where it can be
checked then; Ctrl-C ends with one line and exit status 130.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time

import numpy as np

from scheduler import golden, presets, routing

DEFAULTS = {"preset": "rtl-2x2", "model": "tiny-8x2", "tokens": 16, "routing": None, "seed": 0}
DESCRIPTION = ("fsedp: a cycle-accurate RTL model (and a fast event-driven model) of a multi-chiplet MoE "
               "accelerator, for FSE-DP and its baselines")


class UsageError(Exception):
    """A user error reported as one line."""


class Parser(argparse.ArgumentParser):
    """argparse with the project's error format: one line ``fsedp: error: ...``, status 2;
    help that shows defaults."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message):
        command = self.prog.partition(" ")[2]
        where = f"{command}: " if command else ""
        self.exit(2, f"fsedp: error: {where}{message} (see `{self.prog} --help`)\n")


class HelpFormatter(argparse.HelpFormatter):
    """Help that shows each option's default, where it has one worth showing."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if ("default" not in text and default is not None and default is not False and default != argparse.SUPPRESS
                and action.option_strings and action.nargs != 0):
            text += f" (default: {default})"
        return text


def version() -> str:
    from importlib.metadata import PackageNotFoundError, version as package_version

    try:
        return package_version("fsedp")
    except PackageNotFoundError:   # pragma: no cover - running from a tree that is not installed
        return "unknown (not installed)"


def _integer(minimum: int, maximum: int | None = None, what: str = "an integer"):
    """An argparse type: an integer from ``minimum`` (to ``maximum``), or a one-line error."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"must be {what}, not {value}")
        return value
    return parse


_positive_int = _integer(1, what="a positive integer")
_cycle = _integer(0, what="a non-negative cycle number")
_seed = _integer(0, 2 ** 63 - 1, what="an integer from 0 to 2**63 - 1")


def add_hardware_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default=DEFAULTS["preset"],
                   help="hardware preset (fsedp presets), or a .toml hardware description file")
    p.add_argument("--hardware", metavar="FILE.toml", default=None,
                   help="hardware description file (docs/description_files.md; `fsedp presets --export NAME` "
                        "writes one to start from); replaces --preset")


def add_workload_flags(p: argparse.ArgumentParser) -> None:
    add_hardware_flags(p)
    p.add_argument("--model", default=DEFAULTS["model"],
                   help="model preset (fsedp presets), or a .toml model description file")
    p.add_argument("--tokens", "-L", type=_positive_int, default=DEFAULTS["tokens"],
                   help="tokens in the layer invocation (at most the chiplets x token rows of the hardware)")
    p.add_argument("--routing", default=DEFAULTS["routing"],
                   help="uniform | zipf:A | <model>:<domain>[:layer] (bundled statistics, e.g. "
                        "mixtral:c4) | path to a statistics .json | path to a .jsonl trace (default: the "
                        "model's own c4 statistics where its experts and top-k are those of a bundled "
                        "file, mixtral:c4 or olmoe:c4; uniform otherwise)")
    p.add_argument("--seed", type=_seed, default=DEFAULTS["seed"], help="seed for routing, weights and tokens")


def default_routing(model) -> str:
    """The ``--routing`` default for ``model``: the bundled c4 statistics of its shape
    (experts and top-k), else ``uniform``."""
    from sim.eval.realstats import BUNDLED_MODELS

    for family, (e, k, _) in BUNDLED_MODELS.items():
        if (e, k) == (model.num_experts, model.top_k):
            return f"{family}:c4"
    return "uniform"


def resolve_workload_flags(args) -> None:
    """``--hardware`` into ``--preset``, the default routing from the model, and the
    token count against what the hardware holds: all before any work starts.  A command
    that checks its own flags (``own_flags``, e.g. ``fsedp model``) is left alone."""
    if getattr(args, "own_flags", False):
        return
    if getattr(args, "hardware", None):
        if args.preset != DEFAULTS["preset"]:
            raise UsageError("give --preset or --hardware, not both")
        args.preset = args.hardware
    if not hasattr(args, "model"):
        if hasattr(args, "preset"):
            presets.get_hardware(args.preset)
        return
    hw, model = presets.get_hardware(args.preset), presets.get_model(args.model)
    if args.routing is None:
        args.routing = default_routing(model)
    from sim.workload import check_tokens

    check_tokens(hw, args.tokens)
    if getattr(args, "groups", None) is not None:
        check_groups_flag(args, hw)


def check_groups_flag(args, hw) -> None:
    """``--groups`` into its rings on this mesh (one-line errors before any work), and
    refused for a strategy other than FSE-DP (``compare`` runs the EP family without it)."""
    from scheduler import groups, strategies

    strategy = getattr(args, "strategy", None)
    if strategy is not None and strategy not in strategies.FSE_DP:
        raise UsageError(f"--groups does not apply to {strategy}: only FSE-DP ({', '.join(strategies.FSE_DP)}) "
                         f"streams its slices round rings")
    args.groups = groups.resolve(args.groups, hw)


def _size(text):
    try:
        return presets.parse_size(text)
    except presets.PresetError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_sram_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sram", type=_size, default=None, metavar="SIZE",
                   help="weight buffer per chiplet, e.g. 8MiB or 512KiB (default: the hardware preset's; "
                        "`fsedp presets` lists them); every strategy's slots are carved out of it")


#: Output flags that name a file, and commands whose ``--out`` is a folder.
OUTPUT_FILES = ("json", "csv", "timeline", "waves")
OUTPUT_DIR_COMMANDS = ("verilog", "grid", "report", "model")


def check_output_paths(args) -> None:
    """One rule for every output path, applied before any work starts: missing parent
    folders are created; a file path that is a folder, a folder path that is a file, or a
    place that cannot be written is an error naming the flag."""
    import os
    import pathlib

    paths = [(f"--{name}", getattr(args, name), False) for name in OUTPUT_FILES
             if isinstance(getattr(args, name, None), str)]
    if getattr(args, "out", None):
        paths.append(("--out", args.out, args.command in OUTPUT_DIR_COMMANDS))
    for flag, path, is_dir in paths:
        p = pathlib.Path(path)
        folder = p if is_dir else p.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise UsageError(f"{flag} {path}: {folder} is a file, not a folder") from None
        except OSError as exc:
            raise UsageError(f"{flag} {path}: cannot create {folder}: {exc.strerror}") from None
        if not is_dir and p.is_dir():
            raise UsageError(f"{flag} {path}: is a folder; give a file name")
        target = p if p.exists() and not is_dir else folder
        if not os.access(target, os.W_OK):
            raise UsageError(f"{flag} {path}: {target} is not writable")


def workload(args):
    """(hardware, model, trace) from the workload flags, validated."""
    hw = presets.get_hardware(args.preset)
    model = presets.get_model(args.model)
    trace = routing.from_spec(args.routing, args.tokens, model.num_experts, model.top_k, args.seed)
    return hw, model, trace


def cmd_presets(args):
    from scheduler import description

    fmt = presets.format_size
    if args.export:
        name = args.export
        if name in presets.HARDWARE_PRESETS:
            text = description.dump_hardware(presets.HARDWARE_PRESETS[name])
        elif name in presets.MODEL_PRESETS:
            text = description.dump_model(presets.MODEL_PRESETS[name])
        else:
            raise UsageError(f"--export: unknown preset {name!r}; choose a hardware preset "
                             f"({', '.join(presets.HARDWARE_PRESETS)}) or a model preset "
                             f"({', '.join(presets.MODEL_PRESETS)})")
        if args.out:
            with open(args.out, "w") as f:
                f.write(text)
            print(f"wrote {name} to {args.out}")
        else:
            print(text, end="")
        return
    if args.out:
        raise UsageError("--out applies to --export only")
    if args.json:
        print(json.dumps({"models": {n: p.summary() for n, p in presets.MODEL_PRESETS.items()},
                          "hardware": {n: p.summary() for n, p in presets.HARDWARE_PRESETS.items()}},
                         indent=2))
        return
    print("Model presets (the shape of one MoE layer; d = hidden, f = expert FFN, E = routed experts, "
          "S = default slices, layers = MoE layers of the whole model, for fsedp model)")
    print(f"  {'name':<18}{'d':>6}{'f':>7}{'E':>5}{'top-k':>6}{'S':>4}{'layers':>7}{'expert':>11}  source")
    for p in presets.MODEL_PRESETS.values():
        print(f"  {p.name:<18}{p.d_model:>6}{p.d_ff:>7}{p.num_experts:>5}{p.top_k:>6}{p.slices:>4}{p.moe_layers:>7}"
              f"{fmt(p.expert_bytes):>11}  {p.source}")
    print()
    print("Hardware presets (bandwidths in bytes per cycle: B/cyc/ch per DRAM channel, D2D per link direction; "
          "SRAM provisioned per chiplet: weight buffer, token + accumulator buffers; sizes in binary units)")
    print(f"  {'name':<13}{'mesh':>5}{'MACs':>6}{'DRAM ch':>8}{'B/cyc/ch':>11}{'D2D B/cyc':>10}"
          f"{'weight SRAM':>12}{'token SRAM':>11}{'MAC/DRAM B':>11}{'D2D/DRAM':>9}  source")
    for p in presets.HARDWARE_PRESETS.values():
        r = p.ratios()
        print(f"  {p.name:<13}{p.rows}x{p.cols:<3}{p.macs_per_chiplet:>6}{p.dram_channels:>8}"
              f"{p.dram_bytes_per_cycle:>11.3g}{p.link_bytes_per_cycle:>10.4g}{fmt(p.weight_sram_bytes):>12}"
              f"{fmt(p.token_sram_bytes):>11}{r['macs_per_dram_byte']:>11.4g}{r['d2d_to_dram_channel']:>9.4g}"
              f"  {p.source}")


def cmd_golden(args):
    hw, model, trace = workload(args)
    layer = golden.random_layer(model.num_experts, model.d_model, model.d_ff, args.seed)
    x = golden.random_tokens(trace.num_tokens, model.d_model, args.seed)
    gate_q = golden.quantize_gate_weights(trace.weights)
    slices = args.slices or model.slices
    if model.d_ff % slices:
        raise UsageError(f"--slices {slices} does not divide the expert FFN size {model.d_ff}")
    t0 = time.perf_counter()
    whole = golden.moe_layer(layer, x, trace.experts, gate_q, slices=1)
    sliced = golden.moe_layer(layer, x, trace.experts, gate_q, slices=slices)
    elapsed = time.perf_counter() - t0
    counts = trace.tokens_per_expert(model.num_experts)
    summary = {
        "model": model.name, "preset": hw.name, "tokens": trace.num_tokens, "routing": args.routing,
        "seed": args.seed, "slices": slices, "tokens_per_expert": counts.tolist(),
        "experts_used": int(np.count_nonzero(counts)),
        "output_sha256": hashlib.sha256(sliced.tobytes()).hexdigest(),
        "sliced_equals_unsliced": bool(np.array_equal(whole, sliced)),
        "golden_seconds": round(elapsed, 4),
    }
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=2)
    print(f"golden model: {model.name} (d={model.d_model}, f={model.d_ff}, E={model.num_experts}, "
          f"top-{model.top_k}), L={trace.num_tokens}, routing {args.routing}, seed {args.seed}")
    print(f"  tokens per expert: {counts.tolist()}  ({summary['experts_used']} of {model.num_experts} used)")
    print(f"  output int32 {sliced.shape[0]}x{sliced.shape[1]}, sha256 {summary['output_sha256'][:16]}")
    print(f"  {slices} micro-slices per expert summed = unsliced layer: {summary['sliced_equals_unsliced']}")
    if not summary["sliced_equals_unsliced"]:
        raise UsageError("golden model self-check failed: sliced and unsliced layers differ")


def cmd_trace(args):
    _, model, trace = workload(args)
    routing.write_trace(trace, args.out)
    print(f"wrote {trace.num_tokens} tokens (top-{trace.top_k} of {model.num_experts} experts) to {args.out}")


def cmd_programs(args):
    from hw.config import SystemConfig
    from scheduler import program, strategies

    hw, model, trace = workload(args)
    if args.sram is not None:
        hw = hw.with_weight_sram(args.sram)
    plan = strategies.build_plan(args.strategy, model, hw, trace, slices=args.slices, layout=args.layout,
                                 groups=args.groups)
    layer = golden.random_layer(model.num_experts, model.d_model, model.d_ff, args.seed)
    progs = program.encode_plan(plan, layer, SystemConfig.from_preset(hw).tile)
    program.write_programs(progs, args.out)
    sizes = ", ".join(f"{p.title}: {len(p.words)}" for p in progs.sections())
    print(f"wrote {args.strategy} programs for {model.name} on {hw.name} to {args.out} (words: {sizes})")


def cmd_disasm(args):
    from scheduler import program

    print(program.disassemble_programs(program.read_programs(args.program)), end="")


def cmd_asm(args):
    from scheduler import program

    try:
        with open(args.source, "rb") as f:
            text = f.read().decode("utf-8")
    except OSError as exc:
        raise UsageError(f"{args.source}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{args.source}: not program text (not UTF-8); `fsedp asm` reads the text that "
                         f"`fsedp disasm` prints, and `fsedp disasm` reads program files") from None
    progs = program.assemble_programs(text, args.source)
    program.write_programs(progs, args.out)
    print(f"assembled {len(progs.sections())} sections to {args.out}")


def _workload(args, strategy):
    """The workload of ``strategy`` from the flags; ``--groups`` goes to the FSE-DP
    strategies only (``compare`` runs the EP family on the whole mesh)."""
    from scheduler.strategies import FSE_DP
    from sim.workload import prepare

    return prepare(preset=args.preset, model=args.model, tokens=args.tokens, routing_spec=args.routing,
                   strategy=strategy, seed=args.seed, slices=args.slices, layout=args.layout, sram=args.sram,
                   groups=args.groups if strategy in FSE_DP else None,
                   with_data=args.engine == "rtl", dram_jitter=args.dram_jitter,
                   dram_jitter_seed=(1 if args.jitter_seed is None else args.jitter_seed) if args.dram_jitter else 0)


def check_jitter_flags(args) -> None:
    """``--dram-jitter`` needs the RTL engine (the fast model does not model it);
    ``--jitter-seed`` needs ``--dram-jitter``."""
    if args.dram_jitter and args.engine != "rtl":
        raise UsageError(f"--dram-jitter needs the RTL engine (--engine rtl): the fast model does not model "
                         f"DRAM latency jitter")
    if args.jitter_seed is not None and not args.dram_jitter:
        raise UsageError("--jitter-seed seeds the jitter of --dram-jitter J; give --dram-jitter too")


def _engine_run(args, workloads):
    """Run workloads on the chosen engine: ``rtl`` (Verilator, bit-exact checked) or
    ``fast`` (the event-driven model, ``sim.fast``)."""
    if args.waves and len(workloads) > 1:
        raise UsageError("--waves records one run; use it with `fsedp run`")
    if args.engine == "fast":
        if args.waves:
            raise UsageError("--waves needs the RTL engine (--engine rtl)")
        if args.sim != "verilator":
            raise UsageError(f"--sim {args.sim} picks the RTL engine's simulator; give --engine rtl too")
        from sim import fast

        return fast.run(workloads)
    from sim import rtl

    def note(text):
        print(text, file=sys.stderr, flush=True)

    system = workloads[0].system
    waves = rtl.wave_format(args.waves) if args.waves else False
    b = rtl.build(system, waves=waves, progress=note, sim=args.sim)
    note(f"build {'cached' if b.cached else 'ready'} in {b.seconds:.1f} s; simulating {len(workloads)} workload(s) ...")
    return rtl.run(workloads, waves=args.waves, waves_from=getattr(args, "waves_from", None),
                   waves_to=getattr(args, "waves_to", None), progress=note, built=b)


def _print_run(j):
    fmt = presets.format_size
    exact = "not checked (fast model)" if j["bit_exact"] is None else j["bit_exact"]
    print(f"{j['strategy']}: {j['cycles']} cycles ({j['time_us']:.2f} us), bit-exact: {exact}, "
          f"DRAM {j['dram_bytes']} B, D2D {j['d2d_bytes']} B, compute utilization "
          f"{', '.join(f'{u:.2f}' for u in j['compute_utilization'])}")
    print(f"  S = {j['slices']}, {j['slots']} weight slots of {fmt(j['slot_bytes'])} ({fmt(j['plan_weight_bytes'])} "
          f"of the {fmt(j['provisioned_weight_bytes'])} weight buffer); provisioned SRAM per chiplet "
          f"{fmt(j['provisioned_sram_bytes'])} (weight + token buffers); occupancy high-water "
          f"{fmt(max(j['peak_onchip_bytes']))} per chiplet (slots held x slot bytes + token rows in use)")


def _print_groups(works):
    """With ``--groups``: the rings, and which strategies ran with them."""
    from scheduler.groups import describe

    grouped = [w for w in works if w.plan.groups]
    if not grouped:
        return
    others = [w.strategy for w in works if not w.plan.groups]
    print(f"chiplet groups (--groups): rings {describe(grouped[0].plan.groups)} for "
          f"{', '.join(w.strategy for w in grouped)}"
          + (f"; {', '.join(others)} ran without groups, on the whole mesh" if others else ""))


def _print_jitter(work):
    if work.system.dram_jitter:
        print(f"DRAM latency jitter: 0..{work.system.dram_jitter} extra cycles per request (LFSR seed "
              f"{work.dram_jitter_seed}); the fast model does not model it")


def with_program_file(work, path):
    """``work`` with its programs replaced by the program file ``path`` (checked against
    the configuration first): the plan's weights, tokens and golden answer stay, so the
    run's outputs are checked against the golden model as usual."""
    import dataclasses

    from scheduler import program

    progs = program.read_programs(path)
    program.check_programs(progs, work.system, str(path))
    return dataclasses.replace(work, programs=progs, spec=work.spec | {"programs": str(path)})


def cmd_run(args):
    check_jitter_flags(args)
    if (args.waves_from is not None or args.waves_to is not None) and not args.waves:
        raise UsageError("--waves-from and --waves-to choose the cycles of --waves FILE; give --waves too")
    if args.waves_from is not None and args.waves_to is not None and args.waves_to < args.waves_from:
        raise UsageError(f"--waves-to {args.waves_to} is before --waves-from {args.waves_from}")
    if args.programs and args.engine != "rtl":
        raise UsageError("--programs runs a program file on the RTL (--engine rtl); the fast model executes "
                         "plans, not programs")
    if args.programs and args.timeline:
        raise UsageError("--timeline records the plan on the fast model, not a program file; drop one of "
                         "--programs and --timeline")
    work = _workload(args, args.strategy)
    if args.programs:
        work = with_program_file(work, args.programs)
    result = _engine_run(args, [work])[0].to_json(tech=args.tech)
    _print_run(result)
    _print_groups([work])
    _print_jitter(work)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    if args.timeline:
        # The timeline is recorded by the fast model on the same plan (it is validated
        # against the RTL's cycle counts; see docs/fast_model.md).
        from sim import fast

        trace = fast.write_timeline(work, args.timeline)
        print(f"wrote timeline {args.timeline} ({len(trace['traceEvents'])} events, recorded by the fast model; "
              f"open it in https://ui.perfetto.dev)")
    if result["bit_exact"] is False:
        raise UsageError("outputs differ from the golden model (see the JSON's mismatches)")


def prepare_strategies(args, strategies) -> tuple[list, list]:
    """Workloads of every strategy that can run here, and ``{strategy, fits, reason}`` for
    each that cannot: one that does not fit the hardware (``FitError``, ``fits`` False) or
    does not take an option that was given (``PlanError``, ``fits`` None)."""
    from scheduler.plan import FitError, PlanError

    works, skipped = [], []
    for s in strategies:
        try:
            works.append(_workload(args, s))
        except FitError as exc:
            skipped.append({"strategy": s, "fits": False, "reason": str(exc)})
        except PlanError as exc:
            if "does not apply" not in str(exc):
                raise
            skipped.append({"strategy": s, "fits": None, "reason": str(exc)})
    return works, skipped


def cmd_compare(args):
    from scheduler.plan import STRATEGIES
    from sim import results

    check_jitter_flags(args)
    works, skipped = prepare_strategies(args, STRATEGIES)
    if not works:
        raise UsageError("no strategy can run here: " + "; ".join(s["reason"] for s in skipped))
    runs = [r.to_json(tech=args.tech) for r in _engine_run(args, works)]
    rows = results.write_compare(runs, args.json, args.csv, skipped=skipped)
    hw = works[0].plan.hardware
    fmt = presets.format_size
    print(f"{hw.name}: provisioned SRAM per chiplet {fmt(hw.provisioned_sram_bytes)} = weight buffer "
          f"{fmt(hw.weight_sram_bytes)}{' (--sram)' if args.sram else ''} + token and accumulator buffers "
          f"{fmt(hw.token_sram_bytes)}")
    _print_jitter(works[0])
    _print_groups(works)
    print(results.table(rows))
    for s in skipped:
        print(s["reason"] if s["reason"].startswith(s["strategy"] + " ") else f"{s['strategy']}: {s['reason']}")
    if any(r["bit_exact"] is False for r in runs):
        raise UsageError("outputs differ from the golden model (see the JSON's mismatches)")


def add_strategy_flags(p: argparse.ArgumentParser, with_strategy: bool = True) -> None:
    from scheduler import plan, strategies

    if with_strategy:
        p.add_argument("--strategy", default="fse-dp-paired", choices=plan.STRATEGIES,
                       help="strategy to plan: " + "; ".join(f"{k}: {v}" for k, v in plan.DESCRIPTIONS.items()))
    p.add_argument("--slices", type=_positive_int, default=None,
                   help="micro-slices (FSE-DP) or tiles (EP, Hydra) per expert S (default: from the weight "
                        "buffer: the smallest S not below the model preset's whose slices fill whole MAC-array "
                        "blocks and give the preset's slot target; see docs/sram.md); not for ep-whole, ep-paper")
    p.add_argument("--layout", default=None, choices=strategies.LAYOUTS,
                   help="FSE-DP slice layout over the DRAM channels (default round-robin); FSE-DP only")
    p.add_argument("--groups", default=None, metavar="N|RINGS",
                   help="FSE-DP in chiplet groups, each its own ring (docs/groups.md): N picks the default "
                        "partition (3x3: 2; 4x4: 2, 4; 2x2: 2; 1: the mesh ring), or explicit rings in visiting "
                        "order, e.g. '0,1,4,3;2,5,8,7,6'; FSE-DP only"
                        + ("" if with_strategy else " (compare runs the EP family without groups)"))
    add_sram_flag(p)


def add_jitter_flags(p: argparse.ArgumentParser) -> None:
    from hw.dram import MAX_JITTER

    p.add_argument("--dram-jitter", type=_integer(0, MAX_JITTER, f"an integer from 0 to {MAX_JITTER}"), default=0,
                   metavar="J", help="add a random 0..J cycles to every DRAM request's latency (a hardware LFSR in "
                                     "each channel; a build of its own; RTL only; 0: off)")
    p.add_argument("--jitter-seed", type=_integer(0, 2 ** 32 - 1, "an integer from 0 to 2**32 - 1"), default=None,
                   metavar="S", help="seed of the --dram-jitter LFSRs (default 1; 0 draws no jitter)")


def add_sim_flag(p: argparse.ArgumentParser) -> None:
    from sim.rtl.toolchain import SIMULATORS

    p.add_argument("--sim", default="verilator", choices=SIMULATORS,
                   help="the RTL engine's simulator: verilator (default), or icarus (Icarus Verilog, Debian package "
                        "iverilog; far slower; no waveforms), which shows the Verilog does not "
                        "lean on one simulator's behaviour")


def add_tech_flag(p: argparse.ArgumentParser) -> None:
    from sim.eval import energy

    p.add_argument("--tech", type=energy.tech_argument, default=energy.DEFAULT_TABLE, metavar="NAME|FILE.toml",
                   help="technology table that prices the measured counters as energy, an estimate (docs/energy.md): "
                        f"a bundled table ({', '.join(energy.BUNDLED)}) or a .toml file "
                        f"(default: {energy.DEFAULT_TABLE})")


def _verilog_system(args):
    """``--top tile`` or ``system``: the chiplet tile (router, datapath, controller) or
    the whole R x C system (instantiating module ``tile``) of a preset."""
    import pathlib

    from hw.config import SystemConfig
    from hw.system import TILE_MODULE, System, make_tile
    from sim.rtl.toolchain import to_verilog, write_if_changed

    if args.mac_rows or args.mac_cols or args.link_bytes:
        raise UsageError(f"--mac-rows, --mac-cols and --link-bytes apply to --top datapath only, not {args.top}")
    config = SystemConfig.from_preset(presets.get_hardware(args.preset))
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    files = [(out / "tile.v", make_tile(config), TILE_MODULE)]
    if args.top == "system":
        files.append((out / "system.v", System(config), "system"))
    for path, design, name in files:
        write_if_changed(path, to_verilog(design, name))
    write_if_changed(out / f"{args.top}.json", json.dumps({"top": args.top, "preset": args.preset,
                                                           "config": config.name}, indent=2) + "\n")
    print(f"wrote {', '.join(str(p) for p, _, _ in files)}: {args.top} of {config.name} "
          f"({time.perf_counter() - t0:.1f} s)")


def cmd_verilog(args):
    import dataclasses
    import pathlib

    if args.top != "datapath":
        return _verilog_system(args)

    from hw.sram import check_pow2
    from hw.tile_datapath import TileDatapath, link_bytes_for, tile_config_for
    from sim.rtl.toolchain import to_verilog, write_if_changed

    hw = presets.get_hardware(args.preset)
    tile = tile_config_for(hw)
    for what, value in (("MAC array row count", args.mac_rows), ("MAC array column count", args.mac_cols)):
        if value is not None:
            check_pow2(what, value)
    if args.mac_rows or args.mac_cols:
        rows, cols = args.mac_rows or tile.mac_rows, args.mac_cols or tile.mac_cols
        unit = max(rows, cols)
        tile = dataclasses.replace(tile, mac_rows=rows, mac_cols=cols, d_max=-(-tile.d_max // unit) * unit,
                                   link_bytes=args.link_bytes or link_bytes_for(rows * cols, hw.link_bytes_per_cycle))
    elif args.link_bytes:
        tile = dataclasses.replace(tile, link_bytes=args.link_bytes)
    params = TileDatapath.parameters_for(tile)
    try:
        dut = TileDatapath(**params)
    except TypeError as exc:
        raise UsageError(str(exc)) from None
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    path = out / "tile_datapath.v"
    changed = write_if_changed(path, to_verilog(dut, "tile_datapath"))
    write_if_changed(out / "tile_datapath.json",
                     json.dumps({"top": "tile_datapath", "preset": hw.name, "parameters": params}, indent=2) + "\n")
    print(f"{'wrote' if changed else 'unchanged'} {path}: TileDatapath {params['mac_rows']}x{params['mac_cols']} "
          f"MACs, {params['link_bytes']}-byte link, preset {hw.name} ({time.perf_counter() - t0:.1f} s)")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="fsedp", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"fsedp {version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True

    p = sub.add_parser("presets", help="list model and hardware presets with their numbers and sources")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.add_argument("--export", metavar="NAME", default=None,
                   help="write preset NAME as a TOML description file (to standard output, or --out)")
    p.add_argument("--out", metavar="FILE.toml", default=None, help="file for --export")
    p.set_defaults(func=cmd_presets)

    p = sub.add_parser("golden", help="run the bit-exact golden model on a workload and print a summary")
    add_workload_flags(p)
    p.add_argument("--slices", type=_positive_int, default=None, help="micro-slices per expert")
    p.add_argument("--json", metavar="FILE", help="also write the summary as JSON")
    p.set_defaults(func=cmd_golden)

    p = sub.add_parser("trace", help="write a routing trace (JSONL) for a workload")
    add_workload_flags(p)
    p.add_argument("--out", required=True, metavar="FILE", help="output .jsonl path")
    p.set_defaults(func=cmd_trace)

    p = sub.add_parser("programs", help="plan a workload and write its stream control programs")
    add_workload_flags(p)
    add_strategy_flags(p)
    p.add_argument("--out", required=True, metavar="FILE", help="output program file (.fsedp)")
    p.set_defaults(func=cmd_programs)

    p = sub.add_parser("run", help="run one MoE layer cycle-accurately and check it against the golden model")
    add_workload_flags(p)
    add_strategy_flags(p)
    p.add_argument("--engine", default="rtl", choices=["rtl", "fast"], help="simulation engine")
    p.add_argument("--json", metavar="FILE", help="write the run's results as JSON")
    add_tech_flag(p)
    add_jitter_flags(p)
    add_sim_flag(p)
    p.add_argument("--waves", metavar="FILE",
                   help="write a waveform of the run: FILE.vcd, or FILE.fst (needs liblz4-dev)")
    p.add_argument("--waves-from", type=_cycle, metavar="CYCLE", default=None,
                   help="with --waves: trace from this cycle on (counted from start, like `cycles`; default 0)")
    p.add_argument("--waves-to", type=_cycle, metavar="CYCLE", default=None,
                   help="with --waves: trace up to this cycle, inclusive (default: until done)")
    p.add_argument("--timeline", metavar="FILE",
                   help="write a Chrome trace-event timeline (Perfetto) of the run, recorded by the fast model")
    p.add_argument("--programs", metavar="FILE.fsedp", default=None,
                   help="run this program file (from `fsedp programs`, or edited with disasm/asm) instead of the "
                        "plan's own programs; the workload flags must make the same plan, whose weights, tokens "
                        "and golden output are loaded and checked (RTL only)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("compare", help="run every strategy on the same build, tokens and buffers")
    add_workload_flags(p)
    add_strategy_flags(p, with_strategy=False)
    p.set_defaults(waves=None)
    p.add_argument("--engine", default="rtl", choices=["rtl", "fast"], help="simulation engine")
    p.add_argument("--json", metavar="FILE", help="write {runs: [...], summary: [...]} as JSON")
    p.add_argument("--csv", metavar="FILE", help="write the summary table as CSV")
    add_tech_flag(p)
    add_jitter_flags(p)
    add_sim_flag(p)
    p.set_defaults(func=cmd_compare)

    from sim.eval import area, inference, report, sweep
    report.add_parsers(sub)
    area.add_parsers(sub)
    sweep.add_parsers(sub)
    inference.add_parsers(sub)

    p = sub.add_parser("disasm", help="print a program file in its text form")
    p.add_argument("program", metavar="PROGRAM", help="program file written by `fsedp programs` or `fsedp asm`")
    p.set_defaults(func=cmd_disasm)

    p = sub.add_parser("asm", help="assemble a program file from its text form (as disasm prints it)")
    p.add_argument("source", metavar="TEXT", help="program text with .controller N / .dram N sections")
    p.add_argument("--out", required=True, metavar="FILE", help="output program file")
    p.set_defaults(func=cmd_asm)

    p = sub.add_parser("verilog", help="write the Verilog of the tile datapath, the tile or the whole system")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    p.add_argument("--top", default="datapath", choices=["datapath", "tile", "system"],
                   help="datapath (SRAM, MAC array, vector unit, slice engine), tile (with router and "
                        "controller) or system (R x C tiles and DRAM channels)")
    add_hardware_flags(p)
    p.add_argument("--mac-rows", type=_positive_int, default=None, help="override the MAC array rows")
    p.add_argument("--mac-cols", type=_positive_int, default=None, help="override the MAC array columns")
    p.add_argument("--link-bytes", type=_positive_int, default=None,
                   help="override the D2D flit width in bytes (default: from the preset's link bandwidth)")
    p.set_defaults(func=cmd_verilog)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        resolve_workload_flags(args)
        check_output_paths(args)
        args.func(args)
    except KeyboardInterrupt:
        sys.stderr.write("fsedp: interrupted\n")
        return 130
    except BrokenPipeError:          # e.g. `fsedp presets | head`
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (UsageError, presets.PresetError, routing.RoutingError, ValueError, OSError,
            RuntimeError) as exc:
        parser.exit(2, f"fsedp: error: {exc}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
