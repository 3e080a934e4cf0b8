"""One layer's workload, ready for an engine: plan, data, programs and the golden answer.

:func:`prepare` is the single place where CLI-level choices (presets, routing, strategy,
seed) become everything an engine loads: the plan, the int8 weights and tokens, the
encoded programs, the DRAM images, each chiplet's token-buffer contents, and the golden
int32 output each chiplet's accumulators must hold at the end.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from hw.config import SystemConfig
from scheduler import deadlock, golden, presets, program, routing, strategies
from scheduler.plan import Plan

__all__ = ["Workload", "prepare", "hardware", "check_tokens", "expected_accumulators"]


@dataclass(eq=False)
class Workload:
    plan: Plan
    layer: golden.MoELayer
    tokens: np.ndarray            # (L, d) int8
    programs: program.LayerPrograms
    dram_images: list             # per channel, (words, word_bytes) uint8
    token_rows: list              # per chiplet, (rows, d) int8 initial token buffer
    expected: list                # per chiplet, (rows, d) int32 final accumulators
    output: np.ndarray            # (L, d) int32 golden layer output
    system: SystemConfig          # the configuration it was checked against (and the RTL builds)
    spec: dict                    # the choices that made it (for result JSON)
    dram_jitter_seed: int = 0     # RTL with system.dram_jitter > 0: the channels' jitter seed (0: none)

    @property
    def strategy(self) -> str:
        return self.plan.strategy


def expected_accumulators(plan: Plan, layer, tokens) -> list:
    """Per chiplet, the int32 accumulator rows at the end of the layer.

    Resident rows hold the finished outputs of their tokens (for the EP family including
    the results received back); a received token's row holds the partial sum of the
    tiles this chiplet applied to it (the result it sent home).
    """
    gate_q = golden.quantize_gate_weights(plan.trace.weights)
    out = golden.moe_layer(layer, tokens, plan.trace.experts, gate_q)
    acc = []
    for c in range(plan.num_chiplets):
        rows = np.zeros((plan.token_rows(c), layer.d_model), dtype=np.int32)
        for t in plan.resident_tokens(c):
            rows[plan.token_row[t]] = out[t]
        if plan.remote_rows:
            tiles = plan.tiles(c)
            for (src, t), r in plan.remote_rows[c].items():
                partial = np.zeros(layer.d_model, dtype=np.int64)
                for rank, e in enumerate(plan.trace.experts[t]):
                    for s in tiles.get(int(e), ()):
                        cols = golden.slice_columns(layer.d_ff, plan.slices, s)
                        partial += golden.apply_slice(layer, int(e), cols, tokens[t:t + 1], gate_q[t:t + 1, rank])[0]
                rows[r] = golden.wrap_int32(partial)
        acc.append(rows)
    return acc


def hardware(preset, sram: int | None = None) -> presets.HardwarePreset:
    """A hardware preset (a name, a ``.toml`` description file or a
    :class:`~scheduler.presets.HardwarePreset`), with its weight buffer replaced by
    ``sram`` bytes if given."""
    hw = presets.get_hardware(preset)
    return hw if sram is None else hw.with_weight_sram(sram)


def check_tokens(hw: presets.HardwarePreset, tokens: int) -> None:
    """Every token of a layer lives in one chiplet's token buffer: refuse more tokens than
    the system holds before drawing any routing (a ``PresetError`` naming the limit)."""
    most = hw.num_chiplets * hw.token_rows
    if tokens > most:
        raise presets.PresetError(f"--tokens {tokens}: {hw.name} holds at most {most} tokens ({hw.num_chiplets} "
                                  f"chiplets x {hw.token_rows} token rows)")


def prepare(*, preset, model, tokens: int, routing_spec: str, strategy: str, seed: int = 0,
            slices: int | None = None, layout: str | None = None, sram: int | None = None,
            system: SystemConfig | None = None, with_data: bool = True, dram_jitter: int = 0,
            dram_jitter_seed: int = 0, groups=None, check_deadlock: bool = True) -> Workload:
    """Build a workload from presets and options (raises clear ``ValueError``s).

    ``preset`` and ``model`` are preset names, ``.toml`` description files or preset
    objects (:mod:`scheduler.description`); ``routing_spec`` a ``--routing`` value or a
    :class:`scheduler.routing.RoutingTrace` of ``tokens`` tokens.

    ``sram`` replaces the preset's weight buffer (bytes per chiplet).  ``groups`` (FSE-DP
    only) cuts the mesh into chiplet groups, each its own ring: a number N (a default
    partition), a ``--groups`` string such as ``"0,1,4,3;2,5,8,7,6"`` or a sequence of
    rings (:mod:`scheduler.groups`).  Every plan is
    checked against the configuration's capacities and the packet and instruction fields
    (:func:`scheduler.program.check_fits`; a :class:`scheduler.plan.FitError` names what
    does not fit) before any data is made, for both engines.  ``with_data=False`` stops
    after the plan and that check (every data field ``None``): what the fast model needs,
    at any scale, without generating full-size weights.

    ``dram_jitter`` > 0 (RTL only): every DRAM request's latency gets a random 0..J extra
    cycles (a build of its own, ``SystemConfig.dram_jitter``), drawn from an LFSR seeded
    by ``dram_jitter_seed`` at the run's start (0: no jitter on that build).

    Every plan is checked for deadlock freedom on ``system``
    (:func:`scheduler.deadlock.check_plan`; a :class:`~scheduler.deadlock.DeadlockError`
    names the cycle).  ``check_deadlock=False`` skips that check: only to run a plan the
    check refuses and see what the hardware does (``tests/test_deadlock.py``)."""
    hw = hardware(preset, sram)
    m = presets.get_model(model)
    check_tokens(hw, tokens)
    if isinstance(routing_spec, routing.RoutingTrace):
        trace = routing_spec
        if trace.num_tokens != tokens:
            raise routing.RoutingError(f"the routing trace has {trace.num_tokens} tokens, but {tokens} were asked for")
        trace.check_fits(m.num_experts, m.top_k)
        routing_spec = "<trace>"
    else:
        trace = routing.from_spec(routing_spec, tokens, m.num_experts, m.top_k, seed)
    plan = strategies.build_plan(strategy, m, hw, trace, slices=slices, layout=layout, groups=groups)
    system = system or SystemConfig.from_preset(hw)
    if dram_jitter:
        system = dataclasses.replace(system, dram_jitter=dram_jitter)
    if dram_jitter_seed and not system.dram_jitter:
        raise ValueError(f"a DRAM jitter seed ({dram_jitter_seed}) needs DRAM latency jitter (dram_jitter > 0)")
    program.check_fits(plan, system.tile, system.dram_words, system.dram_program_words)   # before any data
    if check_deadlock:
        deadlock.check_plan(plan, system)
    spec = {"preset": preset if isinstance(preset, str) else hw.name,
            "model": model if isinstance(model, str) else m.name, "tokens": tokens, "routing": routing_spec,
            "strategy": strategy, "seed": seed, "slices": plan.slices, "slots": plan.slots,
            "slot_bytes": plan.slot_bytes, "layout": layout if plan.successor is not None else None,
            "sram": hw.weight_sram_bytes}
    if plan.groups:
        spec["groups"] = [list(r) for r in plan.groups]
    if plan.successor is not None and spec["layout"] is None:
        spec["layout"] = strategies.DEFAULT_LAYOUT
    if system.dram_jitter:
        spec |= {"dram_jitter": system.dram_jitter, "dram_jitter_seed": dram_jitter_seed}
    if not with_data:
        return Workload(plan=plan, layer=None, tokens=None, programs=None, dram_images=None, token_rows=None,
                        expected=None, output=None, system=system, spec=spec, dram_jitter_seed=dram_jitter_seed)
    layer = golden.random_layer(m.num_experts, m.d_model, m.d_ff, seed)
    x = golden.random_tokens(trace.num_tokens, m.d_model, seed)
    progs = program.encode_plan(plan, layer, system.tile)
    images = program.dram_images(plan, layer, system.tile)
    token_rows = []
    for c in range(plan.num_chiplets):
        rows = np.zeros((plan.token_rows(c), m.d_model), dtype=np.int8)
        for t in plan.resident_tokens(c):
            rows[plan.token_row[t]] = x[t]
        token_rows.append(rows)
    gate_q = golden.quantize_gate_weights(trace.weights)
    return Workload(plan=plan, layer=layer, tokens=x, programs=progs, dram_images=images,
                    token_rows=token_rows, expected=expected_accumulators(plan, layer, x),
                    output=golden.moe_layer(layer, x, trace.experts, gate_q), system=system, spec=spec,
                    dram_jitter_seed=dram_jitter_seed)
