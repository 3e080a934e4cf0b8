"""Requantization: int32 (or wider) accumulator to int8, as ``scheduler.golden.requantize``.

``clamp((v * mult + round) >> shift, -128, 127)`` with ``round = (1 << shift) >> 1``
(half-up rounding; zero when ``shift == 0``), ``mult`` unsigned 16 bits, ``shift`` 0..31.
"""

from amaranth.hdl import Const, Module, Mux, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["requantize", "Requantizer", "MULT_BITS", "SHIFT_BITS"]

MULT_BITS = 16
SHIFT_BITS = 5


def requantize(value, mult, shift):
    """Combinational requantization of the signed ``value`` to an int8 expression."""
    product = value.as_signed() * mult.as_unsigned()
    rounding = (Const(1, unsigned(32)) << shift) >> 1
    shifted = (product + rounding) >> shift
    return Mux(shifted > 127, 127, Mux(shifted < -128, -128, shifted))[:8].as_signed()


class Requantizer(wiring.Component):
    """A one-stage pipelined requantizer on valid/ready streams.

    Parameters
    ----------
    width : int
        Width of the signed input values.

    Members
    -------
    i : In(stream.Signature(signed(width)))
    o : Out(stream.Signature(signed(8)))
    mult : In(unsigned(16))
    shift : In(unsigned(5))
        Held constant while values are in flight.
    """

    def __init__(self, *, width=32):
        if not isinstance(width, int) or width <= 0:
            raise TypeError(f"Input width must be a positive integer, not {width!r}")
        self.width = width
        super().__init__({
            "i": In(stream.Signature(signed(width))),
            "o": Out(stream.Signature(signed(8))),
            "mult": In(unsigned(MULT_BITS)),
            "shift": In(unsigned(SHIFT_BITS)),
        })

    def elaborate(self, platform):
        m = Module()
        # A skid-free single register stage: accept when the output is empty or drained.
        m.d.comb += self.i.ready.eq(~self.o.valid | self.o.ready)
        with m.If(self.i.ready):
            m.d.sync += [
                self.o.valid.eq(self.i.valid),
                self.o.payload.eq(requantize(self.i.payload, self.mult, self.shift)),
            ]
        return m
