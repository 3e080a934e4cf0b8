"""A DRAM channel (``hw/dram.py``) in closed form per packet.

The channel runs ``SET CHIPLET_ID; SET SLOT_WORDS; STREAM x m; END`` one instruction per
cycle from period 0; a STREAM enters the request queue (``requests`` deep, the packet
being sent included) the cycle after it executes, and waits while the queue is full.
Each request's access latency runs from its issue.  The queue head offers its header at
once; the router takes it when a slot is free (R6) or, for a weight load to another
chiplet, when that chiplet granted a slot and the route is free.  Payload flits leave
under the bandwidth accumulator ``A`` (``+num`` per cycle while the head has passed its
latency, ``-den`` per flit, saturating at ``cap``, held at ``den`` otherwise), so the
``j``-th flit of an unstalled packet whose payload may start in period ``s0`` with
``A(s0) = a`` leaves in period ``s0 + max(j, ceil((den (j + 1) - a) / num))``.
"""

from __future__ import annotations

__all__ = ["DramChannel"]


class DramChannel:
    def __init__(self, index, chiplet, transfers, kinds, flits, params, kernel, owner):
        self.index, self.chiplet = index, chiplet
        self.transfers = transfers
        self.kinds = kinds                      # per transfer: "SLICE", "WEIGHT" or "RELAY"
        #: the channel writes slots of its own chiplet (SLICE, RELAY or a WEIGHT for it)
        self.writes_local = any(k != "WEIGHT" or tr.dst == chiplet for k, tr in zip(kinds, transfers))
        self.flits = flits                      # payload flits per packet
        self.num, self.den = params.dram_rate
        self.cap = params.dram_cap
        self.latency = params.dram_latency
        self.R = params.dram_requests
        self.k = kernel
        self.owner = owner                      # the system: chiplet lookup, trace
        m = len(transfers)
        self.x = [None] * m                     # STREAM execution period
        self.pop = [None] * m                   # last payload flit accepted
        for i in range(min(self.R, m)):
            self.x[i] = 2 + i
        self.head = 0
        self.A, self.tA = self.den, 0           # accumulator value A(tA); grows while elapsed
        self.elapsed_from = None                # head request elapsed from this period
        self.header_at = None                   # head's header offered from
        self.accepted_at = None                 # head's header accepted
        self.done_at = 3 if m == 0 else None
        self.flits_out = 0
        self.stalled = 0
        self.packets = []                       # (header offered, accepted, first payload, pop, transfer)
        self.local = []                         # recent local packets: (s0, A0, first, last, n)
        self.wp_delayed = set()                 # nominal write periods lost to a network flit
        self.wp_last_net = None                 # last network write on the shared port

    # ---- request queue -----------------------------------------------------------------
    def start(self):
        if self.transfers:
            self._new_head(0, self.x[0] + 1)

    def _new_head(self, i, t):
        """Request ``i`` becomes the queue head in period ``t``."""
        self.head = i
        issue = self.x[i] + 1
        elapsed = issue + self.latency
        if elapsed > t:
            # not elapsed yet when it becomes the head: A is held at den until then
            self.A, self.tA = self.den, elapsed
        self.elapsed_from = max(elapsed, t)
        self.header_at = t
        self.accepted_at = None
        self.owner.dram_header(self, t)

    def A_at(self, t):
        """Accumulator in period ``t`` (no flit taken since ``tA``, head elapsed)."""
        if t <= self.tA:
            return self.A
        return min(self.cap, self.A + self.num * (t - self.tA))

    @property
    def transfer(self):
        return self.transfers[self.head]

    @property
    def kind(self) -> str:
        return self.kinds[self.head]

    # ---- local packets: header accepted by the router, payload in closed form ----------
    def accept_local(self, a):
        """The local router took the header in period ``a``; returns (first payload
        period, last payload period)."""
        self.accepted_at = a
        self.stalled += a - self.header_at
        n = self.flits
        s0 = max(a + 1, self.elapsed_from)
        A0 = self.A_at(s0)
        num, den = self.num, self.den
        first = s0 + max(0, -(-(den - A0) // num))
        last = s0 + max(n - 1, -(-(den * n - A0) // num))
        self.local.append((s0, A0, first, last, n))
        if len(self.local) > 2:
            self.local.pop(0)
        self.A = A0 + num * (last + 1 - s0) - den * n
        self.tA = last + 1
        self.flits_out += n
        self._popped(last, first)
        return first, last

    def writes_at(self, p):
        """Does a local payload flit enter the slot write port in period ``p``?"""
        num, den = self.num, self.den
        for s0, A0, first, last, n in self.local:
            if first <= p <= last:
                d = p - s0
                # flit j leaves at s0 + max(j, ceil((den (j + 1) - A0) / num))
                for j in (d, (num * d + A0) // den - 1):
                    if 0 <= j < n and s0 + max(j, -(-(den * (j + 1) - A0) // num)) == p:
                        return True
        return False

    def last_write_before(self, p):
        """Latest period before ``p`` in which a local payload flit was offered (nominal
        schedule), or None."""
        num, den = self.num, self.den
        for s0, A0, first, last, n in reversed(self.local):
            if first < p:
                if last < p:
                    return last
                d = p - 1 - s0
                best = None
                for j in (d, (num * d + A0) // den - 1, (num * d + A0) // den - 2):
                    if 0 <= j < n:
                        t = s0 + max(j, -(-(den * (j + 1) - A0) // num))
                        if t < p and (best is None or t > best):
                            best = t
                return best
        return None

    def port_winner(self, p, last_net):
        """The slot write port in period ``p`` when a network flit asks for it: True if
        the DRAM writer takes it (the network flit waits a cycle).  The port is
        round-robin: on a tie the writer that did not have the last write wins; a DRAM
        flit that loses is written the next cycle."""
        delayed = self.wp_delayed
        if (p - 1) in delayed:
            return True                 # it lost in p - 1 to the network, which wrote last
        if not self.writes_at(p):
            return False
        last_dram = self.last_write_before(p)
        if last_dram is not None and last_dram in delayed:
            last_dram += 1              # that flit was written a cycle late
        if last_dram is None or (last_net is not None and last_net > last_dram):
            return True                 # the network had the last write (or nobody yet)
        delayed.add(p)
        if len(delayed) > 64:
            for x in sorted(delayed)[:32]:
                delayed.discard(x)
        return False

    def horizon(self, now):
        """Last period up to which this channel's local slot writes are all known."""
        if self.done_at is not None and self.head == len(self.transfers) - 1 and self.pop[self.head] is not None:
            return 1 << 60
        if self.accepted_at is not None and self.pop[self.head] is not None:
            return max(now, self.pop[self.head] + 1)
        return now

    # ---- remote packets: the network asks for each flit --------------------------------
    def accept_remote(self, a):
        self.accepted_at = a
        self.stalled += a - self.header_at
        self._first = None

    def offer(self, t):
        """Earliest period >= ``t`` in which the next payload flit is offered."""
        t = max(t, self.elapsed_from)
        A = self.A_at(t)
        if A >= self.den:
            return t
        return t + -(-(self.den - A) // self.num)

    def take(self, s):
        A = self.A_at(s)
        self.A, self.tA = A + self.num - self.den, s + 1
        self.flits_out += 1
        if self._first is None:
            self._first = s

    def remote_done(self, last):
        self._popped(last, self._first)

    # ---- after the last payload flit -----------------------------------------------------
    def _popped(self, last, first):
        i = self.head
        self.pop[i] = last
        self.packets.append((self.header_at, self.accepted_at, first, last, self.transfers[i]))
        m = len(self.transfers)
        nxt = i + self.R
        if nxt < m:
            self.x[nxt] = max(self.x[nxt - 1] + 1, last)
        if i + 1 < m:
            self.k.at(last + 1, 0, self._new_head, i + 1, max(self.x[i + 1] + 1, last + 1))
        else:
            self.done_at = max(self.x[m - 1] + 1, last) + 1
            self.owner.dram_done(self)
