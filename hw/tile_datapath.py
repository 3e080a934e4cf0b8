"""TileDatapath: the compute heart of one chiplet (buffers, MAC array, vector unit and the
slice engine), with the external ports that the router and the tile controller use."""

from __future__ import annotations

from amaranth.hdl import Module, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .config import SystemConfig, TileConfig
from .mac_array import MacArray
from .requant import MULT_BITS, SHIFT_BITS
from .slice_engine import COUNTER_BITS, SliceEngine
from .sram import AccOp, AccumulatorBuffer, TokenBuffer, WeightBuffer, check_positive, read_port_signature
from .vector_unit import VectorUnit

__all__ = ["TileDatapath", "tile_parameters", "link_bytes_for", "fs_max_for", "SRAM_COUNTERS", "sram_counters_layout",
           "sram_access_bytes"]

#: SRAM access counters of the tile datapath, in the unit of each port: flits (link
#: width) or words (``R x C`` bytes for the weight buffer's MAC port, ``R`` bytes for a
#: token word, ``4 C`` bytes for an accumulator word).
SRAM_COUNTERS = ("weight_write_flits", "weight_read_words", "weight_forward_flits", "token_write_words",
                 "token_read_words", "token_ext_read_words", "acc_read_words", "acc_write_words")


def sram_counters_layout(counter_bits: int = COUNTER_BITS) -> data.StructLayout:
    return data.StructLayout({name: unsigned(counter_bits) for name in SRAM_COUNTERS})


def sram_access_bytes(counts: dict, *, mac_rows: int, mac_cols: int, link_bytes: int) -> dict:
    """Bytes read and written per buffer from the counters (one definition for both
    engines and the energy model): ``weight_read`` (MAC port words and forwarded flits),
    ``weight_write``, ``token_read`` (MAC port and the controller's port), ``token_write``,
    ``acc_read``, ``acc_write``."""
    acc_word, token_word = 4 * mac_cols, mac_rows
    return {
        "weight_read": counts["weight_read_words"] * mac_rows * mac_cols + counts["weight_forward_flits"] * link_bytes,
        "weight_write": counts["weight_write_flits"] * link_bytes,
        "token_read": (counts["token_read_words"] + counts["token_ext_read_words"]) * token_word,
        "token_write": counts["token_write_words"] * token_word,
        "acc_read": counts["acc_read_words"] * acc_word,
        "acc_write": counts["acc_write_words"] * acc_word,
    }


def link_bytes_for(word_bytes: int, link_bytes_per_cycle: float) -> int:
    """The narrowest power-of-two flit (dividing the weight word) that carries at least a
    link's bandwidth per cycle."""
    width = 1
    while width < link_bytes_per_cycle and width < word_bytes:
        width *= 2
    return width


def fs_max_for(tile: TileConfig) -> int:
    """The widest slice the weight buffer can hold at the smallest legal hidden size
    (``max(mac_rows, mac_cols)``): the size of the engine's hidden buffer."""
    unit = max(tile.mac_rows, tile.mac_cols)
    return max(unit, tile.weight_words * tile.word_bytes // (3 * unit) // unit * unit)


def tile_config_for(preset) -> TileConfig:
    """The :class:`hw.config.TileConfig` of a hardware preset: its provisioned buffers
    (``SystemConfig.from_preset(preset).tile``)."""
    return SystemConfig.from_preset(preset).tile


def tile_parameters(preset) -> dict:
    """Constructor arguments of :class:`TileDatapath` for a hardware preset
    (``scheduler.presets.HardwarePreset``), from :func:`tile_config_for`."""
    return TileDatapath.parameters_for(tile_config_for(preset))


class TileDatapath(wiring.Component):
    """Weight, token and accumulator buffers, the MAC array, the vector unit and the slice
    engine of one chiplet.

    Parameters
    ----------
    The names follow :class:`hw.config.TileConfig` (:meth:`from_config` builds one from it).

    mac_rows, mac_cols : int
        MAC array shape (powers of two).
    link_bytes : int
        D2D flit width in bytes (divides ``mac_rows * mac_cols``).
    weight_words : int
        Weight buffer capacity in words of ``mac_rows * mac_cols`` bytes.
    max_slots : int
        Largest runtime slot count.
    token_rows : int
        Token-buffer and accumulator-buffer rows (token slots).
    d_max : int
        Largest hidden size.
    fs_max : int
        Largest slice width (columns); the engine's hidden buffer holds two such vectors.
    table_entries : int
        Entries of the engine's token list (the expert-to-local-token table).

    Members
    -------
    cfg : In(config_signature)
        Runtime configuration, held stable while the engine is busy: ``slot_words``,
        ``slot_count`` (weight slots), ``d``, ``fs`` (shape), ``gate_mult``, ``gate_shift``,
        ``up_mult``, ``up_shift``, ``hidden_mult``, ``hidden_shift`` (requantization).
    wb_wr : In(stream.Signature(weight_write_layout))
        ``{slot, flit, data}``: a flit into a weight slot; always ready.
    wb_fwd_req : In(stream.Signature(weight_forward_layout))
        ``{slot, flit}``: read a flit of a slot for forwarding.
    wb_fwd_data : Out(stream.Signature(unsigned(8 * link_bytes)))
        The forwarded flits, in order.
    wb_wr_error : Out(1)
        Sticky: a weight write fell outside the configured slots.
    tb_wr : In(stream.Signature(token_write_layout))
        ``{slot, word, data}``: ``mac_rows`` bytes of a resident token; always ready.
    tb_rd : In(hw.sram.read_port_signature(...))
        ``{slot, word, en} -> data``: a second token-buffer read port (synchronous: data
        the cycle after ``en``, held while ``en`` is low), for tokens the controller sends.
    acc_cmd : In(stream.Signature(acc_command_layout))
        ``{op, slot, word, data}``: READ / WRITE / ADD of ``mac_cols`` int32 accumulators.
    acc_resp : Out(stream.Signature(acc_word_layout))
        READ data, in order.
    silu_wr : In(stream.Signature(silu_layout))
        ``{index, value}``: SiLU table entry; always ready.
    list_wr : In(stream.Signature(list_write_layout))
        ``{index, token, gate_q}``: token-list entry; always ready.
    job : In(stream.Signature(job_layout))
        ``{slot, base, count}`` (see :class:`hw.slice_engine.SliceEngine`).
    done : Out(stream.Signature(done_layout))
        ``{slot}`` when a job's accumulator updates are all written.
    busy : Out(1)
    busy_cycles, mac_cycles : Out(32)
    macs : Out(32 + log2(mac_rows * mac_cols))
    sram : Out(sram_counters_layout())
        Accesses of the three buffers (:data:`SRAM_COUNTERS`): weight-buffer flits
        written (slot fills), words read by the MAC port, flits read for forwarding;
        token-buffer words written, read by the MAC port, read by the controller;
        accumulator words read and written (a datapath or network ADD is both, a READ
        command a read; WRITE commands, the host's zeroing before ``start``, are not
        counted).
    counters_clear : In(1)
        Zeroes every counter (held: they stay zero).
    """

    def __init__(self, *, mac_rows=8, mac_cols=8, link_bytes=16, weight_words=192, max_slots=16,
                 token_rows=512, d_max=32, fs_max=512, table_entries=2048):
        check_positive("Link width in bytes", link_bytes)
        self.params = dict(mac_rows=mac_rows, mac_cols=mac_cols, link_bytes=link_bytes,
                           weight_words=weight_words, max_slots=max_slots, token_rows=token_rows,
                           d_max=d_max, fs_max=fs_max, table_entries=table_entries)
        self.weights = WeightBuffer(mac_rows=mac_rows, mac_cols=mac_cols, link_bytes=link_bytes,
                                    depth=weight_words, max_slots=max_slots)
        self.tokens = TokenBuffer(mac_rows=mac_rows, token_slots=token_rows, d_max=d_max)
        self.accumulators = AccumulatorBuffer(mac_cols=mac_cols, token_slots=token_rows, d_max=d_max)
        self.engine = SliceEngine(mac_rows=mac_rows, mac_cols=mac_cols, max_slots=max_slots,
                                  weight_depth=weight_words, token_slots=token_rows, d_max=d_max,
                                  fs_max=fs_max, list_depth=table_entries)
        self.mac_array = MacArray(mac_rows=mac_rows, mac_cols=mac_cols, tag_shape=self.engine.mac_tag_layout)
        self.vector_unit = VectorUnit(lanes=mac_cols, tag_shape=self.engine.vec_tag_layout)

        # Payload layouts of the external ports, for software encoders.
        self.weight_write_layout = self.weights.write_layout
        self.weight_forward_layout = self.weights.forward_layout
        self.token_write_layout = self.tokens.write_layout
        self.acc_command_layout = self.accumulators.command_layout
        self.acc_word_layout = self.accumulators.word_layout
        self.silu_layout = self.vector_unit.silu_layout
        self.list_write_layout = self.engine.list_write_layout
        self.job_layout = self.engine.job_layout
        self.done_layout = self.engine.done_layout
        # The token buffer's second read port, as its reader (the controller) sees it.
        self.token_read_signature = read_port_signature(
            slot_bits=self.tokens.slot_bits, word_bits=self.tokens.word_bits, data_shape=unsigned(8 * mac_rows))

        self.config_signature = wiring.Signature({
            "slot_words": Out(range(weight_words + 1)),
            "slot_count": Out(range(max_slots + 1)),
            "d": Out(range(d_max + 1)),
            "fs": Out(range(fs_max + 1)),
            "gate_mult": Out(MULT_BITS), "gate_shift": Out(SHIFT_BITS),
            "up_mult": Out(MULT_BITS), "up_shift": Out(SHIFT_BITS),
            "hidden_mult": Out(MULT_BITS), "hidden_shift": Out(SHIFT_BITS),
        })
        super().__init__({
            "cfg": In(self.config_signature),
            "wb_wr": In(stream.Signature(self.weight_write_layout)),
            "wb_fwd_req": In(stream.Signature(self.weight_forward_layout)),
            "wb_fwd_data": Out(stream.Signature(8 * link_bytes)),
            "wb_wr_error": Out(1),
            "tb_wr": In(stream.Signature(self.token_write_layout)),
            "tb_rd": In(self.token_read_signature),
            "acc_cmd": In(stream.Signature(self.acc_command_layout)),
            "acc_resp": Out(stream.Signature(self.acc_word_layout)),
            "silu_wr": In(stream.Signature(self.silu_layout)),
            "list_wr": In(stream.Signature(self.list_write_layout)),
            "job": In(stream.Signature(self.job_layout)),
            "done": Out(stream.Signature(self.done_layout)),
            "busy": Out(1),
            "busy_cycles": Out(COUNTER_BITS),
            "mac_cycles": Out(COUNTER_BITS),
            "macs": Out(self.engine.macs.shape()),
            "sram": Out(sram_counters_layout()),
            "counters_clear": In(1),
        })

    @staticmethod
    def parameters_for(tile: TileConfig, *, max_slots: int | None = None) -> dict:
        """Constructor arguments for a :class:`hw.config.TileConfig`."""
        return dict(mac_rows=tile.mac_rows, mac_cols=tile.mac_cols, link_bytes=tile.link_bytes,
                    weight_words=tile.weight_words, max_slots=max_slots or tile.max_slots,
                    token_rows=tile.token_rows, d_max=tile.d_max, fs_max=fs_max_for(tile), table_entries=tile.table_entries)

    @classmethod
    def from_config(cls, tile: TileConfig, **overrides) -> "TileDatapath":
        """The tile datapath of a :class:`hw.config.TileConfig`."""
        return cls(**(cls.parameters_for(tile) | overrides))

    @classmethod
    def from_preset(cls, preset, **overrides) -> "TileDatapath":
        """The tile datapath of a ``scheduler.presets.HardwarePreset``."""
        return cls(**(tile_parameters(preset) | overrides))

    def elaborate(self, platform):
        m = Module()
        m.submodules.weights = wb = self.weights
        m.submodules.tokens = tb = self.tokens
        m.submodules.accumulators = ab = self.accumulators
        m.submodules.engine = eng = self.engine
        m.submodules.mac_array = mac = self.mac_array
        m.submodules.vector_unit = vec = self.vector_unit

        # Internal datapath.
        wiring.connect(m, eng.weight_rd, wb.rd)
        wiring.connect(m, eng.token_rd, tb.rd)
        wiring.connect(m, eng.mac_i, mac.i)
        wiring.connect(m, mac.o, eng.mac_o)
        wiring.connect(m, eng.vec_i, vec.i)
        wiring.connect(m, vec.o, eng.vec_o)
        wiring.connect(m, eng.acc_add, ab.add)

        # External ports.
        wiring.connect(m, wiring.flipped(self.wb_wr), wb.wr)
        wiring.connect(m, wiring.flipped(self.wb_fwd_req), wb.fwd_req)
        wiring.connect(m, wb.fwd_data, wiring.flipped(self.wb_fwd_data))
        wiring.connect(m, wiring.flipped(self.tb_wr), tb.wr)
        wiring.connect(m, wiring.flipped(self.tb_rd), tb.ext_rd)
        wiring.connect(m, wiring.flipped(self.acc_cmd), ab.cmd)
        wiring.connect(m, ab.resp, wiring.flipped(self.acc_resp))
        wiring.connect(m, wiring.flipped(self.silu_wr), vec.silu_wr)
        wiring.connect(m, wiring.flipped(self.list_wr), eng.list_wr)
        wiring.connect(m, wiring.flipped(self.job), eng.job)
        wiring.connect(m, eng.done, wiring.flipped(self.done))
        cfg = self.cfg
        m.d.comb += [
            self.wb_wr_error.eq(wb.wr_error),
            wb.slot_words.eq(cfg.slot_words), wb.slot_count.eq(cfg.slot_count),
            eng.d.eq(cfg.d), eng.fs.eq(cfg.fs),
            vec.gate_mult.eq(cfg.gate_mult), vec.gate_shift.eq(cfg.gate_shift),
            vec.up_mult.eq(cfg.up_mult), vec.up_shift.eq(cfg.up_shift),
            vec.hidden_mult.eq(cfg.hidden_mult), vec.hidden_shift.eq(cfg.hidden_shift),
            self.busy.eq(eng.busy), self.busy_cycles.eq(eng.busy_cycles),
            self.mac_cycles.eq(eng.mac_cycles), self.macs.eq(eng.macs),
            eng.counters_clear.eq(self.counters_clear),
        ]

        # SRAM access counters, from the buffers' port handshakes.
        acc_cmd = self.acc_cmd.valid & self.acc_cmd.ready
        op = self.acc_cmd.payload.op
        events = {
            "weight_write_flits": self.wb_wr.valid & self.wb_wr.ready,
            "weight_read_words": eng.weight_rd.en,
            "weight_forward_flits": self.wb_fwd_req.valid & self.wb_fwd_req.ready,
            "token_write_words": self.tb_wr.valid & self.tb_wr.ready,
            "token_read_words": eng.token_rd.en,
            "token_ext_read_words": self.tb_rd.en,
            # WRITE commands are the host's zeroing before start (the last may land a few
            # cycles after it); a layer itself never writes an accumulator word whole.
            "acc_read_words": [eng.acc_add.valid, acc_cmd & (op != AccOp.WRITE)],
            "acc_write_words": [eng.acc_add.valid, acc_cmd & (op == AccOp.ADD)],
        }
        for name, inc in events.items():
            counter = getattr(self.sram, name)
            incs = inc if isinstance(inc, list) else [inc]
            with m.If(self.counters_clear):
                m.d.sync += counter.eq(0)
            with m.Else():
                m.d.sync += counter.eq(counter + sum(incs))
        return m
