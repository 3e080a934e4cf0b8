"""One direction of a die-to-die link: pipeline latency, a bandwidth shaper and the
credit return path.

Flow control on a link is credit based: the sending router holds one counter per virtual
channel, initialised to the receiving router's buffer depth for that channel, spends one
credit per flit and gets it back when the receiver frees the buffer entry.  The
receiver therefore never refuses a flit, and :func:`link_signature` has no per-flit
back-pressure towards the link: its ``ready`` is the *link's* permission to send this
cycle (the bandwidth shaper), independent of ``valid``.
"""


from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .config import rate
from .packets import NUM_VCS, check_link_bytes, link_flit_layout

__all__ = ["link_signature", "Link", "check_rate", "rate_for"]


def link_signature(link_bytes: int) -> wiring.Signature:
    """A link port as the *sender* sees it.

    Members
    -------
    valid : Out(1)
        A flit is offered; it is sent in a cycle with ``valid & ready``.  The sender must
        hold a credit for ``payload.vc``.
    payload : Out(link_flit_layout(link_bytes))
        ``{data, last, vc}``.
    ready : In(1)
        The link accepts a flit this cycle (its bandwidth shaper has a token); does not
        depend on ``valid``.  A receiving router drives it high: credits guarantee space.
    credit : In(NUM_VCS)
        One pulse per VC for every buffer entry the receiver freed.
    """
    return wiring.Signature({
        "valid": Out(1),
        "payload": Out(link_flit_layout(link_bytes)),
        "ready": In(1),
        "credit": In(NUM_VCS),
    })


def check_rate(rate) -> tuple[int, int]:
    if (not isinstance(rate, tuple) or len(rate) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in rate)):
        raise TypeError(f"Link rate must be a (num, den) tuple of integers, not {rate!r}")
    num, den = rate
    if not 0 < num <= den <= 1 << 16:
        raise ValueError(f"Link rate must satisfy 0 < num <= den <= 65536, not {num}/{den}")
    return num, den


def rate_for(bytes_per_cycle: float, link_bytes: int, max_den: int = 64) -> tuple[int, int]:
    """The shaper rate (flits per cycle, ``num / den``) of a link of ``link_bytes`` per flit
    that carries ``bytes_per_cycle`` (a preset's D2D bandwidth); e.g. 11.25 B/cycle on a
    16-byte link is 45/64.  (:func:`hw.config.rate`, named for links.)"""
    return rate(bytes_per_cycle, link_bytes, max_den)


class Link(wiring.Component):
    """A link direction with ``latency`` cycles of pipeline and ``num/den`` flits per cycle.

    Parameters
    ----------
    link_bytes : int
        Flit width.
    latency : int
        Cycles from a flit entering ``i`` to it leaving ``o`` (at least 1); credits take
        the same time back.
    rate : (int, int)
        Bandwidth in flits per cycle as ``num / den`` (at most 1).

    Members
    -------
    i : In(link_signature(link_bytes))
        From the sending router's output port.
    o : Out(link_signature(link_bytes))
        To the receiving router's input port (``o.ready`` is ignored).
    """

    def __init__(self, *, link_bytes: int, latency: int = 1, rate=(1, 1)):
        check_link_bytes(link_bytes)
        if not isinstance(latency, int) or isinstance(latency, bool) or latency < 1:
            raise TypeError(f"Link latency must be a positive integer, not {latency!r}")
        self.link_bytes, self.latency = link_bytes, latency
        self.num, self.den = check_rate(rate)
        super().__init__({"i": In(link_signature(link_bytes)), "o": Out(link_signature(link_bytes))})

    def elaborate(self, platform):
        """Token-bucket shaper: ``bucket`` gains ``num`` per cycle until it holds a flit's
        worth (``den``) and a flit costs ``den``, keeping the remainder; so a saturated link
        sends exactly ``num`` flits every ``den`` cycles, and after an idle period it sends
        at most two flits back to back.  The flit and credit pipelines are plain shift
        registers."""
        m = Module()
        num, den = self.num, self.den

        if num == den:
            m.d.comb += self.i.ready.eq(1)
        else:
            bucket = Signal(range(den + num + 1), init=den, name="bucket")
            send = self.i.valid & self.i.ready
            m.d.comb += self.i.ready.eq(bucket >= den)
            with m.If(send):
                m.d.sync += bucket.eq(bucket + num - den)
            with m.Elif(bucket < den):
                m.d.sync += bucket.eq(bucket + num)

        valid, payload, credit = self.i.valid & self.i.ready, self.i.payload, self.o.credit
        for stage in range(self.latency):
            v = Signal(name=f"valid_{stage}")
            p = Signal.like(self.i.payload, name=f"flit_{stage}")
            c = Signal(NUM_VCS, name=f"credit_{stage}")
            m.d.sync += [v.eq(valid), p.eq(payload), c.eq(credit)]
            valid, payload, credit = v, p, c
        m.d.comb += [
            self.o.valid.eq(valid),
            self.o.payload.eq(payload),
            self.i.credit.eq(credit),
        ]
        return m
