"""The router's crossbar: what :class:`hw.router.Router` shares with its plain variant.

The parts of an input-queued wormhole router with static VC assignment, each a function
that adds its logic to the router's module (the router stays one Verilog module):

* :func:`link_inputs`: one FIFO per VC per link input; a freed entry sends a credit back;
* :func:`route_computer`: XY dimension-order routing from the header flit at the head of
  each input, with the local delivery (which local sink a packet for this chiplet goes
  to) given by the caller;
* :func:`output_allocators`: each output channel (a link VC or a local sink) picks a
  requesting input round-robin and stays locked to it until the packet's last flit;
* :func:`link_arbiters`: each link picks one of its two VCs per cycle among those with a
  flit and a credit, and counts flits, header flits, busy and stalled cycles;
* :func:`tile_and_drop_sinks` and :func:`input_bookkeeping`: the tile ejection port and
  the drop sink; each input's ready, head tracking and starvation age.

The FSE-DP engines (slot table, control sink and injector, slot writers, forward engine)
are in :mod:`hw.router`.
"""

import enum as py_enum
from dataclasses import dataclass, field

from amaranth.hdl import Cat, Const, Mux, Signal
from amaranth.lib.fifo import SyncFIFOBuffered

from .errors import SLOT_ERRORS, RouterError, bit
from .faults import Fault
from .packets import HEADER_BITS, NUM_VCS, VC_SLOT, VC_TILE, Header, PacketKind

__all__ = ["Dir", "DIRS", "Channel", "Outputs", "rr_pick", "count", "header", "mesh_position",
           "link_inputs", "stamp_source", "route_computer", "output_allocators", "link_arbiters",
           "tile_and_drop_sinks", "input_bookkeeping", "port_counters_and_errors"]


class Dir(py_enum.IntEnum):
    """Mesh directions.  Row 0 is the north edge, column 0 the west edge; chiplet
    ``(r, c)`` has id ``r * cols + c``."""

    N = 0
    E = 1
    S = 2
    W = 3


#: The link ports in :class:`Dir` order.
DIRS = "nesw"


class Channel:
    """A crossbar input channel: a flit stream plus where it came from."""

    def __init__(self, name, vc, from_dir=None, *, width):
        self.name, self.vc, self.from_dir = name, vc, from_dir
        self.valid = Signal(name=f"ic_{name}_valid")
        self.data = Signal(width, name=f"ic_{name}_data")
        self.last = Signal(name=f"ic_{name}_last")
        self.ready = Signal(name=f"ic_{name}_ready")
        self.at_head = Signal(init=1, name=f"ic_{name}_at_head")


@dataclass
class Outputs:
    """The output channels built by :func:`output_allocators`, by index: whether a flit is
    offered, its data and ``last``, whether it is taken (``send``, driven by the sink or
    link), whether a packet holds the channel, and per channel the ``(input index, is the
    effective owner)`` pairs."""

    offer: list = field(default_factory=list)
    data: list = field(default_factory=list)
    last: list = field(default_factory=list)
    send: list = field(default_factory=list)
    locked: list = field(default_factory=list)
    owner_of: list = field(default_factory=list)


def rr_pick(m, reqs, name):
    """Round-robin arbiter: returns (any, index, pointer); update ``pointer`` to the
    index when the grant is used."""
    n = len(reqs)
    idx = Signal(range(max(n, 2)), name=f"{name}_pick")
    ptr = Signal(range(max(n, 2)), name=f"{name}_ptr")
    any_ = Signal(name=f"{name}_any")
    m.d.comb += any_.eq(Cat(*reqs).any())
    for i in reversed(range(n)):
        with m.If(reqs[i]):
            m.d.comb += idx.eq(i)
    for i in reversed(range(n)):
        with m.If(reqs[i] & (ptr < i)):
            m.d.comb += idx.eq(i)
    return any_, idx, ptr


def count(m, clear, counter, inc):
    """``counter`` counts cycles with ``inc``; ``clear`` zeroes it."""
    with m.If(clear):
        m.d.sync += counter.eq(0)
    with m.Elif(inc):
        m.d.sync += counter.eq(counter + 1)


def header(data_):
    """The header fields of a flit."""
    return Header(data_[:HEADER_BITS])


def mesh_position(m, cfg):
    """``(cols, n_chiplets, my_row, my_col)`` of this chiplet, from the configuration."""
    cols = Signal(8, name="cols")
    m.d.comb += cols.eq(Mux(cfg.cols == 0, 1, cfg.cols))
    n_chiplets = Signal(16, name="n_chiplets")
    my_row, my_col = Signal(8, name="my_row"), Signal(8, name="my_col")
    me = cfg.chiplet_id
    m.d.comb += [n_chiplets.eq(cfg.rows * cfg.cols), my_row.eq(me // cols), my_col.eq(me % cols)]
    return cols, n_chiplets, my_row, my_col


def link_inputs(m, router, error, fault=None):
    """The link input buffers: returns the eight link input channels (direction-major,
    VC-minor) and their FIFOs.  A flit arriving without a credit (at a full buffer) sets
    ``BUFFER_OVERFLOW`` (the flit is lost; the system stops at the error).

    ``fault`` (test-only, :func:`hw.faults.unit_fault_layout`): with
    :attr:`~hw.faults.Fault.CREDIT_OVERFLOW` the input channel ``fault.arg`` is no longer
    freed, and each flit that arrives there returns its credit at once; with
    :attr:`~hw.faults.Fault.STUCK_INPUT` it is no longer freed."""
    ics, fifos = [], []
    W = router.width
    for d, port in enumerate(router.inputs):
        m.d.comb += port.ready.eq(1)
        credit = []
        for v in range(NUM_VCS):
            fifo = SyncFIFOBuffered(width=W + 1, depth=router.buffer_depth)
            m.submodules[f"in_{DIRS[d]}_vc{v}"] = fifo
            fifos.append(fifo)
            ic = Channel(f"{DIRS[d]}{v}", v, d, width=W)
            push = port.valid & (port.payload.vc == v)
            m.d.comb += [
                fifo.w_data.eq(Cat(port.payload.data, port.payload.last)),
                fifo.w_en.eq(push),
                ic.valid.eq(fifo.r_rdy),
                ic.data.eq(fifo.r_data[:W]),
                ic.last.eq(fifo.r_data[W]),
                fifo.r_en.eq(ic.ready),
            ]
            with m.If(push & ~fifo.w_rdy):
                m.d.comb += error[bit(RouterError.BUFFER_OVERFLOW)].eq(1)
            if fault is None:
                credit.append(fifo.r_rdy & ic.ready)
            else:
                hold, overflow = Signal(name=f"fault_hold_{DIRS[d]}{v}"), Signal(name=f"fault_overflow_{DIRS[d]}{v}")
                m.d.comb += [overflow.eq((fault.code == Fault.CREDIT_OVERFLOW) & (fault.arg == 2 * d + v)),
                             hold.eq(overflow | ((fault.code == Fault.STUCK_INPUT) & (fault.arg == 2 * d + v)))]
                with m.If(hold):
                    m.d.comb += [ic.valid.eq(0), fifo.r_en.eq(0)]
                credit.append(Mux(hold, overflow & push, fifo.r_rdy & ic.ready))
            ics.append(ic)
        m.d.comb += port.credit.eq(Cat(*credit))
    return ics, fifos


def stamp_source(m, router, ic_tile):
    """The tile's injection port as crossbar input ``ic_tile``, with this chiplet's id
    stamped into each header flit's ``src``."""
    tile, W = router.tile, router.width
    stamped = Signal(W, name="tile_stamped")
    m.d.comb += stamped.eq(tile.inject.payload.data)
    with m.If(ic_tile.at_head):
        m.d.comb += header(stamped).src.eq(router.cfg.chiplet_id)
    m.d.comb += [
        ic_tile.valid.eq(tile.inject.valid),
        ic_tile.data.eq(stamped),
        ic_tile.last.eq(tile.inject.payload.last),
        tile.inject.ready.eq(ic_tile.ready),
    ]


def route_computer(m, ics, cfg, position, *, n_outputs, oc_drop, last_known, local):
    """Each input's target output channel: ``oc_drop`` for a kind after ``last_known``, a
    kind on the wrong VC or a destination outside the mesh; ``local(h, kind_vc, target)``
    (it adds the statements) for this chiplet; else the link XY routing picks (columns
    first), on the packet's VC (channel ``2 * direction + vc``)."""
    cols, n_chiplets, my_row, my_col = position
    targets = []
    for ic in ics:
        h = header(ic.data)
        target = Signal(range(n_outputs), name=f"ic_{ic.name}_target")
        kind_vc = Signal(name=f"ic_{ic.name}_kind_vc")
        m.d.comb += kind_vc.eq((h.kind == PacketKind.TOKEN) | (h.kind == PacketKind.RESULT))
        kind_vc_val = Mux(kind_vc, VC_TILE, VC_SLOT)
        known = h.kind.as_value() <= last_known.value
        dst_col, dst_row = Signal(8, name=f"ic_{ic.name}_dst_col"), Signal(8, name=f"ic_{ic.name}_dst_row")
        m.d.comb += [dst_col.eq(h.dst % cols), dst_row.eq(h.dst // cols)]
        with m.If(~known | (kind_vc_val != ic.vc) | (h.dst >= n_chiplets)):
            m.d.comb += target.eq(oc_drop)
        with m.Elif(h.dst == cfg.chiplet_id):
            local(h, kind_vc, target)
        with m.Elif(dst_col > my_col):
            m.d.comb += target.eq(2 * Dir.E + ic.vc)
        with m.Elif(dst_col < my_col):
            m.d.comb += target.eq(2 * Dir.W + ic.vc)
        with m.Elif(dst_row > my_row):
            m.d.comb += target.eq(2 * Dir.S + ic.vc)
        with m.Else():
            m.d.comb += target.eq(2 * Dir.N + ic.vc)
        targets.append(target)
    return targets


def output_allocators(m, ics, targets, oc_vc, width):
    """Wormhole ownership of each output channel (``oc_vc[o]``: the VC it carries, None
    for any): the first eight are the links' VCs, which never send a packet back where it
    came from."""
    out = Outputs()
    for o in range(len(oc_vc)):
        cands = [i for i, ic in enumerate(ics)
                 if (oc_vc[o] is None or ic.vc == oc_vc[o])
                 and not (o < 8 and ic.from_dir is not None and ic.from_dir == o // 2)]
        reqs = [ics[i].valid & ics[i].at_head & (targets[i] == o) for i in cands]
        any_, pick, ptr = rr_pick(m, reqs, f"oc{o}")
        locked = Signal(name=f"oc{o}_locked")
        owner = Signal(range(max(len(cands), 2)), name=f"oc{o}_owner")
        eff = Signal(range(max(len(cands), 2)), name=f"oc{o}_eff")
        m.d.comb += eff.eq(Mux(locked, owner, pick))
        offer = Signal(name=f"oc{o}_offer")
        dat = Signal(width, name=f"oc{o}_data")
        lst = Signal(name=f"oc{o}_last")
        send = Signal(name=f"oc{o}_send")
        sel = []
        for k, i in enumerate(cands):
            is_eff = Signal(name=f"oc{o}_eff_{ics[i].name}")
            m.d.comb += is_eff.eq((eff == k) & (locked | any_))
            sel.append((i, is_eff))
            with m.If(eff == k):
                m.d.comb += [dat.eq(ics[i].data), lst.eq(ics[i].last)]
        m.d.comb += offer.eq((locked | any_) & Cat(*[ics[i].valid & s for i, s in sel]).any())
        with m.If(send):
            m.d.sync += [locked.eq(~lst), owner.eq(eff)]
            with m.If(~locked):
                m.d.sync += ptr.eq(pick)
        out.offer.append(offer)
        out.data.append(dat)
        out.last.append(lst)
        out.send.append(send)
        out.locked.append(locked)
        out.owner_of.append(sel)
    return out


def link_arbiters(m, router, out):
    """Each link output: credits per VC, the VC picked round-robin among those with a
    flit and a credit, and the link counters (flits, header flits, busy, stalled).
    Returns the eight credit counters (output channel order)."""
    st = router.stats
    all_credits = []
    for d, port in enumerate(router.outputs):
        credits = []
        can = []
        for v in range(NUM_VCS):
            o = 2 * d + v
            credit = Signal(range(router.buffer_depth + 1), init=router.buffer_depth,
                            name=f"out_{DIRS[d]}_credit{v}")
            credits.append(credit)
            all_credits.append(credit)
            c = Signal(name=f"out_{DIRS[d]}_can{v}")
            m.d.comb += c.eq(out.offer[o] & (credit != 0))
            can.append(c)
        any_, pick, ptr = rr_pick(m, can, f"out_{DIRS[d]}")
        m.d.comb += [
            port.valid.eq(any_),
            port.payload.vc.eq(pick),
            port.payload.data.eq(Mux(pick, out.data[2 * d + 1], out.data[2 * d])),
            port.payload.last.eq(Mux(pick, out.last[2 * d + 1], out.last[2 * d])),
        ]
        sent = port.valid & port.ready
        for v in range(NUM_VCS):
            o = 2 * d + v
            m.d.comb += out.send[o].eq(sent & (pick == v))
            with m.If(out.send[o] & ~port.credit[v]):
                m.d.sync += credits[v].eq(credits[v] - 1)
            with m.Elif(~out.send[o] & port.credit[v]):
                m.d.sync += credits[v].eq(credits[v] + 1)
        with m.If(sent):
            m.d.sync += ptr.eq(pick)
        locked, offer = out.locked, out.offer
        busy = locked[2 * d] | locked[2 * d + 1] | offer[2 * d] | offer[2 * d + 1]
        count(m, router.clear, st.link_flits[d], sent)
        count(m, router.clear, st.link_header_flits[d], sent & ~Mux(pick, locked[2 * d + 1], locked[2 * d]))
        count(m, router.clear, st.link_busy[d], busy)
        count(m, router.clear, st.link_stalled[d], (offer[2 * d] | offer[2 * d + 1]) & ~sent)
    return all_credits


def tile_and_drop_sinks(m, router, out, *, oc_tile, oc_drop, error):
    """The tile's ejection port on output channel ``oc_tile``; the drop sink on
    ``oc_drop`` takes every flit and sets ``DROPPED_PACKET`` for each packet."""
    tile = router.tile
    m.d.comb += [
        out.send[oc_drop].eq(out.offer[oc_drop]),
        tile.eject.valid.eq(out.offer[oc_tile]),
        tile.eject.payload.data.eq(out.data[oc_tile]),
        tile.eject.payload.last.eq(out.last[oc_tile]),
        out.send[oc_tile].eq(out.offer[oc_tile] & tile.eject.ready),
    ]
    drop_head = Signal(init=1, name="drop_at_head")
    with m.If(out.send[oc_drop]):
        m.d.sync += drop_head.eq(out.last[oc_drop])
        with m.If(drop_head):
            m.d.comb += error[bit(RouterError.DROPPED_PACKET)].eq(1)


def input_bookkeeping(m, router, ics, out, channel_index):
    """Each input's ready (its owner channel took the flit), head tracking, waiting bit
    and starvation age; ``channel_index[i]`` is input ``i``'s bit in ``stats.waiting``
    (:func:`hw.router.input_channel_names`).  The first input, by channel index, to wait
    ``cfg.age_limit`` cycles sets ``stats.starved``.  Returns ``(waiting, ages)``: per
    channel index, the input's waiting bit and its age (cycles its head flit has waited)."""
    st, cfg = router.stats, router.cfg
    waiting, starve_hit, ages = {}, {}, {}
    for i, ic in enumerate(ics):
        m.d.comb += ic.ready.eq(Cat(*[out.send[o] & s for o in range(len(out.send))
                                      for (j, s) in out.owner_of[o] if j == i]).any())
        with m.If(ic.valid & ic.ready):
            m.d.sync += ic.at_head.eq(ic.last)
        w = Signal(name=f"ic_{ic.name}_waiting")
        m.d.comb += w.eq(ic.valid & ~ic.ready)
        waiting[channel_index[i]] = w
        age = Signal(32, name=f"ic_{ic.name}_age")
        ages[channel_index[i]] = age
        with m.If(w):
            with m.If(age != 0xFFFF_FFFF):
                m.d.sync += age.eq(age + 1)
        with m.Else():
            m.d.sync += age.eq(0)
        starve_hit[channel_index[i]] = (cfg.age_limit != 0) & (age >= cfg.age_limit)
    m.d.comb += st.waiting.eq(Cat(*[waiting.get(k, Const(0, 1)) for k in range(len(st.waiting))]))
    with m.If(~st.starved):
        for k in sorted(starve_hit, reverse=True):
            with m.If(starve_hit[k]):
                m.d.sync += [st.starved.eq(1), st.starved_channel.eq(k)]
    return waiting, ages


def port_counters_and_errors(m, router, out, error):
    """The tile ports' flit counters, the crossbar's switched flits (every output channel's
    flit, summed per cycle), and the sticky error bits of ``stats.error`` above the slot
    table's (:data:`hw.errors.SLOT_ERRORS`)."""
    st, tile, clear = router.stats, router.tile, router.clear
    count(m, clear, st.eject_flits, tile.eject.valid & tile.eject.ready)
    count(m, clear, st.inject_flits, tile.inject.valid & tile.inject.ready)
    with m.If(clear):
        m.d.sync += st.switched_flits.eq(0)
    with m.Else():
        m.d.sync += st.switched_flits.eq(st.switched_flits + sum(out.send))
    low = int(SLOT_ERRORS).bit_length()
    m.d.sync += st.error[low:].eq(st.error[low:] | error[low:])
