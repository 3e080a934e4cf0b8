"""The D2D router of one chiplet: mesh links, slice trajectories and slot credits.

The router moves micro-slices along their ring (the FSE-DP rules R1 to R7,
as ``docs/router.md`` states them)
and unicast tokens, results and weight loads between chiplets.  It owns the chiplet's
weight slots (:class:`hw.slot_table.SlotTable`); the tile computes on slots and says
when it is done.  See :class:`Router` for ports and protocols.
"""

from amaranth.hdl import Array, Cat, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from .crossbar import (DIRS, Channel, Dir, count, header, input_bookkeeping, link_arbiters, link_inputs,
                       mesh_position, output_allocators, port_counters_and_errors, route_computer, rr_pick,
                       stamp_source, tile_and_drop_sinks)
from .errors import SLOT_ERRORS, RouterError, bit
from .faults import Fault, unit_fault_layout
from .link import link_signature
from .packets import NUM_VCS, VC_SLOT, VC_TILE, Agent, Flag, Header, PacketKind, check_link_bytes, flit_layout
from .slot_table import SlotState, SlotTable, check_count
from .watchdog import Wait, progress_layout, wait_arg

__all__ = ["Dir", "DIRS", "Router", "RouterError", "tile_signature", "config_signature",
           "stats_signature", "input_channel_names"]


def config_signature(max_slots: int) -> wiring.Signature:
    """Runtime configuration, as the router sees it (all inputs; hold them stable while
    traffic flows).

    Members
    -------
    chiplet_id : 8 bits
        This chiplet, ``r * cols + c``.
    rows, cols : 8 bits
        Mesh size (at least 1 x 1).
    successor : 8 bits
        R1: the chiplet every forwarded slice goes to (any chiplet; not necessarily a
        neighbour: non-adjacent successors are reached by XY routing through other
        routers, which do not touch their slots).
    ring_len : 8 bits
        R3: chiplets on this chiplet's ring; a slice is forwarded ``ring_len - 1`` times.
    slot_count : range(max_slots + 1)
        Weight slots in use (at least 2 for FSE-DP, R6).
    age_limit : 32 bits
        Starvation check: a flit waiting this many cycles at the head of any router input
        sets ``stats.starved`` (0: off).
    """
    return wiring.Signature({
        "chiplet_id": Out(8), "rows": Out(8), "cols": Out(8),
        "successor": Out(8), "ring_len": Out(8),
        "slot_count": Out(range(max_slots + 1)),
        "age_limit": Out(32),
    })


def tile_signature(*, link_bytes: int, slot_shape, flit_bits: int) -> wiring.Signature:
    """The router's side of the local tile interface (``Out`` = driven by the router).

    Members
    -------
    wr : Out(stream.Signature({slot, flit, data}))
        Write payload flit ``flit`` of weight slot ``slot`` (the buffer adds the slot's
        base address: word ``flit // lanes``, lane ``flit % lanes``; see
        ``hw.sram.WeightBuffer.wr``).
    rd_req : Out(stream.Signature({slot, flit}))
        Read a flit of a slot for forwarding.
    rd_data : In(stream.Signature(8 * link_bytes))
        The flits read, in request order (``WeightBuffer.fwd_data``).
    arrival : Out(stream.Signature({slot, kind, expert, slice, hops, length}))
        A slice or weight load is complete in ``slot``; compute on it, then answer with
        ``compute_done``.
    compute_done : In(stream.Signature(slot))
        The tile finished with a slot.
    inject : In(stream.Signature({data, last}))
        TOKEN and RESULT packets from the tile (header flit first; the router stamps
        ``src``).  Other kinds are dropped and flagged.
    eject : Out(stream.Signature({data, last}))
        TOKEN and RESULT packets for the tile.
    """
    width = 8 * link_bytes
    return wiring.Signature({
        "wr": Out(stream.Signature(data.StructLayout({"slot": slot_shape, "flit": unsigned(flit_bits),
                                                      "data": unsigned(width)}))),
        "rd_req": Out(stream.Signature(data.StructLayout({"slot": slot_shape, "flit": unsigned(flit_bits)}))),
        "rd_data": In(stream.Signature(unsigned(width))),
        "arrival": Out(stream.Signature(data.StructLayout({
            "slot": slot_shape, "kind": PacketKind, "expert": unsigned(8), "slice": unsigned(8),
            "hops": unsigned(8), "length": unsigned(16)}))),
        "compute_done": In(stream.Signature(slot_shape)),
        "inject": In(stream.Signature(flit_layout(link_bytes))),
        "eject": Out(stream.Signature(flit_layout(link_bytes))),
    })


#: Input channels of the crossbar, in index order (for ``stats.waiting`` and
#: ``stats.starved_channel``).
def input_channel_names() -> list[str]:
    return ([f"{d.upper()}.vc{v}" for d in DIRS for v in range(NUM_VCS)]
            + ["tile", "forward", "dram", "control"])


def stats_signature(max_slots: int, counter_bits: int = 32, max_chiplets: int = 16) -> wiring.Signature:
    """Counters and status, all outputs.

    Members
    -------
    link_flits, link_busy, link_stalled : ArrayLayout(counter_bits, 4)
        Per output link (N, E, S, W): flits sent; cycles a packet held the link (a flit
        offered or a packet in progress on any VC); cycles a flit was offered but none
        was sent (no credit, or the shaper's token not yet there).
    link_header_flits : ArrayLayout(counter_bits, 4)
        Per output link: header flits sent (one per packet; a control packet is its
        header), so ``link_flits - link_header_flits`` are payload flits.
    switched_flits : counter_bits
        Flits through the crossbar: every flit an output channel (a link VC or a local
        sink) takes, whatever its input.  The DRAM writer's fills of this chiplet's own
        slots do not cross the crossbar.
    slot_flits, eject_flits, inject_flits, dram_flits : counter_bits
        Payload flits written into slots; flits ejected to / injected by the tile; flits
        taken from the DRAM port.
    arrivals, forwards : counter_bits
        Slot fills completed; slices forwarded to the successor.
    free_count, occupancy, high_water : range(max_slots + 1)
        Free slots; slots in use; largest occupancy since the last ``clear``.
    error : 10 bits
        Sticky :class:`hw.errors.RouterError` bits.
    starved : 1, starved_channel : 4 bits
        Sticky: a flit waited ``cfg.age_limit`` cycles at an input (which one: an index
        into :func:`input_channel_names`).
    waiting : 12 bits
        Per input channel: a flit is waiting this cycle.
    idle : 1
        Nothing in flight: every buffer and queue empty, no packet in progress, every
        slot FREE.
    releases : counter_bits
        RELEASE packets sent (forwards that started before this copy was computed).
    forward_wait_slot, forward_wait_release : counter_bits
        Cycles the forward engine had a slice to send but no grant from the successor
        (R5/R7), or a grant but its head slice still waited for the predecessor's RELEASE
        (R2).
    forward_queue : range(max_slots + 1)
        Slices waiting to be forwarded (including the one streaming).
    forward_status : 4 bits
        Forward engine: bit 0 a RESERVE to the successor in flight, bit 1 an unused
        grant held, bit 2 streaming, bit 3 the head slice waits for its predecessor's
        RELEASE (R2).
    requests : range(2 * max_chiplets + 1)
        RESERVEs queued here, waiting for a free slot.
    dram_waiting : 1
        The DRAM channel offers a packet that waits for slots (R6) or a grant.
    progress : 1
        The router made progress this cycle: a flit entered an input buffer, crossed the
        crossbar, was written into a slot or taken from the DRAM channel, a fill
        completed, or a credit came back.
    watch : hw.watchdog.progress_layout()
        Watchdog report: ``since`` cycles since the last progress (0 while ``idle``);
        what the router waits for (:class:`hw.watchdog.Wait`): the input whose head flit
        has waited longest (found by a scan of one input per cycle) and what holds it (a
        credit, the link, an output held by another packet, the tile, the slot write
        port; ``arg`` = ``wait_arg(output, input)``), else the forward engine's GRANT
        (``arg``: the chiplet asked) or RELEASE, else the DRAM channel's packet waiting
        for slots or a GRANT; ``age``: for how many cycles.
    age_high_water : 32 bits
        The longest wait of a head flit at an input seen since the last ``clear`` (what
        ``cfg.age_limit`` must stay above in a correct run).
    credits_full, inputs_empty : 8 bits
        Per link VC (``2 * direction + vc``): the output's credit counter holds
        ``buffer_depth`` (every credit back); the input buffer is empty.  For the tile's
        link checks (``hw.watchdog.link_checks``).
    """
    count = range(max_slots + 1)
    return wiring.Signature({
        "link_flits": Out(data.ArrayLayout(counter_bits, 4)),
        "link_busy": Out(data.ArrayLayout(counter_bits, 4)),
        "link_stalled": Out(data.ArrayLayout(counter_bits, 4)),
        "link_header_flits": Out(data.ArrayLayout(counter_bits, 4)),
        "switched_flits": Out(counter_bits),
        "slot_flits": Out(counter_bits), "eject_flits": Out(counter_bits),
        "inject_flits": Out(counter_bits), "dram_flits": Out(counter_bits),
        "arrivals": Out(counter_bits), "forwards": Out(counter_bits),
        "free_count": Out(count), "occupancy": Out(count), "high_water": Out(count),
        "error": Out(10),
        "starved": Out(1), "starved_channel": Out(4),
        "waiting": Out(12),
        "idle": Out(1),
        "releases": Out(counter_bits),
        "forward_wait_slot": Out(counter_bits), "forward_wait_release": Out(counter_bits),
        "forward_queue": Out(count), "forward_status": Out(4),
        "requests": Out(range(2 * max_chiplets + 1)), "dram_waiting": Out(1),
        "progress": Out(1), "watch": Out(progress_layout()), "age_high_water": Out(32),
        "credits_full": Out(8), "inputs_empty": Out(8),
    })


def _watchdog(m, router, *, progress, waiting, ages, targets, out, credits, oc_slot, oc_tile, engines):
    """``stats.progress``, ``stats.watch`` and ``stats.age_high_water`` (see
    :func:`stats_signature`).  ``waiting``/``ages``/``targets``: per input channel index
    (the crossbar's inputs in that order); ``out``: the output channels
    (:class:`hw.crossbar.Outputs`); ``engines``: ``(waiting, code, arg, name)`` of the
    router's engines, in the order they are reported when no input waits."""
    st = router.stats
    w = st.watch
    saturated = (1 << len(w.since)) - 1
    m.d.comb += st.progress.eq(progress)
    with m.If(progress | st.idle):
        m.d.sync += w.since.eq(0)
    with m.Elif(w.since != saturated):
        m.d.sync += w.since.eq(w.since + 1)

    # The input whose head flit has waited longest: a scan compares one input per cycle
    # with the oldest so far (exact within one round of the inputs).
    n = len(ages)
    # Where each input's flit goes: the output its packet holds (a payload flit), else the
    # one its header asks for.
    heading = []
    for k in range(n):
        t = Signal.like(targets[k], name=f"watch_target_{k}")
        m.d.comb += t.eq(targets[k])
        for o, owners in enumerate(out.owner_of):
            for i, is_owner in owners:
                if i == k:
                    with m.If(out.locked[o] & is_owner):
                        m.d.comb += t.eq(o)
        heading.append(t)
    age_of = Array(ages[k] for k in range(n))
    waits_of = Array(waiting[k] for k in range(n))
    target_of = Array(heading)
    scan = Signal(range(n), name="watch_scan")
    oldest = Signal(range(n), name="watch_oldest")
    m.d.sync += scan.eq(Mux(scan == n - 1, 0, scan + 1))
    with m.If(~waits_of[oldest] | (waits_of[scan] & (age_of[scan] > age_of[oldest]))):
        m.d.sync += oldest.eq(scan)
    oldest_age = Signal(32, name="watch_oldest_age")
    oldest_target = Signal.like(targets[0], name="watch_oldest_target")
    m.d.comb += [oldest_age.eq(age_of[oldest]), oldest_target.eq(target_of[oldest])]
    no_credit = Signal(len(credits), name="watch_no_credit")
    link_ready = Signal(len(router.outputs), name="watch_link_ready")
    m.d.comb += [no_credit.eq(Cat(*[c == 0 for c in credits])),
                 link_ready.eq(Cat(*[p.ready for p in router.outputs]))]
    with m.If(waits_of[oldest]):
        m.d.comb += [w.arg.eq(wait_arg(oldest_target, oldest)), w.age.eq(oldest_age)]
        with m.If(oldest_target < len(credits)):
            with m.If(no_credit.bit_select(oldest_target, 1)):
                m.d.comb += w.wait.eq(Wait.CREDIT)
            with m.Elif(~link_ready.bit_select(oldest_target >> 1, 1)):
                m.d.comb += w.wait.eq(Wait.LINK)
            with m.Else():
                m.d.comb += w.wait.eq(Wait.OUTPUT)
        with m.Elif(oldest_target == oc_slot):
            m.d.comb += w.wait.eq(Wait.SLOT_WRITE)
        with m.Elif(oldest_target == oc_tile):
            m.d.comb += w.wait.eq(Wait.EJECT)
        with m.Else():
            m.d.comb += w.wait.eq(Wait.OUTPUT)
        with m.If(oldest_age > st.age_high_water):
            m.d.sync += st.age_high_water.eq(oldest_age)
    with m.If(router.clear):
        m.d.sync += st.age_high_water.eq(0)
    # The engines, reported only when no input waits (the first listed first).
    reported = waits_of[oldest]
    for waits, code, arg, name in engines:
        age = Signal(32, name=f"watch_{name}_age")
        with m.If(~waits):
            m.d.sync += age.eq(0)
        with m.Elif(age != saturated):
            m.d.sync += age.eq(age + 1)
        with m.If(waits & ~reported):
            m.d.comb += [w.wait.eq(code), w.arg.eq(arg), w.age.eq(age)]
        reported = reported | waits


class _SlotWriter:
    """What a slot writer presents to the shared write port each cycle: a payload flit to
    write (``has_data``) and/or the completion of a fill (``complete``, with the fill's
    metadata).  ``done``: the presented action happened this cycle."""

    def __init__(self, name, slot_shape, width):
        self.req = Signal(name=f"{name}_req")
        self.has_data = Signal(name=f"{name}_has_data")
        self.slot = Signal(slot_shape, name=f"{name}_slot")
        self.flit = Signal(16, name=f"{name}_flit")
        self.data = Signal(width, name=f"{name}_data")
        self.complete = Signal(name=f"{name}_complete")
        self.kind = Signal(PacketKind, name=f"{name}_kind")
        self.expert = Signal(8, name=f"{name}_expert")
        self.slice = Signal(8, name=f"{name}_slice")
        self.hops = Signal(8, name=f"{name}_hops")
        self.length = Signal(16, name=f"{name}_length")
        self.sole = Signal(name=f"{name}_sole")
        self.relay = Signal(name=f"{name}_relay")       # a weight load staged here for ``dst``
        self.dst = Signal(8, name=f"{name}_dst")
        self.done = Signal(name=f"{name}_done")


class Router(wiring.Component):
    """D2D router of one chiplet.

    Traffic and flow control
    ------------------------
    Links are credit based with two virtual channels (``hw.packets.vc_of``): VC 0 for
    TOKEN and RESULT packets, VC 1 for slot traffic (SLICE, WEIGHT) and slot-credit
    control packets (RESERVE, GRANT, RELEASE).  Packets are routed dimension-order (XY:
    along the row to the destination column, then along the column), wormhole switched:
    an output VC belongs to one input from a packet's header to its last flit, and the
    two VCs of a link interleave flit by flit.  A successor that is not a neighbour is
    reached the same way: the routers in between switch the slice like any packet and
    never touch their own slots.

    Slot credits (R5, R7) travel as control packets over VC 1, so they work for
    successors and weight destinations anywhere in the mesh:

    1. an agent that needs a slot at chiplet *d* (the forward engine for the successor,
       the DRAM channel for a WEIGHT load to another chiplet) sends RESERVE to *d*; each
       agent has at most one RESERVE in flight and one unused grant;
    2. *d* queues the request (FIFO, room for two per chiplet) and answers GRANT(slot)
       as soon as it has a free slot, marking the slot RESERVED;
    3. only then does the transfer start, its header naming the slot.

    The local DRAM channel allocates directly: a SLICE only when two slots are free
    (R6), a WEIGHT load for this chiplet when one is.  A remote request that finds one
    free slot is served first.  A WEIGHT for another chiplet either cuts through (the
    DRAM agent reserves a slot there and the payload streams from DRAM through the mesh
    at the channel's pace) or, flagged ``RELAY``, is staged in a local slot (two free,
    as for a SLICE), never announced to the tile, and sent on by the forward engine to
    its ``dst`` at link rate as a plain WEIGHT; its slot is freed when that forward ends.
    On the ring the forward engine reserves the successor's next slot while a slice
    streams; a relay's slot is reserved only for the entry at the head of the forward
    queue, whose destination is the only one known, so relays are for programs with
    ``RING_LEN`` 1.

    Slices (R1 to R3): a completed slice fill is announced to the tile (``arrival``) and,
    if it has made fewer than ``ring_len - 1`` forwards, queued for the forward engine,
    which streams it from the same slot to ``successor`` with ``hops + 1`` while the
    tile computes (copy-on-forward), in arrival order.  The forward waits for a grant
    from the successor (R7) and for this copy to be the slice's only upstream copy (R2):
    the predecessor marks its header SOLE when its own copy was already computed, and
    otherwise sends a RELEASE once its slot is free (only if the successor will forward
    the slice in turn: a last-hop copy frees its slot after compute and must never
    receive a RELEASE, which could otherwise hit the slot's next occupant).  A slot is
    freed when compute, forward and that RELEASE are all done (R5).

    Deadlock freedom
    ----------------
    *Channels.*  Every VC 1 packet is consumed by resources that never wait on the
    network: a slot reserved for it (written through the tile's weight write port, which
    must accept eventually whatever the network does; ``WeightBuffer.wr`` is always
    ready), the request FIFO (sized for every agent that can ask), the grant registers
    (one per agent, which has at most one request in flight) and the slot table.  XY
    routes have no cyclic channel dependency (``hw.topology`` checks the configured
    rings), so VC 1 always drains.  VC 0 drains as long as the tiles eventually take
    ejected tokens and results, and nothing on VC 1 ever waits for VC 0.
    *Slots.*  A forward waits for a slot at the successor, around the whole ring.  R6
    keeps every chiplet's last free slot for ring traffic, so the last slot to be filled
    on a ring is filled by a forward, and the sender of that forward then frees its
    copy: a ring can never be all full of slices waiting for their successors.  (The
    RTL deadlocks when R6 is removed, ``injection_headroom=1``, where ``scheduler.deadlock``
    predicts it: ``tests/test_deadlock.py``.)  The R2 wait ends when the
    predecessor's compute ends, which depends on nothing in the network.  Relays keep
    the same headroom (never staged into the last free slot) and land in slots freed by
    compute alone, so relays cannot wait for each other in a cycle.

    Members
    -------
    in_n, in_e, in_s, in_w : In(link_signature(link_bytes))
        Links from the four neighbours (``ready`` is always 1; credits go back).
    out_n, out_e, out_s, out_w : Out(link_signature(link_bytes))
        Links to the four neighbours.
    tile : Out(tile_signature(...))
        The local tile: weight-slot write and read ports, arrival events, compute_done,
        token injection and ejection.
    dram : In(stream.Signature(flit_layout(link_bytes)))
        The chiplet's DRAM channel (idle on chiplets without one): SLICE packets for this
        chiplet's ring, WEIGHT packets for any chiplet.  The router fills ``src``,
        ``slot`` and ``hops``.
    cfg : In(config_signature(max_slots))
        Chiplet id, mesh size, successor, ring length, slot count, age limit.
    stats : Out(stats_signature(...))
        Counters and status.
    clear : In(1)
        Clears the counters and the slot high-water mark.

    Parameters
    ----------
    link_bytes : int
        Flit width in bytes (at least 12, the header).
    max_slots : int
        Largest runtime slot count (2..256).
    max_chiplets : int
        Largest mesh (sizes the RESERVE queue: two agents per chiplet).
    buffer_depth : int
        Flits of input buffer per VC per link (the credits a neighbour starts with); a
        link runs at full rate with about ``2 * latency + 3``.
    flit_bits : int
        Width of the flit offset on the tile's ``wr`` and ``rd_req`` ports.
    counter_bits : int
        Width of the counters.
    virtualization : bool
        True (the default): the router described above.  False: the same crossbar, links,
        VCs, buffers and counters without the FSE-DP logic, for measuring its cost
        (``fsedp area``): no slot table, no RESERVE / GRANT / RELEASE (control packets are
        dropped as unknown kinds), no forward engine (no copy-on-forward, no hop counting),
        no R6 headroom.  The DRAM channel's packets enter the crossbar like any other
        packet; a SLICE or WEIGHT for this chiplet is written into the slot its header
        names (software chooses slots) and announced on ``arrival`` when complete;
        ``compute_done`` is ignored and ``rd_req`` is never used.  The slot-table, forward
        and request counters of ``stats`` and its watchdog members stay 0.
    faults : bool
        Test only (default False, which adds nothing): a ``fault`` input
        (:func:`hw.faults.unit_fault_layout`) that injects :attr:`~hw.faults.Fault.CREDIT_OVERFLOW`,
        :attr:`~hw.faults.Fault.UNRESERVED_FILL` and :attr:`~hw.faults.Fault.LENGTH`.
    injection_headroom : int
        Free slots the local DRAM channel needs for a SLICE or a RELAY (R6: 2, the
        default).  1 turns R6 off: ``tests/test_deadlock.py`` shows the ring deadlock it
        then allows, which ``scheduler.deadlock`` predicts.
    """

    def __init__(self, *, link_bytes: int = 16, max_slots: int = 16, max_chiplets: int = 16,
                 buffer_depth: int = 8, flit_bits: int = 16, counter_bits: int = 32,
                 virtualization: bool = True, faults: bool = False, injection_headroom: int = 2):
        check_link_bytes(link_bytes)
        check_count("Slot count", max_slots, 2, 256)
        check_count("Chiplet count", max_chiplets, 1, 256)
        check_count("Buffer depth", buffer_depth, 2, 1024)
        check_count("Flit offset width", flit_bits, 1, 16)
        check_count("Counter width", counter_bits, 8, 64)
        if not isinstance(virtualization, bool):
            raise TypeError(f"Virtualization must be True or False, not {virtualization!r}")
        if not isinstance(faults, bool) or (faults and not virtualization):
            raise TypeError(f"Fault injection must be True or False (and needs virtualization), not {faults!r}")
        self.faults = faults
        self.link_bytes, self.max_slots, self.max_chiplets = link_bytes, max_slots, max_chiplets
        self.buffer_depth, self.flit_bits, self.counter_bits = buffer_depth, flit_bits, counter_bits
        self.virtualization = virtualization
        self.width = 8 * link_bytes
        if virtualization:
            self.slots = SlotTable(max_slots=max_slots, injection_headroom=injection_headroom)
            self.slot_shape = self.slots.slot_shape
        else:
            self.slots = None
            self.slot_shape = unsigned(max(1, (max_slots - 1).bit_length()))   # as SlotTable's
        members = {}
        for d in DIRS:
            members[f"in_{d}"] = In(link_signature(link_bytes))
        for d in DIRS:
            members[f"out_{d}"] = Out(link_signature(link_bytes))
        members.update({
            "tile": Out(tile_signature(link_bytes=link_bytes, slot_shape=self.slot_shape, flit_bits=flit_bits)),
            "dram": In(stream.Signature(flit_layout(link_bytes))),
            "cfg": In(config_signature(max_slots)),
            "stats": Out(stats_signature(max_slots, counter_bits, max_chiplets)),
            "clear": In(1),
        })
        if faults:
            members["fault"] = In(unit_fault_layout())
        super().__init__(members)

    @property
    def inputs(self):
        return [getattr(self, f"in_{d}") for d in DIRS]

    @property
    def outputs(self):
        return [getattr(self, f"out_{d}") for d in DIRS]

    # -- microarchitecture -------------------------------------------------------------

    def elaborate(self, platform):
        """Input-queued router with static VC assignment.

        Each link input has one FIFO per VC (``buffer_depth`` flits; a freed entry sends
        a credit back).  Local sources (tile injection, forward engine, the DRAM channel's
        remote loads, the control-packet injector) are further crossbar inputs.  The
        route of a packet is computed from its header flit at the head of its input;
        each output channel (a link VC or a local sink: slot writer, control sink, tile
        ejection, drop) picks a requesting input round-robin and stays locked to it until
        the packet's last flit.  Each link picks one of its two VCs per cycle
        (round-robin among those with a flit and a credit); the flit leaves when the
        link's shaper allows.  Packets never change VC.

        Local engines: the *control sink* takes RESERVE (into the request FIFO), GRANT
        (into the asking agent's grant register) and RELEASE (into the slot table); the
        *allocator* turns the request at the FIFO head into a GRANT when a slot is free;
        the *network writer* and the *DRAM writer* write payload flits into the tile's
        slots (one write port, round-robin per flit) and complete fills; the *forward
        engine* streams queued slices to the successor.
        """
        if not self.virtualization:
            return self._elaborate_plain(platform)
        m = Module()
        m.submodules.slots = slots = self.slots
        cfg, tile, st = self.cfg, self.tile, self.stats
        W = self.width
        me = cfg.chiplet_id
        m.d.comb += [slots.slot_count.eq(cfg.slot_count), slots.clear.eq(self.clear)]

        position = mesh_position(m, cfg)
        n_chiplets = position[1]
        error = Signal(10, name="error_now")

        def make_header(name, **fields):
            """A header flit (a Signal of the flit width) with the given fields."""
            h = Signal(Header, name=f"{name}_header")
            for field, value in fields.items():
                m.d.comb += getattr(h, field).eq(value)
            flit = Signal(W, name=f"{name}_flit")
            m.d.comb += flit.eq(h.as_value())
            return flit

        fault = self.fault if self.faults else None
        if self.faults:
            # A one-shot fault acts once, on the first event after it became active.
            fault_used, fault_fires = Signal(name="fault_used"), Signal(name="fault_fires")
            with m.If(fault.code == Fault.NONE):
                m.d.sync += fault_used.eq(0)
            with m.Elif(fault_fires):
                m.d.sync += fault_used.eq(1)

        # ---- crossbar inputs: the links and the local sources -----------------------------
        ics, fifos = link_inputs(m, self, error, fault)
        ic_tile = Channel("tile", VC_TILE, width=W)
        ic_fwd = Channel("forward", VC_SLOT, width=W)
        ic_dram = Channel("dram", VC_SLOT, width=W)
        ic_ctl = Channel("control", VC_SLOT, width=W)
        ics += [ic_tile, ic_fwd, ic_dram, ic_ctl]
        assert [ic.name for ic in ics][8:] == ["tile", "forward", "dram", "control"]
        stamp_source(m, self, ic_tile)

        # ---- routing: SLICE / WEIGHT to the slot writer, TOKEN / RESULT to the tile,
        # control packets to the control sink ---------------------------------------------
        OC_SLOT, OC_CTL, OC_TILE, OC_DROP = 2 * 4, 2 * 4 + 1, 2 * 4 + 2, 2 * 4 + 3
        oc_vc = [v for d in range(4) for v in range(NUM_VCS)] + [VC_SLOT, VC_SLOT, VC_TILE, None]

        def local(h, kind_vc, target):
            with m.Switch(h.kind):
                with m.Case(PacketKind.SLICE, PacketKind.WEIGHT):
                    m.d.comb += target.eq(OC_SLOT)
                with m.Case(PacketKind.TOKEN, PacketKind.RESULT):
                    m.d.comb += target.eq(OC_TILE)
                with m.Default():
                    m.d.comb += target.eq(OC_CTL)

        targets = route_computer(m, ics, cfg, position, n_outputs=len(oc_vc), oc_drop=OC_DROP,
                                 last_known=PacketKind.RELEASE, local=local)
        out = output_allocators(m, ics, targets, oc_vc, W)
        credits = link_arbiters(m, self, out)
        oc_offer, oc_data, oc_last, oc_send = out.offer, out.data, out.last, out.send

        # ---- local sinks -----------------------------------------------------------------
        ctl_sink_valid, ctl_sink_data, ctl_sink_last = oc_offer[OC_CTL], oc_data[OC_CTL], oc_last[OC_CTL]
        slot_ready = Signal(name="slot_sink_ready")
        m.d.comb += [
            oc_send[OC_SLOT].eq(oc_offer[OC_SLOT] & slot_ready),
            oc_send[OC_CTL].eq(oc_offer[OC_CTL]),
        ]
        tile_and_drop_sinks(m, self, out, oc_tile=OC_TILE, oc_drop=OC_DROP, error=error)
        waiting, ages = input_bookkeeping(m, self, ics, out, channel_index=range(len(ics)))

        # ---- control sink, request FIFO, grant registers ---------------------------------
        req_fifo = SyncFIFO(width=9, depth=2 * self.max_chiplets)
        m.submodules.requests = req_fifo
        fwd_req_out, fwd_grant_valid = Signal(name="fwd_req_out"), Signal(name="fwd_grant_valid")
        fwd_grant_slot = Signal(8, name="fwd_grant_slot")
        dram_req_out, dram_grant_valid = Signal(name="dram_req_out"), Signal(name="dram_grant_valid")
        dram_grant_slot = Signal(8, name="dram_grant_slot")
        fwd_grant_take, dram_grant_take = Signal(name="fwd_grant_take"), Signal(name="dram_grant_take")
        fwd_reserve_sent, dram_reserve_sent = Signal(name="fwd_reserve_sent"), Signal(name="dram_reserve_sent")

        ctl_head = Signal(init=1, name="ctl_at_head")
        ch = header(ctl_sink_data)
        ctl_take = Signal(name="ctl_take")
        m.d.comb += ctl_take.eq(ctl_sink_valid & ctl_head)
        with m.If(ctl_sink_valid):
            m.d.sync += ctl_head.eq(ctl_sink_last)
            with m.If(~ctl_head | ~ctl_sink_last):
                m.d.comb += error[bit(RouterError.CONTROL_PAYLOAD)].eq(1)
        m.d.comb += [
            req_fifo.w_data.eq(Cat(ch.src, ch.agent.as_value()[0])),
            req_fifo.w_en.eq(ctl_take & (ch.kind == PacketKind.RESERVE)),
            slots.release_in.valid.eq(ctl_take & (ch.kind == PacketKind.RELEASE)),
            slots.release_in.payload.eq(ch.slot),
        ]
        with m.If(req_fifo.w_en & ~req_fifo.w_rdy):
            m.d.comb += error[bit(RouterError.REQUEST_OVERFLOW)].eq(1)
        grant_in = ctl_take & (ch.kind == PacketKind.GRANT)
        fwd_grant_in = grant_in & (ch.agent == Agent.FORWARD)
        dram_grant_in = grant_in & (ch.agent == Agent.DRAM)
        for grant_now, req_out, gvalid, gslot, take, sent in (
                (fwd_grant_in, fwd_req_out, fwd_grant_valid, fwd_grant_slot, fwd_grant_take, fwd_reserve_sent),
                (dram_grant_in, dram_req_out, dram_grant_valid, dram_grant_slot, dram_grant_take,
                 dram_reserve_sent)):
            with m.If(grant_now):
                with m.If(~req_out | gvalid):
                    m.d.comb += error[bit(RouterError.UNEXPECTED_GRANT)].eq(1)
                m.d.sync += [gvalid.eq(1), gslot.eq(ch.slot), req_out.eq(0)]
            with m.Elif(take):
                m.d.sync += gvalid.eq(0)
            with m.If(sent):
                m.d.sync += req_out.eq(1)

        # ---- control injector: GRANT, RELEASE, RESERVE (forward), RESERVE (DRAM) -------------
        succ = cfg.successor
        # Forward queue entries: {slot, dst, relay} (dst only for a relay; a slice goes to
        # the successor).
        fwd_fifo = SyncFIFO(width=self.slot_shape.width + 9, depth=self.max_slots)
        m.submodules.forward_queue = fwd_fifo
        sw = self.slot_shape.width
        head_slot = fwd_fifo.r_data[:sw]
        head_relay = fwd_fifo.r_data[sw + 8]
        fwd_dst = Signal(8, name="fwd_dst")
        m.d.comb += fwd_dst.eq(Mux(head_relay, fwd_fifo.r_data[sw:sw + 8], succ))
        fwd_streaming = Signal(name="fwd_streaming")
        dram_wants_reserve = Signal(name="dram_wants_reserve")
        dram_dst = Signal(8, name="dram_dst")

        req_src = req_fifo.r_data[:8]
        req_agent = req_fifo.r_data[8]
        grant_flit = make_header("grant", kind=PacketKind.GRANT, src=me, dst=req_src, slot=slots.alloc_slot,
                                 agent=req_agent)
        release_flit = make_header("release", kind=PacketKind.RELEASE, src=me, dst=succ,
                                   slot=slots.release_out.payload.dst_slot)
        # While a slot streams, the next one is reserved ahead only on the ring (its
        # destination is the successor); a relay asks for the slot of the entry at the head.
        fwd_reserve_dst = Signal(8, name="fwd_reserve_dst")
        m.d.comb += fwd_reserve_dst.eq(Mux(fwd_streaming, succ, fwd_dst))
        fwd_reserve_flit = make_header("fwd_reserve", kind=PacketKind.RESERVE, src=me, dst=fwd_reserve_dst,
                                       agent=Agent.FORWARD)
        dram_reserve_flit = make_header("dram_reserve", kind=PacketKind.RESERVE, src=me, dst=dram_dst,
                                        agent=Agent.DRAM)
        fwd_wants_reserve = Signal(name="fwd_wants_reserve")
        m.d.comb += fwd_wants_reserve.eq(~fwd_req_out & ~fwd_grant_valid
                                         & (fwd_fifo.level > fwd_streaming) & ~(fwd_streaming & head_relay))
        ctl_sources = [
            (req_fifo.r_rdy & slots.can_remote, grant_flit),
            (slots.release_out.valid, release_flit),
            (fwd_wants_reserve, fwd_reserve_flit),
            (dram_wants_reserve, dram_reserve_flit),
        ]
        ctl_buf_valid = Signal(name="ctl_buf_valid")
        ctl_buf = Signal(W, name="ctl_buf")
        ctl_space = Signal(name="ctl_space")
        m.d.comb += ctl_space.eq(~ctl_buf_valid | ic_ctl.ready)
        c_any, c_pick, c_ptr = rr_pick(m, [v for v, _ in ctl_sources], "ctl")
        c_go = Signal(name="ctl_go")
        m.d.comb += c_go.eq(c_any & ctl_space)
        with m.If(c_go):
            m.d.sync += c_ptr.eq(c_pick)
            with m.Switch(c_pick):
                for k, (_, flit) in enumerate(ctl_sources):
                    with m.Case(k):
                        m.d.sync += ctl_buf.eq(flit)
        with m.If(ctl_space):
            m.d.sync += ctl_buf_valid.eq(c_go)
        m.d.comb += [
            ic_ctl.valid.eq(ctl_buf_valid), ic_ctl.data.eq(ctl_buf), ic_ctl.last.eq(1),
            slots.alloc_remote.eq(c_go & (c_pick == 0)),
            req_fifo.r_en.eq(c_go & (c_pick == 0)),
            slots.release_out.ready.eq(c_go & (c_pick == 1)),
            fwd_reserve_sent.eq(c_go & (c_pick == 2)),
            dram_reserve_sent.eq(c_go & (c_pick == 3)),
        ]

        # ---- slot writers: network arrivals and the local DRAM channel -----------------------
        net, drw = _SlotWriter("netw", self.slot_shape, W), _SlotWriter("dramw", self.slot_shape, W)

        w_any, w_pick, w_ptr = rr_pick(m, [net.req, drw.req], "wr")
        gw = Signal(name="wr_go")
        # A writer writes and completes a fill only in a slot reserved for one: a fill of any
        # other slot (FILL_NOT_RESERVED) is blocked, so it never overwrites a live slot.
        wr_reserved = Signal(name="wr_slot_reserved")
        m.d.comb += wr_reserved.eq(slots.states[Mux(w_pick, drw.slot, net.slot)] == SlotState.RESERVED)
        with m.If(gw & ~wr_reserved):
            m.d.comb += error[bit(RouterError.FILL_NOT_RESERVED)].eq(1)
        with m.If(w_pick == 0):
            m.d.comb += [tile.wr.valid.eq(net.req & net.has_data & wr_reserved), tile.wr.payload.slot.eq(net.slot),
                         tile.wr.payload.flit.eq(net.flit), tile.wr.payload.data.eq(net.data)]
        with m.Else():
            m.d.comb += [tile.wr.valid.eq(drw.req & drw.has_data & wr_reserved), tile.wr.payload.slot.eq(drw.slot),
                         tile.wr.payload.flit.eq(drw.flit), tile.wr.payload.data.eq(drw.data)]
        chosen_has_data = Mux(w_pick, drw.has_data, net.has_data)
        m.d.comb += [
            gw.eq(w_any & (~chosen_has_data | tile.wr.ready)),
            net.done.eq(gw & (w_pick == 0)),
            drw.done.eq(gw & (w_pick == 1)),
        ]
        with m.If(gw):
            m.d.sync += w_ptr.eq(w_pick)
        count(m, self.clear, st.slot_flits, tile.wr.valid & tile.wr.ready)

        # Fill completion: slot table, arrival event, forward queue.
        arr_fifo = SyncFIFO(width=len(tile.arrival.payload.as_value()), depth=self.max_slots)
        m.submodules.arrivals = arr_fifo
        fin = Signal(name="fill_now")
        fw = Signal.like(slots.fill.payload, name="fill_info")
        with m.If(w_pick == 0):
            m.d.comb += fin.eq(net.done & net.complete & wr_reserved)
        with m.Else():
            m.d.comb += fin.eq(drw.done & drw.complete & wr_reserved)
        fill_relay = Signal(name="fill_relay")
        fill_dst = Signal(8, name="fill_dst")
        for wr_, cond in ((net, w_pick == 0), (drw, w_pick == 1)):
            with m.If(cond):
                m.d.comb += [fw.slot.eq(wr_.slot), fw.kind.eq(wr_.kind), fw.expert.eq(wr_.expert),
                             fw.slice.eq(wr_.slice), fw.hops.eq(wr_.hops), fw.length.eq(wr_.length),
                             fw.sole.eq(wr_.sole), fill_relay.eq(wr_.relay), fill_dst.eq(wr_.dst)]
        m.d.comb += [fw.forward.eq(((fw.kind == PacketKind.SLICE) & (fw.hops + 1 < cfg.ring_len)) | fill_relay),
                     fw.compute.eq(~fill_relay)]
        arr = Signal.like(tile.arrival.payload, name="arrival_info")
        m.d.comb += [
            slots.fill.valid.eq(fin),
            slots.fill.payload.eq(fw),
            arr.slot.eq(fw.slot), arr.kind.eq(fw.kind), arr.expert.eq(fw.expert), arr.slice.eq(fw.slice),
            arr.hops.eq(fw.hops), arr.length.eq(fw.length),
            arr_fifo.w_data.eq(arr.as_value()),
            arr_fifo.w_en.eq(fin & ~fill_relay),
            tile.arrival.valid.eq(arr_fifo.r_rdy),
            tile.arrival.payload.eq(arr_fifo.r_data),
            arr_fifo.r_en.eq(tile.arrival.ready),
            fwd_fifo.w_data.eq(Cat(fw.slot, fill_dst, fill_relay)),
            fwd_fifo.w_en.eq(fin & fw.forward),
        ]
        count(m, self.clear, st.arrivals, fin)

        # Network writer: consumes the slot sink (SLICE/WEIGHT addressed to this chiplet).
        nh = header(oc_data[OC_SLOT])
        net_in_pkt = Signal(name="netw_in_packet")
        net_count = Signal(16, name="netw_count")
        slot_valid, slot_last = oc_offer[OC_SLOT], oc_last[OC_SLOT]
        with m.If(~net_in_pkt):
            # Header flit: latch it; a header-only packet completes right away.
            m.d.comb += [net.req.eq(slot_valid & slot_last), net.has_data.eq(0), net.complete.eq(1),
                         net.slot.eq(nh.slot), net.kind.eq(nh.kind), net.expert.eq(nh.expert),
                         net.slice.eq(nh.slice), net.hops.eq(nh.hops), net.length.eq(nh.length),
                         net.sole.eq((nh.flags & Flag.SOLE) != 0),
                         slot_ready.eq(~slot_last | net.done)]
            with m.If(slot_valid & slot_ready):
                m.d.sync += net_count.eq(0)
                with m.If(~slot_last):
                    m.d.sync += net_in_pkt.eq(1)
                with m.Elif(nh.length != 0):
                    m.d.comb += error[bit(RouterError.LENGTH_MISMATCH)].eq(1)
        net_lat = {name: Signal(shape, name=f"netw_lat_{name}") for name, shape in (
            ("slot", self.slot_shape), ("kind", PacketKind), ("expert", 8), ("slice", 8), ("hops", 8),
            ("length", 16), ("sole", 1))}
        with m.If(~net_in_pkt & slot_valid & slot_ready & ~slot_last):
            for name, sig in net_lat.items():
                m.d.sync += sig.eq(getattr(net, name))
        with m.If(net_in_pkt):
            for name, sig in net_lat.items():
                m.d.comb += getattr(net, name).eq(sig)
            m.d.comb += [net.req.eq(slot_valid), net.has_data.eq(1), net.complete.eq(slot_last),
                         net.flit.eq(net_count), net.data.eq(oc_data[OC_SLOT]),
                         slot_ready.eq(net.done)]
            with m.If(slot_valid & slot_ready):
                m.d.sync += net_count.eq(net_count + 1)
                with m.If(slot_last):
                    m.d.sync += net_in_pkt.eq(0)
                    with m.If(net_count + 1 != net_lat["length"]):
                        m.d.comb += error[bit(RouterError.LENGTH_MISMATCH)].eq(1)

        # DRAM channel: SLICE and local WEIGHT into a local slot; remote WEIGHT via RESERVE.
        dh = header(self.dram.payload.data)
        dram_state = Signal(range(4), name="dram_state")   # 0 head, 1 local body, 2 remote, 3 drop
        dram_lat = {name: Signal(shape, name=f"dramw_lat_{name}") for name, shape in (
            ("slot", self.slot_shape), ("kind", PacketKind), ("expert", 8), ("slice", 8),
            ("length", 16), ("dst", 8), ("relay", 1))}
        dram_count = Signal(16, name="dramw_count")
        dram_empty = Signal(name="dramw_header_only")
        remote_hdr = Signal(W, name="dram_remote_header")
        m.d.comb += remote_hdr.eq(self.dram.payload.data)
        m.d.comb += [header(remote_hdr).src.eq(me), header(remote_hdr).slot.eq(dram_grant_slot)]
        relay_flag = (dh.flags & Flag.RELAY) != 0
        is_relay = (dh.kind == PacketKind.WEIGHT) & relay_flag & (dh.dst != me) & (dh.dst < n_chiplets)
        is_local = (dh.kind == PacketKind.SLICE) | ((dh.kind == PacketKind.WEIGHT) & (dh.dst == me)) | is_relay
        is_remote = (dh.kind == PacketKind.WEIGHT) & ~relay_flag & (dh.dst != me) & (dh.dst < n_chiplets)
        m.d.comb += [drw.kind.eq(dram_lat["kind"]), drw.expert.eq(dram_lat["expert"]),
                     drw.slice.eq(dram_lat["slice"]), drw.hops.eq(0), drw.length.eq(dram_lat["length"]),
                     drw.slot.eq(dram_lat["slot"]), drw.sole.eq(1), drw.relay.eq(dram_lat["relay"]),
                     drw.dst.eq(dram_lat["dst"]), dram_dst.eq(dh.dst), net.relay.eq(0), net.dst.eq(me)]
        count(m, self.clear, st.dram_flits, self.dram.valid & self.dram.ready)
        local_take, local_slot = slots.alloc_local_ok, slots.alloc_slot
        if self.faults:
            # UNRESERVED_FILL: the next local fill goes, unallocated, into the lowest HELD slot
            # (a live one), else the lowest FREE one.
            inject_fill = Signal(name="fault_unreserved_fill")
            m.d.comb += inject_fill.eq((fault.code == Fault.UNRESERVED_FILL) & ~fault_used & (dram_state == 0)
                                       & self.dram.valid & is_local)
            victim = Signal(self.slot_shape, name="fault_victim")
            for state in (SlotState.FREE, SlotState.HELD):
                for i in reversed(range(self.max_slots)):
                    with m.If((slots.states[i] == state) & (i < cfg.slot_count)):
                        m.d.comb += victim.eq(i)
            local_take, local_slot = Mux(inject_fill, 1, slots.alloc_local_ok), Mux(inject_fill, victim, slots.alloc_slot)
        with m.Switch(dram_state):
            with m.Case(0):
                with m.If(self.dram.valid):
                    with m.If(is_local):
                        m.d.comb += [slots.alloc_local.eq(1),
                                     slots.alloc_local_min2.eq((dh.kind == PacketKind.SLICE) | is_relay),
                                     self.dram.ready.eq(local_take)]
                        with m.If(local_take):
                            m.d.sync += [dram_state.eq(1), dram_count.eq(0),
                                         dram_empty.eq(self.dram.payload.last),
                                         dram_lat["slot"].eq(local_slot), dram_lat["kind"].eq(dh.kind),
                                         dram_lat["expert"].eq(dh.expert), dram_lat["slice"].eq(dh.slice),
                                         dram_lat["length"].eq(dh.length), dram_lat["dst"].eq(dh.dst),
                                         dram_lat["relay"].eq(is_relay)]
                            with m.If(self.dram.payload.last & (dh.length != 0)):
                                m.d.comb += error[bit(RouterError.LENGTH_MISMATCH)].eq(1)
                    with m.Elif(is_remote):
                        m.d.comb += dram_wants_reserve.eq(~dram_req_out & ~dram_grant_valid)
                        m.d.comb += [ic_dram.valid.eq(dram_grant_valid), ic_dram.data.eq(remote_hdr),
                                     ic_dram.last.eq(self.dram.payload.last),
                                     self.dram.ready.eq(dram_grant_valid & ic_dram.ready),
                                     dram_grant_take.eq(dram_grant_valid & ic_dram.ready)]
                        with m.If(dram_grant_valid & ic_dram.ready & ~self.dram.payload.last):
                            m.d.sync += dram_state.eq(2)
                    with m.Else():
                        m.d.comb += self.dram.ready.eq(1)
                        m.d.comb += error[bit(RouterError.DROPPED_PACKET)].eq(1)
                        with m.If(~self.dram.payload.last):
                            m.d.sync += dram_state.eq(3)
            with m.Case(1):
                with m.If(dram_empty):
                    m.d.comb += [drw.req.eq(1), drw.has_data.eq(0), drw.complete.eq(1)]
                    with m.If(drw.done):
                        m.d.sync += dram_state.eq(0)
                with m.Else():
                    m.d.comb += [drw.req.eq(self.dram.valid), drw.has_data.eq(1),
                                 drw.complete.eq(self.dram.payload.last), drw.flit.eq(dram_count),
                                 drw.data.eq(self.dram.payload.data), self.dram.ready.eq(drw.done)]
                    with m.If(drw.done):
                        m.d.sync += dram_count.eq(dram_count + 1)
                        with m.If(self.dram.payload.last):
                            m.d.sync += dram_state.eq(0)
                            with m.If(dram_count + 1 != dram_lat["length"]):
                                m.d.comb += error[bit(RouterError.LENGTH_MISMATCH)].eq(1)
            with m.Case(2):
                m.d.comb += [ic_dram.valid.eq(self.dram.valid), ic_dram.data.eq(self.dram.payload.data),
                             ic_dram.last.eq(self.dram.payload.last), self.dram.ready.eq(ic_dram.ready)]
                with m.If(self.dram.valid & ic_dram.ready & self.dram.payload.last):
                    m.d.sync += dram_state.eq(0)
            with m.Case(3):
                m.d.comb += self.dram.ready.eq(1)
                with m.If(self.dram.valid & self.dram.payload.last):
                    m.d.sync += dram_state.eq(0)
        if self.faults:
            with m.If(inject_fill):
                m.d.comb += [slots.alloc_local.eq(0), fault_fires.eq(1)]

        # ---- forward engine --------------------------------------------------------------
        q = slots.query
        m.d.comb += slots.query_slot.eq(head_slot)
        fwd_state = Signal(range(3), name="fwd_state")   # 0 idle, 1 header, 2 payload
        f_len = Signal(16, name="fwd_length")
        f_sole = Signal(name="fwd_sole_sent")
        f_succ_forwards = Signal(name="fwd_successor_forwards")
        f_dst_slot = Signal(8, name="fwd_dst_slot")
        f_req_n = Signal(16, name="fwd_requested")
        f_resp_n = Signal(16, name="fwd_received")
        f_hdr = Signal(Header, name="fwd_header")
        m.d.comb += fwd_streaming.eq(fwd_state != 0)
        fwd_finish = Signal(name="fwd_finish")
        m.d.comb += [
            slots.forwarded.valid.eq(fwd_finish),
            slots.forwarded.payload.slot.eq(head_slot),
            slots.forwarded.payload.dst_slot.eq(f_dst_slot),
            # The successor needs a RELEASE only if it will forward the slice in turn.
            slots.forwarded.payload.release.eq(~f_sole & f_succ_forwards),
            fwd_fifo.r_en.eq(fwd_finish),
            tile.rd_req.payload.slot.eq(head_slot),
            tile.rd_req.payload.flit.eq(f_req_n),
        ]
        count(m, self.clear, st.forwards, fwd_finish)
        count(m, self.clear, st.releases, slots.release_out.valid & slots.release_out.ready)
        count(m, self.clear, st.forward_wait_slot, (fwd_state == 0) & fwd_fifo.r_rdy & ~fwd_grant_valid)
        count(m, self.clear, st.forward_wait_release, (fwd_state == 0) & fwd_fifo.r_rdy & fwd_grant_valid & ~q.sole)
        header_length = q.length
        if self.faults:
            # LENGTH: the next forward's header claims one payload flit more than it sends.
            inject_length = Signal(name="fault_length")
            m.d.comb += inject_length.eq((fault.code == Fault.LENGTH) & ~fault_used)
            header_length = q.length + inject_length
        with m.Switch(fwd_state):
            with m.Case(0):
                start = fwd_fifo.r_rdy & fwd_grant_valid & q.sole & (q.state == SlotState.HELD)
                if self.faults:
                    with m.If(start & inject_length):
                        m.d.comb += fault_fires.eq(1)
                m.d.comb += fwd_grant_take.eq(start)
                with m.If(start):
                    m.d.sync += [
                        fwd_state.eq(1), f_len.eq(q.length), f_sole.eq(~q.computing),
                        f_succ_forwards.eq(~head_relay & (q.hops + 2 < cfg.ring_len)),
                        f_dst_slot.eq(fwd_grant_slot), f_req_n.eq(0), f_resp_n.eq(0),
                        f_hdr.eq(0), f_hdr.kind.eq(Mux(head_relay, PacketKind.WEIGHT, PacketKind.SLICE)),
                        f_hdr.flags.eq(Mux(q.computing, 0, Flag.SOLE)),
                        f_hdr.src.eq(me), f_hdr.dst.eq(fwd_dst), f_hdr.length.eq(header_length),
                        f_hdr.expert.eq(q.expert), f_hdr.slice.eq(q.slice),
                        f_hdr.hops.eq(Mux(head_relay, 0, q.hops + 1)),
                        f_hdr.slot.eq(fwd_grant_slot),
                    ]
            with m.Case(1):
                m.d.comb += [ic_fwd.valid.eq(1), ic_fwd.data.eq(f_hdr.as_value()), ic_fwd.last.eq(f_len == 0)]
                with m.If(ic_fwd.ready):
                    with m.If(f_len == 0):
                        m.d.comb += fwd_finish.eq(1)
                        m.d.sync += fwd_state.eq(0)
                    with m.Else():
                        m.d.sync += fwd_state.eq(2)
            with m.Case(2):
                m.d.comb += [
                    tile.rd_req.valid.eq(f_req_n != f_len),
                    ic_fwd.valid.eq(tile.rd_data.valid), ic_fwd.data.eq(tile.rd_data.payload),
                    ic_fwd.last.eq(f_resp_n + 1 == f_len),
                    tile.rd_data.ready.eq(ic_fwd.ready),
                ]
                with m.If(tile.rd_req.valid & tile.rd_req.ready):
                    m.d.sync += f_req_n.eq(f_req_n + 1)
                with m.If(tile.rd_data.valid & ic_fwd.ready):
                    m.d.sync += f_resp_n.eq(f_resp_n + 1)
                    with m.If(f_resp_n + 1 == f_len):
                        m.d.comb += fwd_finish.eq(1)
                        m.d.sync += fwd_state.eq(0)

        # ---- tile compute_done -> slot table ----------------------------------------------
        m.d.comb += [
            slots.compute_done.valid.eq(tile.compute_done.valid),
            slots.compute_done.payload.eq(tile.compute_done.payload),
            tile.compute_done.ready.eq(1),
        ]

        # ---- counters and status ---------------------------------------------------------
        port_counters_and_errors(m, self, out, error)
        # The slot table's bits, and a blocked fill (FILL_NOT_RESERVED) seen by the writers.
        fill_blocked = Signal(name="fill_blocked")
        m.d.sync += fill_blocked.eq(fill_blocked | error[bit(RouterError.FILL_NOT_RESERVED)])
        low = int(SLOT_ERRORS).bit_length()
        m.d.comb += [
            st.error[:low].eq(slots.error | Mux(fill_blocked, int(RouterError.FILL_NOT_RESERVED), 0)),
            st.free_count.eq(slots.free_count),
            st.occupancy.eq(slots.occupancy),
            st.high_water.eq(slots.high_water),
        ]
        busy = [f.r_rdy for f in fifos] + [ic.valid | ~ic.at_head for ic in ics] + out.locked + [
            req_fifo.r_rdy, fwd_fifo.r_rdy, arr_fifo.r_rdy, ctl_buf_valid, fwd_req_out, fwd_grant_valid,
            dram_req_out, dram_grant_valid, dram_state != 0, fwd_state != 0, net_in_pkt,
            slots.occupancy != 0, self.dram.valid, tile.inject.valid]
        m.d.comb += [
            st.idle.eq(~Cat(*busy).any()),
            st.forward_queue.eq(fwd_fifo.level),
            st.forward_status.eq(Cat(fwd_req_out, fwd_grant_valid, fwd_state != 0,
                                     fwd_fifo.r_rdy & (fwd_state == 0) & ~q.sole)),
            st.requests.eq(req_fifo.level),
            st.dram_waiting.eq(self.dram.valid & ~self.dram.ready & (dram_state == 0)),
        ]

        # ---- watchdog ----------------------------------------------------------------------
        progress = Cat(*[p.valid for p in self.inputs], *out.send, tile.wr.valid & tile.wr.ready, fin,
                       self.dram.valid & self.dram.ready, *[p.credit.any() for p in self.outputs]).any()
        fwd_waiting = (fwd_state == 0) & fwd_fifo.r_rdy & (~fwd_grant_valid | ~q.sole)
        engines = [
            (fwd_waiting, Mux(fwd_grant_valid, Wait.RELEASE, Wait.GRANT), Mux(fwd_grant_valid, 0, fwd_dst), "forward"),
            (st.dram_waiting & (is_local | is_remote), Mux(is_local, Wait.SLOTS, Wait.DRAM_GRANT),
             Mux(is_local, 0, dh.dst), "dram"),
        ]
        _watchdog(m, self, progress=progress, waiting=waiting, ages=ages, targets=targets, out=out, credits=credits,
                  oc_slot=OC_SLOT, oc_tile=OC_TILE, engines=engines)
        m.d.comb += [st.credits_full.eq(Cat(*[c == self.buffer_depth for c in credits])),
                     st.inputs_empty.eq(Cat(*[f.level == 0 for f in fifos]))]
        return m

    def _elaborate_plain(self, platform):
        """``virtualization=False``: the crossbar of :meth:`elaborate` (:mod:`hw.crossbar`)
        with the tile injection, the DRAM channel and one slot writer as its local ends,
        and none of the FSE-DP engines."""
        m = Module()
        cfg, tile, st = self.cfg, self.tile, self.stats
        W = self.width
        position = mesh_position(m, cfg)
        error = Signal(10, name="error_now")

        # ---- crossbar inputs: the links, the tile, the DRAM channel -----------------------
        ics, fifos = link_inputs(m, self, error)
        ic_tile = Channel("tile", VC_TILE, width=W)
        ic_dram = Channel("dram", VC_SLOT, width=W)
        ics += [ic_tile, ic_dram]
        stamp_source(m, self, ic_tile)
        m.d.comb += [ic_dram.valid.eq(self.dram.valid), ic_dram.data.eq(self.dram.payload.data),
                     ic_dram.last.eq(self.dram.payload.last), self.dram.ready.eq(ic_dram.ready)]

        # ---- routing: SLICE / WEIGHT for this chiplet to the slot writer; no control kinds -
        OC_SLOT, OC_TILE, OC_DROP = 8, 9, 10
        oc_vc = [v for d in range(4) for v in range(NUM_VCS)] + [VC_SLOT, VC_TILE, None]

        def local(h, kind_vc, target):
            m.d.comb += target.eq(Mux(kind_vc, OC_TILE, OC_SLOT))

        targets = route_computer(m, ics, cfg, position, n_outputs=len(oc_vc), oc_drop=OC_DROP,
                                 last_known=PacketKind.RESULT, local=local)
        out = output_allocators(m, ics, targets, oc_vc, W)
        link_arbiters(m, self, out)
        oc_offer, oc_data, oc_last, oc_send = out.offer, out.data, out.last, out.send

        # ---- local sinks: tile ejection, drop, slot writer --------------------------------
        slot_ready = Signal(name="slot_sink_ready")
        m.d.comb += oc_send[OC_SLOT].eq(oc_offer[OC_SLOT] & slot_ready)
        tile_and_drop_sinks(m, self, out, oc_tile=OC_TILE, oc_drop=OC_DROP, error=error)
        # Index of each input in input_channel_names() (stats.waiting, starved_channel).
        input_bookkeeping(m, self, ics, out, channel_index=list(range(8)) + [8, 10])

        # Slot writer: a SLICE or WEIGHT for this chiplet goes into the slot its header
        # names; its completion is announced to the tile (the arrival queue is full: wait).
        arr_fifo = SyncFIFO(width=len(tile.arrival.payload.as_value()), depth=self.max_slots)
        m.submodules.arrivals = arr_fifo
        nh = header(oc_data[OC_SLOT])
        in_pkt = Signal(name="netw_in_packet")
        flit_n = Signal(16, name="netw_count")
        lat = Signal.like(tile.arrival.payload, name="netw_lat")
        arr = Signal.like(tile.arrival.payload, name="arrival_info")
        slot_valid, slot_last = oc_offer[OC_SLOT], oc_last[OC_SLOT]
        fin = Signal(name="fill_now")
        with m.If(~in_pkt):
            m.d.comb += [arr.slot.eq(nh.slot), arr.kind.eq(nh.kind), arr.expert.eq(nh.expert),
                         arr.slice.eq(nh.slice), arr.hops.eq(nh.hops), arr.length.eq(nh.length),
                         slot_ready.eq(~slot_last | arr_fifo.w_rdy),
                         fin.eq(slot_valid & slot_last & arr_fifo.w_rdy)]
            with m.If(slot_valid & slot_ready):
                m.d.sync += [flit_n.eq(0), lat.eq(arr)]
                with m.If(~slot_last):
                    m.d.sync += in_pkt.eq(1)
                with m.Elif(nh.length != 0):
                    m.d.comb += error[bit(RouterError.LENGTH_MISMATCH)].eq(1)
        with m.Else():
            m.d.comb += [
                arr.eq(lat),
                tile.wr.valid.eq(slot_valid & (~slot_last | arr_fifo.w_rdy)),
                tile.wr.payload.slot.eq(lat.slot), tile.wr.payload.flit.eq(flit_n),
                tile.wr.payload.data.eq(oc_data[OC_SLOT]),
                slot_ready.eq(tile.wr.ready & (~slot_last | arr_fifo.w_rdy)),
                fin.eq(slot_valid & slot_last & slot_ready),
            ]
            with m.If(slot_valid & slot_ready):
                m.d.sync += flit_n.eq(flit_n + 1)
                with m.If(slot_last):
                    m.d.sync += in_pkt.eq(0)
                    with m.If(flit_n + 1 != lat.length):
                        m.d.comb += error[bit(RouterError.LENGTH_MISMATCH)].eq(1)
        m.d.comb += [
            arr_fifo.w_data.eq(arr.as_value()), arr_fifo.w_en.eq(fin),
            tile.arrival.valid.eq(arr_fifo.r_rdy), tile.arrival.payload.eq(arr_fifo.r_data),
            arr_fifo.r_en.eq(tile.arrival.ready),
            tile.compute_done.ready.eq(1),
        ]
        count(m, self.clear, st.slot_flits, tile.wr.valid & tile.wr.ready)
        count(m, self.clear, st.arrivals, fin)

        # ---- counters and status ---------------------------------------------------------
        count(m, self.clear, st.dram_flits, self.dram.valid & self.dram.ready)
        port_counters_and_errors(m, self, out, error)
        busy = [f.r_rdy for f in fifos] + [ic.valid | ~ic.at_head for ic in ics] + out.locked + [
            arr_fifo.r_rdy, in_pkt, self.dram.valid, tile.inject.valid]
        m.d.comb += st.idle.eq(~Cat(*busy).any())
        return m
