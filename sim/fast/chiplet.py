"""One chiplet: router slot logic (``hw/router.py``, ``hw/slot_table.py``), the tile
controller (``hw/controller.py``) and the slice engine (:mod:`sim.fast.engine`).

Registered state follows the RTL's timing: a decision taken in period ``t`` (an
``EVAL``) becomes visible in ``t + 1`` (an ``UPDATE``).  The router part keeps every
slot's state bits (R2, R5, R6), the RESERVE queue and the two grant registers, the
one-entry control-packet buffer with its round-robin over GRANT, RELEASE, forward
RESERVE and DRAM RESERVE, the forward engine (R1, R3, R7) and the DRAM port.  The
controller part runs the program (two cycles per instruction, ``LUT`` five, ``SEND``
waits for the packet sender), the EP dispatch barrier and ``SCAN``, the
arrival-to-job dispatcher, the packet sender and receiver, the remote-row walker that
sends RESULTs, and the ``done`` condition.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque

from .engine import SliceEngine
from .kernel import EVAL, UPDATE
from .network import IC_CTL, IC_DRAM, IC_FWD, IC_TILE, OC_CTL, OC_SLOT, OC_TILE, Packet

__all__ = ["Chiplet", "Job"]

FREE, RESERVED, HELD = 0, 1, 2
K_SLICE, K_WEIGHT, K_TOKEN, K_RESULT, K_RESERVE, K_GRANT, K_RELEASE = range(7)
A_FORWARD, A_DRAM = 0, 1


class Job:
    __slots__ = ("slot", "expert", "count", "remote", "arrived", "accepted", "first_issue", "last_issue",
                 "done_valid", "popped", "slice", "hops", "kind")

    def __init__(self, slot, expert, count, remote, arrived, slice_, hops, kind):
        self.slot, self.expert, self.count, self.remote = slot, expert, count, remote
        self.arrived = arrived
        self.slice, self.hops, self.kind = slice_, hops, kind
        self.accepted = self.first_issue = self.last_issue = self.done_valid = self.popped = None


class Slot:
    __slots__ = ("state", "computing", "forwarding", "releasing", "sole", "kind", "expert", "slice", "hops",
                 "dst_slot", "reserved", "filled")

    def __init__(self):
        self.state = FREE
        self.computing = self.forwarding = self.releasing = self.sole = False
        self.kind = self.expert = self.slice = self.hops = self.dst_slot = None
        self.reserved = self.filled = None


class Chiplet:
    def __init__(self, cid, system, program, jobs, remote_experts, n_arrivals, n_tokens, n_results, n_sends,
                 remote_rows, start_delay):
        p = system.p
        self.id = cid
        self.sys = system
        self.p = p
        self.k = system.kernel
        self.net = system.net
        plan = system.plan
        self.ring_len = plan.ring_len(cid)
        self.succ = plan.successor[cid] if plan.successor is not None else cid
        self.slot_count = plan.slots
        self.slots = [Slot() for _ in range(max(p.max_slots, plan.slots))]
        self.occupancy = []                       # (period, +1/-1)
        self.n_free = plan.slots                  # FREE slots below the slot count
        self.releasing = set()                    # slots owing a RELEASE to the successor
        self.req_fifo = deque()                   # [visible, src, agent]
        self.fwd_grant = None                     # granted slot at the successor (visible)
        self.fwd_req_out = False
        self.dram_grant = None
        self.dram_req_out = False
        self.ctl_busy_until = 0                   # ctl buffer free from (None: its flit not yet sent)
        self.ctl_ptr = 0
        self.fwd_fifo = deque()                   # [visible, slot, relay destination or None]
        self.fwd_idle_from = 0                    # None while streaming
        self.dram = None                          # attached DramChannel
        self.dram_free_from = 0                   # DRAM writer idle from (None: busy, end unknown)
        self.arr_fifo = deque()                   # [visible, slot]
        # controller
        self.program = program                    # list of (op, arg)
        self.jobs = jobs                          # expert -> (count, rows tuple)
        self.remote_experts = remote_experts
        self.n_arrivals, self.n_tokens, self.n_results, self.n_sends = n_arrivals, n_tokens, n_results, n_sends
        self.remote_uses = dict(remote_rows)      # row -> [uses, home, home_row]
        self.g = start_delay
        self.configured_at = None
        self.run_at = None
        self.rx_open_at = None
        self.pending_job = None                   # dispatcher register: (Job, valid from)
        self.arrivals_taken = 0
        self.jobs_done = 0
        self.tokens_in_times = []
        self.results_in = 0
        self.tokens_sent = self.results_sent = 0
        self.done_at = None
        self.all_done_at = None
        # sender / receiver / decoder / walker
        self.req = None                           # sender request register: (kind, dst, row info, valid from)
        self.tx_idle_from = 0
        self.rx_head_at = 0
        self.tile_waiter = None
        self.dec_wait = None                      # decoder blocked on a SEND: resume callback
        self.walks = deque()                      # [visible, Job]
        self.walk_idle_from = 0
        self.walk_busy = False
        self.walk_wait = None
        d, L, R, C = system.d, p.link_bytes, p.mac_rows, p.mac_cols
        self.tok_len = -(-d // L)                 # TOKEN payload flits (hw.controller: tok_len)
        self.res_len = -(-4 * d // L)             # RESULT payload flits (res_len)
        fs = system.fs
        trace = [] if system.tracing else None
        # MAC beats per token: whole R x C blocks (a slice whose width is not a multiple of
        # the array is zero-padded, hw/slice_layout.py, so a partial block costs a beat)
        cdiv = lambda a, b: -(-a // b)
        self.engine = SliceEngine(G=2 * cdiv(d, R) * cdiv(fs, C), D=cdiv(fs, R) * cdiv(d, C),
                                  hidden_lat=p.mac_pipeline + p.vector_latency, drain=p.drain_cycles,
                                  depth=p.done_depth, trace=trace, wake=self.wake)
        self._evals = set()
        self.all_jobs = []
        self.weight_write_flits = 0               # flits written into slots (the weight buffer's write port)
        self.weight_forward_flits = 0             # flits read out of slots to forward them

    # ------------------------------------------------------------------------------------
    # kernel helpers
    def wake(self, t):
        if t not in self._evals:
            self._evals.add(t)
            self.k.at(t, EVAL, self._eval, t)

    def later(self, t, fn, *args):
        """Apply ``fn(t, *args)`` as registered state visible in period ``t``, then
        re-evaluate the chiplet in that period."""
        self.k.at(t, UPDATE, self._apply, t, fn, args)

    def quietly(self, t, fn, *args):
        """Like :meth:`later` for a change that can only disable a decision (no
        re-evaluation needed)."""
        self.k.at(t, UPDATE, fn, t, *args)

    def _apply(self, t, fn, args):
        fn(t, *args)
        self.wake(t)

    # ------------------------------------------------------------------------------------
    # program
    def start(self):
        """Run the controller program from period ``g + 1`` (FETCH of word 0)."""
        self.pc = 0
        self._decode(self.g + 1)

    def _decode(self, t):
        """Execute instructions from FETCH in period ``t`` until the program blocks or ends."""
        prog = self.program
        while True:
            op, arg = prog[self.pc]
            ex = t + 1
            if op != "SET" and self.rx_open_at is None:
                self.rx_open_at = ex + 1
            if op == "LUT":
                t = ex + self.p.lut_values
            elif op == "SEND":
                if not self._send_exec(ex, arg):
                    return
                t = self._send_next
            elif op == "END":
                self.configured_at = ex + 1
                self.wake(ex + 1)
                if self.remote_uses:
                    V = len(self.jobs)
                    scan = (self.p.max_experts - V) + sum(2 + 2 * c for c, _ in self.jobs.values()) + 1
                    self.run_at = ex + 1 + scan
                else:
                    self.run_at = ex + 1
                self.wake(self.run_at)
                self.end_exec = ex
                return
            else:
                t = ex + 1
            self.pc += 1

    def _send_exec(self, ex, arg):
        """A SEND in EXEC from period ``ex``: it goes as soon as the sender's request
        register is free."""
        if self.req is None:
            self._set_req(ex, ("TOKEN",) + arg)
            self._send_next = ex + 1
            return True
        self.dec_wait = (ex, arg)
        return False

    def _req_freed(self, t):
        """The request register is free from period ``t`` (unless refilled meanwhile)."""
        if self.req is not None:
            return
        if self.dec_wait is not None:
            ex, arg = self.dec_wait
            self.dec_wait = None
            ex = max(ex, t)
            self._set_req(ex, ("TOKEN",) + arg)
            self.pc += 1
            self._decode(ex + 1)
        elif self.walk_wait is not None:
            fn = self.walk_wait
            self.walk_wait = None
            fn(t)

    def _set_req(self, t, req):
        """The request register is written in period ``t`` (valid from ``t + 1``)."""
        self.req = (req, t + 1)
        self.wake(t + 1)

    # ------------------------------------------------------------------------------------
    # sender and receiver
    def _sender(self, t):
        if self.req is None or self.tx_idle_from is None:
            return
        req, valid = self.req
        x = max(valid, self.tx_idle_from)
        if x > t:
            self.wake(x)
            return
        self.req = None
        self.tx_idle_from = None
        self._req_freed_later(t + 1)
        p = self.p
        kind, dst, row_info = req[0], req[1], req[2]
        L, R, C = p.link_bytes, p.mac_rows, p.mac_cols
        if kind == "TOKEN":
            pk = Packet(K_TOKEN, self.id, dst, 0, self.tok_len, "tile", info=row_info)
            if L >= R:
                rw = L // R
                pk.src_first, pk.src_step = t + 1 + rw, rw
            else:
                pk.src_first, pk.src_step = t + 2, 1
        else:
            pk = Packet(K_RESULT, self.id, dst, 0, self.res_len, "tile", info=row_info)
            if 4 * C > L:
                pk.src_first, pk.src_step = t + 4, 1
            else:
                rw = L // (4 * C)
                pk.src_first, pk.src_step = t + 3 + rw, rw
        pk.hops = self.net.route(self.id, IC_TILE, dst, OC_TILE, 0)
        pk.on_done0 = lambda T0, kind=kind: self.later(T0 + 1, self._tx_done, kind)
        self.net.inject(t + 1, pk)
        self.sys.record("tx", self.id, t, (kind, dst))

    def _req_freed_later(self, t):
        self.k.at(t, UPDATE, self._req_freed, t)

    def _tx_done(self, t, kind):
        self.sys.record("tx_done", self.id, t, kind)
        self.tx_idle_from = t
        if kind == "TOKEN":
            self.tokens_sent += 1
        else:
            self.results_sent += 1

    def tile_ready_at(self, t):
        """First period >= ``t`` the receiver takes a TOKEN/RESULT header (None: still
        busy with a packet whose end is not known yet)."""
        if self.rx_head_at is None:
            return None
        return max(t, self.rx_head_at, self.rx_open_at if self.rx_open_at is not None else 1 << 60)

    def tile_taken(self, t, pkt):
        self.rx_head_at = None

    def tile_sink(self, pkt):
        return _Receiver(self, pkt)

    # ------------------------------------------------------------------------------------
    # router: slot table
    def free_count(self, t):
        if self.configured_at is None or t < self.configured_at:
            return 0
        return self.n_free

    def _lowest_free(self):
        for i in range(self.slot_count):
            if self.slots[i].state == FREE:
                return i
        raise AssertionError("no free slot")

    def _reserve(self, t):
        """Allocate the lowest free slot in period ``t`` (RESERVED from ``t + 1``)."""
        i = self._lowest_free()
        s = self.slots[i]
        s.state = RESERVED                      # visible next period; nothing else reads it before
        s.computing = s.forwarding = s.releasing = s.sole = False
        s.reserved = t + 1
        self.n_free -= 1
        self.occupancy.append((t + 1, 1))
        self.sys.record("reserve", self.id, t + 1, i)
        return i

    def _check_free(self, t, i):
        s = self.slots[i]
        if s.state == HELD and not (s.computing or s.forwarding or s.releasing):
            self.later(t + 1, self._free, i)

    def _free(self, t, i):
        s = self.slots[i]
        if s.state == HELD and not (s.computing or s.forwarding or s.releasing):
            s.state = FREE
            self.n_free += 1
            self.occupancy.append((t, -1))
            self.sys.record("slot_free", self.id, t, i)

    def fill(self, t, i, kind, expert, slice_, hops, sole, relay_dst=None, flits=0):
        """A fill of ``flits`` flits completed in period ``t - 1``: HELD from ``t``.
        ``relay_dst``: a weight load staged here for that chiplet (forwarded, never
        computed)."""
        relay = relay_dst is not None
        self.weight_write_flits += flits
        s = self.slots[i]
        s.state = HELD
        s.computing = not relay
        s.forwarding = (kind == K_SLICE and hops + 1 < self.ring_len) or relay
        s.releasing = False
        s.sole = s.sole or sole
        s.kind, s.expert, s.slice, s.hops = kind, expert, slice_, hops
        s.filled = t
        if not relay:
            self.arr_fifo.append((t, i))
        if s.forwarding:
            self.fwd_fifo.append([t, i, relay_dst])
        self.sys.record("arrival", self.id, t, (i, expert, slice_, hops, kind))

    # ------------------------------------------------------------------------------------
    # router: DRAM port
    def dram_header(self, ch, t):
        self.wake(t)

    def _dram_local(self, t, remote_alloc):
        ch = self.dram
        if ch is None or ch.header_at is None or ch.accepted_at is not None or ch.header_at > t:
            return
        if self.dram_free_from is None or self.dram_free_from > t:
            return
        tr, how = ch.transfer, ch.kind
        if how == "WEIGHT" and tr.dst != self.id:
            return                              # cut through to another chiplet (RESERVE)
        need = 1 if how == "WEIGHT" else self.p.injection_headroom     # R6 for a SLICE and a staged RELAY
        if remote_alloc or self.free_count(t) < need:
            return
        i = self._reserve(t)
        first, last = ch.accept_local(t)
        self.dram_free_from = last + 1
        kind = K_SLICE if how == "SLICE" else K_WEIGHT
        self.later(last + 1, self._dram_filled, i, kind, tr.expert, tr.slice, tr.dst if how == "RELAY" else None)

    def _dram_filled(self, t, i, kind, expert, slice_, relay_dst):
        self.fill(t, i, kind, expert, slice_, 0, True, relay_dst, self.dram.flits)

    def _dram_wants_reserve(self, t):
        ch = self.dram
        if ch is None or ch.header_at is None or ch.accepted_at is not None or ch.header_at > t:
            return False
        if ch.kind != "WEIGHT" or ch.transfer.dst == self.id:
            return False
        if self.dram_free_from is None or self.dram_free_from > t:
            return False
        return not self.dram_req_out and self.dram_grant is None

    def _dram_remote_go(self, t):
        """The DRAM grant is visible in period ``t``: offer the header to the network."""
        ch = self.dram
        tr = ch.transfer
        slot = self.dram_grant
        pk = Packet(K_WEIGHT, self.id, tr.dst, 1, ch.flits, "dram", info=(tr, slot))
        pk.dram = ch
        pk.hops = self.net.route(self.id, IC_DRAM, tr.dst, OC_SLOT, 1)
        self.dram_free_from = None
        dst = self.sys.chiplets[tr.dst]

        def header0(s):
            ch.accept_remote(s)
            self.later(s + 1, self._dram_grant_used)

        def done0(T0):
            ch.remote_done(T0)
            self.later(T0 + 1, self._dram_port_free)

        pk.on_header0 = header0
        pk.on_done0 = done0
        pk.on_sink_tail = lambda Th: dst.later(Th + 1, dst.fill, slot, K_WEIGHT, tr.expert, tr.slice, 0, False,
                                               None, ch.flits)
        self.net.inject(t, pk)

    def _dram_grant_used(self, t):
        self.dram_grant = None

    def _dram_port_free(self, t):
        self.dram_free_from = t

    # ------------------------------------------------------------------------------------
    # router: control packets
    def _ctl_packet(self, t, kind, dst, agent=None, slot=None):
        """Load a control packet into the buffer in period ``t`` (offered from ``t + 1``)."""
        pk = Packet(kind, self.id, dst, 1, 0, "ctl", info=(agent, slot))
        pk.hops = self.net.route(self.id, IC_CTL, dst, OC_CTL, 1)
        self.ctl_busy_until = None

        def header0(s):
            self.ctl_busy_until = s
            self.wake(s)

        target = self.sys.chiplets[dst]
        pk.on_header0 = header0
        pk.on_sink_header = lambda s: target.later(s + 1, target.control_in, kind, self.id, agent, slot)
        self.net.inject(t + 1, pk)

    def control_in(self, t, kind, src, agent, slot):
        """A control packet was taken by this router's control sink in period ``t - 1``."""
        if kind == K_RESERVE:
            self.req_fifo.append((t, src, agent))
        elif kind == K_GRANT:
            if agent == A_FORWARD:
                self.fwd_grant = slot
                self.fwd_req_out = False
            else:
                self.dram_grant = slot
                self.dram_req_out = False
                self._dram_remote_go(t)
        elif kind == K_RELEASE:
            s = self.slots[slot]
            s.sole = True

    def _injector(self, t):
        """Control-packet buffer: GRANT, RELEASE, forward RESERVE, DRAM RESERVE."""
        if self.ctl_busy_until is None or self.ctl_busy_until > t:
            return False
        srcs = [bool(self.req_fifo) and self.req_fifo[0][0] <= t and self.free_count(t) >= 1,
                bool(self.releasing) and self._release_slot() is not None,
                self._fwd_wants_reserve(t),
                self.dram is not None and self._dram_wants_reserve(t)]
        if not (srcs[0] or srcs[1] or srcs[2] or srcs[3]):
            return False
        pick = next((i for i in range(4) if srcs[i] and i > self.ctl_ptr), None)
        if pick is None:
            pick = next(i for i in range(4) if srcs[i])
        self.ctl_ptr = pick
        if pick == 0:
            _, src, agent = self.req_fifo.popleft()
            i = self._reserve(t)
            self._ctl_packet(t, K_GRANT, src, agent, i)
            self.sys.record("grant", self.id, t, (src, agent, i))
            return True
        if pick == 1:
            i = self._release_slot()
            s = self.slots[i]
            self.quietly(t + 1, self._released, i)
            self._ctl_packet(t, K_RELEASE, self.succ, None, s.dst_slot)
        elif pick == 2:
            self.quietly(t + 1, self._set_fwd_req)
            self._ctl_packet(t, K_RESERVE, self._fwd_reserve_dst(t), A_FORWARD)
        else:
            self.quietly(t + 1, self._set_dram_req)
            self._ctl_packet(t, K_RESERVE, self.dram.transfer.dst, A_DRAM)
        return False

    def _set_fwd_req(self, t):
        self.fwd_req_out = True

    def _set_dram_req(self, t):
        self.dram_req_out = True

    def _release_slot(self):
        """Lowest slot whose RELEASE may go (compute and forward done)."""
        for i in sorted(self.releasing):
            s = self.slots[i]
            if s.state == HELD and not s.computing and not s.forwarding:
                return i
        return None

    def _released(self, t, i):
        self.slots[i].releasing = False
        self.releasing.discard(i)
        self._check_free(t, i)

    # ------------------------------------------------------------------------------------
    # router: forward engine
    def _fwd_level(self, t):
        return sum(1 for e in self.fwd_fifo if e[0] <= t)

    def _fwd_streaming(self, t):
        return not (self.fwd_idle_from is not None and self.fwd_idle_from <= t)

    def _fwd_wants_reserve(self, t):
        if self.fwd_req_out or self.fwd_grant is not None:
            return False
        streaming = self._fwd_streaming(t)
        if streaming and self.fwd_fifo[0][2] is not None:
            return False                        # a relay streams: the next one's destination is unknown
        return self._fwd_level(t) > streaming

    def _fwd_reserve_dst(self, t):
        """Where the forward engine's RESERVE goes: the successor while a slot streams (the
        ring reserves ahead), else the head entry's destination."""
        if self._fwd_streaming(t) or self.fwd_fifo[0][2] is None:
            return self.succ
        return self.fwd_fifo[0][2]

    def _forward(self, t):
        if self.fwd_idle_from is None or self.fwd_idle_from > t or self.fwd_grant is None:
            return
        if not self.fwd_fifo or self.fwd_fifo[0][0] > t:
            return
        _, i, relay_dst = self.fwd_fifo[0]
        s = self.slots[i]
        if not s.sole or s.state != HELD:
            return
        queued = self.fwd_fifo[0][0]
        dst_slot = self.fwd_grant
        self.later(t + 1, self._fwd_grant_used)
        f_sole = not s.computing
        relay = relay_dst is not None
        dst = relay_dst if relay else self.succ
        kind = K_WEIGHT if relay else K_SLICE
        succ_forwards = not relay and s.hops + 2 < self.ring_len
        self.fwd_idle_from = None
        pk = Packet(kind, self.id, dst, 1, self.sys.slot_flits, "fwd", info=(s.expert, s.slice))
        pk.hops = self.net.route(self.id, IC_FWD, dst, OC_SLOT, 1)
        target = self.sys.chiplets[dst]
        expert, slice_, hops = s.expert, s.slice, 0 if relay else s.hops + 1

        def done0(T0):
            self.later(T0 + 1, self._fwd_done, i, dst_slot, not f_sole and succ_forwards)
            self.sys.record("forward", self.id, T0, (t, queued, expert, slice_, dst, dst_slot))

        pk.on_done0 = done0
        pk.on_sink_tail = lambda Th: target.later(Th + 1, target.fill, dst_slot, kind, expert, slice_, hops,
                                                  f_sole, None, self.sys.slot_flits)
        self.weight_forward_flits += self.sys.slot_flits
        self.net.inject(t + 1, pk)

    def _fwd_grant_used(self, t):
        self.fwd_grant = None

    def _fwd_done(self, t, i, dst_slot, release):
        s = self.slots[i]
        s.forwarding = False
        s.releasing = release
        if release:
            self.releasing.add(i)
        s.dst_slot = dst_slot
        self.fwd_fifo.popleft()
        self.fwd_idle_from = t
        self._check_free(t, i)

    # ------------------------------------------------------------------------------------
    # controller: dispatcher, engine, done FIFO, walker
    def _job_done(self, t):
        """Pop the engine's done FIFO head (one per cycle): compute_done to the router."""
        eng = self.engine
        ready = eng.pop_done(t)
        if not ready:
            return
        job = ready[0]
        needs_walk = job.remote and job.count > 0
        if needs_walk and len(self.walks) >= 4:
            return
        eng.popped(job, t)
        self.later(t + 1, self._compute_done, job)
        if needs_walk:
            self.walks.append((t + 1, job))
            self.k.at(t + 1, UPDATE, self._walk_start, t + 1)
        if len(ready) > 1:
            self.wake(t + 1)

    def _compute_done(self, t, job):
        s = self.slots[job.slot]
        s.computing = False
        self.jobs_done += 1
        self._check_free(t, job.slot)
        self.sys.record("job", self.id, t, job)

    def _dispatch(self, t):
        eng = self.engine
        accepted = False
        pj = self.pending_job
        job_fire = False
        if pj is not None and pj[1] <= t:
            job = pj[0]
            if not job.remote or self.tokens_in_at(t) == self.n_tokens:
                if eng.ready(t):
                    eng.accept(t, job)
                    job_fire = True
                    accepted = job.count > 0
                    self.wake(t + 1)
        run = self.run_at is not None and t >= self.run_at
        if run and (pj is None or pj[1] > t or job_fire) and self.arr_fifo and self.arr_fifo[0][0] <= t:
            _, i = self.arr_fifo.popleft()
            s = self.slots[i]
            count, _rows = self.jobs[s.expert]
            job = Job(i, s.expert, count, s.expert in self.remote_experts, t, s.slice, s.hops, s.kind)
            self.all_jobs.append(job)
            self.pending_job = (job, t + 1)
            self.arrivals_taken += 1
            self.wake(t + 1)
        elif job_fire:
            self.pending_job = None
        return accepted

    def tokens_in_at(self, t):
        """TOKEN packets received (written into the token buffer) as seen in period ``t``."""
        return bisect_right(self.tokens_in_times, t)

    # walker ------------------------------------------------------------------------------
    def _walk_start(self, t):
        if self.walk_busy or not self.walks:
            return
        v, job = self.walks[0]
        t = max(t, v, self.walk_idle_from)
        self.walks.popleft()
        self.walk_busy = True
        self._walk_entries(t + 1, job, 0)

    def _walk_entries(self, q, job, e):
        """Entry ``e`` of ``job``'s token list: LIST in period ``q``."""
        rows = self.jobs[job.expert][1]
        while e < len(rows):
            r = rows[e]
            info = self.remote_uses.get(r)
            if info is None:
                q += 3
            else:
                info[0] -= 1
                if info[0] == 0:
                    sq = q + 3
                    if self.req is not None or self.dec_wait is not None:
                        def resume(tf, job=job, e=e, r=r, sq=sq):
                            ts = max(sq, tf)
                            self._walk_send(ts, r)
                            self._walk_entries(ts + 2, job, e + 1)
                        self.walk_wait = resume
                        return
                    self._walk_send(sq, r)
                    q = sq + 2
                else:
                    q += 4
            e += 1
        # IDLE from the period after the last NEXT
        self.walk_busy = False
        self.walk_idle_from = q
        if self.walks:
            self.k.at(q, UPDATE, self._walk_start, q)
        self.wake(q)

    def _walk_send(self, t, row):
        _, home, home_row = self.remote_uses[row]
        self._set_req(t, ("RESULT", home, (row, home_row)))

    # ------------------------------------------------------------------------------------
    def _eval(self, t):
        """Everything the chiplet decides in period ``t``, in the RTL's priority order."""
        self._evals.discard(t)
        eng = self.engine
        if eng.fifo:
            self._job_done(t)
        remote_alloc = False
        if self.ctl_busy_until is not None and self.ctl_busy_until <= t:
            remote_alloc = self._injector(t)
        if self.dram is not None:
            self._dram_local(t, remote_alloc)
        if self.fwd_grant is not None and self.fwd_fifo:
            self._forward(t)
        accepted = self._dispatch(t) if (self.pending_job is not None or self.arr_fifo) else False
        if eng.due(t):
            nxt = eng.decide(t, accepted)
            if nxt is not None:
                self.wake(nxt)
        self._sender(t)
        self._check_done(t)

    def _check_done(self, t):
        if self.done_at is not None or self.run_at is None or t < self.run_at:
            return
        if (self.arrivals_taken == self.n_arrivals and self.jobs_done == self.n_arrivals
                and self.pending_job is None and self.tokens_in_at(t) == self.n_tokens
                and self.results_in == self.n_results and self.tokens_sent == self.n_sends
                and self.results_sent == len(self.remote_uses) and not self.walk_busy and not self.walks
                and self.req is None and self.tx_idle_from is not None and self.tx_idle_from <= t
                and self.walk_idle_from <= t):
            self.all_done_at = t
            self.done_at = t + 1
            self.sys.chiplet_done(self)


class _Receiver:
    """The controller's receiver for one TOKEN or RESULT packet (payload gearbox)."""

    def __init__(self, chip, pkt):
        p = chip.p
        self.chip, self.pkt = chip, pkt
        L = p.link_bytes
        word = p.mac_rows if pkt.kind == K_TOKEN else 4 * p.mac_cols
        words = chip.sys.d // (p.mac_rows if pkt.kind == K_TOKEN else p.mac_cols)
        if L > word:
            ratio = L // word
            self.step = ratio
            self.tail_extra = words - (pkt.n - 1) * ratio + 1
        else:
            self.step = 1
            self.tail_extra = 2

    def done(self, Th):
        chip = self.chip
        t = Th + self.tail_extra
        chip.rx_head_at = t
        if chip.tile_waiter is not None:
            oc, chip.tile_waiter = chip.tile_waiter, None
            chip.net._arb_later(oc, t)
        if self.pkt.kind == K_TOKEN:
            chip.tokens_in_times.append(t)
        else:
            chip.k.at(t, UPDATE, chip._result_in, t)
        chip.wake(t)


def _result_in(self, t):
    self.results_in += 1


Chiplet._result_in = _result_in
