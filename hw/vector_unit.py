"""Vector unit: the SwiGLU hidden activation of one column block, ``golden.hidden_activation``
on ``lanes`` columns per cycle."""

from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .requant import MULT_BITS, SHIFT_BITS, requantize
from .sram import check_positive

__all__ = ["VectorUnit", "SILU_ENTRIES", "vector_input_layout", "vector_output_layout"]

SILU_ENTRIES = 256


def vector_input_layout(lanes, tag_shape):
    """Payload of :attr:`VectorUnit.i`."""
    return data.StructLayout({
        "gate": data.ArrayLayout(signed(32), lanes), "up": data.ArrayLayout(signed(32), lanes),
        "gate_q": unsigned(8), "tag": tag_shape})


def vector_output_layout(lanes, tag_shape):
    """Payload of :attr:`VectorUnit.o`."""
    return data.StructLayout({"hidden": data.ArrayLayout(signed(8), lanes), "tag": tag_shape})


class VectorUnit(wiring.Component):
    """SwiGLU activation with the gate weight folded in, ``lanes`` columns at a time::

        g8 = requant(g, gate_mult, gate_shift)       u8 = requant(u, up_mult, up_shift)
        h8 = requant(SILU[g8 + 128] * u8 * gate_q, hidden_mult, hidden_shift)

    exactly as ``scheduler.golden.hidden_activation``.  The SiLU table is data: 256 int8
    entries written through ``silu_wr`` before use (entry ``i`` is the output for input
    ``i - 128``), held in a small memory with one read port per lane.  Requantization
    reuses :func:`hw.requant.requantize`; its constants are runtime inputs held stable
    while vectors are in flight.

    Parameters
    ----------
    lanes : int
        Columns per vector (the MAC array's ``mac_cols``).
    tag_shape : shape
        Shape of a user tag carried alongside each vector.

    Members
    -------
    i : In(stream.Signature(input_layout))
        ``{gate, up, gate_q, tag}``: ``lanes`` int32 gate and up projections, the token's
        uint8 Q0.8 gate weight.
    o : Out(stream.Signature(output_layout))
        ``{hidden, tag}``: ``lanes`` int8, three cycles after the input.
    silu_wr : In(stream.Signature(silu_layout))
        ``{index, value}``: table write; always ready.
    gate_mult, up_mult, hidden_mult : In(unsigned(16))
    gate_shift, up_shift, hidden_shift : In(unsigned(5))
    """

    LATENCY = 3

    def __init__(self, *, lanes=8, tag_shape=1):
        check_positive("Lane count", lanes)
        self.lanes, self.tag_shape = lanes, tag_shape
        self.input_layout = vector_input_layout(lanes, tag_shape)
        self.output_layout = vector_output_layout(lanes, tag_shape)
        self.silu_layout = data.StructLayout({"index": unsigned(8), "value": signed(8)})
        self.silu = Memory(shape=signed(8), depth=SILU_ENTRIES, init=[])
        super().__init__({
            "i": In(stream.Signature(self.input_layout)),
            "o": Out(stream.Signature(self.output_layout)),
            "silu_wr": In(stream.Signature(self.silu_layout)),
            "gate_mult": In(MULT_BITS), "gate_shift": In(SHIFT_BITS),
            "up_mult": In(MULT_BITS), "up_shift": In(SHIFT_BITS),
            "hidden_mult": In(MULT_BITS), "hidden_shift": In(SHIFT_BITS),
        })

    def elaborate(self, platform):
        # Three stages under one global stall (`advance`): (1) requantize g and u, (2) look
        # up SiLU(g8) in the table (synchronous read, the read port holds while stalled),
        # (3) multiply by u8 and the gate weight and requantize.  A stage never drops a
        # vector: when the output is held, everything holds.
        m = Module()
        m.submodules.silu = self.silu
        wp = self.silu.write_port()
        m.d.comb += [
            self.silu_wr.ready.eq(1),
            wp.addr.eq(self.silu_wr.payload.index),
            wp.data.eq(self.silu_wr.payload.value),
            wp.en.eq(self.silu_wr.valid),
        ]

        advance = Signal(name="advance")
        m.d.comb += [advance.eq(~self.o.valid | self.o.ready), self.i.ready.eq(advance)]

        lanes_i8 = data.ArrayLayout(signed(8), self.lanes)
        s1_valid, s2_valid = Signal(name="s1_valid"), Signal(name="s2_valid")
        s1_g8, s1_u8 = Signal(lanes_i8, name="s1_g8"), Signal(lanes_i8, name="s1_u8")
        s2_u8 = Signal(lanes_i8, name="s2_u8")
        s1_q, s2_q = Signal(8, name="s1_gate_q"), Signal(8, name="s2_gate_q")
        s1_tag, s2_tag = Signal(self.tag_shape, name="s1_tag"), Signal(self.tag_shape, name="s2_tag")
        out_valid = Signal(name="out_valid")
        out_hidden = Signal(lanes_i8, name="out_hidden")
        out_tag = Signal(self.tag_shape, name="out_tag")
        p = self.i.payload

        with m.If(advance):
            m.d.sync += [s1_valid.eq(self.i.valid), s1_q.eq(p.gate_q), s1_tag.eq(p.tag),
                         s2_valid.eq(s1_valid), s2_u8.eq(s1_u8), s2_q.eq(s1_q), s2_tag.eq(s1_tag),
                         out_valid.eq(s2_valid), out_tag.eq(s2_tag)]
        for lane in range(self.lanes):
            rp = self.silu.read_port()
            with m.If(advance):
                m.d.sync += [
                    s1_g8[lane].eq(requantize(p.gate[lane], self.gate_mult, self.gate_shift)),
                    s1_u8[lane].eq(requantize(p.up[lane], self.up_mult, self.up_shift)),
                ]
                product = rp.data * s2_u8[lane] * s2_q
                m.d.sync += out_hidden[lane].eq(requantize(product, self.hidden_mult, self.hidden_shift))
            # Entry i is SiLU(i - 128): flipping the sign bit adds 128 to a two's-complement int8.
            m.d.comb += [rp.addr.eq(s1_g8[lane].as_unsigned() ^ 0x80), rp.en.eq(advance)]
        m.d.comb += [
            self.o.valid.eq(out_valid),
            self.o.payload.hidden.eq(out_hidden),
            self.o.payload.tag.eq(out_tag),
        ]
        return m
