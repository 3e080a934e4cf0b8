"""Amaranth-simulator models around :class:`hw.router.Router`: a Python tile (slot memory,
compute delays, token injection and ejection), a DRAM channel, and link neighbours, each
driven once per cycle by one async testbench per router.

Everything here is for short directed tests (hundreds to a few thousand cycles); the
long random runs use the synthesizable stand-ins of ``sim.rtl.benches.router_mesh`` under
Verilator.
"""

from __future__ import annotations

import random
from collections import deque

from amaranth.sim import Simulator

from hw.packets import NUM_VCS, PacketKind, parse_packet, unpack_header

__all__ = ["TileModel", "LinkPeer", "configure", "simulate", "Recorder", "until", "ticks", "RouterBench",
           "MeshBench"]


def configure(ctx, cfg, *, chiplet_id, rows, cols, successor=None, ring_len=1, slot_count=4,
              age_limit=0):
    ctx.set(cfg.chiplet_id, chiplet_id)
    ctx.set(cfg.rows, rows)
    ctx.set(cfg.cols, cols)
    ctx.set(cfg.successor, chiplet_id if successor is None else successor)
    ctx.set(cfg.ring_len, ring_len)
    ctx.set(cfg.slot_count, slot_count)
    ctx.set(cfg.age_limit, age_limit)


class Recorder:
    """Events ``(cycle, what, chiplet, ...)`` from all models of a test.  Every model
    counts cycles itself from time 0 (one loop iteration per clock), so cycles agree."""

    def __init__(self):
        self.events = []

    def log(self, cycle, *event):
        self.events.append((cycle,) + event)

    def of(self, kind):
        return [e for e in self.events if e[1] == kind]


class TileModel:
    """A Python tile on a router's ``tile`` port and a DRAM channel on its ``dram`` port.

    Parameters
    ----------
    tile, dram :
        The router's (or mesh's) tile and DRAM interfaces.
    name : int
        Chiplet index (used in recorded events).
    compute_delay : int or callable(arrival) -> int, or None
        Cycles from an arrival to its ``compute_done``; ``None``: never (the test calls
        :meth:`finish` itself).
    stall : float
        Probability that each tile port refuses a handshake in a cycle.
    """

    def __init__(self, tile, dram, name, rec: Recorder, *, compute_delay=0, stall=0.0, seed=0):
        self.tile, self.dram, self.name, self.rec = tile, dram, name, rec
        self.compute_delay = compute_delay
        self.stall = stall
        self.rng = random.Random(seed)
        self.mem = {}
        self.rd_pending = deque()
        self.arrivals = []
        self.done_queue = []     # (ready_cycle, slot)
        self.inject_flits = deque()
        self.dram_flits = deque()
        self.ejected = []
        self._eject_cur = []
        self.cycle = 0
        self.block_eject = False    # tests set it to hold the ejection stream

    # -- test API --
    def inject(self, flits):
        """Queue a TOKEN/RESULT packet for the tile's ``inject`` stream."""
        for i, f in enumerate(flits):
            self.inject_flits.append((f, int(i == len(flits) - 1)))

    def dram_send(self, flits):
        """Queue a packet on the DRAM port."""
        for i, f in enumerate(flits):
            self.dram_flits.append((f, int(i == len(flits) - 1)))

    def finish(self, slot, at=None):
        """Signal ``compute_done(slot)`` (now, or at cycle ``at``)."""
        self.done_queue.append((self.cycle if at is None else at, slot))

    def slot_payload(self, slot, length):
        return [self.mem.get((slot, i)) for i in range(length)]

    def _go(self):
        return self.rng.random() >= self.stall

    async def run(self, ctx):
        t, d = self.tile, self.dram
        while True:
            cyc = self.cycle
            ctx.set(t.wr.ready, self._go())
            ctx.set(t.rd_req.ready, len(self.rd_pending) < 2 and self._go())
            rd = self.rd_pending[0] if self.rd_pending and self.rd_pending[0][0] < cyc else None
            ctx.set(t.rd_data.valid, rd is not None)
            ctx.set(t.rd_data.payload, self.mem.get(rd[1], 0) if rd else 0)
            ctx.set(t.arrival.ready, self._go())
            ready_done = sorted(x for x in self.done_queue if x[0] <= cyc)
            ctx.set(t.compute_done.valid, bool(ready_done) and self._go())
            ctx.set(t.compute_done.payload, ready_done[0][1] if ready_done else 0)
            inj = self.inject_flits[0] if self.inject_flits else None
            ctx.set(t.inject.valid, inj is not None and self._go())
            if inj:
                ctx.set(t.inject.payload.data, inj[0])
                ctx.set(t.inject.payload.last, inj[1])
            ctx.set(t.eject.ready, not self.block_eject and self._go())
            dr = self.dram_flits[0] if self.dram_flits else None
            ctx.set(d.valid, dr is not None)
            if dr:
                ctx.set(d.payload.data, dr[0])
                ctx.set(d.payload.last, dr[1])
            (_, _, wv, wr_, wp, qv, qr, qp, rdv, rdr, av, ar, ap, cv, cr, iv, ir, ev, er, ep, dv, drdy
             ) = await ctx.tick().sample(
                t.wr.valid, t.wr.ready, t.wr.payload, t.rd_req.valid, t.rd_req.ready, t.rd_req.payload,
                t.rd_data.valid, t.rd_data.ready, t.arrival.valid, t.arrival.ready, t.arrival.payload,
                t.compute_done.valid, t.compute_done.ready, t.inject.valid, t.inject.ready,
                t.eject.valid, t.eject.ready, t.eject.payload, d.valid, d.ready)
            if wv and wr_:
                self.mem[(wp.slot, wp.flit)] = wp.data
                self.rec.log(cyc, "write", self.name, wp.slot, wp.flit)
            if rdv and rdr:
                self.rd_pending.popleft()
            if qv and qr:
                self.rd_pending.append((cyc, (qp.slot, qp.flit)))
                self.rec.log(cyc, "read", self.name, qp.slot, qp.flit)
            if av and ar:
                ev_ = dict(slot=ap.slot, kind=PacketKind(ap.kind), expert=ap.expert, slice=ap.slice,
                           hops=ap.hops, length=ap.length)
                self.arrivals.append(ev_)
                self.rec.log(cyc, "arrival", self.name, ev_)
                if self.compute_delay is not None:
                    delay = self.compute_delay(ev_) if callable(self.compute_delay) else self.compute_delay
                    self.done_queue.append((cyc + 1 + delay, ap.slot))
            if cv and cr:
                self.done_queue.remove(ready_done[0])
                self.rec.log(cyc, "compute_done", self.name, ready_done[0][1])
            if iv and ir:
                self.inject_flits.popleft()
            if ev and er:
                self._eject_cur.append(ep.data)
                if ep.last:
                    self.ejected.append(self._eject_cur)
                    self.rec.log(cyc, "eject", self.name, unpack_header(self._eject_cur[0]))
                    self._eject_cur = []
            if dv and drdy:
                self.dram_flits.popleft()
                self.rec.log(cyc, "dram", self.name)
            self.cycle += 1


class LinkPeer:
    """A neighbour on one router link: sends queued flits (spending credits) and
    receives flits, returning credits unless ``hold_credits``.

    ``received`` holds complete packets as ``(vc, [flits])``.
    """

    def __init__(self, inp, out, name, rec: Recorder, *, depth, hold_credits=False):
        self.inp, self.out, self.name, self.rec = inp, out, name, rec
        self.credits = [depth] * NUM_VCS
        self.to_send = [deque() for _ in range(NUM_VCS)]   # per VC: a blocked VC never blocks the other
        self.received = []
        self._cur = [[] for _ in range(NUM_VCS)]
        self.hold_credits = hold_credits
        self.held = [0] * NUM_VCS
        self.cycle = 0

    def send(self, flits, vc):
        for i, f in enumerate(flits):
            self.to_send[vc].append((f, int(i == len(flits) - 1), vc))

    def release_credits(self):
        self.hold_credits = False

    async def run(self, ctx):
        i, o = self.inp, self.out
        give = [0] * NUM_VCS
        while True:
            cyc = self.cycle
            ready = [v for v in range(NUM_VCS) if self.to_send[(v + cyc) % NUM_VCS]
                     and self.credits[(v + cyc) % NUM_VCS] > 0]
            nxt = self.to_send[(ready[0] + cyc) % NUM_VCS][0] if ready else None
            can = nxt is not None
            ctx.set(i.valid, can)
            if can:
                ctx.set(i.payload.data, nxt[0])
                ctx.set(i.payload.last, nxt[1])
                ctx.set(i.payload.vc, nxt[2])
            ctx.set(o.ready, 1)
            ctx.set(o.credit, sum(1 << v for v in range(NUM_VCS) if give[v]))
            _, _, cr, ov, op = await ctx.tick().sample(i.credit, o.valid, o.payload)
            give = [0] * NUM_VCS
            if can:
                self.to_send[nxt[2]].popleft()
                self.credits[nxt[2]] -= 1
            for v in range(NUM_VCS):
                if cr >> v & 1:
                    self.credits[v] += 1
            if ov:
                vc = op.vc
                self._cur[vc].append(op.data)
                self.rec.log(cyc, "link", self.name, vc, op.data, op.last)
                if op.last:
                    self.received.append((vc, self._cur[vc]))
                    self._cur[vc] = []
                self.held[vc] += 1
            if not self.hold_credits:
                for v in range(NUM_VCS):
                    if self.held[v]:
                        self.held[v] -= 1
                        give[v] = 1
            self.cycle += 1

    def packets(self, link_bytes=16, vc=None):
        """Received packets (decoded), optionally of one VC."""
        return [parse_packet(f, link_bytes) for v, f in self.received if vc is None or v == vc]


async def until(ctx, condition, limit: int = 1000, what: str = "condition"):
    """Tick until ``condition()`` holds; fail after ``limit`` cycles."""
    for _ in range(limit):
        if condition():
            return
        await ctx.tick()
    raise AssertionError(f"{what} not reached within {limit} cycles")


async def ticks(ctx, n: int):
    for _ in range(n):
        await ctx.tick()


def simulate(dut, models, scenario, *, vcd: str | None = None):
    """Run ``dut`` with a 100 MHz clock: the models (``async def run(ctx)`` that never
    return) as background testbenches, until ``scenario(ctx)`` returns."""
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    for model in models:
        sim.add_testbench(model, background=True)
    sim.add_testbench(scenario)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()


class RouterBench:
    """One router with a Python tile, a DRAM channel and four link neighbours.

    ``peers[d]`` is the neighbour on side ``d`` (``hw.router.Dir``); configure the router
    with :meth:`configure` at the start of the scenario.
    """

    def __init__(self, *, compute_delay=0, stall=0.0, depth=4, seed=0, **router_args):
        from hw.router import Router
        router_args.setdefault("max_slots", 4)
        router_args.setdefault("max_chiplets", 9)
        router_args.setdefault("buffer_depth", depth)
        self.dut = Router(**router_args)
        self.rec = Recorder()
        self.tile = TileModel(self.dut.tile, self.dut.dram, 0, self.rec, compute_delay=compute_delay,
                              stall=stall, seed=seed)
        self.peers = [LinkPeer(self.dut.inputs[d], self.dut.outputs[d], "nesw"[d], self.rec,
                               depth=router_args["buffer_depth"]) for d in range(4)]

    def configure(self, ctx, **cfg):
        configure(ctx, self.dut.cfg, **cfg)

    def run(self, scenario, vcd=None):
        simulate(self.dut, [self.tile.run] + [p.run for p in self.peers], scenario, vcd=vcd)


class MeshBench:
    """A :class:`hw.mesh.RouterMesh` with a Python tile and DRAM channel per chiplet."""

    def __init__(self, *, rows, cols, compute_delay=0, stall=0.0, seed=0, link_latency=1, link_rate=(1, 1),
                 **router_args):
        from hw.mesh import RouterMesh
        router_args.setdefault("max_slots", 4)
        router_args.setdefault("buffer_depth", 4)
        self.rows, self.cols = rows, cols
        self.dut = RouterMesh(rows=rows, cols=cols, link_latency=link_latency, link_rate=link_rate, **router_args)
        self.rec = Recorder()
        n = rows * cols
        delays = compute_delay if isinstance(compute_delay, (list, tuple)) else [compute_delay] * n
        self.tiles = [TileModel(getattr(self.dut, f"tile{i}"), getattr(self.dut, f"dram{i}"), i, self.rec,
                                compute_delay=delays[i], stall=stall, seed=seed + i) for i in range(n)]

    def configure(self, ctx, *, successors, ring_len=None, slot_count=4, age_limit=0):
        from hw.topology import ring_lengths
        lengths = ring_lengths(successors)
        counts = slot_count if isinstance(slot_count, (list, tuple)) else [slot_count] * len(successors)
        for i, s in enumerate(successors):
            configure(ctx, getattr(self.dut, f"cfg{i}"), chiplet_id=i, rows=self.rows, cols=self.cols,
                      successor=s, ring_len=ring_len or lengths[i], slot_count=counts[i], age_limit=age_limit)

    def stats(self, i):
        return getattr(self.dut, f"stats{i}")

    def run(self, scenario, vcd=None):
        simulate(self.dut, [t.run for t in self.tiles], scenario, vcd=vcd)
