"""The D2D network at packet granularity, with exact link pacing.

What is modelled (``hw/router.py``, ``hw/link.py``):

* XY routes, two virtual channels (VC 0: TOKEN, RESULT; VC 1: SLICE, WEIGHT and the
  control packets), input-queued routers with one ``buffer_depth``-flit FIFO per link
  input and VC, credit flow control, a token-bucket shaper per link direction.
* Wormhole switching: an output channel (a link VC, or a local sink: slot writer,
  control sink, tile ejection) belongs to one packet from its header to its last flit;
  requests wait and are served round-robin over the router's input channels, exactly as
  the RTL arbiter orders them.
* A packet's header acquires its outputs hop by hop (each hop: grant, credit, shaper,
  ``link_latency`` cycles on the link, ``fifo_latency`` cycles through the next input
  FIFO).  Once the header has reached its sink, the payload is timed flit by flit
  through the whole path with the same credit and shaper arithmetic (each flit waits
  for its source, the previous flit, a credit returned by the next router and a shaper
  token); long streams switch to closed form as soon as the per-flit state repeats.

What is not: the two VCs of one link interleave flit by flit in the RTL; here each
packet is timed as if it had the link to itself (the only concurrent VC traffic in the
strategies is slow DRAM-rate weight loads next to short token and result packets), and
the slot write port a network fill shares with the local DRAM channel is assumed free.
"""

from __future__ import annotations

from collections import deque

from .kernel import ARB

__all__ = ["Network", "Packet", "OC_SLOT", "OC_CTL", "OC_TILE", "IC_TILE", "IC_FWD", "IC_DRAM", "IC_CTL",
           "DIR_NAMES"]

N, E, S, W = range(4)
DIR_NAMES = "NESW"
_OPPOSITE = (S, W, N, E)
OC_SLOT, OC_CTL, OC_TILE, OC_DROP = 8, 9, 10, 11
IC_TILE, IC_FWD, IC_DRAM, IC_CTL = 8, 9, 10, 11
_IC_VC = [i % 2 for i in range(8)] + [0, 1, 1, 1]
_NEG = -(1 << 60)
#: Payloads of at least this many flits are timed in closed form once their per-flit
#: state repeats (forwarded slices) or settles at the DRAM rate (remote weight loads), and
#: without the one-cycle losses to the local DRAM writer on the shared slot write port.
#: Every payload of the RTL-scale presets is shorter, so those are timed flit by flit.
LONG_STREAM = 256


def _candidates(o: int) -> list:
    """Input channels that may request output ``o``, in the arbiter's index order."""
    if o < 8:
        d, v = divmod(o, 2)
        return [i for i in range(12) if _IC_VC[i] == v and not (i < 8 and i // 2 == d)]
    vc = {OC_SLOT: 1, OC_CTL: 1, OC_TILE: 0, OC_DROP: None}[o]
    return [i for i in range(12) if vc is None or _IC_VC[i] == vc]


_CAND_POS = [{ic: k for k, ic in enumerate(_candidates(o))} for o in range(12)]


class Link:
    """One direction of a D2D link: shaper bucket, per-VC credits, counters."""

    __slots__ = ("num", "den", "b", "t_last", "credits", "flits", "headers", "busy", "stalled", "owner",
                 "waiting")

    def __init__(self, rate, depth):
        self.num, self.den = rate
        self.b = self.den              # bucket value after the last send (visible from t_last + 1)
        self.t_last = _NEG
        self.credits = (deque([_NEG] * depth), deque([_NEG] * depth))
        self.flits = 0
        self.headers = 0               # header flits (one per packet)
        self.busy = []                 # (first, last) periods a packet held or offered on the link
        self.stalled = 0
        self.owner = [None, None]      # per VC: packet whose payload is still to cross
        self.waiting = [None, None]    # per VC: a granted header with no credit yet

    def ready_at(self, t: int) -> int:
        """Earliest period >= ``t`` in which the shaper lets a flit go."""
        if self.num == self.den or t <= self.t_last:
            return t
        b = self.b
        if b >= self.den:
            return t
        need = -(-(self.den - b) // self.num)
        return max(t, self.t_last + 1 + need)

    def send(self, t: int) -> None:
        self.flits += 1
        if self.num == self.den or t <= self.t_last:
            return
        b = self.b
        if b < self.den:
            b = min(b + self.num * (t - self.t_last - 1), b + self.num * -(-(self.den - b) // self.num))
        self.b = b + self.num - self.den
        self.t_last = t


class OutChannel:
    """An output channel of one router: wormhole owner, waiting requests, round-robin."""

    __slots__ = ("router", "o", "free_at", "pending", "ptr", "arb_at")

    def __init__(self, router, o):
        self.router, self.o = router, o
        self.free_at = 0               # first period it may be granted (None: owner's tail unknown)
        self.pending = []              # [t, ic, packet]
        self.ptr = 0
        self.arb_at = set()


class Packet:
    """One packet: route, timing so far, and what to tell its source and sink.

    ``source``: ``"fwd"`` (forward engine: payload from the weight buffer, first flit two
    cycles after the header), ``"dram"`` (a DRAM channel's bucket), ``"ctl"`` (no payload),
    or ``"tile"`` (the controller's sender; ``src_first``/``src_step`` give its gearbox
    pattern).  ``sink``: the local output at the destination (``OC_SLOT``, ``OC_CTL``,
    ``OC_TILE``)."""

    __slots__ = ("kind", "src", "dst", "vc", "n", "source", "dram", "src_first", "src_step", "hops", "S", "G",
                 "on_header0", "on_done0", "on_sink_header", "on_sink_tail", "info", "tail", "st")

    def __init__(self, kind, src, dst, vc, n, source, info=None):
        self.kind, self.src, self.dst, self.vc, self.n, self.source = kind, src, dst, vc, n, source
        self.dram = None
        self.src_first = self.src_step = 0
        self.hops = []                 # [(router, out, in_ic)] ; last is the local sink
        self.S = []                    # header send (or sink acceptance) period per hop
        self.G = []                    # grant period per hop
        self.on_header0 = self.on_done0 = self.on_sink_header = self.on_sink_tail = None
        self.info = info
        self.tail = None               # per hop: period the last flit passed
        self.st = None


class Network:
    def __init__(self, kernel, params, sinks):
        self.k = kernel
        self.p = params
        self.rows, self.cols = params.rows, params.cols
        n = params.num_chiplets
        self.links = {}
        for r in range(n):
            for d in range(4):
                if self._neighbour(r, d) is not None:
                    self.links[(r, d)] = Link(params.link_rate, params.buffer_depth)
        self.outs = [[OutChannel(r, o) for o in range(12)] for r in range(n)]
        # last dequeue period of each link input FIFO (router, dir it came from, vc)
        self.fifo_deq = {}
        self._todo = []
        self._busy = False
        self.fifo_busy = {}            # input FIFO -> packet whose flits are still in it
        self.fifo_wait = {}            # input FIFO -> headers arrived behind that packet
        self.sinks = sinks             # per chiplet: object with tile_ready(t, packet)
        self.hop = params.hop_cycles
        self.credit = params.credit_cycles
        self._memo = {}
        self._routes = {}
        self.switched = [0] * n        # per router: flits through its crossbar

    # ---- topology --------------------------------------------------------------------
    def _neighbour(self, r, d):
        row, col = divmod(r, self.cols)
        row += (-1, 0, 1, 0)[d]
        col += (0, 1, 0, -1)[d]
        if 0 <= row < self.rows and 0 <= col < self.cols:
            return row * self.cols + col
        return None

    def route(self, src: int, ic: int, dst: int, kind_sink: int, vc: int) -> list:
        """``[(router, out, in_ic), ...]``: XY route from input ``ic`` at ``src`` to the
        local output ``kind_sink`` at ``dst`` (shared, read-only)."""
        key = (src, ic, dst, kind_sink, vc)
        hops = self._routes.get(key)
        if hops is None:
            hops = self._routes[key] = self._xy(src, ic, dst, kind_sink, vc)
        return hops

    def _xy(self, src, ic, dst, kind_sink, vc):
        hops = []
        r = src
        while True:
            if r == dst:
                hops.append((r, kind_sink, ic))
                return hops
            row, col = divmod(r, self.cols)
            drow, dcol = divmod(dst, self.cols)
            if dcol > col:
                d = E
            elif dcol < col:
                d = W
            elif drow > row:
                d = S
            else:
                d = N
            hops.append((r, 2 * d + vc, ic))
            r = self._neighbour(r, d)
            ic = 2 * _OPPOSITE[d] + vc

    # ---- injection and arbitration -----------------------------------------------------
    def inject(self, t: int, pkt: Packet) -> None:
        """The packet's header is offered at its source input from period ``t``."""
        for r, _, _ in pkt.hops:       # header and payload cross every router's crossbar once
            self.switched[r] += pkt.n + 1
        self._request(t, pkt, 0)

    def _request(self, t, pkt, i):
        """The header of ``pkt`` will be at the head of its input at hop ``i`` from period
        ``t`` (requests may be registered ahead of time: arbitration only sees those
        whose time has come)."""
        r, o, ic = pkt.hops[i]
        oc = self.outs[r][o]
        oc.pending.append([t, ic, pkt, i])
        self._arb_later(oc, t)

    def _arb_later(self, oc, t):
        if oc.free_at is None:
            return
        t = max(t, oc.free_at, self.k.now)
        if t not in oc.arb_at:
            oc.arb_at.add(t)
            self.k.at(t, ARB, self._arbitrate, oc, t)

    def _arbitrate(self, oc, t):
        """Pick the next owner of ``oc`` in period ``t``.  As in the RTL, the pick is only
        final in the cycle the header actually leaves (credit, shaper, receiver ready):
        until then every cycle re-arbitrates among the requests present."""
        oc.arb_at.discard(t)
        if oc.free_at is None or oc.free_at > t or not oc.pending:
            return
        first = min(req[0] for req in oc.pending)
        if first > t:
            self._arb_later(oc, first)
            return
        r, o = oc.router, oc.o
        if o < 8:
            link = self.links[(r, o // 2)]
            cred = link.credits[o % 2]
            if not cred:
                link.waiting[o % 2] = oc      # every credit is with flits still queued downstream
                return
            s = link.ready_at(max(t, cred[0]))
            if s > t:
                self._arb_later(oc, s)
                return
        elif o == OC_TILE:
            s = self.sinks[r].tile_ready_at(t)
            if s is None:
                self.sinks[r].tile_waiter = oc
                return
            if s > t:
                self._arb_later(oc, s)
                return
        ready = [req for req in oc.pending if req[0] <= t]
        pos = _CAND_POS[oc.o]
        after = [req for req in ready if pos[req[1]] > oc.ptr]
        req = min(after or ready, key=lambda q: pos[q[1]])
        oc.pending.remove(req)
        oc.ptr = pos[req[1]]
        _, ic, pkt, i = req
        # offered (and counted busy or stalled) from when the output was free for it
        pkt.G.append(max(req[0], oc.free_at))
        if o < 8:
            self._send_header(oc, t, pkt, i, self.links[(r, o // 2)])
        else:
            self._sink_header(oc, t, pkt, i)

    def _send_header(self, oc, t, pkt, i, link):
        r, o, ic = pkt.hops[i]
        cred = link.credits[pkt.vc]
        cred.popleft()
        s = t
        link.send(s)
        link.headers += 1
        link.stalled += s - pkt.G[-1]
        pkt.S.append(s)
        self._dequeued(pkt, i, s)
        if pkt.n == 0:
            oc.free_at = s + 1
            link.busy.append((pkt.G[-1], s))
            if oc.pending:
                self._arb_later(oc, s + 1)
        else:
            oc.free_at = None
            link.owner[pkt.vc] = pkt
            if i == 0:
                pkt.st = _Stream(pkt, self)
            pkt.st.acquired(i, s)
        if i == 0 and pkt.on_header0:
            pkt.on_header0(s)
        if pkt.n:
            self._advance(pkt)
        nxt = self._neighbour(r, o // 2)
        key = (nxt, _OPPOSITE[o // 2], pkt.vc)
        arrive = s + self.hop
        busy = self.fifo_busy.get(key)
        if busy is not None and busy is not pkt:
            self.fifo_wait.setdefault(key, []).append((arrive, pkt, i + 1))
        else:
            arrive = max(arrive, self.fifo_deq.get(key, _NEG) + 1)
            self.fifo_busy[key] = pkt
            self._request(arrive, pkt, i + 1)
        return

    def _sink_header(self, oc, t, pkt, i):
        r, o, ic = pkt.hops[i]
        s = t
        if o == OC_TILE:
            self.sinks[r].tile_taken(t, pkt)
        pkt.S.append(s)
        self._dequeued(pkt, i, s)
        if i == 0 and pkt.on_header0:
            pkt.on_header0(s)
        if pkt.on_sink_header:
            pkt.on_sink_header(s)
        if pkt.n == 0:
            oc.free_at = s + 1
            pkt.tail = list(pkt.S)
            if oc.pending:
                self._arb_later(oc, s + 1)
            if pkt.on_sink_tail:
                pkt.on_sink_tail(s)
            return
        oc.free_at = None
        if i == 0:
            pkt.st = _Stream(pkt, self)
        pkt.st.acquired(i, s)
        self._advance(pkt)

    def _dequeued(self, pkt, i, s):
        """The header left router ``hops[i]`` in period ``s``: the credit of the link it
        came in on returns."""
        if i > 0:
            r_prev, o_prev, _ = pkt.hops[i - 1]
            self.return_credit(self.links[(r_prev, o_prev // 2)], pkt.vc, s + self.credit, pkt)
            r, _, ic = pkt.hops[i]
            key = (r, ic // 2, pkt.vc)
            self.fifo_deq[key] = s
            if pkt.n == 0:
                self._fifo_free(key, s)

    def _fifo_free(self, key, s):
        """The last flit of a packet left input FIFO ``key`` in period ``s``."""
        self.fifo_deq[key] = s
        if self.fifo_busy.get(key) is not None:
            self.fifo_busy[key] = None
        waiting = self.fifo_wait.get(key)
        if waiting:
            arrive, pkt, i = waiting.pop(0)
            arrive = max(arrive, s + 1)
            self.fifo_busy[key] = pkt
            self._request(max(arrive, self.k.now), pkt, i)

    def return_credit(self, link, vc, t, by):
        """A credit of ``link`` (VC ``vc``) is usable again from period ``t``; ``by`` is
        the packet whose flit freed it.  Whoever waits for it moves on."""
        link.credits[vc].append(t)
        oc = link.waiting[vc]
        if oc is not None:
            link.waiting[vc] = None
            self._arb_later(oc, t)
            return
        owner = link.owner[vc]
        if owner is not None and owner is not by and owner not in self._todo:
            self._todo.append(owner)

    # ---- payload ----------------------------------------------------------------------
    def _advance(self, pkt):
        self._todo.append(pkt)
        if self._busy:
            return
        self._busy = True
        while self._todo:
            self._advance1(self._todo.pop(0))
        self._busy = False

    def _advance1(self, pkt):
        """Time every payload flit that can move now; release what the tail has passed."""
        st = pkt.st
        st.run()
        h = st.h
        now = self.k.now
        for i in range(st.acq + 1):
            if st.nk[i] == pkt.n and not st.released[i]:
                st.released[i] = True
                tail = st.last[i]
                r, o, ic = pkt.hops[i]
                oc = self.outs[r][o]
                oc.free_at = max(tail + 1, now)
                if oc.pending:
                    self._arb_later(oc, oc.free_at)
                if i < h:
                    lk = st.links[i]
                    lk.stalled += st.stalled[i]
                    lk.busy.append((pkt.G[i], tail))
                    if lk.owner[pkt.vc] is pkt:
                        lk.owner[pkt.vc] = None
                if i > 0:
                    self._fifo_free((r, ic // 2, pkt.vc), tail)
                if i == 0 and pkt.on_done0:
                    pkt.on_done0(tail)
                if i == h:
                    pkt.tail = list(st.last)
                    if st.tile_sink is not None:
                        st.tile_sink.done(tail)
                    if pkt.on_sink_tail:
                        pkt.on_sink_tail(tail)


class _Stream:
    """Payload progress of one packet: per hop, flits sent so far and the last send."""

    __slots__ = ("pkt", "net", "h", "n", "acq", "nk", "last", "q", "links", "creds", "stalled", "released",
                 "tile_sink", "step_sink", "hop", "credit", "sink_dram", "paused", "_waits")

    def __init__(self, pkt, net):
        self.pkt, self.net = pkt, net
        self.h = h = len(pkt.hops) - 1
        self.n = pkt.n
        self.acq = -1
        self.nk = [0] * (h + 1)
        self.last = [None] * (h + 1)
        self.q = [deque() for _ in range(h + 1)]
        self.links = [net.links[(r, o // 2)] for r, o, _ in pkt.hops[:h]]
        self.creds = [lk.credits[pkt.vc] for lk in self.links]
        self.stalled = [0] * h
        self.released = [False] * (h + 1)
        self.tile_sink = None
        self.step_sink = 1
        if pkt.hops[-1][1] == OC_TILE:
            self.tile_sink = net.sinks[pkt.dst].tile_sink(pkt)
            self.step_sink = self.tile_sink.step
        self.hop, self.credit = net.hop, net.credit
        self.paused = False
        self._waits = [0] * h
        self.sink_dram = None
        if pkt.hops[-1][1] == OC_SLOT and pkt.n < LONG_STREAM:
            ch = net.sinks[pkt.dst].dram
            if ch is not None and ch.writes_local:
                self.sink_dram = ch

    def acquired(self, i, s):
        self.acq = i
        self.last[i] = s

    def _flit(self, i):
        """Move the next flit through hop ``i`` (its inputs are known)."""
        pkt = self.pkt
        k = self.nk[i] + 1
        last = self.last
        if i == 0:
            src = pkt.source
            if src == "fwd":
                t = pkt.S[0] + 2 if k == 1 else last[0] + 1
            elif src == "dram":
                t = pkt.dram.offer(pkt.S[0] + 1 if k == 1 else last[0] + 1)
            else:
                t = max(pkt.src_first, pkt.S[0] + 1) if k == 1 else last[0] + pkt.src_step
            t = max(t, last[0] + 1)
        elif i == self.h:
            t = max(self.q[i][0] + self.hop, last[i] + (self.step_sink if k > 1 else 1))
            dram = self.sink_dram
            if dram is not None:
                # the slot write port, shared round-robin with the local DRAM writer
                hz = dram.horizon(self.net.k.now)
                if t > hz:
                    return False
                if dram.port_winner(t, dram.wp_last_net):
                    t += 1
                dram.wp_last_net = t
            self.q[i].popleft()
        else:
            t = max(self.q[i].popleft() + self.hop, last[i] + 1)
        if i < self.h:
            cq = self.creds[i]
            c = cq.popleft()
            lk = self.links[i]
            s = lk.ready_at(t if t >= c else c)
            lk.send(s)
            self.stalled[i] += s - t
            self._waits[i] = s - t
            self.q[i + 1].append(s)
            if i == 0 and pkt.dram is not None:
                pkt.dram.take(s)
        else:
            s = t
        if i > 0:
            self.net.return_credit(self.links[i - 1], pkt.vc, s + self.credit, pkt)
        last[i] = s
        self.nk[i] = k
        return True

    def _can(self, i):
        return (self.nk[i] < self.n and (i == 0 or self.q[i])
                and (i == self.h or self.creds[i]))

    def _dram_tail(self, k):
        """Flits ``k + 1 .. n`` of a DRAM-sourced stream in steady state: the DRAM bucket's
        closed form at hop 0, plus ``hop_cycles`` per hop (the links, far faster than the
        channel, never hold a flit)."""
        dram, h, n = self.pkt.dram, self.h, self.n
        num, den = dram.num, dram.den
        m = n - k
        s0 = self.last[0] + 1
        A0 = dram.A_at(s0)
        times = lambda j: s0 + max(j, -(-(den * (j + 1) - A0) // num))
        last0 = times(m - 1)
        dram.A = A0 + num * (last0 + 1 - s0) - den * m
        dram.tA = last0 + 1
        dram.flits_out += m
        depth = self.net.p.buffer_depth
        tail_times = [times(j) for j in range(max(0, m - depth), m)]
        for i in range(h + 1):
            off = i * self.hop
            self.last[i] = last0 + off
            self.nk[i] = n
            self.q[i].clear()
        for i, lk in enumerate(self.links):
            lk.flits += m
            lk.t_last = last0 + i * self.hop
            if lk.num != lk.den:
                # each sparse flit finds the bucket refilled to den + x (0 <= x < num) and
                # leaves x + num behind; x steps by -den modulo num
                x = (lk.b - lk.num - m * lk.den) % lk.num
                lk.b = x + lk.num
            cq = self.creds[i]
            cq.clear()
            for t in tail_times:
                cq.append(t + (i + 1) * self.hop + self.credit)
            while len(cq) < depth:
                cq.appendleft(_NEG)

    def _pause(self):
        """The sink's slot write port is not known far enough ahead: try again later."""
        if self.paused:
            return
        self.paused = True
        net = self.net
        t = max(self.sink_dram.horizon(net.k.now), net.k.now) + 1
        net.k.at(t, ARB, self._resume)

    def _resume(self):
        self.paused = False
        self.net._advance(self.pkt)

    def _drain_upstream(self):
        progress = True
        while progress:
            progress = False
            for i in range(self.h):
                while self._can(i):
                    self._flit(i)
                    progress = True

    def run(self):
        if self.acq == self.h:
            self._lockstep()
            return
        progress = True
        while progress:
            progress = False
            for i in range(self.acq + 1):
                while self._can(i):
                    if not self._flit(i):
                        self._pause()
                        break
                    progress = True

    def _lockstep(self):
        """All hops acquired: flit-major order, with a closed-form jump once the per-flit
        state repeats (fast sources into slot writers)."""
        h, n, nk = self.h, self.n, self.nk
        k = min(nk) + 1
        periodic = (self.pkt.source == "fwd" and self.pkt.hops[-1][1] == OC_SLOT and n >= LONG_STREAM
                    and self.sink_dram is None)
        steady = self.pkt.source == "dram" and n >= LONG_STREAM and self.sink_dram is None
        calm = 0
        seen = {} if periodic else None
        memo_key = None
        if periodic:
            memo_key = self._state_key()
            hit = self.net._memo.get(memo_key)
            if hit is not None:
                self._apply_memo(hit)
                return
            start = (self.last[0], [lk.flits for lk in self.links], list(self.stalled))
        while k <= n:
            for i in range(h + 1):
                if nk[i] < k:
                    if not self._flit(i):
                        self._pause()
                        # hops upstream of the sink may still move (credits permitting)
                        self._drain_upstream()
                        return
            if steady:
                # DRAM-rate source: once no flit has waited anywhere for a while, every
                # remaining flit crosses each hop in hop latency, at the bucket's pace
                calm = calm + 1 if all(x == 0 for x in self._waits) else 0
                if calm >= 2 * self.net.p.buffer_depth and n - k > 4:
                    self._dram_tail(k)
                    return
            if periodic and k >= 8 and not k % 4:
                # (sampling every 4th flit still finds any period: the state repeats after
                # a common multiple of it)
                last = self.last
                base = last[0]
                key = (tuple(x - base for x in last), tuple(lk.b for lk in self.links),
                       tuple(tuple(max(c - base, -1) for c in cq) for cq in self.creds))
                old = seen.get(key)
                if old is None:
                    seen[key] = (k, base, tuple(self.stalled))
                else:
                    k0, base0, st0 = old
                    period, shift = k - k0, base - base0
                    jumps = (n - k) // period
                    if jumps > 0:
                        dt = jumps * shift
                        for i in range(h + 1):
                            last[i] += dt
                            nk[i] += jumps * period
                        for i, lk in enumerate(self.links):
                            lk.t_last += dt
                            lk.flits += jumps * period
                            self.stalled[i] += jumps * (self.stalled[i] - st0[i])
                            cq = self.creds[i]
                            for j in range(len(cq)):
                                cq[j] += dt
                        k += jumps * period
                    periodic = False
            k += 1
        if memo_key is not None:
            base0, flits0, stalled0 = start
            self.net._memo[memo_key] = (
                tuple(x - base0 for x in self.last),
                tuple((lk.b, lk.t_last - base0) for lk in self.links),
                tuple(tuple(c - base0 for c in cq) for cq in self.creds),
                tuple(lk.flits - f for lk, f in zip(self.links, flits0)),
                tuple(a - b for a, b in zip(self.stalled, stalled0)))

    def _state_key(self):
        """Everything the rest of a lockstep stream depends on, relative to now."""
        base = self.last[0]
        last = self.last
        return (self.n, self.h, tuple(self.nk), tuple(x - base for x in last),
                tuple(tuple(x - base for x in q) for q in self.q),
                tuple((lk.b, lk.t_last - base) for lk in self.links),
                tuple(tuple(max(c, last[i] + 1 + j) - base for j, c in enumerate(cq))
                      for i, cq in enumerate(self.creds)))

    def _apply_memo(self, hit):
        last_rel, links_rel, creds_rel, flits, stalled = hit
        base = self.last[0]
        for i in range(self.h + 1):
            self.last[i] = base + last_rel[i]
            self.nk[i] = self.n
            self.q[i].clear()
        for i, lk in enumerate(self.links):
            lk.b, lk.t_last = links_rel[i][0], base + links_rel[i][1]
            lk.flits += flits[i]
            self.stalled[i] += stalled[i]
            cq = self.creds[i]
            cq.clear()
            cq.extend(base + c for c in creds_rel[i])
