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

Counters per flow are read at the end and compared: every slice was seen by every
chiplet of its ring exactly once, every token and weight load sent was received, and
every slot is free.  Errors latch the first error's code and context.
"""

from __future__ import annotations

import enum as py_enum

from amaranth.hdl import Array, Cat, ClockSignal, Instance, Module, Mux, ResetSignal, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hw.link import Link, check_rate, link_signature
from hw.mesh import neighbour
from hw.packets import NUM_VCS, Header, PacketKind, link_flit_layout
from hw.router import DIRS, Dir, Router

__all__ = ["ChipletNode", "MeshTop", "Reg", "Rd", "BenchError", "MAX_CHANNELS", "bench_hash",
           "payload_flit", "node_verilog", "top_verilog", "dram_chiplets", "ring_members", "plan_run",
           "check_run", "stall_report", "READ_FIELDS", "node_params_for", "build_mesh", "run_torture"]

MAX_CHANNELS = 4
LINK_BYTES = 16


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
            "rd_addr": In(8), "rd_data": Out(32),
            "quiet": Out(1), "progress": Out(1), "error": Out(1),
        })
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        r = self.router
        m.submodules.router = r
        for d, link in zip(DIRS, self.links):
            m.submodules[f"link_{d}"] = link
            wiring.connect(m, r.outputs[DIRS.index(d)], link.i)
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
        now = Signal(32, name="now")
        m.d.sync += now.eq(now + 1)

        def go(k):
            """Port ``k`` does not stall this cycle."""
            src = rng_a if k < 8 else rng_b
            return src.byte(k % 8) >= stall_prob

        errors = Signal(16, name="errors_now")
        err_info = Signal(32, name="errors_info")   # context of the lowest error bit this cycle
        tile = r.tile

        # ---- stand-in weight memory --------------------------------------------------------
        m.submodules.mem = self.mem
        wp = self.mem.write_port()
        rp = self.mem.read_port()
        slot_bits = (self.slot_flits - 1).bit_length()
        wr = tile.wr.payload
        m.d.comb += [
            tile.wr.ready.eq(go(0)),
            wp.addr.eq(Cat(wr.flit[:slot_bits], wr.slot)),
            wp.data.eq(wr.data),
            wp.en.eq(tile.wr.valid & tile.wr.ready & (wr.flit < self.slot_flits)),
        ]
        with m.If(tile.wr.valid & tile.wr.ready & (wr.flit >= self.slot_flits)):
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
        m.d.comb += w_ok.eq((w_hash == wd[96:128]) & (wd[32:48] == wr.flit) & (wd[52:64] == 0)
                            & (first | ((wd[0:16] == s_ident[wr.slot]) & (wd[16:24] == s_src[wr.slot])
                                        & (wd[48:52] == s_kind[wr.slot]) & (wd[24:32] == s_dst[wr.slot])
                                        & (wd[64:96] == s_born[wr.slot]))))
        with m.If(tile.wr.valid & tile.wr.ready):
            m.d.sync += s_count[wr.slot].eq(Mux(first, 1, s_count[wr.slot] + 1))
            with m.If(first):
                m.d.sync += [s_ident[wr.slot].eq(wd[0:16]), s_src[wr.slot].eq(wd[16:24]),
                             s_kind[wr.slot].eq(wd[48:52]), s_dst[wr.slot].eq(wd[24:32]),
                             s_born[wr.slot].eq(wd[64:96]), s_bad[wr.slot].eq(~w_ok)]
            with m.Elif(~w_ok | (wr.flit != s_count[wr.slot])):
                m.d.sync += s_bad[wr.slot].eq(1)
            with m.If(~w_ok):
                m.d.comb += errors[BenchError.SLOT_FLIT].eq(1)
                m.d.comb += err_info.eq(Cat(wr.flit, wr.slot))

        # ---- arrivals: check, then compute for a random time ---------------------------------
        a = tile.arrival.payload
        m.d.comb += tile.arrival.ready.eq(go(2))
        exp_slice = Array(Signal(12, name=f"exp_slice{c}") for c in range(MAX_CHANNELS))
        exp_weight = Array(Signal(12, name=f"exp_weight{c}") for c in range(MAX_CHANNELS))
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
        with m.If(tile.arrival.valid & tile.arrival.ready):
            checks = [
                (~is_slice & ~is_weight | (a_chan >= MAX_CHANNELS), BenchError.SLOT_IDENTITY),
                (s_bad[a.slot], BenchError.SLOT_FLIT),
                (s_count[a.slot] != a.length, BenchError.SLOT_COUNT),
                ((s_ident[a.slot] != a_ident) | (s_src[a.slot] != a_chan)
                 | (s_kind[a.slot] != a.kind.as_value())
                 | (s_dst[a.slot] != Mux(is_slice, 0xFF, me)), BenchError.SLOT_IDENTITY),
                (a.length != a_len, BenchError.SLOT_LENGTH),
                (Mux(is_slice, a.hops != exp_hops[a_chan], a.hops != 0), BenchError.HOPS),
                (Mux(is_slice, exp_slice[a_chan], exp_weight[a_chan]) != a_seq, BenchError.SLOT_ORDER),
                ((age_limit != 0) & (now - s_born[a.slot] > age_limit), BenchError.AGE),
            ]
            for cond, bit in checks:
                with m.If(cond):
                    m.d.comb += errors[bit].eq(1)
            m.d.comb += err_info.eq(Cat(a_seq, a_chan, a.slot, a.kind.as_value()))
            with m.If(now - s_born[a.slot] > max_age):
                m.d.sync += max_age.eq(now - s_born[a.slot])
            with m.If(is_slice):
                m.d.sync += [exp_slice[a_chan].eq(a_seq + 1), slices_from[a_chan].eq(slices_from[a_chan] + 1)]
            with m.Else():
                m.d.sync += [exp_weight[a_chan].eq(a_seq + 1), weights_from[a_chan].eq(weights_from[a_chan] + 1)]

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
        m.d.comb += ej.ready.eq(go(5))
        e_head = Signal(init=1, name="ej_at_head")
        e_src, e_seq, e_len, e_idx = Signal(8, name="ej_src"), Signal(16, name="ej_seq"), \
            Signal(16, name="ej_len"), Signal(16, name="ej_idx")
        e_kind = Signal(4, name="ej_kind")
        exp_tok = Array(Signal(16, name=f"exp_tok{c}") for c in range(self.max_chiplets))
        tok_from = Array(Signal(32, name=f"tok_from{c}") for c in range(self.max_chiplets))
        eh = Header(ej.payload.data[:96])
        c_mix = token_mix(eh.src, me, eh.token, "tok_chk_mix")
        ed = ej.payload.data
        e_hash = _hash_hdl(m, ed[:96], "ej_hash")
        tok_rx = Signal(32, name="tok_received")
        with m.If(ej.valid & ej.ready):
            m.d.sync += e_head.eq(ej.payload.last)
            with m.If(e_head):
                m.d.sync += [e_src.eq(eh.src), e_seq.eq(eh.token), e_len.eq(eh.length), e_idx.eq(0),
                             e_kind.eq(eh.kind.as_value())]
                for cond, bit in [
                    ((eh.dst != me) | (eh.src >= n_chiplets)
                     | (eh.kind.as_value() != Mux(c_mix[8], PacketKind.RESULT.value, PacketKind.TOKEN.value)),
                     BenchError.TOKEN_HEADER),
                    (eh.token != exp_tok[eh.src[:4]], BenchError.TOKEN_ORDER),
                    ((eh.length != 1 + (c_mix[16:32] & regs[Reg.TOKEN_LEN_MASK][:16])) | ej.payload.last,
                     BenchError.TOKEN_LENGTH),
                ]:
                    with m.If(cond):
                        m.d.comb += errors[bit].eq(1)
                m.d.comb += err_info.eq(Cat(eh.token, eh.src, me))
                m.d.sync += exp_tok[eh.src[:4]].eq(eh.token + 1)
            with m.Else():
                m.d.sync += e_idx.eq(e_idx + 1)
                ok = ((e_hash == ed[96:128]) & (ed[0:16] == e_seq) & (ed[16:24] == e_src) & (ed[24:32] == me)
                      & (ed[32:48] == e_idx) & (ed[48:52] == e_kind) & (ed[52:64] == 0))
                with m.If(~ok):
                    m.d.comb += [errors[BenchError.TOKEN_FLIT].eq(1), err_info.eq(Cat(e_seq, e_src, e_idx[:8]))]
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
            Rd.RELEASES: st.releases,
        }
        for d in range(4):
            table[Rd.LINK_FLITS + d] = st.link_flits[d]
            table[Rd.LINK_BUSY + d] = st.link_busy[d]
            table[Rd.LINK_STALLED + d] = st.link_stalled[d]
        for c in range(self.max_chiplets):
            table[Rd.TOKEN_SENT_TO + c] = tok_to[c]
            table[Rd.TOKEN_RECEIVED_FROM + c] = tok_from[c]
            table[Rd.WEIGHTS_SENT_TO + c] = weights_to[c]
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
            "rd_node": In(8), "rd_addr": In(8), "rd_data": Out(32),
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
             token_len_mask: int = 7, slots: int = 12, age_limit: int = 200_000) -> dict:
    """Register values of every node for one torture run, and the expected flows."""
    n = rows * cols
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
        }
        for c, k in enumerate(chans):
            members = ring_members(successors, k)
            regs[Reg.EXP_HOPS + c] = members.index(i) if i in members else 0
        nodes.append(regs)
    return {"rows": rows, "cols": cols, "successors": list(successors), "channels": chans, "nodes": nodes}


def check_run(plan: dict, reads: list[dict]) -> list[str]:
    """End-of-run scoreboard over the per-flow counters; returns failure messages."""
    rows, cols, succ, chans = plan["rows"], plan["cols"], plan["successors"], plan["channels"]
    n = rows * cols
    bad = []
    names = [f"router {i} ({i // cols},{i % cols})" for i in range(n)]
    for i, r in enumerate(reads):
        if r["error"]:
            bits = [e.name for e in BenchError if r["error"] >> e.value & 1]
            bad.append(f"{names[i]}: errors {', '.join(bits)} (first {BenchError(r['first_code']).name}, "
                       f"context {r['first_info']:#x}, {r['error_count']} error cycles)")
        if r["occupancy"] or r["free_slots"] != plan["nodes"][i][Reg.SLOT_COUNT]:
            bad.append(f"{names[i]}: {r['occupancy']} slots still occupied, {r['free_slots']} free at the end "
                       f"(slot states {r['slot_states']:#x})")
        if not r["router_idle"]:
            bad.append(f"{names[i]}: router not idle at the end (waiting inputs {r['waiting']:#x})")
    for c, k in enumerate(chans):
        sent_slices = reads[k]["dram_sent"] - sum(reads[k]["weights_sent_to"])
        members = ring_members(succ, k)
        for x in range(n):
            got = reads[x]["slices_from"][c]
            want = sent_slices if x in members else 0
            if got != want:
                bad.append(f"{names[x]}: received {got} slices of DRAM channel {c} (chiplet {k}), "
                           f"expected {want} ({sent_slices} sent on a ring of {len(members)})")
        for x in range(n):
            sent = reads[k]["weights_sent_to"][x]
            got = reads[x]["weights_from"][c]
            if got != sent:
                bad.append(f"{names[x]}: received {got} weight loads of channel {c}, which sent it {sent}")
    for s in range(n):
        for d in range(n):
            sent, got = reads[s]["token_sent_to"][d], reads[d]["token_received_from"][s]
            if sent != got:
                bad.append(f"{names[d]}: received {got} token/result packets from chiplet {s}, which sent {sent}")
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
}


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


def build_mesh(rows: int, cols: int, *, sim: str = "verilator", **node_params):
    """Generate and build the torture top; one build directory per configuration.
    Returns ``(runner, build_dir, toplevel)``."""
    from sim.rtl.toolchain import build, build_dir_for, write_if_changed
    p = {"link_latency": 2, "link_rate": (45, 64), **node_params}
    tag = f"router_mesh_{rows}x{cols}_l{p['link_latency']}_r{p['link_rate'][0]}-{p['link_rate'][1]}_h"
    bdir = build_dir_for(sim, tag)
    node = bdir / "router_node.v"
    write_if_changed(node, node_verilog(**p))
    toplevel = f"router_mesh_{rows}x{cols}"
    top = bdir / f"{toplevel}.v"
    write_if_changed(top, top_verilog(rows, cols))
    runner = build([node, top], toplevel, bdir, sim=sim, public_top_only=True, hier_blocks=("router_node",))
    return runner, bdir, toplevel


def run_torture(plan: dict, *, sim: str = "verilator", test_dir, max_cycles: int = 20_000_000,
                watchdog: int = 20_000, **node_params) -> dict:
    """Build (cached) and run one torture plan; returns the result dictionary (see
    ``sim.rtl.benches.router_torture_bench``), with ``failures`` empty on success."""
    import json
    import pathlib
    runner, bdir, toplevel = build_mesh(plan["rows"], plan["cols"], sim=sim, **node_params)
    test_dir = pathlib.Path(test_dir)
    test_dir.mkdir(parents=True, exist_ok=True)
    result_path = test_dir / "router_torture_result.json"
    if result_path.exists():
        result_path.unlink()
    plan_json = json.dumps({**plan, "nodes": [{int(k): v for k, v in regs.items()} for regs in plan["nodes"]]})
    runner.test(hdl_toplevel=toplevel, test_module="sim.rtl.benches.router_torture_bench", build_dir=str(bdir),
                test_dir=str(test_dir), extra_env={
                    "FSEDP_ROUTER_PLAN": plan_json, "FSEDP_ROUTER_RESULT": str(result_path),
                    "FSEDP_ROUTER_MAX_CYCLES": str(max_cycles), "FSEDP_ROUTER_WATCHDOG": str(watchdog)})
    if not result_path.exists():
        raise RuntimeError(f"the torture bench wrote no result (see the cocotb log in {test_dir})")
    return json.loads(result_path.read_text())
