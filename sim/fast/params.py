"""The hardware parameters of the fast model, taken from the same places the RTL takes them.

Capacities, widths, rates and latencies come from :class:`hw.config.SystemConfig` (built
with :meth:`~hw.config.SystemConfig.from_preset` when a workload carries none, which also
works at paper scale); the microarchitectural constants the RTL fixes as build defaults
(router buffer depth, DRAM bucket and request queue, slice-engine drain, vector-unit
latency) are read from the HDL classes themselves, so nothing is written down twice.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

from hw.config import SystemConfig

__all__ = ["FastParams", "params_for", "system_for"]

#: Cycles from a slice-engine beat's issue to the MAC array's sums: the SRAM read stage
#: (``s1`` in ``hw/slice_engine.py``) and the array's result register (``hw/mac_array.py``).
MAC_PIPELINE = 2

#: Cycles from a flit entering a router input FIFO (``SyncFIFOBuffered``) to it being
#: readable at the FIFO head: one into the inner memory, one into the output register.
FIFO_LATENCY = 2


def _default(cls, name):
    return inspect.signature(cls.__init__).parameters[name].default


@dataclass(frozen=True)
class FastParams:
    """Everything the fast model needs to know about one hardware configuration."""

    rows: int
    cols: int
    mac_rows: int
    mac_cols: int
    link_bytes: int
    word_bytes: int
    d_max: int
    max_experts: int
    dram_chiplets: tuple
    dram_rate: tuple           # payload flits per cycle (num, den)
    dram_latency: int
    dram_bucket_beats: int
    dram_requests: int
    link_rate: tuple           # flits per cycle of one link direction (num, den)
    link_latency: int
    buffer_depth: int          # router input FIFO depth per VC (credits)
    max_slots: int
    injection_headroom: int    # free slots a SLICE or a staged RELAY needs (R6: 2)
    fifo_latency: int
    mac_pipeline: int          # slice engine issue -> MAC array result (SRAM stage + result register)
    vector_latency: int        # vector unit pipeline stages
    drain_cycles: int          # slice engine: last issue -> accumulator write
    done_depth: int            # slice engine: jobs in flight + done FIFO
    lut_values: int            # SiLU entries written per LUT instruction
    clock_ghz: float
    config_name: str

    @property
    def num_chiplets(self) -> int:
        return self.rows * self.cols

    @property
    def dram_cap(self) -> int:
        """Saturation value of a DRAM channel's bandwidth accumulator."""
        return self.dram_bucket_beats * self.dram_rate[1] + self.dram_rate[0] - 1

    @property
    def hop_cycles(self) -> int:
        """Cycles from a flit leaving a router output to it being readable at the next
        router's input FIFO head."""
        return self.link_latency + self.fifo_latency

    @property
    def credit_cycles(self) -> int:
        """Cycles from a flit leaving a receiver FIFO to its credit being usable upstream."""
        return self.link_latency + 1


def system_for(plan, system: SystemConfig | None = None) -> SystemConfig:
    """The system configuration of a workload (``system`` if given, else derived from the
    plan's hardware preset)."""
    return system if system is not None else SystemConfig.from_preset(plan.hardware)


def params_for(plan, system: SystemConfig | None = None) -> FastParams:
    """Fast-model parameters of ``plan``'s hardware (``system``: the RTL configuration, if
    the workload has one)."""
    from hw.dram import DramChannel
    from hw.isa import OPERANDS, Opcode
    from hw.slice_engine import SliceEngine
    from hw.vector_unit import VectorUnit

    cfg = system_for(plan, system)
    t = cfg.tile
    lut_values = dict(OPERANDS[Opcode.LUT].as_shape())["values"].shape.length
    return FastParams(
        rows=cfg.rows, cols=cfg.cols, mac_rows=t.mac_rows, mac_cols=t.mac_cols, link_bytes=t.link_bytes,
        word_bytes=t.word_bytes, d_max=t.d_max, max_experts=t.max_experts,
        dram_chiplets=tuple(cfg.dram_chiplets), dram_rate=tuple(cfg.dram_rate), dram_latency=cfg.dram_latency,
        dram_bucket_beats=_default(DramChannel, "bucket_beats"), dram_requests=_default(DramChannel, "requests"),
        link_rate=tuple(cfg.link_rate), link_latency=cfg.link_latency,
        buffer_depth=cfg.buffer_depth, max_slots=t.max_slots, injection_headroom=cfg.injection_headroom,
        fifo_latency=FIFO_LATENCY, mac_pipeline=MAC_PIPELINE, vector_latency=VectorUnit.LATENCY, drain_cycles=SliceEngine.DRAIN_CYCLES,
        done_depth=SliceEngine.DONE_DEPTH, lut_values=lut_values, clock_ghz=plan.hardware.clock_ghz,
        config_name=cfg.name)
