"""The hardware watchdog: what each unit waits for, the status the system latches, and the
limits, derived from the configuration (docs/system.md, "Watchdog").

Every unit of a chiplet (router, controller, slice engine; and each DRAM channel) counts
the cycles since it last made progress and says what it waits for (:class:`Wait`, with an
argument and how long it has waited).  The system top (:class:`hw.system.System`) raises
``stalled`` and latches :func:`stall_status_layout` when

* no unit anywhere made progress for ``stall_limit`` cycles (:attr:`Stall.NO_PROGRESS`):
  it then names the unit that waits in the most basic way (:attr:`Wait.group`: a link
  before a slot before a program), and among those the one that has waited longest; or
* a flit waited ``age_limit`` cycles at one router input (:attr:`Stall.STARVED`, the
  router's starvation check): that router; or
* a link is broken, which a correct system can never show (:func:`link_checks`): an
  outgoing link that has not taken an offered flit for longer than its shaper allows
  (:attr:`Stall.LINK_STUCK`), or a link VC whose sender holds fewer credits than the
  receiver's buffer has entries while nothing is in flight and that buffer is empty
  (:attr:`Stall.CREDIT_LOST`): the sending router.

:func:`limits` gives both limits for a :class:`hw.config.SystemConfig`; the RTL engine
sets them at run time (``System.stall_limit``, ``System.age_limit``).
"""

from __future__ import annotations

import enum as py_enum
from dataclasses import dataclass

from amaranth.hdl import unsigned
from amaranth.lib import data

__all__ = ["Wait", "Stall", "WAIT_BITS", "progress_layout", "tile_watch_layout", "links_layout",
           "stall_status_layout", "wait_arg", "split_wait_arg", "Limits", "limits", "link_checks", "LinkChecks",
           "LOCAL_SLACK", "STALL_FACTOR"]


class Wait(py_enum.IntEnum):
    """What a unit waits for (its watchdog report).  ``group`` orders the reports when
    the system names one unit: 0 a link, 1 a router's output or local port, 2 a slot
    (credits of rules R2, R6, R7), 3 a unit held by its router, 4 a unit waiting for work
    from elsewhere; ``NONE`` (group 7) loses to every wait."""

    def __new__(cls, value, group, description):
        obj = int.__new__(cls, value)
        obj._value_ = value
        obj.group = group
        obj.description = description
        return obj

    NONE = 0, 7, "nothing"
    # router: a flit at an input (``arg``: wait_arg(output channel, input channel))
    CREDIT = 1, 0, "a credit"
    LINK = 2, 0, "the link to take a flit"
    OUTPUT = 3, 1, "an output held by another packet"
    EJECT = 4, 1, "the tile to take an ejected packet"
    SLOT_WRITE = 5, 1, "the slot write port"
    # router: its engines (``arg``: the chiplet asked, where there is one)
    GRANT = 6, 2, "a GRANT for its next forward (R7)"
    RELEASE = 7, 2, "its predecessor's RELEASE before forwarding (R2)"
    SLOTS = 8, 2, "free slots for its DRAM channel's packet (R6)"
    DRAM_GRANT = 9, 2, "a GRANT for its DRAM channel's WEIGHT"
    # DRAM channel
    ROUTER = 10, 3, "its router to take a flit"
    # controller
    SEND = 11, 3, "its router to take a packet it sends"
    ENGINE = 12, 4, "the slice engine to finish a job"
    TOKEN = 13, 4, "a TOKEN packet"
    ARRIVAL = 14, 4, "a slice arrival"
    RESULT = 15, 4, "a RESULT packet"
    # slice engine
    DONE = 16, 4, "the controller to take a finished job"


WAIT_BITS = max(w.value for w in Wait).bit_length()


class Stall(py_enum.IntEnum):
    """Why the watchdog fired."""

    NO_PROGRESS = 0     # no unit made progress for stall_limit cycles
    STARVED = 1         # a flit waited age_limit cycles at a router input
    LINK_STUCK = 2      # a link took no offered flit for longer than its shaper allows
    CREDIT_LOST = 3     # a link VC's sender holds too few credits with nothing in flight


def wait_arg(output, input_):
    """The argument of a router input's wait: its target output channel (low four bits)
    and the input channel (high four), both as :func:`hw.router.input_channel_names` and
    ``hw.router`` number them."""
    return output | (input_ << 4)


def split_wait_arg(arg: int) -> tuple[int, int]:
    """``(output channel, input channel)`` of :func:`wait_arg`."""
    return arg & 0xF, arg >> 4


def progress_layout() -> data.StructLayout:
    """One unit's watchdog report: ``since`` cycles since it last made progress (0 while it
    has nothing to do), what it waits for (``wait``, ``arg``) and for how many cycles
    (``age``)."""
    return data.StructLayout({"since": unsigned(32), "wait": unsigned(WAIT_BITS), "arg": unsigned(8),
                              "age": unsigned(32)})


def links_layout() -> data.StructLayout:
    """A tile's link checks (:func:`link_checks`), per outgoing link ``stuck`` (bit
    ``direction``), per outgoing link VC ``credit_idle`` (no flit sent for
    ``send_quiet`` cycles and fewer credits than buffer entries) and per incoming link VC
    ``empty`` (the input buffer empty for ``empty_quiet`` cycles); VC bits are
    ``2 * direction + vc``."""
    return data.StructLayout({"stuck": unsigned(4), "credit_idle": unsigned(8), "empty": unsigned(8)})


def tile_watch_layout() -> data.StructLayout:
    """A tile's watchdog reports (:attr:`hw.tile.Tile.watch`)."""
    return data.StructLayout({"router": progress_layout(), "controller": progress_layout(),
                              "engine": progress_layout(), "links": links_layout()})


def stall_status_layout() -> data.StructLayout:
    """The system's watchdog status (:attr:`hw.system.System.stall_status`): why it fired
    (:class:`Stall`), the unit it names (chiplet, :class:`hw.errors.Unit`), what that unit
    waits for and since which cycle, and the cycle it fired."""
    return data.StructLayout({"cause": unsigned(2), "chiplet": unsigned(8), "unit": unsigned(3),
                              "wait": unsigned(WAIT_BITS), "arg": unsigned(8), "since": unsigned(32),
                              "cycle": unsigned(32)})


#: Cycles of local pipelines between two steps of progress (the controller's two-cycle
#: instructions and five-cycle LUT, FIFO and arbitration stages, the weight buffer's read).
LOCAL_SLACK = 16
#: Margin of ``stall_limit`` over the longest gap a correct run can have.
STALL_FACTOR = 4


@dataclass(frozen=True)
class Limits:
    """Watchdog limits of one configuration, in cycles (docs/system.md states the
    formulas).

    stall_limit : int
        No progress anywhere for this long stops the system.
    age_limit : int
        A flit waiting this long at one router input stops the system.
    quiet_gap : int
        The longest stretch with no progress anywhere a correct run can have.
    packet_flits, slowest_interval : int
        The largest packet (header and payload flits) and the slowest source's cycles per
        flit, from which ``age_limit`` follows.
    """

    stall_limit: int
    age_limit: int
    quiet_gap: int
    packet_flits: int
    slowest_interval: int


def _interval(rate) -> int:
    num, den = rate
    return -(-den // num)


@dataclass(frozen=True)
class LinkChecks:
    """The link checks' thresholds, in cycles (build constants of the tile).

    stuck_after : int
        A flit offered to an outgoing link and not taken for this many cycles in a row:
        the link is stuck (its shaper lets a flit through at least every
        ``ceil(den / num)`` cycles).
    send_quiet, empty_quiet : int
        A link VC on which nothing was sent for ``send_quiet`` cycles, whose receiving
        buffer has been empty for ``empty_quiet`` cycles, has every flit delivered and
        every credit back: its sender must hold exactly ``buffer_depth`` credits.
    """

    stuck_after: int
    send_quiet: int
    empty_quiet: int


def link_checks(link_latency: int, link_rate) -> LinkChecks:
    """``stuck_after = ceil(den / num) + 1``; ``send_quiet = 2 * link_latency + 4`` (a flit
    sent reaches the receiving buffer ``link_latency`` cycles later and is counted there
    one cycle after); ``empty_quiet = link_latency + 2`` (a credit leaves as its flit
    leaves the buffer, and counts at the sender ``link_latency + 1`` cycles later)."""
    return LinkChecks(stuck_after=_interval(link_rate) + 1, send_quiet=2 * link_latency + 4,
                      empty_quiet=link_latency + 2)


def limits(config) -> Limits:
    """The watchdog limits of ``config`` (a :class:`hw.config.SystemConfig`).

    * ``quiet_gap = 2 * (2 * link_latency + 3) + ceil(link_den / link_num) + LOCAL_SLACK``:
      in a correct run some unit progresses at least once per flit hop, credit return
      (each ``link_latency``, with the router's three buffer and arbitration stages) and
      shaper interval; a DRAM channel waiting for its access latency or bandwidth is making
      progress of its own, and the slice engine progresses while it computes.
    * ``stall_limit = STALL_FACTOR * quiet_gap``.
    * ``age_limit = inputs * hops * (packet_flits * slowest_interval + 2 * link_latency +
      dram_latency + dram_jitter) + stall_limit`` (a request's latency is at most
      ``dram_latency + dram_jitter``): a head flit waits at most for the packets of the other
      crossbar inputs (round-robin: ``inputs = 12``) to pass its output, each at most
      ``packet_flits = 1 + weight_words * lanes`` (a fill of the whole weight buffer) at
      the slowest source's pace, ``slowest_interval = max(ceil(dram_den / dram_num),
      ceil(link_den / link_num), ceil((2 * link_latency + 3) / buffer_depth))`` (a
      cut-through WEIGHT holds its path at the DRAM channel's rate), and each of them may
      itself be held that long on each of the ``hops = rows + cols - 1`` routers of its
      path.
    """
    link_interval = _interval(config.link_rate)
    credit_interval = -(-(2 * config.link_latency + 3) // config.buffer_depth)
    slowest = max(_interval(config.dram_rate), link_interval, credit_interval)
    quiet = 2 * (2 * config.link_latency + 3) + link_interval + LOCAL_SLACK
    stall = STALL_FACTOR * quiet
    lanes = config.tile.word_bytes // config.tile.link_bytes
    packet = 1 + config.tile.weight_words * lanes
    inputs = 12
    hops = config.rows + config.cols - 1
    age = inputs * hops * (packet * slowest + 2 * config.link_latency + config.dram_latency
                       + config.dram_jitter) + stall
    return Limits(stall_limit=stall, age_limit=min(age, (1 << 32) - 1), quiet_gap=quiet, packet_flits=packet,
                  slowest_interval=slowest)
