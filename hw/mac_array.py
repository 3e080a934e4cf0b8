"""Weight-streaming GEMV MAC array: ``mac_rows x mac_cols`` int8 multipliers, int32
accumulation, fed by one token at a time."""

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .slice_layout import weight_byte
from .sram import check_pow2

__all__ = ["MacArray", "tree_sum", "mac_input_layout", "mac_output_layout"]


def tree_sum(terms):
    """Balanced adder tree over a list of values (depth ``ceil(log2(n))``)."""
    terms = list(terms)
    while len(terms) > 1:
        paired = [terms[i] + terms[i + 1] for i in range(0, len(terms) - 1, 2)]
        terms = paired + ([terms[-1]] if len(terms) % 2 else [])
    return terms[0]


def mac_input_layout(mac_rows, mac_cols, tag_shape):
    """Payload of :attr:`MacArray.i`."""
    return data.StructLayout({
        "first": 1, "last": 1,
        "act": data.ArrayLayout(signed(8), mac_rows),
        "weights": data.ArrayLayout(signed(8), mac_rows * mac_cols),
        "tag": tag_shape,
    })


def mac_output_layout(mac_cols, tag_shape):
    """Payload of :attr:`MacArray.o`."""
    return data.StructLayout({"sums": data.ArrayLayout(signed(32), mac_cols), "tag": tag_shape})


class MacArray(wiring.Component):
    """A weight-streaming matrix-vector MAC array.

    Low batch means one token at a time, so the array cannot hold weights stationary and
    reuse them across a batch: every cycle it takes ``mac_rows`` activations of one token
    (broadcast along the columns) and a fresh ``mac_rows x mac_cols`` block of weights
    (one weight-buffer word), multiplies element-wise and reduces each column with an
    adder tree into ``mac_cols`` dot-product partial sums, added to ``mac_cols`` int32
    accumulators.  A *pass* is the run of beats from ``first`` (accumulators restart from
    the dot product) to ``last`` (the sums are emitted).  Every multiplier is busy on
    every valid beat, with a single token.

    There is no back-pressure: weights arrive from SRAM at a fixed rate and the results
    go to sinks that never stall.

    Parameters
    ----------
    mac_rows, mac_cols : int
        Array shape (powers of two).
    tag_shape : shape
        Shape of a user tag carried from the ``last`` beat of a pass to its result.

    Members
    -------
    i : In(stream.Signature(input_layout, always_ready=True))
        ``{first, last, act, weights, tag}``: ``act`` is ``mac_rows`` int8; ``weights`` is
        ``mac_rows * mac_cols`` int8, the weight of row ``r`` and column ``c`` at byte
        :func:`hw.slice_layout.weight_byte` ``(r, c)``.
    o : Out(stream.Signature(output_layout, always_ready=True))
        ``{sums, tag}``, valid for one cycle, the cycle after the ``last`` beat: ``sums[c]``
        is the (wrapping) int32 sum over the pass of ``act . weights[:, c]``.
    """

    def __init__(self, *, mac_rows=8, mac_cols=8, tag_shape=1):
        check_pow2("MAC array row count", mac_rows)
        check_pow2("MAC array column count", mac_cols)
        self.mac_rows, self.mac_cols, self.tag_shape = mac_rows, mac_cols, tag_shape
        self.input_layout = mac_input_layout(mac_rows, mac_cols, tag_shape)
        self.output_layout = mac_output_layout(mac_cols, tag_shape)
        super().__init__({
            "i": In(stream.Signature(self.input_layout, always_ready=True)),
            "o": Out(stream.Signature(self.output_layout, always_ready=True)),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.i.payload
        for c in range(self.mac_cols):
            acc = Signal(signed(32), name=f"acc_{c}")
            products = [p.act[r] * p.weights[weight_byte(r, c, self.mac_cols)]
                        for r in range(self.mac_rows)]
            dot = Signal(signed(16 + (self.mac_rows - 1).bit_length()), name=f"dot_{c}")
            m.d.comb += dot.eq(tree_sum(products))
            with m.If(self.i.valid):
                with m.If(p.first):
                    m.d.sync += acc.eq(dot)
                with m.Else():
                    m.d.sync += acc.eq(acc + dot)
            # The accumulators hold the result during the cycle after `last`; the next pass
            # overwrites them only at the end of that cycle.
            m.d.comb += self.o.payload.sums[c].eq(acc)
        tag = Signal(self.tag_shape, name="result_tag")
        m.d.sync += self.o.valid.eq(self.i.valid & p.last)
        with m.If(self.i.valid & p.last):
            m.d.sync += tag.eq(p.tag)
        m.d.comb += self.o.payload.tag.eq(tag)
        return m
