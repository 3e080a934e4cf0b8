"""Width converters between power-of-two stream widths (packet payloads <-> buffer words).

The tile controller moves packet payloads between D2D flits (``link_bytes`` wide) and
buffer words (``mac_rows`` bytes of a token row, ``4 * mac_cols`` bytes of an accumulator
row, 8-byte host beats).  All of these are powers of two, so one width always divides the
other: a :class:`Gearbox` either splits each input into ``in/out`` pieces (narrowing) or
packs ``out/in`` inputs into one output (widening).  Pieces are taken little-endian:
piece ``j`` of a wide word is bits ``j * narrow .. (j + 1) * narrow - 1``, which is the byte
order of packet payloads (``hw.packets``) and of buffer rows alike.
"""

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .sram import check_pow2

__all__ = ["Gearbox"]


class Gearbox(wiring.Component):
    """Convert a packet of ``in_bits``-wide words into ``out_bits``-wide words.

    Before each packet, ``start`` (one cycle) loads ``count``: the number of *input*
    words of the packet when widening (``in_bits < out_bits``; the last output is
    zero-padded if ``count`` is not a multiple of the ratio), the number of *output* words
    when narrowing or passing through (``in_bits >= out_bits``; pieces of the last input
    beyond ``count`` are dropped).  Throughput is one word per cycle on the narrow side.

    Parameters
    ----------
    in_bits, out_bits : int
        Widths (powers of two, in bits, at least 8).
    max_count : int
        Largest ``count``.

    Members
    -------
    start : In(1)
    count : In(range(max_count + 1))
    i : In(stream.Signature(in_bits))
    o : Out(stream.Signature(out_bits))
    idle : Out(1)
        Every word of the packet has been delivered (or no packet was started).
    """

    def __init__(self, *, in_bits: int, out_bits: int, max_count: int):
        check_pow2("Gearbox input width", in_bits)
        check_pow2("Gearbox output width", out_bits)
        self.in_bits, self.out_bits, self.max_count = in_bits, out_bits, max_count
        super().__init__({
            "start": In(1),
            "count": In(range(max_count + 1)),
            "i": In(stream.Signature(unsigned(in_bits))),
            "o": Out(stream.Signature(unsigned(out_bits))),
            "idle": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        left = Signal(range(self.max_count + 1), name="left")
        i_fire = self.i.valid & self.i.ready
        o_fire = self.o.valid & self.o.ready
        if self.in_bits < self.out_bits:
            # Widening: collect `ratio` inputs in `acc`, then move them to the output register.
            ratio = self.out_bits // self.in_bits
            acc = Signal(self.out_bits, name="acc")
            nxt = Signal(self.out_bits, name="acc_next")
            j = Signal(range(ratio), name="piece")
            out_valid = Signal(name="out_valid")
            out_data = Signal(self.out_bits, name="out_data")
            m.d.comb += [
                nxt.eq(acc),
                nxt.word_select(j, self.in_bits).eq(self.i.payload),
                self.i.ready.eq((~out_valid | self.o.ready) & (left != 0)),
                self.o.valid.eq(out_valid),
                self.o.payload.eq(out_data),
                self.idle.eq((left == 0) & ~out_valid),
            ]
            with m.If(o_fire):
                m.d.sync += out_valid.eq(0)
            with m.If(i_fire):
                m.d.sync += left.eq(left - 1)
                with m.If((j == ratio - 1) | (left == 1)):
                    m.d.sync += [out_data.eq(nxt), out_valid.eq(1), acc.eq(0), j.eq(0)]
                with m.Else():
                    m.d.sync += [acc.eq(nxt), j.eq(j + 1)]
            with m.If(self.start):
                m.d.sync += [left.eq(self.count), acc.eq(0), j.eq(0), out_valid.eq(0)]
        else:
            # Narrowing: hold one input and hand out its pieces, at most `left` in all.
            ratio = self.in_bits // self.out_bits
            hold = Signal(self.in_bits, name="hold")
            hold_valid = Signal(name="hold_valid")
            if ratio > 1:
                j = Signal(range(ratio), name="piece")
                piece = hold.word_select(j, self.out_bits)
                last_piece = j == ratio - 1
            else:
                j, piece, last_piece = None, hold, 1
            release = Signal(name="release")
            m.d.comb += [
                self.o.valid.eq(hold_valid),
                self.o.payload.eq(piece),
                release.eq(o_fire & (last_piece | (left == 1))),
                self.i.ready.eq(Mux(hold_valid, release & (left != 1), left != 0)),
                self.idle.eq(left == 0),
            ]
            with m.If(o_fire):
                m.d.sync += left.eq(left - 1)
                if j is not None:
                    m.d.sync += j.eq(j + 1)
            with m.If(release):
                m.d.sync += hold_valid.eq(0)
            with m.If(i_fire):
                m.d.sync += [hold.eq(self.i.payload), hold_valid.eq(1)]
                if j is not None:
                    m.d.sync += j.eq(0)
            with m.If(self.start):
                m.d.sync += [left.eq(self.count), hold_valid.eq(0)]
                if j is not None:
                    m.d.sync += j.eq(0)
        return m
