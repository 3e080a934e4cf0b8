"""Banked on-chip SRAM of one chiplet tile: weight slots, resident tokens, accumulators.

All three are built on :class:`amaranth.lib.memory.Memory` with synchronous read ports
(address in one cycle, data the next).  Addresses are ``(slot, word)`` pairs; each buffer
turns them into a flat word address itself, so callers never depend on the packing.

Port payloads are :mod:`amaranth.lib.data` layouts exposed as attributes of each buffer
(``write_layout`` ...), so software (cocotb benches, the later controller) encodes them
from the same definition with ``layout.const({...})``.
"""

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["WeightBuffer", "TokenBuffer", "AccumulatorBuffer", "AccOp", "read_port_signature",
           "accumulator_add_layout",
           "index_bits", "check_positive", "check_pow2"]


def index_bits(count: int) -> int:
    """Bits of an index into ``count`` things (at least 1)."""
    return max(1, (count - 1).bit_length())


def check_positive(what: str, value) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise TypeError(f"{what} must be a positive integer, not {value!r}")
    return value


def check_pow2(what: str, value) -> int:
    check_positive(what, value)
    if value & (value - 1):
        raise ValueError(f"{what} must be a power of two, not {value!r}")
    return value


def read_port_signature(*, slot_bits: int, word_bits: int, data_shape) -> wiring.Signature:
    """A synchronous ``(slot, word)`` read port, seen from the reader: ``slot``, ``word``
    and ``en`` in cycle *k*, ``data`` valid in cycle *k + 1* (held while ``en`` is low)."""
    return wiring.Signature({
        "slot": Out(slot_bits), "word": Out(word_bits), "en": Out(1), "data": In(data_shape),
    })


def accumulator_add_layout(*, mac_cols: int, slot_bits: int, word_bits: int) -> data.StructLayout:
    """Payload of :attr:`AccumulatorBuffer.add`: ``{slot, word, data}`` with ``mac_cols``
    int32 lanes."""
    return data.StructLayout({"slot": unsigned(slot_bits), "word": unsigned(word_bits),
                              "data": data.ArrayLayout(signed(32), mac_cols)})


class WeightBuffer(wiring.Component):
    """Slot buffer for expert micro-slices: a 2R1W SRAM macro of ``mac_rows * mac_cols``-byte
    words.

    The buffer is cut into ``slot_count`` slots of ``slot_words`` words each, both set at
    run time (FSE-DP puts 12 micro-slices in it, EP two whole experts); slot ``s`` starts
    at word ``s * slot_words``.  One write port takes data at link width (``link_bytes``
    per cycle, written into one lane of a word with a per-lane write enable); one read
    port gives the MAC array a whole word per cycle; a second read port reads a slot back
    at link width for forwarding it to the successor chiplet.

    Parameters
    ----------
    mac_rows, mac_cols : int
        MAC array shape; a word is one ``mac_rows x mac_cols`` block of int8 weights.
    link_bytes : int
        Bytes per flit of the D2D link; must divide the word size.
    depth : int
        Capacity in words (a build parameter).
    max_slots : int
        Largest ``slot_count`` the address fields can express.

    Members
    -------
    slot_words : In(range(depth + 1))
        Words per slot (runtime).
    slot_count : In(range(max_slots + 1))
        Slots in use (runtime).  Writes outside ``slot < slot_count`` and
        ``word < slot_words`` are dropped and set ``wr_error``.
    wr : In(stream.Signature(write_layout))
        ``{slot, flit, data}``: flit ``flit`` of the slot (lane ``flit % lanes`` of word
        ``flit // lanes``).  Always ready: one flit per cycle.
    rd : In(read_port_signature(...))
        MAC-array read port, ``{slot, word, en} -> data`` (the whole word).
    fwd_req : In(stream.Signature(forward_layout))
        ``{slot, flit}``: read one flit of a slot.
    fwd_data : Out(stream.Signature(unsigned(8 * link_bytes)))
        The flits read by ``fwd_req``, in order, one cycle later; back-pressure stalls
        ``fwd_req``.
    wr_error : Out(1)
        Sticky: a write fell outside the configured slots.
    """

    def __init__(self, *, mac_rows=8, mac_cols=8, link_bytes=16, depth=512, max_slots=16):
        check_pow2("MAC array row count", mac_rows)
        check_pow2("MAC array column count", mac_cols)
        check_positive("Link width in bytes", link_bytes)
        check_positive("Weight buffer depth", depth)
        check_positive("Slot count", max_slots)
        self.mac_rows, self.mac_cols = mac_rows, mac_cols
        self.word_bytes = mac_rows * mac_cols
        if self.word_bytes % link_bytes:
            raise ValueError(f"Link width {link_bytes} bytes must divide the weight word "
                             f"({self.word_bytes} bytes)")
        self.link_bytes, self.depth, self.max_slots = link_bytes, depth, max_slots
        self.lanes = self.word_bytes // link_bytes
        self.lane_bits = (self.lanes - 1).bit_length()
        self.slot_bits = index_bits(max_slots)
        self.word_bits = index_bits(depth)
        self.flit_bits = self.word_bits + self.lane_bits
        self.write_layout = data.StructLayout({
            "slot": unsigned(self.slot_bits), "flit": unsigned(self.flit_bits),
            "data": unsigned(8 * link_bytes)})
        self.forward_layout = data.StructLayout({
            "slot": unsigned(self.slot_bits), "flit": unsigned(self.flit_bits)})
        self.mem = Memory(shape=unsigned(8 * self.word_bytes), depth=depth, init=[])
        super().__init__({
            "slot_words": In(range(depth + 1)),
            "slot_count": In(range(max_slots + 1)),
            "wr": In(stream.Signature(self.write_layout)),
            "rd": In(read_port_signature(slot_bits=self.slot_bits, word_bits=self.word_bits,
                                         data_shape=unsigned(8 * self.word_bytes))),
            "fwd_req": In(stream.Signature(self.forward_layout)),
            "fwd_data": Out(stream.Signature(unsigned(8 * link_bytes))),
            "wr_error": Out(1),
        })

    def _address(self, slot, word):
        return (slot * self.slot_words + word)[:self.word_bits]

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = self.mem
        wp = self.mem.write_port(granularity=8 * self.link_bytes)
        rp_mac = self.mem.read_port()
        rp_fwd = self.mem.read_port()

        # Write: one link-width lane of one word per cycle.
        w = self.wr.payload
        w_word = w.flit >> self.lane_bits
        w_lane = w.flit[:self.lane_bits] if self.lane_bits else 0
        in_range = (w.slot < self.slot_count) & (w_word < self.slot_words)
        m.d.comb += [
            self.wr.ready.eq(1),
            wp.addr.eq(self._address(w.slot, w_word)),
            wp.data.eq(w.data.replicate(self.lanes)),
            wp.en.eq(Mux(self.wr.valid & in_range, 1 << w_lane, 0)),
        ]
        with m.If(self.wr.valid & ~in_range):
            m.d.sync += self.wr_error.eq(1)

        # MAC port: a whole word.
        m.d.comb += [
            rp_mac.addr.eq(self._address(self.rd.slot, self.rd.word)),
            rp_mac.en.eq(self.rd.en),
            self.rd.data.eq(rp_mac.data),
        ]

        # Forward port: a one-entry pipeline; the read port holds its data while stalled.
        f = self.fwd_req.payload
        lane = Signal(max(1, self.lane_bits), name="fwd_lane")
        m.d.comb += [
            self.fwd_req.ready.eq(~self.fwd_data.valid | self.fwd_data.ready),
            rp_fwd.addr.eq(self._address(f.slot, f.flit >> self.lane_bits)),
            rp_fwd.en.eq(self.fwd_req.ready),
            self.fwd_data.payload.eq(rp_fwd.data.word_select(lane, 8 * self.link_bytes)),
        ]
        with m.If(self.fwd_req.ready):
            m.d.sync += self.fwd_data.valid.eq(self.fwd_req.valid)
            if self.lane_bits:
                m.d.sync += lane.eq(f.flit[:self.lane_bits])
        return m


class TokenBuffer(wiring.Component):
    """Resident int8 tokens: one row of up to ``d_max`` bytes per token slot.

    Word ``w`` of a row holds activations ``w * mac_rows .. w * mac_rows + mac_rows - 1``
    (byte ``i`` = activation ``w * mac_rows + i``), the width the MAC array takes per cycle;
    see :func:`hw.slice_layout.token_words`.

    Parameters
    ----------
    mac_rows : int
    token_slots : int
    d_max : int
        Largest hidden size; a multiple of ``mac_rows``.

    Members
    -------
    rd : In(read_port_signature(...))
        MAC-array read port, ``{slot, word, en} -> data`` (``mac_rows`` bytes).
    ext_rd : In(read_port_signature(...))
        A second, independent read port of the same shape for the tile controller (tokens
        it sends to other chiplets, host readback).
    wr : In(stream.Signature(write_layout))
        Loader port ``{slot, word, data}``; always ready.
    """

    def __init__(self, *, mac_rows=8, token_slots=64, d_max=128):
        check_pow2("MAC array row count", mac_rows)
        check_positive("Token slot count", token_slots)
        check_positive("Maximum hidden size", d_max)
        if d_max % mac_rows:
            raise ValueError(f"Maximum hidden size {d_max} must be a multiple of mac_rows {mac_rows}")
        self.mac_rows, self.token_slots, self.d_max = mac_rows, token_slots, d_max
        self.row_words = d_max // mac_rows
        self.slot_bits = index_bits(token_slots)
        self.word_bits = index_bits(self.row_words)
        self.write_layout = data.StructLayout({
            "slot": unsigned(self.slot_bits), "word": unsigned(self.word_bits),
            "data": unsigned(8 * mac_rows)})
        self.mem = Memory(shape=unsigned(8 * mac_rows), depth=token_slots * self.row_words, init=[])
        super().__init__({
            "rd": In(read_port_signature(slot_bits=self.slot_bits, word_bits=self.word_bits,
                                         data_shape=unsigned(8 * mac_rows))),
            "ext_rd": In(read_port_signature(slot_bits=self.slot_bits, word_bits=self.word_bits,
                                             data_shape=unsigned(8 * mac_rows))),
            "wr": In(stream.Signature(self.write_layout)),
        })

    def address(self, slot, word):
        return slot * self.row_words + word

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = self.mem
        wp = self.mem.write_port()
        rp = self.mem.read_port()
        rp_ext = self.mem.read_port()
        w = self.wr.payload
        m.d.comb += [
            self.wr.ready.eq(1),
            wp.addr.eq(self.address(w.slot, w.word)),
            wp.data.eq(w.data),
            wp.en.eq(self.wr.valid),
            rp.addr.eq(self.address(self.rd.slot, self.rd.word)),
            rp.en.eq(self.rd.en),
            self.rd.data.eq(rp.data),
            rp_ext.addr.eq(self.address(self.ext_rd.slot, self.ext_rd.word)),
            rp_ext.en.eq(self.ext_rd.en),
            self.ext_rd.data.eq(rp_ext.data),
        ]
        return m


class AccOp(enum.Enum, shape=2):
    """Operation of an :class:`AccumulatorBuffer` command."""

    READ = 0
    WRITE = 1
    ADD = 2


class AccumulatorBuffer(wiring.Component):
    """int32 partial outputs: one row of up to ``d_max`` accumulators per token slot.

    A word holds ``mac_cols`` int32 lanes (lane ``c`` of word ``w`` is output element
    ``w * mac_cols + c``), what the MAC array produces per down-projection block.  Every
    access goes through one read-modify-write pipeline (read in cycle *k*, write back in
    *k + 1*, with the read port transparent to the write port so back-to-back updates of
    one word see each other):

    - ``add``: the datapath adds a word (wrapping); it has priority and is never stalled.
    - ``cmd``: external ``READ``, ``WRITE`` or ``ADD`` (e.g. results for readout, a
      zeroing write, partial sums received over the network), accepted in cycles the
      datapath leaves free.  ``READ`` data comes out of ``resp`` in order, through a
      three-entry FIFO, so a ready consumer can read one word per cycle.

    Parameters
    ----------
    mac_cols : int
    token_slots : int
    d_max : int
        Largest hidden size; a multiple of ``mac_cols``.

    Members
    -------
    add : In(stream.Signature(add_layout, always_ready=True))
        ``{slot, word, data}`` from the datapath.
    cmd : In(stream.Signature(command_layout))
        ``{op, slot, word, data}``.
    resp : Out(stream.Signature(word_layout))
        Data of ``READ`` commands.
    """

    RESPONSE_DEPTH = 3

    def __init__(self, *, mac_cols=8, token_slots=64, d_max=128):
        check_pow2("MAC array column count", mac_cols)
        check_positive("Token slot count", token_slots)
        check_positive("Maximum hidden size", d_max)
        if d_max % mac_cols:
            raise ValueError(f"Maximum hidden size {d_max} must be a multiple of mac_cols {mac_cols}")
        self.mac_cols, self.token_slots, self.d_max = mac_cols, token_slots, d_max
        self.row_words = d_max // mac_cols
        self.slot_bits = index_bits(token_slots)
        self.word_bits = index_bits(self.row_words)
        self.word_layout = data.ArrayLayout(signed(32), mac_cols)
        self.add_layout = accumulator_add_layout(mac_cols=mac_cols, slot_bits=self.slot_bits,
                                                 word_bits=self.word_bits)
        self.command_layout = data.StructLayout({
            "op": AccOp, "slot": unsigned(self.slot_bits), "word": unsigned(self.word_bits),
            "data": self.word_layout})
        self.mem = Memory(shape=self.word_layout, depth=token_slots * self.row_words, init=[])
        super().__init__({
            "add": In(stream.Signature(self.add_layout, always_ready=True)),
            "cmd": In(stream.Signature(self.command_layout)),
            "resp": Out(stream.Signature(self.word_layout)),
        })

    def address(self, slot, word):
        return slot * self.row_words + word

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = self.mem
        wp = self.mem.write_port()
        rp = self.mem.read_port(transparent_for=(wp,))
        m.submodules.resp_fifo = fifo = SyncFIFO(width=self.word_layout.size, depth=self.RESPONSE_DEPTH)

        # Stage 0: arbitrate (datapath first) and read.
        s1_valid = Signal(name="acc_s1_valid")
        s1_op = Signal(AccOp, name="acc_s1_op")
        s1_ext = Signal(name="acc_s1_ext")
        s1_addr = Signal.like(rp.addr, name="acc_s1_addr")
        s1_data = Signal(self.word_layout, name="acc_s1_data")
        s1_read = s1_valid & s1_ext & (s1_op == AccOp.READ)
        space = (fifo.level + s1_read) < self.RESPONSE_DEPTH
        take_ext = ~self.add.valid & space
        c = self.cmd.payload
        a = self.add.payload
        m.d.comb += [
            self.cmd.ready.eq(take_ext),
            rp.addr.eq(Mux(self.add.valid, self.address(a.slot, a.word), self.address(c.slot, c.word))),
            rp.en.eq(1),
        ]
        m.d.sync += [
            s1_valid.eq(self.add.valid | (self.cmd.valid & take_ext)),
            s1_ext.eq(~self.add.valid),
            s1_op.eq(Mux(self.add.valid, AccOp.ADD, c.op)),
            s1_addr.eq(rp.addr),
            s1_data.eq(Mux(self.add.valid, a.data, c.data)),
        ]

        # Stage 1: modify and write back; READ data goes to the response FIFO.
        old = rp.data
        new = Signal(self.word_layout, name="acc_new")
        for lane in range(self.mac_cols):
            m.d.comb += new[lane].eq(Mux(s1_op == AccOp.WRITE, s1_data[lane], old[lane] + s1_data[lane]))
        m.d.comb += [
            wp.addr.eq(s1_addr),
            wp.data.eq(new),
            wp.en.eq(s1_valid & (s1_op != AccOp.READ)),
            fifo.w_data.eq(old),
            fifo.w_en.eq(s1_read),
            self.resp.payload.eq(fifo.r_data),
            self.resp.valid.eq(fifo.r_rdy),
            fifo.r_en.eq(self.resp.ready),
        ]
        return m
