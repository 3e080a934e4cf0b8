"""The slot allocator and slot-state table of one chiplet (rules R2, R5, R6).

The router owns the chiplet's weight slots: it decides which slot an incoming slice or
weight load goes to, and when a slot may be reused.  The tile only ever sees
"slice arrived in slot s" and answers "compute on slot s done".
"""

from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

from .errors import SLOT_ERRORS, RouterError, bit
from .packets import PacketKind

__all__ = ["SlotState", "SlotTable", "check_count"]


def check_count(what: str, value, low: int = 1, high: int | None = None) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise TypeError(f"{what} must be an integer of at least {low}, not {value!r}")
    if high is not None and value > high:
        raise ValueError(f"{what} must be at most {high}, not {value!r}")
    return value


class SlotState(enum.Enum, shape=2):
    FREE = 0
    RESERVED = 1   # promised to a transfer (a grant went out, or DRAM is filling it)
    HELD = 2       # holds a complete slice or weight load


class SlotTable(wiring.Component):
    """Slot allocator and per-slot state.

    A slot goes FREE -> RESERVED (allocated to a transfer) -> HELD (the transfer
    completed) -> FREE.  A HELD slot carries three "still needed" bits: ``computing``
    (until the tile's ``compute_done``), ``forwarding`` (until the forward engine has
    streamed it to the successor) and ``releasing`` (until a RELEASE packet telling the
    successor that this copy is gone has been sent); it becomes FREE in the cycle after
    the last of them clears (R5: never before both compute and forward are done).  The
    ``sole`` bit records that no other chiplet still holds the slice, which the forward
    engine waits for (R2).

    Allocation hands out the lowest FREE slot below ``slot_count``.  A *remote* request
    (a RESERVE from the ring predecessor or a DRAM channel elsewhere) needs one free
    slot; a *local* request (this chiplet's DRAM channel) needs two when ``local_min2``
    is set (R6, SLICE injection) and one otherwise (a WEIGHT load).  Remote requests win
    when both ask in the same cycle, so a free slot goes to ring traffic first.

    Parameters
    ----------
    max_slots : int
        Slots the table can track (the largest runtime ``slot_count``), 2..256.
    injection_headroom : int
        Free slots a local request with ``local_min2`` needs (R6: 2, the default; 1 turns
        the rule off; :attr:`hw.config.SystemConfig.injection_headroom`).

    Members
    -------
    slot_count : In(range(max_slots + 1))
        Slots in use (runtime; change only while every slot is FREE).
    alloc_remote : In(1)
        Allocate a slot for a remote request this cycle if one is free.
    alloc_remote_ok : Out(1)
        The remote allocation happened (``alloc_slot`` is the slot).
    alloc_local, alloc_local_min2 : In(1)
        Allocate for the local DRAM channel; ``min2``: only with two free slots.
    alloc_local_ok : Out(1)
    alloc_slot : Out(range(max_slots))
        Lowest free slot (meaningful with an ``ok``).
    can_remote, can_local : Out(1)
        One free slot / enough free slots for the local request (for callers that must
        know before asking).
    fill : In(stream.Signature(fill_layout))
        ``{slot, kind, expert, slice, hops, length, sole, forward, compute}``: a transfer
        into a RESERVED slot completed (``compute``: the tile will compute on it; 0 for a
        relayed weight load, which is only forwarded); always ready.  A fill of a slot
        that is not RESERVED changes nothing and sets ``FILL_NOT_RESERVED``.
    compute_done : In(stream.Signature(slot))
        The tile finished computing on a slot; always ready.
    forwarded : In(stream.Signature(forwarded_layout))
        ``{slot, dst_slot, release}``: the forward of a slot is done; ``release``: send a
        RELEASE for ``dst_slot`` before freeing.  Always ready.
    release_in : In(stream.Signature(slot))
        The predecessor's copy of the slice in this slot is gone; always ready.
    release_out : Out(stream.Signature(release_layout))
        ``{slot, dst_slot}``: a slot wants to send its RELEASE.
    query_slot : In(range(max_slots))
    query : Out(meta_layout)
        Metadata and state bits of ``query_slot`` (combinational).
    free_count, occupancy, high_water : Out(range(max_slots + 1))
        FREE slots below ``slot_count``; slots not FREE; largest occupancy seen.
    states : Out(data.ArrayLayout(SlotState, max_slots))
    clear : In(1)
        Reset ``high_water`` to the current occupancy.
    error : Out(4)
        Sticky error bits: the low four bits of :class:`hw.errors.RouterError`
        (:data:`hw.errors.SLOT_ERRORS`).
    """

    def __init__(self, *, max_slots: int = 16, injection_headroom: int = 2):
        check_count("Slot count", max_slots, 2, 256)
        check_count("Injection headroom", injection_headroom, 1, 256)
        self.max_slots, self.injection_headroom = max_slots, injection_headroom
        slot = unsigned(max(1, (max_slots - 1).bit_length()))
        self.slot_shape = slot
        self.meta_fields = {"kind": PacketKind, "expert": unsigned(8), "slice": unsigned(8),
                            "hops": unsigned(8), "length": unsigned(16)}
        self.fill_layout = data.StructLayout({"slot": slot, **self.meta_fields,
                                              "sole": unsigned(1), "forward": unsigned(1),
                                              "compute": unsigned(1)})
        self.forwarded_layout = data.StructLayout({"slot": slot, "dst_slot": unsigned(8),
                                                   "release": unsigned(1)})
        self.release_layout = data.StructLayout({"slot": slot, "dst_slot": unsigned(8)})
        self.meta_layout = data.StructLayout({**self.meta_fields, "state": SlotState,
                                              "computing": unsigned(1), "forwarding": unsigned(1),
                                              "releasing": unsigned(1), "sole": unsigned(1),
                                              "dst_slot": unsigned(8)})
        count = range(max_slots + 1)
        super().__init__({
            "slot_count": In(count),
            "alloc_remote": In(1), "alloc_remote_ok": Out(1),
            "alloc_local": In(1), "alloc_local_min2": In(1), "alloc_local_ok": Out(1),
            "alloc_slot": Out(slot),
            "can_remote": Out(1), "can_local": Out(1),
            "fill": In(stream.Signature(self.fill_layout)),
            "compute_done": In(stream.Signature(slot)),
            "forwarded": In(stream.Signature(self.forwarded_layout)),
            "release_in": In(stream.Signature(slot)),
            "release_out": Out(stream.Signature(self.release_layout)),
            "query_slot": In(slot),
            "query": Out(self.meta_layout),
            "free_count": Out(count), "occupancy": Out(count), "high_water": Out(count),
            "states": Out(data.ArrayLayout(SlotState, max_slots)),
            "clear": In(1),
            "error": Out(4),
        })

    def elaborate(self, platform):
        m = Module()
        n = self.max_slots
        slots = [Signal(self.meta_layout, name=f"slot{i}") for i in range(n)]

        # Free slots, the lowest of them, and how many.
        free = Signal(n)
        m.d.comb += free.eq(Cat(*[(s.state == SlotState.FREE) & (i < self.slot_count)
                                  for i, s in enumerate(slots)]))
        lowest = Signal(self.slot_shape)
        for i in reversed(range(n)):
            with m.If(free[i]):
                m.d.comb += lowest.eq(i)
        m.d.comb += [
            self.free_count.eq(sum(free[i] for i in range(n))),
            self.occupancy.eq(sum(s.state != SlotState.FREE for s in slots)),
            self.alloc_slot.eq(lowest),
            self.can_remote.eq(self.free_count >= 1),
            self.can_local.eq(self.free_count >= Mux(self.alloc_local_min2, self.injection_headroom, 1)),
            self.alloc_remote_ok.eq(self.alloc_remote & self.can_remote),
            self.alloc_local_ok.eq(self.alloc_local & self.can_local & ~self.alloc_remote_ok),
            self.states.eq(Cat(*[s.state for s in slots])),
        ]
        with m.If(self.clear):
            m.d.sync += self.high_water.eq(self.occupancy)
        with m.Elif(self.occupancy > self.high_water):
            m.d.sync += self.high_water.eq(self.occupancy)

        # A slot that wants to send its RELEASE (the lowest such).
        wants_release = Signal(n)
        m.d.comb += wants_release.eq(Cat(*[(s.state == SlotState.HELD) & s.releasing & ~s.computing
                                           & ~s.forwarding for s in slots]))
        rel_slot = Signal(self.slot_shape)
        for i in reversed(range(n)):
            with m.If(wants_release[i]):
                m.d.comb += rel_slot.eq(i)
        m.d.comb += [
            self.release_out.valid.eq(wants_release.any()),
            self.release_out.payload.slot.eq(rel_slot),
            self.release_out.payload.dst_slot.eq(Cat(*[s.dst_slot for s in slots]).word_select(rel_slot, 8)),
        ]

        for stream_ in (self.fill, self.compute_done, self.forwarded, self.release_in):
            m.d.comb += stream_.ready.eq(1)

        assert int(SLOT_ERRORS) == (1 << len(self.error)) - 1
        error = Signal(4)
        allocated = self.alloc_remote_ok | self.alloc_local_ok
        fill, fwd = self.fill.payload, self.forwarded.payload
        for i, s in enumerate(slots):
            hit_alloc = allocated & (lowest == i)
            hit_fill = self.fill.valid & (fill.slot == i)
            hit_done = self.compute_done.valid & (self.compute_done.payload == i)
            hit_fwd = self.forwarded.valid & (fwd.slot == i)
            hit_rel_in = self.release_in.valid & (self.release_in.payload == i)
            hit_rel_out = self.release_out.valid & self.release_out.ready & (rel_slot == i)
            with m.If(hit_alloc):
                m.d.sync += [s.state.eq(SlotState.RESERVED), s.sole.eq(0), s.computing.eq(0),
                             s.forwarding.eq(0), s.releasing.eq(0)]
            with m.If(hit_fill):
                with m.If(s.state != SlotState.RESERVED):
                    m.d.comb += error[bit(RouterError.FILL_NOT_RESERVED)].eq(1)
                with m.Else():
                    m.d.sync += [s.state.eq(SlotState.HELD), s.computing.eq(fill.compute),
                                 s.forwarding.eq(fill.forward), s.releasing.eq(0)]
                    for name in self.meta_fields:
                        m.d.sync += getattr(s, name).eq(getattr(fill, name))
            with m.If(hit_fill & fill.sole & (s.state == SlotState.RESERVED) | hit_rel_in):
                m.d.sync += s.sole.eq(1)
            with m.If(hit_rel_in & (s.state == SlotState.FREE)):
                m.d.comb += error[bit(RouterError.RELEASE_FREE_SLOT)].eq(1)
            with m.If(hit_done):
                with m.If((s.state != SlotState.HELD) | ~s.computing):
                    m.d.comb += error[bit(RouterError.COMPUTE_NOT_PENDING)].eq(1)
                m.d.sync += s.computing.eq(0)
            with m.If(hit_fwd):
                with m.If((s.state != SlotState.HELD) | ~s.forwarding):
                    m.d.comb += error[bit(RouterError.FORWARD_NOT_PENDING)].eq(1)
                m.d.sync += [s.forwarding.eq(0), s.releasing.eq(fwd.release), s.dst_slot.eq(fwd.dst_slot)]
            with m.If(hit_rel_out):
                m.d.sync += s.releasing.eq(0)
            # Free once compute, forward and release are all done (R5).
            with m.If((s.state == SlotState.HELD) & ~s.computing & ~s.forwarding & ~s.releasing
                      & ~hit_fill):
                m.d.sync += s.state.eq(SlotState.FREE)
        m.d.sync += self.error.eq(self.error | error)

        m.d.comb += self.query.eq(slots[0])
        for i in range(1, n):
            with m.If(self.query_slot == i):
                m.d.comb += self.query.eq(slots[i])
        return m
