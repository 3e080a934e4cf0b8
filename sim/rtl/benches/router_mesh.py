"""Torture-test top for the D2D router: an R x C mesh of routers with synthesizable
stand-in tiles and DRAM channels that generate random traffic and check every packet.

One :class:`ChipletNode` (router, its four outgoing links, a stand-in tile and a DRAM
channel) is converted to Verilog once; :class:`MeshTop` instantiates it R x C times and
wires neighbours together, so Verilator compiles one node module per build.

Traffic (all driven by per-node xorshift generators, so Python stays out of the
per-cycle loop):

* **Slices** (FSE-DP ring traffic): each DRAM channel ``ch`` streams SLICE packets into
  its own chiplet; slice number ``seq`` (12 bits, per channel) is sent as expert
  ``ch << 4 | seq >> 8``, slice ``seq & 0xff``.  The router forwards it around the ring.
* **Weight loads** (EP/Hydra): with probability ``weight_prob / 256`` a DRAM packet is a
  WEIGHT load to a random chiplet instead, numbered per (channel, destination).
* **Tokens and results**: each tile sends TOKEN/RESULT packets to random chiplets,
  numbered per (source, destination) in the header's ``token`` field.
* **Stalls**: every stand-in port refuses a cycle with probability ``STALL_PROB / 256``
  (slot writes, forwarding reads, arrivals, DRAM and injection valid, ejection ready),
  and every outgoing link with probability ``LINK_STALL_PROB / 256`` (on top of its
  bandwidth shaper).

Every payload flit is a function of its packet's id: ``{id 16, src 8, dst 8, flit
index 16, kind 4, 0 12, injection cycle 32, hash 32}`` (the hash covers the other 96
bits), lengths and token kinds are hashes of the id.  The checkers (HDL, in every node)
are a scoreboard keyed by packet id:

* slot writes are checked flit by flit as the router writes them (hash, packet id
  consistent within the slot, flit index = write offset); the arrival event is then
  checked against the slot (every flit written, id, kind, source channel), against the
  id (length; hop count = ring distance from the injecting chiplet, a per-channel
  table written by the bench) and against the flow (slice and weight ids arrive in
  per-channel order: nothing lost, duplicated or reordered);
* ejected tokens: destination, source, kind, length, per-(source, destination) order,
  and every payload flit;
* every packet's age (now - injection cycle) against a limit; the router's own
  starvation check (a flit waiting at any input longer than the limit) and its sticky
  protocol-error bits.

A *flow* is the packets of one kind from one source to one receiver: slices of DRAM
channel ``c`` at each chiplet of its ring, weight loads of channel ``c`` to chiplet ``d``,
tokens and results from chiplet ``s`` to chiplet ``d``.  Senders count packets and flits
(header and payload) per flow; receivers count per flow the packets and flits their
checkers saw, and classify every packet by its sequence number
(:class:`_FlowOrder`): in order, *reordered* (arrived after a later packet of its flow) or
*duplicated* (already received); the packets and flits never received are the *lost*
ones (:func:`flow_report`).  Counters per flow are read at the end and compared: every
slice was seen by every chiplet of its ring exactly once, every token and weight load
sent was received, nothing was lost, duplicated or reordered, the checkers saw every
flit the routers delivered, and every slot is free.  Errors latch the first error's code
and context.

For testing the checkers themselves, a node can inject one fault into its checkers'
input (:class:`Fault`: drop or duplicate one flit at the ejection or slot-write port,
drop one whole ejected packet), which the counters must then show.
"""

from __future__ import annotations

import enum as py_enum

from amaranth.hdl import Array, Cat, ClockSignal, Const, Instance, Module, Mux, ResetSignal, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hw.link import Link, check_rate, link_signature
from hw.mesh import neighbour
from hw.packets import NUM_VCS, Header, PacketKind, link_flit_layout
from hw.router import DIRS, Dir, Router

__all__ = ["ChipletNode", "MeshTop", "Reg", "Rd", "BenchError", "Fault", "Flow", "MAX_CHANNELS", "ORDER_WINDOW",
           "bench_hash", "payload_flit", "node_verilog", "top_verilog", "dram_chiplets", "ring_members", "plan_run",
           "check_run", "TORTURE_TRAFFIC", "expected_flits", "plan_for_flits", "flow_report", "flow_totals", "delivered_flits", "checked_flits", "stall_report", "READ_FIELDS",
           "node_params_for", "build_mesh", "run_torture"]

MAX_CHANNELS = 4
LINK_BYTES = 16
#: Width of the readout address (:class:`Rd`).
RD_ADDR_BITS = 9
#: A late packet counts as reordered (not duplicated) if it is at most this many sequence
#: numbers behind the newest of its flow (the receiver remembers which of those it skipped).
ORDER_WINDOW = 32


class Reg(py_enum.IntEnum):
    """Node configuration registers (written through the top's ``cfg_*`` bus)."""

    CHIPLET_ID = 0
    ROWS = 1
    COLS = 2
    SUCCESSOR = 3
    RING_LEN = 4
    SLOT_COUNT = 5
    AGE_LIMIT = 6
    SEED = 7
    DRAM_ENABLE = 8
    DRAM_CHANNEL = 9
    DRAM_PACKETS = 10     # packets the DRAM channel sends
    WEIGHT_PROB = 11      # /256: a DRAM packet is a WEIGHT load
    TOKEN_PACKETS = 12    # packets the tile sends
    TOKEN_PROB = 13       # /256: the tile starts a packet in an idle cycle
    STALL_PROB = 14       # /256: every port of the stand-ins refuses a cycle
    COMPUTE_MASK = 15     # compute delay = random & mask
    SLICE_LEN_MIN = 16
    SLICE_LEN_MASK = 17
    TOKEN_LEN_MASK = 18
    START = 19
    LINK_STALL_PROB = 20  # /256: every outgoing link refuses a cycle
    FAULT = 21            # a Fault to inject into this node's checkers' input
    FAULT_AT = 22         # ... at this port's flit (or packet) number, counted from 0
    EXP_HOPS = 32         # + channel: hops a slice of that channel has when it arrives here


class Rd(py_enum.IntEnum):
    """Node readout addresses (the top's ``rd_*`` bus)."""

    ERROR = 0
    FIRST_CODE = 1
    FIRST_INFO = 2
    ERROR_COUNT = 3
    QUIET = 4
    DRAM_SENT = 5
    TOKENS_SENT = 6
    TOKENS_RECEIVED = 7
    SLICES_RECEIVED = 8
    WEIGHTS_RECEIVED = 9
    MAX_AGE = 10
    CYCLE = 11
    SLOT_STATES = 12
    TOKEN_SENT_TO = 16          # + destination
    TOKEN_RECEIVED_FROM = 32    # + source
    SLICES_FROM = 48            # + channel
    WEIGHTS_FROM = 64           # + channel
    WEIGHTS_SENT_TO = 80        # + destination
    LINK_FLITS = 96             # + direction
    LINK_BUSY = 100
    LINK_STALLED = 104
    SLOT_FLITS = 108
    EJECT_FLITS = 109
    INJECT_FLITS = 110
    DRAM_FLITS = 111
    ARRIVALS = 112
    FORWARDS = 113
    FREE_SLOTS = 114
    OCCUPANCY = 115
    HIGH_WATER = 116
    ROUTER_ERROR = 117
    STARVED = 118
    STARVED_CHANNEL = 119
    WAITING = 120
    ROUTER_IDLE = 121
    FORWARD_QUEUE = 122
    FORWARD_STATUS = 123
    REQUESTS = 124
    DRAM_WAITING = 125
    FORWARD_WAIT_SLOT = 126
    FORWARD_WAIT_RELEASE = 127
    RELEASES = 128
    SLICE_FLITS_SENT = 129      # flits (header and payload) of the slices this DRAM channel sent
    CORRUPT_FLITS = 130         # flits the checkers found corrupt or out of place
    FAULTS_FIRED = 131          # the Fault was injected
    FLOW_FLITS = 256            # + Flow index: flits the checkers saw
    FLOW_DUPLICATED = 288       # + Flow index: packets received again
    FLOW_REORDERED = 320        # + Flow index: packets received after a later one
    FLOW_DUPLICATED_FLITS = 352  # + Flow index: flits of duplicated packets, and extra flits in a packet
    WEIGHT_FLITS_SENT_TO = 384  # + destination
    TOKEN_FLITS_SENT_TO = 400   # + destination


class Flow(py_enum.IntEnum):
    """Receive-side flow indices (``Rd.FLOW_*`` + index): slices of channel ``c`` at
    ``SLICE + c``, weight loads of channel ``c`` at ``WEIGHT + c``, tokens and results from
    chiplet ``s`` at ``TOKEN + s``."""

    SLICE = 0
    WEIGHT = MAX_CHANNELS
    TOKEN = 2 * MAX_CHANNELS


class Fault(py_enum.IntEnum):
    """A fault a node injects into its checkers' input, once (``Reg.FAULT``, at
    ``Reg.FAULT_AT``): the router's side of the port sees a normal handshake, the
    checker does not (drop) or sees the flit twice (duplicate)."""

    NONE = 0
    EJECT_DROP_FLIT = 1      # ejection port: the first payload flit from number FAULT_AT on
    EJECT_DUP_FLIT = 2       # ... that is not a packet's last (counted from 0)
    EJECT_DROP_PACKET = 3    # ejection port: every flit of packet number FAULT_AT
    SLOT_DROP_FLIT = 4       # slot-write port: flit number FAULT_AT (not written into the memory)
    SLOT_DUP_FLIT = 5


class BenchError(py_enum.IntEnum):
    """Bit positions of the node's error register."""

    SLOT_FLIT = 0        # a written payload flit is corrupt or belongs to another packet
    SLOT_COUNT = 1       # arrival announced before every payload flit was written
    SLOT_ORDER = 2       # slice / weight id out of per-channel order (lost, duplicated)
    HOPS = 3             # hop count is not the ring distance from the injecting chiplet
    SLOT_LENGTH = 4      # length differs from the id's length
    SLOT_IDENTITY = 5    # kind, channel or id of the arrival differ from its slot's flits
    TOKEN_HEADER = 6     # token at the wrong chiplet, bad source, wrong kind
    TOKEN_ORDER = 7      # token id out of per-flow order
    TOKEN_FLIT = 8       # token payload flit corrupt
    TOKEN_LENGTH = 9
    AGE = 10             # a packet older than the age limit
    ROUTER = 11          # the router's sticky protocol-error bits
    STARVED = 12         # the router saw a flit wait longer than the age limit
    MEM_RANGE = 13       # a slot write outside the stand-in memory's slot


def _rotl32(x, n):
    return ((x << n) | (x >> (32 - n))) & 0xFFFFFFFF


def bench_hash(word96: int) -> int:
    """Hash of a payload flit's low 96 bits (software mirror of the HDL)."""
    a, b, c = word96 & 0xFFFFFFFF, (word96 >> 32) & 0xFFFFFFFF, (word96 >> 64) & 0xFFFFFFFF
    h = ((a ^ _rotl32(b, 11) ^ _rotl32(c, 23)) * 0x9E3779B1) & 0xFFFFFFFF
    return h ^ (h >> 15)


def payload_flit(*, ident, src, dst, index, kind, cycle) -> int:
    """A bench payload flit (software mirror)."""
    low = ident | src << 16 | dst << 24 | index << 32 | int(kind) << 48 | (cycle & 0xFFFFFFFF) << 64
    return low | bench_hash(low) << 96


def _hash_hdl(m, word96, name):
    a, b, c = word96[0:32], word96[32:64], word96[64:96]
    x = Signal(32, name=f"{name}_x")
    h = Signal(32, name=f"{name}_h")
    m.d.comb += [x.eq(a ^ b.rotate_left(11) ^ c.rotate_left(23)), h.eq(x * 0x9E3779B1)]
    out = Signal(32, name=name)
    m.d.comb += out.eq(h ^ (h >> 15))
    return out


def _mix_hdl(m, value32, name):
    """A 32-bit mix of an id, for lengths and kinds."""
    h = Signal(32, name=f"{name}_m")
    m.d.comb += h.eq(value32 * 0x85EBCA6B)
    out = Signal(32, name=name)
    m.d.comb += out.eq(h ^ (h >> 13))
    return out


class _Xorshift:
    """A 64-bit xorshift generator stepped every cycle (random bits for stalls and
    choices)."""

    def __init__(self, m, seed, load, name):
        self.state = Signal(64, init=0x9E3779B97F4A7C15, name=name)
        s = self.state
        x1 = s ^ (s << 13)[:64]
        x2 = x1 ^ (x1 >> 7)
        x3 = x2 ^ (x2 << 17)[:64]
        with m.If(load):
            m.d.sync += s.eq(Cat(seed, ~seed) | 1)
        with m.Else():
            m.d.sync += s.eq(x3)

    def byte(self, k):
        return self.state[8 * k:8 * k + 8]


class _FlowOrder:
    """Packet order of the flows of one receive point (HDL).

    Per flow: the next sequence number expected (modulo ``2 ** seq_bits``), which of the
    ``window`` sequence numbers before it were skipped and not received yet, and counters
    of duplicated and reordered packets.  A packet whose number is the expected one, or
    ahead of it (by less than half the number space), is in order or skips the numbers
    in between (remembered as missing); one behind is *reordered* if its number is
    remembered as missing (and is then no longer), else *duplicated*.  Packets never
    received are counted at the end from the senders' counts (:func:`flow_report`).
    """

    def __init__(self, m, name, flows, seq_bits, window=ORDER_WINDOW):
        self.m, self.name, self.bits, self.window = m, name, seq_bits, window
        self.exp = Array(Signal(seq_bits, name=f"{name}_exp{f}") for f in range(flows))
        self.missing = Array(Signal(window, name=f"{name}_missing{f}") for f in range(flows))
        self.duplicated = Array(Signal(32, name=f"{name}_duplicated{f}") for f in range(flows))
        self.reordered = Array(Signal(32, name=f"{name}_reordered{f}") for f in range(flows))

    def observe(self, valid, flow, seq):
        """Classify packet ``seq`` of ``flow`` (when ``valid``); returns the signals
        ``(in_order, duplicated)`` of this cycle."""
        m, name, bits, W = self.m, self.name, self.bits, self.window
        exp, missing = Signal(bits, name=f"{name}_cur_exp"), Signal(W, name=f"{name}_cur_missing")
        diff, back = Signal(bits, name=f"{name}_ahead"), Signal(bits, name=f"{name}_behind")
        m.d.comb += [exp.eq(self.exp[flow]), missing.eq(self.missing[flow]), diff.eq(seq - exp),
                     back.eq(exp - seq)]
        in_order, ahead = Signal(name=f"{name}_in_order"), Signal(name=f"{name}_skips")
        late, dup = Signal(name=f"{name}_late"), Signal(name=f"{name}_dup")
        shift = Signal(range(W + 1), name=f"{name}_shift")
        late_at = Signal(range(W), name=f"{name}_late_at")
        # After a skip of ``diff``: bit k of the window is number ``seq - k``; bits 1..diff
        # are the numbers skipped.
        gap = Cat(Const(0, 1), *[diff >= k for k in range(1, W)])
        m.d.comb += [
            in_order.eq(diff == 0), ahead.eq((diff != 0) & ~diff[bits - 1]),
            shift.eq(Mux(diff >= W, W, diff + 1)), late_at.eq(back - 1),
            late.eq(~in_order & ~ahead & (back <= W) & missing.bit_select(late_at, 1)),
            dup.eq(~in_order & ~ahead & ~late),
        ]
        with m.If(valid):
            with m.If(in_order | ahead):
                m.d.sync += [self.exp[flow].eq(seq + 1), self.missing[flow].eq((missing << shift)[:W] | gap)]
            with m.Elif(late):
                m.d.sync += [self.missing[flow].eq(missing & ~(Const(1, W) << late_at)[:W]),
                             self.reordered[flow].eq(self.reordered[flow] + 1)]
            with m.Else():
                m.d.sync += self.duplicated[flow].eq(self.duplicated[flow] + 1)
        return in_order, dup


class ChipletNode(wiring.Component):
    """Router + outgoing links + stand-in tile and DRAM channel + checkers.

    Parameters
    ----------
    link_latency : int
    link_rate : (int, int)
    max_slots, max_chiplets, buffer_depth : int
        Router build parameters.
    slot_flits : int
        Flits per slot of the stand-in weight memory (a power of two).
    """

    def __init__(self, *, link_latency=2, link_rate=(45, 64), max_slots=12, max_chiplets=9,
                 buffer_depth=8, slot_flits=64):
        check_rate(link_rate)
        if slot_flits & (slot_flits - 1):
            raise ValueError(f"Slot flits must be a power of two, not {slot_flits}")
        self.link_latency, self.link_rate = link_latency, link_rate
        self.max_slots, self.max_chiplets, self.slot_flits = max_slots, max_chiplets, slot_flits
        self.router = Router(link_bytes=LINK_BYTES, max_slots=max_slots, max_chiplets=max_chiplets,
                             buffer_depth=buffer_depth, flit_bits=16)
        self.links = [Link(link_bytes=LINK_BYTES, latency=link_latency, rate=link_rate) for _ in DIRS]
        self.mem = Memory(shape=8 * LINK_BYTES, depth=max_slots * slot_flits, init=[])
        members = {}
        for d in DIRS:
            members[f"in_{d}"] = In(link_signature(LINK_BYTES))
            members[f"out_{d}"] = Out(link_signature(LINK_BYTES))
        members.update({
            "cfg_we": In(1), "cfg_addr": In(8), "cfg_data": In(32),
            "rd_addr": In(RD_ADDR_BITS), "rd_data": Out(32),
            "quiet": Out(1), "progress": Out(1), "error": Out(1),
        })
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        r = self.router
        m.submodules.router = r
        for d, link in zip(DIRS, self.links):
            m.submodules[f"link_{d}"] = link
            wiring.connect(m, link.o, wiring.flipped(getattr(self, f"out_{d}")))
            wiring.connect(m, wiring.flipped(getattr(self, f"in_{d}")), r.inputs[DIRS.index(d)])

        # ---- configuration registers -----------------------------------------------------
        regs = {}
        for reg in Reg:
            if reg is Reg.EXP_HOPS:
                continue
            regs[reg] = Signal(32, name=f"reg_{reg.name.lower()}")
        exp_hops = Array(Signal(8, name=f"reg_exp_hops{c}") for c in range(MAX_CHANNELS))
        with m.If(self.cfg_we):
            with m.Switch(self.cfg_addr):
                for reg, sig in regs.items():
                    with m.Case(reg):
                        m.d.sync += sig.eq(self.cfg_data)
                for c in range(MAX_CHANNELS):
                    with m.Case(Reg.EXP_HOPS + c):
                        m.d.sync += exp_hops[c].eq(self.cfg_data)
        me = regs[Reg.CHIPLET_ID][:8]
        n_chiplets = Signal(8, name="n_chiplets")
        m.d.comb += n_chiplets.eq(regs[Reg.ROWS][:8] * regs[Reg.COLS][:8])
        cfg = r.cfg
        m.d.comb += [
            cfg.chiplet_id.eq(me), cfg.rows.eq(regs[Reg.ROWS]), cfg.cols.eq(regs[Reg.COLS]),
            cfg.successor.eq(regs[Reg.SUCCESSOR]), cfg.ring_len.eq(regs[Reg.RING_LEN]),
            cfg.slot_count.eq(regs[Reg.SLOT_COUNT]), cfg.age_limit.eq(regs[Reg.AGE_LIMIT]),
        ]
        start = regs[Reg.START][0]
        age_limit = regs[Reg.AGE_LIMIT]
        stall_prob = regs[Reg.STALL_PROB][:8]
        load_seed = self.cfg_we & (self.cfg_addr == Reg.SEED)
        rng_a = _Xorshift(m, self.cfg_data, load_seed, "rng_a")
        rng_b = _Xorshift(m, self.cfg_data ^ 0x5BD1E995, load_seed, "rng_b")
        rng_c = _Xorshift(m, self.cfg_data ^ 0x27D4EB2F, load_seed, "rng_c")
        now = Signal(32, name="now")
        m.d.sync += now.eq(now + 1)

        def go(k):
            """Port ``k`` does not stall this cycle."""
            src = rng_a if k < 8 else rng_b
            return src.byte(k % 8) >= stall_prob

        # Outgoing links: the router's flit goes into the link only in a cycle the link
        # does not stall (the link's ``ready`` never depends on ``valid``, so neither does
        # the stall).
        link_stall_prob = regs[Reg.LINK_STALL_PROB][:8]
        for k, link in enumerate(self.links):
            out, go_link = r.outputs[k], rng_c.byte(k) >= link_stall_prob
            m.d.comb += [link.i.valid.eq(out.valid & go_link), link.i.payload.eq(out.payload),
                         out.ready.eq(link.i.ready & go_link), out.credit.eq(link.i.credit)]

        errors = Signal(16, name="errors_now")
        err_info = Signal(32, name="errors_info")   # context of the lowest error bit this cycle
        tile = r.tile
        fault, fault_at = regs[Reg.FAULT][:4], regs[Reg.FAULT_AT]
        fault_fired = Signal(name="fault_fired")
        corrupt = Signal(32, name="corrupt_flits")
        corrupt_wr, corrupt_ej = Signal(name="corrupt_wr"), Signal(name="corrupt_ej")
        m.d.sync += corrupt.eq(corrupt + corrupt_wr + corrupt_ej)

        # ---- stand-in weight memory --------------------------------------------------------
        m.submodules.mem = self.mem
        wp = self.mem.write_port()
        rp = self.mem.read_port()
        slot_bits = (self.slot_flits - 1).bit_length()
        wr = tile.wr.payload
        # What the checker (and the memory) take: the router's handshake, except for an
        # injected fault (the router's side sees a normal handshake).
        wr_take = Signal(name="wr_checked")
        wr_n = Signal(32, name="wr_flits_taken")
        wr_fault = Signal(name="wr_fault_now")
        m.d.comb += wr_fault.eq(tile.wr.valid & ~fault_fired & (wr_n == fault_at)
                                & ((fault == Fault.SLOT_DROP_FLIT) | (fault == Fault.SLOT_DUP_FLIT)))
        m.d.comb += [
            tile.wr.ready.eq(Mux(wr_fault, fault == Fault.SLOT_DROP_FLIT, go(0))),
            wr_take.eq(tile.wr.valid & Mux(wr_fault, fault == Fault.SLOT_DUP_FLIT, tile.wr.ready)),
            wp.addr.eq(Cat(wr.flit[:slot_bits], wr.slot)),
            wp.data.eq(wr.data),
            wp.en.eq(wr_take & (wr.flit < self.slot_flits)),
        ]
        with m.If(tile.wr.valid & tile.wr.ready):
            m.d.sync += wr_n.eq(wr_n + 1)
        with m.If(wr_fault):
            m.d.sync += fault_fired.eq(1)
        with m.If(wr_take & (wr.flit >= self.slot_flits)):
            m.d.comb += errors[BenchError.MEM_RANGE].eq(1)
        resp_valid = Signal(name="rd_resp_valid")
        m.d.comb += [
            tile.rd_req.ready.eq((~resp_valid | tile.rd_data.ready) & go(1)),
            rp.addr.eq(Cat(tile.rd_req.payload.flit[:slot_bits], tile.rd_req.payload.slot)),
            rp.en.eq(tile.rd_req.ready),
            tile.rd_data.valid.eq(resp_valid),
            tile.rd_data.payload.eq(rp.data),
        ]
        with m.If(tile.rd_req.ready):
            m.d.sync += resp_valid.eq(tile.rd_req.valid)
        with m.Elif(tile.rd_data.ready):
            m.d.sync += resp_valid.eq(0)

        # ---- slot write checker: every payload flit as the router writes it ----------------
        n = self.max_slots
        s_count = Array(Signal(16, name=f"chk_count{i}") for i in range(n))
        s_ident = Array(Signal(16, name=f"chk_id{i}") for i in range(n))
        s_src = Array(Signal(8, name=f"chk_src{i}") for i in range(n))
        s_kind = Array(Signal(4, name=f"chk_kind{i}") for i in range(n))
        s_dst = Array(Signal(8, name=f"chk_dst{i}") for i in range(n))
        s_born = Array(Signal(32, name=f"chk_born{i}") for i in range(n))
        s_bad = Array(Signal(name=f"chk_bad{i}") for i in range(n))
        wd = wr.data
        w_hash = _hash_hdl(m, wd[:96], "wr_hash")
        w_ok = Signal(name="wr_flit_ok")
        first = wr.flit == 0
        # ``s_count`` is the flits written into the slot since its last arrival (cleared
        # there), so every flit must be the next one: a duplicated, dropped or misplaced
        # flit (even the first) marks the fill bad.
        m.d.comb += w_ok.eq((w_hash == wd[96:128]) & (wd[32:48] == wr.flit) & (wd[52:64] == 0)
                            & (wr.flit == s_count[wr.slot])
                            & (first | ((wd[0:16] == s_ident[wr.slot]) & (wd[16:24] == s_src[wr.slot])
                                        & (wd[48:52] == s_kind[wr.slot]) & (wd[24:32] == s_dst[wr.slot])
                                        & (wd[64:96] == s_born[wr.slot]))))
        a_take = Signal(name="arrival_taken")
        with m.If(a_take):
            m.d.sync += s_count[tile.arrival.payload.slot].eq(0)
        with m.If(wr_take):
            m.d.sync += s_count[wr.slot].eq(s_count[wr.slot] + 1)
            with m.If(first & (s_count[wr.slot] == 0)):
                m.d.sync += [s_ident[wr.slot].eq(wd[0:16]), s_src[wr.slot].eq(wd[16:24]),
                             s_kind[wr.slot].eq(wd[48:52]), s_dst[wr.slot].eq(wd[24:32]),
                             s_born[wr.slot].eq(wd[64:96]), s_bad[wr.slot].eq(~w_ok)]
            with m.Elif(~w_ok):
                m.d.sync += s_bad[wr.slot].eq(1)
            with m.If(~w_ok):
                m.d.comb += [errors[BenchError.SLOT_FLIT].eq(1), corrupt_wr.eq(1)]
                m.d.comb += err_info.eq(Cat(wr.flit, wr.slot))

        # ---- arrivals: check, then compute for a random time ---------------------------------
        a = tile.arrival.payload
        m.d.comb += [tile.arrival.ready.eq(go(2)), a_take.eq(tile.arrival.valid & tile.arrival.ready)]
        slot_order = _FlowOrder(m, "slot_order", 2 * MAX_CHANNELS, 12)
        slot_flow_flits = Array(Signal(32, name=f"slot_flow_flits{f}") for f in range(2 * MAX_CHANNELS))
        slot_flow_dup_flits = Array(Signal(32, name=f"slot_flow_dup_flits{f}") for f in range(2 * MAX_CHANNELS))
        slices_from = Array(Signal(32, name=f"slices_from{c}") for c in range(MAX_CHANNELS))
        weights_from = Array(Signal(32, name=f"weights_from{c}") for c in range(MAX_CHANNELS))
        a_chan = a.expert[4:8]
        a_seq = Cat(a.slice, a.expert[0:4])
        a_ident = Cat(a.slice, a.expert)
        a_len_mix = _mix_hdl(m, Cat(a_seq, a_chan, a.kind.as_value()[:1]), "arr_len_mix")
        a_len = regs[Reg.SLICE_LEN_MIN][:16] + (a_len_mix[16:32] & regs[Reg.SLICE_LEN_MASK][:16])
        is_slice = a.kind == PacketKind.SLICE
        is_weight = a.kind == PacketKind.WEIGHT
        max_age = Signal(32, name="max_age")
        a_flow = Signal(range(2 * MAX_CHANNELS), name="arr_flow")
        m.d.comb += a_flow.eq(Mux(is_slice, Flow.SLICE, Flow.WEIGHT) + a_chan[:2])
        a_in_order, a_dup = slot_order.observe(a_take & (a_chan < MAX_CHANNELS) & (is_slice | is_weight),
                                               a_flow, a_seq)
        a_got = Signal(16, name="arr_flits_seen")        # header and payload flits of this arrival
        m.d.comb += a_got.eq(s_count[a.slot] + 1)
        with m.If(a_take & (a_chan < MAX_CHANNELS) & (is_slice | is_weight)):
            m.d.sync += [
                slot_flow_flits[a_flow].eq(slot_flow_flits[a_flow] + a_got),
                slot_flow_dup_flits[a_flow].eq(slot_flow_dup_flits[a_flow] + Mux(
                    a_dup, a_got, Mux(s_count[a.slot] > a_len, s_count[a.slot] - a_len, 0))),
            ]
        with m.If(a_take):
            checks = [
                (~is_slice & ~is_weight | (a_chan >= MAX_CHANNELS), BenchError.SLOT_IDENTITY),
                (s_bad[a.slot], BenchError.SLOT_FLIT),
                (s_count[a.slot] != a.length, BenchError.SLOT_COUNT),
                ((s_ident[a.slot] != a_ident) | (s_src[a.slot] != a_chan)
                 | (s_kind[a.slot] != a.kind.as_value())
                 | (s_dst[a.slot] != Mux(is_slice, 0xFF, me)), BenchError.SLOT_IDENTITY),
                (a.length != a_len, BenchError.SLOT_LENGTH),
                (Mux(is_slice, a.hops != exp_hops[a_chan], a.hops != 0), BenchError.HOPS),
                (~a_in_order, BenchError.SLOT_ORDER),
                ((age_limit != 0) & (now - s_born[a.slot] > age_limit), BenchError.AGE),
            ]
            for cond, bit in checks:
                with m.If(cond):
                    m.d.comb += errors[bit].eq(1)
            m.d.comb += err_info.eq(Cat(a_seq, a_chan, a.slot, a.kind.as_value()))
            with m.If(now - s_born[a.slot] > max_age):
                m.d.sync += max_age.eq(now - s_born[a.slot])
            with m.If(is_slice):
                m.d.sync += slices_from[a_chan].eq(slices_from[a_chan] + 1)
            with m.Else():
                m.d.sync += weights_from[a_chan].eq(weights_from[a_chan] + 1)

        comp_q = Array(Signal(8, name=f"compute_q{i}") for i in range(n))
        q_head, q_tail = Signal(range(n), name="cq_head"), Signal(range(n), name="cq_tail")
        q_count = Signal(range(n + 1), name="cq_count")
        busy, delay = Signal(name="compute_busy"), Signal(16, name="compute_delay")
        cur_slot = Signal(8, name="compute_slot")
        pushed = tile.arrival.valid & tile.arrival.ready
        popped = Signal(name="compute_pop")
        with m.If(pushed):
            m.d.sync += [comp_q[q_tail].eq(a.slot), q_tail.eq(Mux(q_tail == n - 1, 0, q_tail + 1))]
        m.d.sync += q_count.eq(q_count + pushed - popped)
        m.d.comb += popped.eq(~busy & (q_count != 0))
        with m.If(popped):
            m.d.sync += [busy.eq(1), delay.eq(Cat(rng_b.byte(6), rng_b.byte(7)) & regs[Reg.COMPUTE_MASK][:16]),
                         cur_slot.eq(comp_q[q_head]),
                         q_head.eq(Mux(q_head == n - 1, 0, q_head + 1))]
        with m.If(busy & (delay != 0)):
            m.d.sync += delay.eq(delay - 1)
        m.d.comb += [tile.compute_done.valid.eq(busy & (delay == 0)), tile.compute_done.payload.eq(cur_slot)]
        with m.If(tile.compute_done.valid & tile.compute_done.ready):
            m.d.sync += busy.eq(0)

        # ---- DRAM channel: SLICE and WEIGHT packets ----------------------------------------
        chan = regs[Reg.DRAM_CHANNEL][:4]
        d_state = Signal(range(3), name="dram_state")   # idle, header, payload
        d_kind = Signal(PacketKind, name="dram_kind")
        d_dst, d_seq, d_len, d_idx = Signal(8, name="dram_dst"), Signal(12, name="dram_seq"), \
            Signal(16, name="dram_len"), Signal(16, name="dram_idx")
        d_born = Signal(32, name="dram_born")
        d_sent = Signal(32, name="dram_sent")
        d_valid = Signal(name="dram_valid")
        slice_seq = Signal(12, name="slice_seq")
        weight_seq = Array(Signal(12, name=f"weight_seq{c}") for c in range(self.max_chiplets))
        weights_to = Array(Signal(32, name=f"weights_to{c}") for c in range(self.max_chiplets))
        slice_flits_sent = Signal(32, name="slice_flits_sent")
        weight_flits_to = Array(Signal(32, name=f"weight_flits_to{c}") for c in range(self.max_chiplets))
        pick_weight = rng_a.byte(3) < regs[Reg.WEIGHT_PROB][:8]
        pick_dst = Signal(8, name="dram_pick_dst")
        m.d.comb += pick_dst.eq(Cat(rng_b.byte(0), rng_b.byte(1)) % Mux(n_chiplets == 0, 1, n_chiplets))
        next_seq = Mux(pick_weight, weight_seq[pick_dst], slice_seq)
        d_mix = _mix_hdl(m, Cat(next_seq, chan, Mux(pick_weight, PacketKind.WEIGHT.value, PacketKind.SLICE.value)[:1]),
                         "dram_len_mix")
        dram = r.dram
        hdr = Signal(Header, name="dram_header")
        m.d.comb += [hdr.kind.eq(d_kind), hdr.dst.eq(d_dst), hdr.length.eq(d_len),
                     hdr.expert.eq(Cat(d_seq[8:12], chan)), hdr.slice.eq(d_seq[:8])]
        pay = Signal(128, name="dram_payload")
        m.d.comb += [pay[0:16].eq(Cat(d_seq[:8], d_seq[8:12], chan)), pay[16:24].eq(chan),
                     pay[24:32].eq(Mux(d_kind == PacketKind.SLICE, 0xFF, d_dst)), pay[32:48].eq(d_idx),
                     pay[48:52].eq(d_kind.as_value()), pay[64:96].eq(d_born)]
        m.d.comb += pay[96:128].eq(_hash_hdl(m, pay[:96], "dram_hash"))
        m.d.comb += [dram.valid.eq((d_state != 0) & d_valid),
                     dram.payload.data.eq(Mux(d_state == 1, hdr.as_value(), pay)),
                     dram.payload.last.eq((d_state == 2) & (d_idx + 1 == d_len))]
        with m.If(~d_valid | dram.ready):
            m.d.sync += d_valid.eq(go(3))
        with m.If(dram.valid & dram.ready):
            with m.If(d_kind == PacketKind.SLICE):
                m.d.sync += slice_flits_sent.eq(slice_flits_sent + 1)
            with m.Else():
                m.d.sync += weight_flits_to[d_dst].eq(weight_flits_to[d_dst] + 1)
        with m.Switch(d_state):
            with m.Case(0):
                with m.If(start & regs[Reg.DRAM_ENABLE][0] & (d_sent != regs[Reg.DRAM_PACKETS])):
                    m.d.sync += [d_state.eq(1), d_kind.eq(Mux(pick_weight, PacketKind.WEIGHT, PacketKind.SLICE)),
                                 d_dst.eq(pick_dst), d_seq.eq(next_seq), d_born.eq(now), d_idx.eq(0),
                                 d_len.eq(regs[Reg.SLICE_LEN_MIN][:16] + (d_mix[16:32] & regs[Reg.SLICE_LEN_MASK][:16]))]
            with m.Case(1):
                with m.If(dram.valid & dram.ready):
                    m.d.sync += d_state.eq(2)
            with m.Case(2):
                with m.If(dram.valid & dram.ready):
                    m.d.sync += d_idx.eq(d_idx + 1)
                    with m.If(dram.payload.last):
                        m.d.sync += [d_state.eq(0), d_sent.eq(d_sent + 1)]
                        with m.If(d_kind == PacketKind.SLICE):
                            m.d.sync += slice_seq.eq(slice_seq + 1)
                        with m.Else():
                            m.d.sync += [weight_seq[d_dst].eq(weight_seq[d_dst] + 1),
                                         weights_to[d_dst].eq(weights_to[d_dst] + 1)]

        # ---- token generator ---------------------------------------------------------------
        t_state = Signal(range(3), name="tok_state")
        t_dst, t_seq, t_len, t_idx = Signal(8, name="tok_dst"), Signal(16, name="tok_seq"), \
            Signal(16, name="tok_len"), Signal(16, name="tok_idx")
        t_kind = Signal(PacketKind, name="tok_kind")
        t_born = Signal(32, name="tok_born")
        t_sent = Signal(32, name="tok_sent")
        t_valid = Signal(name="tok_valid")
        tok_seq = Array(Signal(16, name=f"tok_seq{c}") for c in range(self.max_chiplets))
        tok_to = Array(Signal(32, name=f"tok_to{c}") for c in range(self.max_chiplets))
        tok_flits_to = Array(Signal(32, name=f"tok_flits_to{c}") for c in range(self.max_chiplets))
        t_pick = Signal(8, name="tok_pick_dst")
        m.d.comb += t_pick.eq(Cat(rng_b.byte(2), rng_b.byte(3)) % Mux(n_chiplets == 0, 1, n_chiplets))

        def token_mix(src, dst, seq, name):
            return _mix_hdl(m, Cat(seq, dst, src), name)
        g_mix = token_mix(me, t_pick, tok_seq[t_pick], "tok_gen_mix")
        inj = tile.inject
        thdr = Signal(Header, name="tok_header")
        m.d.comb += [thdr.kind.eq(t_kind), thdr.dst.eq(t_dst), thdr.length.eq(t_len), thdr.token.eq(t_seq),
                     thdr.src.eq(0xEE)]   # the router must stamp src
        tpay = Signal(128, name="tok_payload")
        m.d.comb += [tpay[0:16].eq(t_seq), tpay[16:24].eq(me), tpay[24:32].eq(t_dst), tpay[32:48].eq(t_idx),
                     tpay[48:52].eq(t_kind.as_value()), tpay[64:96].eq(t_born)]
        m.d.comb += tpay[96:128].eq(_hash_hdl(m, tpay[:96], "tok_hash"))
        m.d.comb += [inj.valid.eq((t_state != 0) & t_valid),
                     inj.payload.data.eq(Mux(t_state == 1, thdr.as_value(), tpay)),
                     inj.payload.last.eq((t_state == 2) & (t_idx + 1 == t_len))]
        with m.If(~t_valid | inj.ready):
            m.d.sync += t_valid.eq(go(4))
        with m.If(inj.valid & inj.ready):
            m.d.sync += tok_flits_to[t_dst].eq(tok_flits_to[t_dst] + 1)
        with m.Switch(t_state):
            with m.Case(0):
                with m.If(start & (t_sent != regs[Reg.TOKEN_PACKETS]) & (rng_a.byte(5) < regs[Reg.TOKEN_PROB][:8])):
                    m.d.sync += [t_state.eq(1), t_dst.eq(t_pick), t_seq.eq(tok_seq[t_pick]), t_born.eq(now),
                                 t_idx.eq(0), t_len.eq(1 + (g_mix[16:32] & regs[Reg.TOKEN_LEN_MASK][:16])),
                                 t_kind.eq(Mux(g_mix[8], PacketKind.RESULT, PacketKind.TOKEN))]
            with m.Case(1):
                with m.If(inj.valid & inj.ready):
                    m.d.sync += t_state.eq(2)
            with m.Case(2):
                with m.If(inj.valid & inj.ready):
                    m.d.sync += t_idx.eq(t_idx + 1)
                    with m.If(inj.payload.last):
                        m.d.sync += [t_state.eq(0), t_sent.eq(t_sent + 1), tok_seq[t_dst].eq(t_seq + 1),
                                     tok_to[t_dst].eq(tok_to[t_dst] + 1)]

        # ---- token consumer ------------------------------------------------------------------
        ej = tile.eject
        # The router's side of the port (``ej.ready``) and what the checker takes
        # (``ej_take``) differ only for an injected fault.
        r_head = Signal(init=1, name="ej_router_at_head")
        ej_flits_n, ej_packets_n = Signal(32, name="ej_payload_flits_taken"), Signal(32, name="ej_packets_taken")
        with m.If(ej.valid & ej.ready):
            m.d.sync += r_head.eq(ej.payload.last)
            with m.If(r_head):
                m.d.sync += ej_packets_n.eq(ej_packets_n + 1)
            with m.Else():
                m.d.sync += ej_flits_n.eq(ej_flits_n + 1)
        drop_pkt = Signal(name="ej_dropping_packet")    # Fault.EJECT_DROP_PACKET under way
        flit_fault = (~fault_fired & ~r_head & ~ej.payload.last & (ej_flits_n >= fault_at)
                      & ((fault == Fault.EJECT_DROP_FLIT) | (fault == Fault.EJECT_DUP_FLIT)))
        pkt_fault = ~fault_fired & r_head & (ej_packets_n == fault_at) & (fault == Fault.EJECT_DROP_PACKET)
        ej_fault, ej_drop = Signal(name="ej_fault_now"), Signal(name="ej_drop_now")
        ej_take = Signal(name="ej_checked")
        m.d.comb += [ej_fault.eq(ej.valid & (flit_fault | pkt_fault)),
                     ej_drop.eq((ej_fault & (fault != Fault.EJECT_DUP_FLIT)) | drop_pkt),
                     ej.ready.eq(Mux(ej_fault, fault != Fault.EJECT_DUP_FLIT, go(5))),
                     ej_take.eq(ej.valid & ~ej_drop & (ej.ready | ej_fault))]
        with m.If(ej_fault):
            m.d.sync += fault_fired.eq(1)
            with m.If(pkt_fault & ~ej.payload.last):
                m.d.sync += drop_pkt.eq(1)
        with m.If(drop_pkt & ej.valid & ej.ready & ej.payload.last):
            m.d.sync += drop_pkt.eq(0)
        e_head = Signal(init=1, name="ej_at_head")
        e_src, e_seq, e_len, e_idx = Signal(8, name="ej_src"), Signal(16, name="ej_seq"), \
            Signal(16, name="ej_len"), Signal(16, name="ej_idx")
        e_kind = Signal(4, name="ej_kind")
        e_dup = Signal(name="ej_duplicate")
        tok_order = _FlowOrder(m, "tok_order", self.max_chiplets, 16)
        tok_from = Array(Signal(32, name=f"tok_from{c}") for c in range(self.max_chiplets))
        tok_flow_flits = Array(Signal(32, name=f"tok_flow_flits{c}") for c in range(self.max_chiplets))
        tok_flow_dup_flits = Array(Signal(32, name=f"tok_flow_dup_flits{c}") for c in range(self.max_chiplets))
        eh = Header(ej.payload.data[:96])
        c_mix = token_mix(eh.src, me, eh.token, "tok_chk_mix")
        ed = ej.payload.data
        e_hash = _hash_hdl(m, ed[:96], "ej_hash")
        tok_rx = Signal(32, name="tok_received")
        e_valid_src = eh.src < n_chiplets
        t_in_order, t_dup = tok_order.observe(ej_take & e_head & e_valid_src, eh.src[:4], eh.token)
        e_flow = Signal(4, name="ej_flow_src")
        m.d.comb += e_flow.eq(Mux(e_head, eh.src[:4], e_src[:4]))
        with m.If(ej_take & Mux(e_head, e_valid_src, e_src < n_chiplets)):
            m.d.sync += tok_flow_flits[e_flow].eq(tok_flow_flits[e_flow] + 1)
            with m.If(Mux(e_head, t_dup, e_dup | (e_idx >= e_len))):
                m.d.sync += tok_flow_dup_flits[e_flow].eq(tok_flow_dup_flits[e_flow] + 1)
        with m.If(ej_take):
            m.d.sync += e_head.eq(ej.payload.last)
            with m.If(e_head):
                m.d.sync += [e_src.eq(eh.src), e_seq.eq(eh.token), e_len.eq(eh.length), e_idx.eq(0),
                             e_kind.eq(eh.kind.as_value()), e_dup.eq(t_dup)]
                for cond, bit in [
                    ((eh.dst != me) | (eh.src >= n_chiplets)
                     | (eh.kind.as_value() != Mux(c_mix[8], PacketKind.RESULT.value, PacketKind.TOKEN.value)),
                     BenchError.TOKEN_HEADER),
                    (~t_in_order, BenchError.TOKEN_ORDER),
                    ((eh.length != 1 + (c_mix[16:32] & regs[Reg.TOKEN_LEN_MASK][:16])) | ej.payload.last,
                     BenchError.TOKEN_LENGTH),
                ]:
                    with m.If(cond):
                        m.d.comb += errors[bit].eq(1)
                m.d.comb += err_info.eq(Cat(eh.token, eh.src, me))
            with m.Else():
                m.d.sync += e_idx.eq(e_idx + 1)
                ok = ((e_hash == ed[96:128]) & (ed[0:16] == e_seq) & (ed[16:24] == e_src) & (ed[24:32] == me)
                      & (ed[32:48] == e_idx) & (ed[48:52] == e_kind) & (ed[52:64] == 0))
                with m.If(~ok):
                    m.d.comb += [errors[BenchError.TOKEN_FLIT].eq(1), err_info.eq(Cat(e_seq, e_src, e_idx[:8])),
                                 corrupt_ej.eq(1)]
                with m.If(ej.payload.last != (e_idx + 1 == e_len)):
                    m.d.comb += [errors[BenchError.TOKEN_LENGTH].eq(1), err_info.eq(Cat(e_seq, e_src))]
                with m.If((age_limit != 0) & (now - ed[64:96] > age_limit) & (e_idx == 0)):
                    m.d.comb += [errors[BenchError.AGE].eq(1), err_info.eq(Cat(e_seq, e_src))]
                with m.If((e_idx == 0) & (now - ed[64:96] > max_age)):
                    m.d.sync += max_age.eq(now - ed[64:96])
                with m.If(ej.payload.last):
                    m.d.sync += [tok_from[e_src[:4]].eq(tok_from[e_src[:4]] + 1), tok_rx.eq(tok_rx + 1)]

        # ---- errors -------------------------------------------------------------------------
        st = r.stats
        m.d.comb += [errors[BenchError.ROUTER].eq(st.error != 0), errors[BenchError.STARVED].eq(st.starved)]
        err_reg, first_code, first_info, err_count = (Signal(16, name="err_reg"), Signal(8, name="first_code"),
                                                      Signal(32, name="first_info"), Signal(32, name="err_count"))
        m.d.sync += err_reg.eq(err_reg | errors)
        with m.If(errors != 0):
            m.d.sync += err_count.eq(err_count + 1)
            with m.If(err_reg == 0):
                for bit in reversed(range(16)):
                    with m.If(errors[bit]):
                        m.d.sync += first_code.eq(bit)
                m.d.sync += first_info.eq(Mux(errors[BenchError.ROUTER], st.error,
                                              Mux(errors[BenchError.STARVED], st.starved_channel, err_info)))
        m.d.comb += self.error.eq(err_reg != 0)

        # ---- quiescence, progress, readout ----------------------------------------------------
        quiet = Signal(name="node_quiet")
        m.d.comb += quiet.eq(start & st.idle & (d_state == 0) & (t_state == 0) & e_head & ~busy & (q_count == 0)
                             & ~tile.arrival.valid
                             & (~regs[Reg.DRAM_ENABLE][0] | (d_sent == regs[Reg.DRAM_PACKETS]))
                             & (t_sent == regs[Reg.TOKEN_PACKETS]))
        m.d.comb += [
            self.quiet.eq(quiet),
            self.progress.eq((tile.wr.valid & tile.wr.ready) | (ej.valid & ej.ready) | (inj.valid & inj.ready)
                             | (dram.valid & dram.ready) | Cat(*[o.valid & o.ready for o in r.outputs]).any()
                             | (tile.compute_done.valid & tile.compute_done.ready)),
        ]
        slices_rx = Signal(32, name="slices_received")
        weights_rx = Signal(32, name="weights_received")
        with m.If(tile.arrival.valid & tile.arrival.ready):
            with m.If(is_slice):
                m.d.sync += slices_rx.eq(slices_rx + 1)
            with m.Else():
                m.d.sync += weights_rx.eq(weights_rx + 1)
        table = {
            Rd.ERROR: err_reg, Rd.FIRST_CODE: first_code, Rd.FIRST_INFO: first_info, Rd.ERROR_COUNT: err_count,
            Rd.QUIET: quiet, Rd.DRAM_SENT: d_sent, Rd.TOKENS_SENT: t_sent, Rd.TOKENS_RECEIVED: tok_rx,
            Rd.SLICES_RECEIVED: slices_rx, Rd.WEIGHTS_RECEIVED: weights_rx, Rd.MAX_AGE: max_age, Rd.CYCLE: now,
            Rd.SLOT_STATES: r.slots.states.as_value()[:32],
            Rd.SLOT_FLITS: st.slot_flits, Rd.EJECT_FLITS: st.eject_flits, Rd.INJECT_FLITS: st.inject_flits,
            Rd.DRAM_FLITS: st.dram_flits, Rd.ARRIVALS: st.arrivals, Rd.FORWARDS: st.forwards,
            Rd.FREE_SLOTS: st.free_count, Rd.OCCUPANCY: st.occupancy, Rd.HIGH_WATER: st.high_water,
            Rd.ROUTER_ERROR: st.error, Rd.STARVED: st.starved, Rd.STARVED_CHANNEL: st.starved_channel,
            Rd.WAITING: st.waiting, Rd.ROUTER_IDLE: st.idle, Rd.FORWARD_QUEUE: st.forward_queue,
            Rd.FORWARD_STATUS: st.forward_status, Rd.REQUESTS: st.requests, Rd.DRAM_WAITING: st.dram_waiting,
            Rd.FORWARD_WAIT_SLOT: st.forward_wait_slot, Rd.FORWARD_WAIT_RELEASE: st.forward_wait_release,
            Rd.RELEASES: st.releases, Rd.SLICE_FLITS_SENT: slice_flits_sent, Rd.CORRUPT_FLITS: corrupt,
            Rd.FAULTS_FIRED: fault_fired,
        }
        for d in range(4):
            table[Rd.LINK_FLITS + d] = st.link_flits[d]
            table[Rd.LINK_BUSY + d] = st.link_busy[d]
            table[Rd.LINK_STALLED + d] = st.link_stalled[d]
        for c in range(self.max_chiplets):
            table[Rd.TOKEN_SENT_TO + c] = tok_to[c]
            table[Rd.TOKEN_RECEIVED_FROM + c] = tok_from[c]
            table[Rd.WEIGHTS_SENT_TO + c] = weights_to[c]
            table[Rd.WEIGHT_FLITS_SENT_TO + c] = weight_flits_to[c]
            table[Rd.TOKEN_FLITS_SENT_TO + c] = tok_flits_to[c]
            f = Flow.TOKEN + c
            table[Rd.FLOW_FLITS + f] = tok_flow_flits[c]
            table[Rd.FLOW_DUPLICATED + f] = tok_order.duplicated[c]
            table[Rd.FLOW_REORDERED + f] = tok_order.reordered[c]
            table[Rd.FLOW_DUPLICATED_FLITS + f] = tok_flow_dup_flits[c]
        for f in range(2 * MAX_CHANNELS):
            table[Rd.FLOW_FLITS + f] = slot_flow_flits[f]
            table[Rd.FLOW_DUPLICATED + f] = slot_order.duplicated[f]
            table[Rd.FLOW_REORDERED + f] = slot_order.reordered[f]
            table[Rd.FLOW_DUPLICATED_FLITS + f] = slot_flow_dup_flits[f]
        for c in range(MAX_CHANNELS):
            table[Rd.SLICES_FROM + c] = slices_from[c]
            table[Rd.WEIGHTS_FROM + c] = weights_from[c]
        with m.Switch(self.rd_addr):
            for addr, sig in table.items():
                with m.Case(addr):
                    m.d.comb += self.rd_data.eq(sig)
        return m


class MeshTop(wiring.Component):
    """``rows x cols`` :class:`ChipletNode` instances (black boxes named ``node_module``)
    wired as a mesh, with a configuration bus, a readout bus and a global watchdog.

    Members
    -------
    cfg_node, cfg_addr, cfg_data, cfg_we : In
        Write node register ``cfg_addr`` of node ``cfg_node`` (255: every node).
    rd_node, rd_addr : In
    rd_data : Out(32)
        Node readout (combinational).
    wd_limit : In(32)
        Watchdog: cycles without any progress (while not done) before ``stalled``.
    done : Out(1)
        Every node quiet for 64 consecutive cycles.
    stalled : Out(1)
        Sticky: the watchdog fired.
    error : Out(1)
        Some node's error register is non-zero.
    cycle : Out(32)
    """

    def __init__(self, *, rows: int, cols: int, node_module: str = "router_node", node_params=None):
        self.rows, self.cols, self.node_module = rows, cols, node_module
        # ``node_params`` given: real ChipletNode submodules (for the Amaranth simulator).
        self.node_params = node_params
        self.nodes = []
        self.lf = link_flit_layout(LINK_BYTES)
        super().__init__({
            "cfg_node": In(8), "cfg_addr": In(8), "cfg_data": In(32), "cfg_we": In(1),
            "rd_node": In(8), "rd_addr": In(RD_ADDR_BITS), "rd_data": Out(32),
            "wd_limit": In(32),
            "done": Out(1), "stalled": Out(1), "error": Out(1), "cycle": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        rows, cols = self.rows, self.cols
        n = rows * cols
        pw = self.lf.size
        ports = []
        for i in range(n):
            p = {}
            for d in DIRS:
                p[f"in_{d}"] = (Signal(name=f"n{i}_in_{d}_valid"), Signal(pw, name=f"n{i}_in_{d}_payload"),
                                Signal(name=f"n{i}_in_{d}_ready"), Signal(NUM_VCS, name=f"n{i}_in_{d}_credit"))
                p[f"out_{d}"] = (Signal(name=f"n{i}_out_{d}_valid"), Signal(pw, name=f"n{i}_out_{d}_payload"),
                                 Signal(name=f"n{i}_out_{d}_ready"), Signal(NUM_VCS, name=f"n{i}_out_{d}_credit"))
            p["rd_data"] = Signal(32, name=f"n{i}_rd_data")
            p["quiet"] = Signal(name=f"n{i}_quiet")
            p["progress"] = Signal(name=f"n{i}_progress")
            p["error"] = Signal(name=f"n{i}_error")
            ports.append(p)
            kw = {"i_clk": ClockSignal(), "i_rst": ResetSignal(),
                  "i_cfg_we": self.cfg_we & ((self.cfg_node == i) | (self.cfg_node == 255)),
                  "i_cfg_addr": self.cfg_addr, "i_cfg_data": self.cfg_data, "i_rd_addr": self.rd_addr,
                  "o_rd_data": p["rd_data"], "o_quiet": p["quiet"], "o_progress": p["progress"],
                  "o_error": p["error"]}
            for d in DIRS:
                v, pl, rdy, cr = p[f"in_{d}"]
                kw.update({f"i_in_{d}__valid": v, f"i_in_{d}__payload": pl, f"o_in_{d}__ready": rdy,
                           f"o_in_{d}__credit": cr})
                v, pl, rdy, cr = p[f"out_{d}"]
                kw.update({f"o_out_{d}__valid": v, f"o_out_{d}__payload": pl, f"i_out_{d}__ready": rdy,
                           f"i_out_{d}__credit": cr})
            if self.node_params is None:
                m.submodules[f"node{i}"] = Instance(self.node_module, **kw)
                continue
            node = ChipletNode(**self.node_params)
            self.nodes.append(node)
            m.submodules[f"node{i}"] = node
            for key, sig in kw.items():
                direction, name = key.split("_", 1)
                if name in ("clk", "rst"):
                    continue
                port = node
                for part in name.split("__"):
                    port = getattr(port, part)
                m.d.comb += port.eq(sig) if direction == "i" else sig.eq(port)
        opposite = {Dir.N: Dir.S, Dir.S: Dir.N, Dir.E: Dir.W, Dir.W: Dir.E}
        for i in range(n):
            for d in Dir:
                j = neighbour(i, d, rows, cols)
                ov, op, ordy, ocr = ports[i][f"out_{DIRS[d]}"]
                if j is None:
                    m.d.comb += [ordy.eq(1), ocr.eq(0)]
                    iv, ip, _, _ = ports[i][f"in_{DIRS[d]}"]
                    m.d.comb += [iv.eq(0), ip.eq(0)]
                    continue
                iv, ip, irdy, icr = ports[j][f"in_{DIRS[opposite[d]]}"]
                m.d.comb += [iv.eq(ov), ip.eq(op), ordy.eq(irdy), ocr.eq(icr)]

        with m.Switch(self.rd_node):
            for i in range(n):
                with m.Case(i):
                    m.d.comb += self.rd_data.eq(ports[i]["rd_data"])
        all_quiet = Cat(*[p["quiet"] for p in ports]).all()
        quiet_run = Signal(8, name="quiet_run")
        with m.If(~all_quiet):
            m.d.sync += quiet_run.eq(0)
        with m.Elif(quiet_run != 255):
            m.d.sync += quiet_run.eq(quiet_run + 1)
        m.d.comb += self.done.eq(quiet_run >= 64)
        idle_for = Signal(32, name="no_progress")
        with m.If(Cat(*[p["progress"] for p in ports]).any() | self.done):
            m.d.sync += idle_for.eq(0)
        with m.Else():
            m.d.sync += idle_for.eq(idle_for + 1)
        with m.If((self.wd_limit != 0) & (idle_for >= self.wd_limit)):
            m.d.sync += self.stalled.eq(1)
        m.d.comb += self.error.eq(Cat(*[p["error"] for p in ports]).any())
        m.d.sync += self.cycle.eq(self.cycle + 1)
        return m


def node_verilog(**params) -> str:
    from sim.rtl.toolchain import to_verilog
    return to_verilog(ChipletNode(**params), "router_node")


def top_verilog(rows: int, cols: int) -> str:
    from sim.rtl.toolchain import to_verilog
    return to_verilog(MeshTop(rows=rows, cols=cols), f"router_mesh_{rows}x{cols}")


# ---- run plans and end-of-run checks (plain Python, shared by the cocotb bench, the
# pytest wrapper and benchmarks/bench_router.py) ------------------------------------------

def dram_chiplets(rows: int, cols: int) -> list[int]:
    """DRAM channels at the corner chiplets (as in ``scheduler.presets``), channel order."""
    return list(dict.fromkeys([0, cols - 1, rows * cols - 1, (rows - 1) * cols]))


def ring_positions(successors) -> dict:
    """Position of every chiplet on its ring, counted from the ring's lowest chiplet."""
    pos, seen = {}, set()
    for start in range(len(successors)):
        if start in seen:
            continue
        c, k = start, 0
        while c not in seen:
            seen.add(c)
            pos[c] = (start, k)
            c, k = successors[c], k + 1
    return pos


def ring_members(successors, chiplet) -> list[int]:
    out, c = [chiplet], successors[chiplet]
    while c != chiplet:
        out.append(c)
        c = successors[c]
    return out


def plan_run(*, rows: int, cols: int, successors, seed: int = 1, dram_packets: int = 2500,
             token_packets: int = 10000, weight_prob: int = 16, token_prob: int = 64, stall_prob: int = 32,
             compute_mask: int = 31, slice_len_min: int = 4, slice_len_mask: int = 31,
             token_len_mask: int = 7, slots: int = 12, age_limit: int = 200_000, link_stall_prob: int = 0,
             faults: dict | None = None) -> dict:
    """Register values of every node for one torture run, and the expected flows.

    Probabilities are in 256ths.  ``faults``: ``{node: (Fault, at)}``, faults to inject
    into those nodes' checkers' input (a run with faults does not stop at the first
    checker error, so that its counters can be read after the traffic is done)."""
    n = rows * cols
    faults = faults or {}
    for i, (kind, at) in faults.items():
        if not 0 <= i < n or not isinstance(kind, Fault) or at < 0:
            raise ValueError(f"faults: {{node: (Fault, at)}} for nodes 0..{n - 1}, not {i}: {(kind, at)}")
    chans = dram_chiplets(rows, cols)
    if n > 9 or len(chans) > MAX_CHANNELS:
        raise ValueError(f"the torture nodes are built for at most 9 chiplets and {MAX_CHANNELS} DRAM channels")
    if slice_len_min + slice_len_mask > 64:
        raise ValueError("slices must fit a 64-flit stand-in slot")
    nodes = []
    for i in range(n):
        ring = ring_members(successors, i)
        regs = {
            Reg.CHIPLET_ID: i, Reg.ROWS: rows, Reg.COLS: cols, Reg.SUCCESSOR: successors[i],
            Reg.RING_LEN: len(ring), Reg.SLOT_COUNT: slots, Reg.AGE_LIMIT: age_limit,
            Reg.SEED: (seed * 0x9E3779B1 + i * 0x85EBCA6B) & 0xFFFFFFFF or 1,
            Reg.DRAM_ENABLE: int(i in chans), Reg.DRAM_CHANNEL: chans.index(i) if i in chans else 0,
            Reg.DRAM_PACKETS: dram_packets if i in chans else 0, Reg.WEIGHT_PROB: weight_prob,
            Reg.TOKEN_PACKETS: token_packets, Reg.TOKEN_PROB: token_prob, Reg.STALL_PROB: stall_prob,
            Reg.COMPUTE_MASK: compute_mask, Reg.SLICE_LEN_MIN: slice_len_min,
            Reg.SLICE_LEN_MASK: slice_len_mask, Reg.TOKEN_LEN_MASK: token_len_mask,
            Reg.LINK_STALL_PROB: link_stall_prob,
            Reg.FAULT: faults.get(i, (Fault.NONE, 0))[0], Reg.FAULT_AT: faults.get(i, (Fault.NONE, 0))[1],
        }
        for c, k in enumerate(chans):
            members = ring_members(successors, k)
            regs[Reg.EXP_HOPS + c] = members.index(i) if i in members else 0
        nodes.append(regs)
    return {"rows": rows, "cols": cols, "successors": list(successors), "channels": chans, "nodes": nodes,
            "stop_on_error": not faults}


#: The wide torture mix (``benchmarks/bench_torture.py`` and its short version in the
#: tests; probabilities in 256ths): 48/256 of the DRAM packets weight loads, slot packets
#: of 1..64 payload flits, tokens and results of 1..16, random stalls (32/256) at every
#: stand-in port and on every link, random compute times.
TORTURE_TRAFFIC = dict(weight_prob=48, token_prob=64, stall_prob=32, link_stall_prob=32, compute_mask=31,
                       slice_len_min=1, slice_len_mask=63, token_len_mask=15, age_limit=1_000_000)


def expected_flits(plan: dict) -> float:
    """Flits the checkers of ``plan`` should see, on average over the random kinds and
    lengths: a slice once per chiplet of its channel's ring, a weight load and a token or
    result once; header and payload flits."""
    regs, n = plan["nodes"], plan["rows"] * plan["cols"]
    r0 = regs[0]
    slot = r0[Reg.SLICE_LEN_MIN] + r0[Reg.SLICE_LEN_MASK] / 2 + 1
    p_weight = r0[Reg.WEIGHT_PROB] / 256
    dram = sum(regs[k][Reg.DRAM_PACKETS] * slot * ((1 - p_weight) * len(ring_members(plan["successors"], k))
                                                   + p_weight) for k in plan["channels"])
    tokens = sum(regs[i][Reg.TOKEN_PACKETS] for i in range(n)) * (1 + r0[Reg.TOKEN_LEN_MASK] / 2 + 1)
    return dram + tokens


def plan_for_flits(*, rows: int, cols: int, successors, flits: float, token_share: float = 0.25,
                   **traffic) -> dict:
    """:func:`plan_run` with its DRAM and token packet counts sized so that the checkers
    see about ``flits`` flits (:func:`expected_flits`), ``token_share`` of them tokens and
    results; ``traffic``: the other :func:`plan_run` arguments."""
    import math
    if not 0 <= token_share < 1 or flits <= 0:
        raise ValueError(f"need flits > 0 and 0 <= token_share < 1, not {flits}, {token_share}")
    unit = plan_run(rows=rows, cols=cols, successors=successors, dram_packets=1, token_packets=0, **traffic)
    per_dram = expected_flits(unit)
    unit = plan_run(rows=rows, cols=cols, successors=successors, dram_packets=0, token_packets=1, **traffic)
    per_token = expected_flits(unit)
    return plan_run(rows=rows, cols=cols, successors=successors,
                    dram_packets=math.ceil(flits * (1 - token_share) / per_dram),
                    token_packets=math.ceil(flits * token_share / per_token) if token_share else 0, **traffic)


def flow_report(plan: dict, reads: list[dict]) -> list[dict]:
    """Every flow of a run (one dict each): its kind (``slice``, ``weight``, ``token``),
    ``src`` (the sending chiplet; the DRAM channel's for slices and weights, with
    ``channel``), ``dst`` (the receiving chiplet), whether it was ``expected`` (a chiplet
    outside a channel's ring should receive none of its slices), packets and flits (header
    and payload) sent and received, and what went wrong: ``lost`` (sent, never received),
    ``duplicated`` (received again, extra flits in a packet, or received unasked) and
    ``reordered`` (received after a later packet of the flow) packets and flits.

    Flows with nothing sent and nothing received are left out."""
    rows, cols, succ, chans = plan["rows"], plan["cols"], plan["successors"], plan["channels"]
    n = rows * cols
    flows = []

    def add(kind, src, dst, channel, expected, sent_packets, sent_flits, received_packets, index):
        r = reads[dst]
        received_flits = r["flow_flits"][index]
        if not (sent_packets or sent_flits or received_packets or received_flits):
            return
        dup, dup_flits = r["flow_duplicated"][index], r["flow_duplicated_flits"][index]
        distinct, distinct_flits = received_packets - dup, received_flits - dup_flits
        flows.append({
            "kind": kind, "src": src, "dst": dst, "channel": channel, "expected": expected,
            "sent_packets": sent_packets, "sent_flits": sent_flits,
            "received_packets": received_packets, "received_flits": received_flits,
            "lost_packets": max(0, sent_packets - distinct), "lost_flits": max(0, sent_flits - distinct_flits),
            "duplicated_packets": dup + max(0, distinct - sent_packets),
            "duplicated_flits": dup_flits + max(0, distinct_flits - sent_flits),
            "reordered_packets": r["flow_reordered"][index],
        })

    for c, k in enumerate(chans):
        members = ring_members(succ, k)
        sent = reads[k]["dram_sent"] - sum(reads[k]["weights_sent_to"])
        for x in range(n):
            on_ring = x in members
            add("slice", k, x, c, on_ring, sent if on_ring else 0, reads[k]["slice_flits_sent"] if on_ring else 0,
                reads[x]["slices_from"][c], Flow.SLICE + c)
        for x in range(n):
            add("weight", k, x, c, True, reads[k]["weights_sent_to"][x], reads[k]["weight_flits_sent_to"][x],
                reads[x]["weights_from"][c], Flow.WEIGHT + c)
    for src in range(n):
        for dst in range(n):
            add("token", src, dst, None, True, reads[src]["token_sent_to"][dst], reads[src]["token_flits_sent_to"][dst],
                reads[dst]["token_received_from"][src], Flow.TOKEN + src)
    return flows


#: The counts of :func:`flow_report` that a correct run has at zero.
FLOW_FAULTS = ("lost_packets", "lost_flits", "duplicated_packets", "duplicated_flits", "reordered_packets")


def flow_totals(flows: list[dict]) -> dict:
    """Sums over flows of every count of :func:`flow_report`, and the number of flows."""
    keys = ("sent_packets", "sent_flits", "received_packets", "received_flits") + FLOW_FAULTS
    out = {k: sum(f[k] for f in flows) for k in keys}
    out["flows"] = len(flows)
    return out


def delivered_flits(reads: list[dict]) -> int:
    """Flits the routers delivered to their tiles, counted by the routers: payload flits
    written into slots plus one header per slot fill (the router consumes it; the arrival
    reports its fields), and every ejected flit.  The checkers must have seen each."""
    return sum(r["slot_flits"] + r["arrivals"] + r["eject_flits"] for r in reads)


def checked_flits(reads: list[dict]) -> int:
    """Flits the checkers saw (every flow of every node)."""
    return sum(sum(r["flow_flits"]) for r in reads)


def check_run(plan: dict, reads: list[dict], finished: bool = True) -> list[str]:
    """End-of-run scoreboard over the per-flow counters; returns failure messages.
    ``finished`` False (the run was stopped: an error, the watchdog, the cycle limit):
    only the checkers' error bits, as packets still in flight would count as lost."""
    cols = plan["cols"]
    bad = []
    names = [f"router {i} ({i // cols},{i % cols})" for i in range(len(reads))]
    for i, r in enumerate(reads):
        if r["error"]:
            bits = [e.name for e in BenchError if r["error"] >> e.value & 1]
            bad.append(f"{names[i]}: errors {', '.join(bits)} (first {BenchError(r['first_code']).name}, "
                       f"context {r['first_info']:#x}, {r['error_count']} error cycles)")
    if not finished:
        return bad
    for i, r in enumerate(reads):
        if r["occupancy"] or r["free_slots"] != plan["nodes"][i][Reg.SLOT_COUNT]:
            bad.append(f"{names[i]}: {r['occupancy']} slots still occupied, {r['free_slots']} free at the end "
                       f"(slot states {r['slot_states']:#x})")
        if not r["router_idle"]:
            bad.append(f"{names[i]}: router not idle at the end (waiting inputs {r['waiting']:#x})")
        if r["corrupt_flits"]:
            bad.append(f"{names[i]}: {r['corrupt_flits']} corrupt or misplaced flits")
        delivered, seen = r["slot_flits"] + r["arrivals"] + r["eject_flits"], sum(r["flow_flits"])
        if delivered != seen:
            bad.append(f"{names[i]}: the router delivered {delivered} flits, its checkers saw {seen}")
    for f in flow_report(plan, reads):
        wrong = [k for k in FLOW_FAULTS if f[k]]
        if not wrong:
            continue
        what = {"slice": f"slices of DRAM channel {f['channel']} (chiplet {f['src']})",
                "weight": f"weight loads of DRAM channel {f['channel']} (chiplet {f['src']})",
                "token": f"token/result packets from chiplet {f['src']}"}[f["kind"]]
        unasked = "" if f["expected"] else " (not on the channel's ring: it should receive none)"
        bad.append(f"{names[f['dst']]}: {what}{unasked}: sent {f['sent_packets']} packets ({f['sent_flits']} flits), "
                   f"received {f['received_packets']} ({f['received_flits']} flits); "
                   + ", ".join(f"{k.replace('_', ' ')} {f[k]}" for k in wrong))
    return bad


#: Readout fields: name -> (address, count or None).
READ_FIELDS = {
    "error": (Rd.ERROR, None), "first_code": (Rd.FIRST_CODE, None), "first_info": (Rd.FIRST_INFO, None),
    "error_count": (Rd.ERROR_COUNT, None), "quiet": (Rd.QUIET, None), "dram_sent": (Rd.DRAM_SENT, None),
    "tokens_sent": (Rd.TOKENS_SENT, None), "tokens_received": (Rd.TOKENS_RECEIVED, None),
    "slices_received": (Rd.SLICES_RECEIVED, None), "weights_received": (Rd.WEIGHTS_RECEIVED, None),
    "max_age": (Rd.MAX_AGE, None), "cycle": (Rd.CYCLE, None), "slot_states": (Rd.SLOT_STATES, None),
    "token_sent_to": (Rd.TOKEN_SENT_TO, "chiplets"), "token_received_from": (Rd.TOKEN_RECEIVED_FROM, "chiplets"),
    "slices_from": (Rd.SLICES_FROM, "channels"), "weights_from": (Rd.WEIGHTS_FROM, "channels"),
    "weights_sent_to": (Rd.WEIGHTS_SENT_TO, "chiplets"),
    "link_flits": (Rd.LINK_FLITS, 4), "link_busy": (Rd.LINK_BUSY, 4), "link_stalled": (Rd.LINK_STALLED, 4),
    "slot_flits": (Rd.SLOT_FLITS, None), "eject_flits": (Rd.EJECT_FLITS, None),
    "inject_flits": (Rd.INJECT_FLITS, None), "dram_flits": (Rd.DRAM_FLITS, None),
    "arrivals": (Rd.ARRIVALS, None), "forwards": (Rd.FORWARDS, None), "free_slots": (Rd.FREE_SLOTS, None),
    "occupancy": (Rd.OCCUPANCY, None), "high_water": (Rd.HIGH_WATER, None),
    "router_error": (Rd.ROUTER_ERROR, None), "starved": (Rd.STARVED, None),
    "starved_channel": (Rd.STARVED_CHANNEL, None), "waiting": (Rd.WAITING, None),
    "router_idle": (Rd.ROUTER_IDLE, None), "forward_queue": (Rd.FORWARD_QUEUE, None),
    "forward_status": (Rd.FORWARD_STATUS, None), "requests": (Rd.REQUESTS, None),
    "dram_waiting": (Rd.DRAM_WAITING, None), "forward_wait_slot": (Rd.FORWARD_WAIT_SLOT, None),
    "forward_wait_release": (Rd.FORWARD_WAIT_RELEASE, None), "releases": (Rd.RELEASES, None),
    "slice_flits_sent": (Rd.SLICE_FLITS_SENT, None), "corrupt_flits": (Rd.CORRUPT_FLITS, None),
    "faults_fired": (Rd.FAULTS_FIRED, None),
    "weight_flits_sent_to": (Rd.WEIGHT_FLITS_SENT_TO, "chiplets"),
    "token_flits_sent_to": (Rd.TOKEN_FLITS_SENT_TO, "chiplets"),
    "flow_flits": (Rd.FLOW_FLITS, "flows"), "flow_duplicated": (Rd.FLOW_DUPLICATED, "flows"),
    "flow_reordered": (Rd.FLOW_REORDERED, "flows"), "flow_duplicated_flits": (Rd.FLOW_DUPLICATED_FLITS, "flows"),
}
#: Fields read while a run is under way, for its progress (:func:`delivered_flits`).
PROGRESS_FIELDS = ("slot_flits", "arrivals", "eject_flits")


def read_addresses(plan: dict, fields=None) -> dict:
    """``{field: address or [addresses]}`` of :data:`READ_FIELDS` (or of ``fields``) for
    the nodes of ``plan``: per-chiplet fields have one entry per chiplet, per-channel
    ones per DRAM channel, per-flow ones per :class:`Flow` index."""
    n = plan["rows"] * plan["cols"]
    sizes = {"chiplets": n, "channels": len(plan["channels"]), "flows": Flow.TOKEN + n}
    out = {}
    for name in fields or READ_FIELDS:
        addr, count = READ_FIELDS[name]
        out[name] = int(addr) if count is None else [int(addr) + j for j in range(sizes.get(count, count))]
    return out


def stall_report(plan: dict, reads: list[dict]) -> list[str]:
    """Which router / port is stuck (after the watchdog or a starvation error)."""
    from hw.router import input_channel_names
    names = input_channel_names()
    cols = plan["cols"]
    out = []
    for i, r in enumerate(reads):
        waiting = [names[k] for k in range(len(names)) if r["waiting"] >> k & 1]
        states = [(r["slot_states"] >> (2 * s)) & 3 for s in range(plan["nodes"][i][Reg.SLOT_COUNT])]
        parts = []
        if waiting:
            parts.append(f"flits waiting at inputs {', '.join(waiting)}")
        if r["starved"]:
            parts.append(f"starved input {names[r['starved_channel']]}")
        if r["occupancy"]:
            parts.append(f"slots {''.join('.RH?'[s] for s in states)} (.=free R=reserved H=held)")
        fs = r["forward_status"]
        if r["forward_queue"]:
            succ = plan["successors"][i]
            why = ("streaming" if fs & 4 else "waiting for its predecessor's RELEASE (R2)" if fs & 8
                   else f"holding a grant from chiplet {succ}" if fs & 2
                   else f"waiting for a GRANT from chiplet {succ}, which has no free slot (R7)" if fs & 1
                   else "about to send a RESERVE")
            parts.append(f"{r['forward_queue']} slices queued to forward, {why}")
        if r["requests"]:
            parts.append(f"{r['requests']} RESERVE requests here wait for a free slot")
        if r["dram_waiting"]:
            parts.append("the DRAM channel waits (R6: fewer than two free slots, or no grant yet)")
        if not r["quiet"]:
            parts.append("stand-ins not finished")
        if parts:
            out.append(f"router {i} ({i // cols},{i % cols}): " + "; ".join(parts))
    return out


def node_params_for(preset_name: str = "rtl-2x2") -> dict:
    """Link latency and shaper rate of a hardware preset (16-byte flits)."""
    from hw.link import rate_for
    from scheduler.presets import get_hardware
    hw = get_hardware(preset_name)
    return {"link_latency": hw.link_latency, "link_rate": rate_for(hw.link_bytes_per_cycle, LINK_BYTES)}


def build_mesh(rows: int, cols: int, *, sim: str = "verilator", hierarchical: bool = True, quiet: bool = False,
               **node_params):
    """Generate and build the torture top; one build directory per configuration.
    ``hierarchical``: Verilate the node once as a hierarchical block (fast builds), or
    inline it into every instance (about 1.2-1.5x faster to simulate).  ``quiet``: the
    tools' output goes to ``build.log`` in the build directory.  Returns ``(runner,
    build_dir, toplevel)``."""
    from sim.rtl.toolchain import build, build_dir_for, write_if_changed
    p = {"link_latency": 2, "link_rate": (45, 64), **node_params}
    tag = (f"router_mesh_{rows}x{cols}_l{p['link_latency']}_r{p['link_rate'][0]}-{p['link_rate'][1]}"
           + ("_h" if hierarchical else "_flat"))
    bdir = build_dir_for(sim, tag)
    node = bdir / "router_node.v"
    write_if_changed(node, node_verilog(**p))
    toplevel = f"router_mesh_{rows}x{cols}"
    top = bdir / f"{toplevel}.v"
    write_if_changed(top, top_verilog(rows, cols))
    runner = build([node, top], toplevel, bdir, sim=sim, public_top_only=True,
                   hier_blocks=("router_node",) if hierarchical else (), log_file=bdir / "build.log" if quiet else None)
    return runner, bdir, toplevel


def run_torture(plan: dict, *, sim: str = "verilator", test_dir, max_cycles: int = 20_000_000,
                watchdog: int = 20_000, progress=None, log_file=None, hierarchical: bool = True,
                **node_params) -> dict:
    """Build (cached) and run one torture plan; returns the result dictionary (see
    ``sim.rtl.benches.router_torture_bench``), with ``failures`` empty on success.

    ``progress``, if given, is called about every two seconds of the run with
    ``{"cycles", "flits", "wall_s"}`` (flits delivered so far, :func:`delivered_flits`).
    ``log_file``: where the simulator's output goes (default: standard output; with a
    file, the build's goes to ``build.log`` in the build directory)."""
    import json
    import pathlib
    import threading
    runner, bdir, toplevel = build_mesh(plan["rows"], plan["cols"], sim=sim, hierarchical=hierarchical,
                                        quiet=log_file is not None, **node_params)
    test_dir = pathlib.Path(test_dir)
    test_dir.mkdir(parents=True, exist_ok=True)
    result_path, status = test_dir / "router_torture_result.json", test_dir / "router_torture_progress.json"
    for path in (result_path, status):
        if path.exists():
            path.unlink()
    plan_json = json.dumps({**plan, "nodes": [{int(k): v for k, v in regs.items()} for regs in plan["nodes"]]})
    failure = []

    def simulate():
        try:
            runner.test(hdl_toplevel=toplevel, test_module="sim.rtl.benches.router_torture_bench",
                        build_dir=str(bdir), test_dir=str(test_dir), log_file=None if log_file is None else str(log_file),
                        extra_env={
                            "FSEDP_ROUTER_PLAN": plan_json, "FSEDP_ROUTER_RESULT": str(result_path),
                            "FSEDP_ROUTER_PROGRESS": str(status),
                            "FSEDP_ROUTER_MAX_CYCLES": str(max_cycles), "FSEDP_ROUTER_WATCHDOG": str(watchdog)})
        except BaseException as exc:     # SystemExit from cocotb's runner under pytest, too
            failure.append(exc)

    worker = threading.Thread(target=simulate, daemon=True)
    worker.start()
    last = None
    while worker.is_alive():
        worker.join(0.5)
        if progress is not None and status.exists():
            try:
                now = json.loads(status.read_text())
            except ValueError:
                continue
            if now != last:
                last = now
                progress(now)
    if not result_path.exists():
        raise RuntimeError(f"the torture bench wrote no result (see the cocotb log in {test_dir})"
                           + (f": {failure[0]!r}" if failure else ""))
    result = json.loads(result_path.read_text())
    if failure and result["outcome"] == "done" and not result["failures"]:
        raise failure[0]
    return result
