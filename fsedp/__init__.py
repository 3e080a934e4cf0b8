"""The Python API of fsedp: the objects a script works with, in one place.

Everything here is what the ``fsedp`` command line uses too; ``docs/api.md`` walks
through it and ``examples/`` has short scripts (run by the tests)::

    import fsedp

    hw = fsedp.hardware("rtl-2x2")                      # a preset, or "my_chiplet.toml"
    model = fsedp.model("tiny-8x2")
    trace = fsedp.routing("mixtral:c4", model, tokens=16, seed=0)
    work = fsedp.prepare(hw, model, trace, strategy="fse-dp-paired")   # engine="fast" by default
    result = fsedp.run(work, engine="fast")
    # for the RTL (Verilator, bit-exact checked): prepare(..., engine="rtl"), then run(work, engine="rtl")
    print(result.cycles, result.to_json()["compute_utilization"])

Hardware and models are frozen dataclasses (:class:`HardwarePreset`,
:class:`ModelPreset`): change one field with :func:`dataclasses.replace` (or
``hw.with_weight_sram(size)``), and every check the command line makes still applies
(a configuration the hardware cannot hold raises :class:`FitError` naming the limit).
"""

from __future__ import annotations

from scheduler.description import DescriptionError, dump_hardware, dump_model, load_hardware, load_model
from scheduler.plan import STRATEGIES, FitError, PlanError
from scheduler.presets import (HARDWARE_PRESETS, MODEL_PRESETS, HardwarePreset, ModelPreset, PresetError,
                               format_size, parse_size)
from scheduler.routing import RoutingError, RoutingTrace, from_logits, load_trace, write_trace
from sim.results import RunResult
from sim.workload import Workload

__all__ = [
    "hardware", "model", "routing", "prepare", "run", "compare", "compare_table", "whole_model",
    "HardwarePreset", "ModelPreset", "RoutingTrace", "Workload", "RunResult",
    "HARDWARE_PRESETS", "MODEL_PRESETS", "STRATEGIES", "ENGINES",
    "load_hardware", "load_model", "dump_hardware", "dump_model", "from_logits", "load_trace", "write_trace",
    "parse_size", "format_size", "PresetError", "DescriptionError", "PlanError", "FitError", "RoutingError",
]

#: The two engines: the RTL under Verilator (bit-exact checked against the golden model)
#: and the event-driven fast model (no data; its timing is validated against the RTL).
ENGINES = ("rtl", "fast")


def hardware(name_or_file) -> HardwarePreset:
    """A hardware preset by name (``fsedp presets``), or the hardware a ``.toml``
    description file describes (``docs/description_files.md``)."""
    from scheduler import presets

    return presets.get_hardware(name_or_file)


def model(name_or_file) -> ModelPreset:
    """A model preset by name, or the layer shape a ``.toml`` model description describes."""
    from scheduler import presets

    return presets.get_model(name_or_file)


def routing(spec: str, model: ModelPreset | str, tokens: int, seed: int = 0) -> RoutingTrace:
    """A routing trace of ``tokens`` tokens from a ``--routing`` value (``uniform``,
    ``zipf:A``, ``mixtral:c4``, a statistics ``.json``, a ``.jsonl`` trace) for ``model``'s
    experts and top-k.  :func:`from_logits` makes one from router logits instead."""
    from scheduler import presets
    from scheduler import routing as _routing

    m = presets.get_model(model)
    return _routing.from_spec(spec, tokens, m.num_experts, m.top_k, seed)


def prepare(hw, model, trace, strategy: str = "fse-dp-paired", *, seed: int = 0, slices: int | None = None,
            layout: str | None = None, sram: int | str | None = None, with_data: bool | None = None,
            engine: str = "fast", groups=None) -> Workload:
    """Plan one layer of ``model`` under ``strategy`` on ``hw`` (objects, names or
    description files) for the tokens of ``trace`` (a :class:`RoutingTrace`, from
    :func:`routing` or :func:`from_logits`), and check that it fits the hardware.

    ``sram`` replaces the weight buffer per chiplet (bytes, or a size such as ``"8MiB"``).
    ``groups`` (FSE-DP only; ``docs/groups.md``) cuts the mesh into chiplet groups, each
    its own ring: a number N (a default partition), a string such as
    ``"0,1,4,3;2,5,8,7,6"`` or a sequence of rings in visiting order.
    ``engine`` is the engine the workload is for (default ``"fast"``, like :func:`run`):
    ``with_data`` (default: only for ``engine="rtl"``) also makes the int8 weights and
    tokens, the programs and the golden output, which the RTL engine needs and the fast
    model does not; leaving them out is what makes paper-scale layers cheap (making them
    for a paper-scale layer takes a minute and hundreds of MiB).
    """
    from sim.workload import prepare as _prepare

    if not isinstance(trace, RoutingTrace):
        raise TypeError("trace must be a RoutingTrace (fsedp.routing(...) or fsedp.from_logits(...))")
    _check_engine(engine)
    if isinstance(sram, str):
        sram = parse_size(sram)
    return _prepare(preset=hw, model=model, tokens=trace.num_tokens, routing_spec=trace, strategy=strategy,
                    seed=seed, slices=slices, layout=layout, sram=sram, groups=groups,
                    with_data=engine == "rtl" if with_data is None else with_data)


def run(work: Workload | list, engine: str = "fast", progress=None):
    """Run a workload (or a list, all on one hardware configuration for the RTL) and
    return its :class:`RunResult` (or a list).  ``engine="rtl"`` builds the system with
    Verilator once per configuration (cached in ``build/``) and checks every output
    against the golden model (``result.bit_exact``); ``progress`` is called with one-line
    status texts."""
    _check_engine(engine)
    works = work if isinstance(work, list) else [work]
    if engine == "fast":
        from sim import fast

        results = fast.run(works)
    else:
        from sim import rtl

        if any(w.programs is None for w in works):
            raise PlanError("the RTL engine needs workloads prepared with data (prepare(..., engine='rtl'))")
        results = rtl.run(works, progress=progress)
    return results if isinstance(work, list) else results[0]


def compare(hw, model, trace, *, engine: str = "fast", strategies=STRATEGIES, seed: int = 0,
            sram: int | str | None = None, slices: int | None = None, groups=None,
            progress=None) -> tuple[list, list]:
    """Every strategy on the same hardware, tokens and buffers: ``(results, skipped)``
    where ``skipped`` lists ``{strategy, reason}`` for each that does not fit (or does not
    take an option given), as ``fsedp compare`` prints them.  ``groups`` applies to the
    FSE-DP strategies; the EP family runs on the whole mesh as without it (as ``fsedp
    compare --groups`` does).  ``progress`` is passed to :func:`run` (the RTL engine's
    build and run status)."""
    from scheduler.strategies import FSE_DP

    works, skipped = [], []
    for s in strategies:
        try:
            works.append(prepare(hw, model, trace, s, seed=seed, sram=sram, slices=slices, engine=engine,
                                 groups=groups if s in FSE_DP else None))
        except (FitError, PlanError) as exc:
            if isinstance(exc, PlanError) and not isinstance(exc, FitError) and "does not apply" not in str(exc):
                raise
            skipped.append({"strategy": s, "reason": str(exc)})
    return (run(works, engine, progress=progress) if works else []), skipped


def compare_table(results: list) -> str:
    """The table ``fsedp compare`` prints, for a list of results."""
    from sim import results as _results

    return _results.table(_results.summarize([r.to_json() for r in results]))


def whole_model(model, hw="paper-2x2", *, engine: str = "fast", strategies=STRATEGIES, prefill: int = 256,
                batch: int = 16, steps: int = 4, layers: int | None = None, domain: str = "c4",
                routing: str | None = None, attention_cycles: int = 0, sram: int | str | None = None,
                seed: int = 0, jobs: int = 1) -> dict:
    """Every MoE layer of ``model`` (its ``moe_layers``), a prefill pass of ``prefill``
    tokens and ``steps`` decode steps of ``batch`` tokens, under ``strategies``: the
    document ``fsedp model`` writes as ``model.json`` (``docs/model.md``), with ``totals``
    per strategy and phase and every layer's results.  ``jobs`` > 1 runs the fast engine's
    layers on a local Dask cluster of that many worker processes."""
    from sim.eval import inference

    _check_engine(engine)
    spec = inference.ModelRunSpec(preset=hw, model=model, strategies=tuple(strategies), engine=engine,
                                  prefill=prefill, batch=batch, steps=steps, layers=layers, domain=domain,
                                  routing=routing, attention_cycles=attention_cycles,
                                  sram="preset" if sram is None else (parse_size(sram) if isinstance(sram, str)
                                                                      else sram),
                                  seed=seed, jobs=jobs)
    import io

    return inference.run_model(spec, log=io.StringIO())


def _check_engine(engine: str) -> None:
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose one of: {', '.join(ENGINES)}")
