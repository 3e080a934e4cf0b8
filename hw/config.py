"""Build parameters of one RTL configuration (fixed when Verilog is generated).

Everything that varies between workloads on the same build (slot partitioning, layer
shape, tables, programs) is data loaded at run time; everything here is a capacity or a
width.  One Verilator build serves every workload that fits these capacities, and the
program encoder rejects any that does not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from fractions import Fraction

__all__ = ["TileConfig", "SystemConfig", "rate"]


def rate(bytes_per_cycle: float, width_bytes: int, max_den: int = 64) -> tuple[int, int]:
    """A bandwidth as ``num / den`` transfers of ``width_bytes`` per cycle (at most 1)."""
    f = Fraction(bytes_per_cycle / width_bytes).limit_denominator(max_den)
    if f <= 0:
        raise ValueError(f"bandwidth must be positive, not {bytes_per_cycle!r} bytes per cycle")
    f = min(f, Fraction(1))
    return f.numerator, f.denominator


def credit_depth(link_latency: int, link_rate: tuple, minimum: int = 4) -> int:
    """Flits of buffer (credits) a link of ``link_latency`` cycles and ``num / den`` flits
    per cycle needs to run at full rate: the flits sent during one credit round trip
    (``2 * link_latency + 3`` cycles: the flit's hop, the credit's hop, the router's
    buffer and arbitration stages)."""
    num, den = link_rate
    return max(minimum, -(-(2 * link_latency + 3) * num // den))


@dataclass(frozen=True)
class TileConfig:
    """Capacities and widths of one chiplet tile.

    Attributes
    ----------
    mac_rows, mac_cols : int
        MAC array shape; a weight-buffer word is one ``mac_rows x mac_cols`` int8 block.
    link_bytes : int
        Flit width of the D2D links and of the weight-buffer write port; divides the word.
    weight_words : int
        Weight-buffer capacity in words (all slots together).
    token_rows : int
        Token-buffer (and accumulator-buffer) rows.
    d_max : int
        Largest hidden size d the token and accumulator rows hold.
    table_entries : int
        Capacity of the expert-to-local-token table (ENTRY instructions).
    max_experts : int
        Experts addressable by the expert table.
    program_words : int
        Controller program memory.
    max_slots : int
        Entries of the router's slot table (the largest runtime slot count).
    """

    mac_rows: int = 8
    mac_cols: int = 8
    link_bytes: int = 16
    weight_words: int = 192
    token_rows: int = 512
    d_max: int = 32
    table_entries: int = 2048
    max_experts: int = 256
    program_words: int = 4096
    max_slots: int = 16

    def __post_init__(self):
        for f in fields(self):
            v = getattr(self, f.name)
            if not isinstance(v, int) or v <= 0:
                raise TypeError(f"{f.name} must be a positive integer, not {v!r}")
        if self.word_bytes % self.link_bytes:
            raise ValueError(f"link_bytes {self.link_bytes} must divide the weight word "
                             f"({self.word_bytes} bytes)")
        if self.d_max % self.mac_rows or self.d_max % self.mac_cols:
            raise ValueError(f"d_max {self.d_max} must be a multiple of the MAC array dimensions")
        if not 2 <= self.max_slots <= 256:
            raise ValueError(f"max_slots must be in 2..256 (8-bit slot ids), not {self.max_slots}")

    @property
    def word_bytes(self) -> int:
        return self.mac_rows * self.mac_cols


@dataclass(frozen=True)
class SystemConfig:
    """An R x C system: tiles, mesh links and DRAM channels.

    Attributes
    ----------
    rows, cols : int
    tile : TileConfig
    dram_chiplets : tuple of int
        Chiplet each DRAM channel is attached to.
    dram_words : int
        Words (of ``tile.word_bytes``) per DRAM channel.
    dram_program_words : int
        Instructions a DRAM channel's program memory holds.
    dram_rate : (int, int)
        Link-width beats per cycle a DRAM channel delivers, as ``num / den``.
    dram_latency : int
        Cycles from a request to the first beat.
    link_rate : (int, int)
        Flits per cycle of one link direction, as ``num / den``.
    link_latency : int
        Cycles of one D2D hop.
    buffer_depth : int
        Router input buffer per virtual channel, in flits (= credits).  A link keeps its
        full rate only if the credits cover the round trip of a flit and its credit,
        about ``2 * link_latency + 3`` cycles; :meth:`from_preset` sizes it so for the
        paper presets and keeps the RTL presets' 4 (their builds and validation use it;
        with 2-cycle links that makes a VC credit-bound at 4 flits per 7 cycles, a little
        under the nominal 45/64).
    dram_jitter : int
        Random extra latency of every DRAM request, 0..``dram_jitter`` cycles (0, the
        default: none; :class:`hw.dram.DramChannel`'s ``jitter``).  With jitter the
        system has a ``dram_jitter_seed`` input, sampled at ``start``.
    injection_headroom : int
        Free slots a chiplet's DRAM channel needs to inject a SLICE or stage a RELAY (rule
        R6: 2, the default; :class:`hw.slot_table.SlotTable`).  1 turns R6 off and more
        than a plan's slots stops injection altogether: build parameters that exist to
        show what the rule prevents (``scheduler.deadlock`` refuses such plans, and
        ``tests/test_deadlock.py`` runs them).
    """

    rows: int
    cols: int
    tile: TileConfig
    dram_chiplets: tuple
    dram_words: int
    dram_rate: tuple
    dram_latency: int
    link_rate: tuple
    link_latency: int
    buffer_depth: int = 4
    dram_program_words: int = 1024
    dram_jitter: int = 0
    injection_headroom: int = 2

    @property
    def num_chiplets(self) -> int:
        return self.rows * self.cols

    @property
    def name(self) -> str:
        """A name unique to these parameters, for build directories."""
        t = self.tile
        return (f"sys{self.rows}x{self.cols}_m{t.mac_rows}x{t.mac_cols}_l{t.link_bytes}"
                f"_w{t.weight_words}_t{t.token_rows}_d{t.d_max}_e{t.table_entries}_p{t.program_words}"
                f"_s{t.max_slots}"
                f"_dr{self.dram_rate[0]}-{self.dram_rate[1]}_dl{self.dram_latency}_dw{self.dram_words}"
                f"_lr{self.link_rate[0]}-{self.link_rate[1]}_ll{self.link_latency}"
                f"_c{'-'.join(map(str, self.dram_chiplets))}"
                + (f"_b{self.buffer_depth}" if self.buffer_depth != 4 else "")
                + (f"_dp{self.dram_program_words}" if self.dram_program_words != 1024 else "")
                + (f"_dj{self.dram_jitter}" if self.dram_jitter else "")
                + (f"_h{self.injection_headroom}" if self.injection_headroom != 2 else ""))

    @classmethod
    def from_preset(cls, preset, tile: TileConfig | None = None) -> "SystemConfig":
        """The RTL configuration of a hardware preset (any object with the attributes of
        ``scheduler.presets.HardwarePreset``): its MAC array, its provisioned buffers (weight
        words from ``weight_sram_bytes``, token rows, ``d_max``, tables, slot table), its
        DRAM channels and links.

        Without ``tile``, the flit is the smallest power of two of at least 16 bytes that
        carries one cycle of the preset's DRAM channel and D2D link (a link moves at most
        one flit per cycle).  The router buffers hold ``preset.buffer_depth`` flits per VC,
        or, if that is 0, enough for the credit round trip (:func:`credit_depth`).
        """
        word = preset.mac_rows * preset.mac_cols
        if tile is None:
            link_bytes = 16
            while link_bytes < max(preset.dram_bytes_per_cycle, preset.link_bytes_per_cycle):
                link_bytes *= 2
            tile = TileConfig(mac_rows=preset.mac_rows, mac_cols=preset.mac_cols, link_bytes=link_bytes,
                              weight_words=preset.weight_sram_bytes // word, token_rows=preset.token_rows,
                              d_max=preset.d_max, table_entries=preset.table_entries,
                              program_words=preset.program_words, max_slots=preset.max_slots)
        link_rate = rate(preset.link_bytes_per_cycle, tile.link_bytes)
        return cls(rows=preset.rows, cols=preset.cols, tile=tile, dram_chiplets=tuple(preset.dram_chiplets),
                   dram_words=preset.dram_channel_bytes // tile.word_bytes,
                   dram_rate=rate(preset.dram_bytes_per_cycle, tile.link_bytes),
                   dram_latency=preset.dram_latency, link_rate=link_rate,
                   link_latency=preset.link_latency, dram_program_words=preset.dram_program_words,
                   buffer_depth=preset.buffer_depth or credit_depth(preset.link_latency, link_rate),
                   injection_headroom=preset.injection_headroom)
