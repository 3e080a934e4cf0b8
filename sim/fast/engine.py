"""The slice engine (``hw/slice_engine.py``) at the granularity of a token's phases.

A token costs a gate/up phase GU of ``2 (d/R)(fs/C)`` MAC beats and a down phase D of
``(fs/R)(d/C)`` beats.  D needs the token's hidden vector, which is complete
``hidden_lat`` cycles after the last GU beat (MAC array output register plus the vector
unit's pipeline), so the engine interleaves tokens ``GU(0) GU(1) D(0) GU(2) D(1) ...``
with a two-entry queue, across jobs too.  After each phase (or in every idle cycle) it
starts, in this order: the GU of the next token if one is ready and the queue has room;
the D of the oldest queued token once its hidden vector is complete (unless the next
token is one cycle away and the queue has room); else it waits.  A job is accepted when
the previous job's tokens have all started and at most ``done_depth`` jobs are in flight
or unacknowledged; its first beat issues two cycles after acceptance; its ``done`` is
valid ``drain + 1`` cycles after its last beat; an empty job's ``done`` one cycle after
acceptance.  These are the RTL's rules; this model evaluates them only in the cycles
where a decision is due.
"""

from __future__ import annotations

__all__ = ["SliceEngine"]


class SliceEngine:
    __slots__ = ("G", "D", "hidden_lat", "drain", "depth", "fsm", "phase_end", "cur", "queue", "to_fetch",
                 "stable_from", "job", "inflight", "fifo", "zero_done", "drain_writes", "mac_cycles", "busy",
                 "issues", "wake", "fetch_done_at")

    def __init__(self, G, D, hidden_lat, drain, depth, trace=None, wake=None):
        self.wake = wake
        self.G, self.D = G, D
        self.hidden_lat = hidden_lat
        self.drain, self.depth = drain, depth
        self.fsm = "WAIT"
        self.phase_end = None
        self.cur = None
        self.queue = []                 # [job, last, hidden_at]
        self.to_fetch = 0
        self.stable_from = 0
        self.job = None
        self.fetch_done_at = 0
        self.inflight = []              # jobs with tokens, not yet drained: [job, drained_visible or None]
        self.fifo = []                  # done FIFO: [write period, job]
        self.zero_done = set()          # periods the deferred done of an empty job is written
        self.drain_writes = set()
        self.mac_cycles = 0
        self.busy = []                  # (first, last) busy periods per job
        self.issues = trace             # list of (start, end, kind, job) phases, or None

    # ---- job interface ------------------------------------------------------------------
    def ready(self, t):
        if self.to_fetch or t < self.fetch_done_at or t in self.zero_done:
            return False
        infl = sum(1 for job, v in self.inflight if job.accepted < t and (v is None or v > t))
        level = 0
        for w, job in self.fifo:
            if w < t and (job.popped is None or t <= job.popped):
                level += 1
        return infl + level < self.depth

    def accept(self, t, job):
        """Accept ``job`` (``count`` tokens) in period ``t``."""
        job.accepted = t
        if job.count == 0:
            if t in self.drain_writes:
                self.zero_done.add(t + 1)
                self._write(t + 1, job)
            else:
                self._write(t, job)
            return
        self.to_fetch = job.count
        self.stable_from = t + 1
        self.job = job
        self.inflight.append([job, None])

    def _write(self, w, job):
        self.fifo.append([w, job])
        self.fifo.sort(key=lambda e: e[0])
        job.done_valid = w + 1
        if self.wake is not None:
            self.wake(w + 1)

    def pop_done(self, t):
        """Jobs whose done is valid in period ``t``, in FIFO order (not yet popped)."""
        fifo = self.fifo
        if not fifo:
            return fifo
        return [job for w, job in fifo if w < t and job.popped is None]

    def popped(self, job, t):
        job.popped = t
        # forget entries popped long ago
        self.fifo = [e for e in self.fifo if e[1].popped is None or e[1].popped >= t - 1]
        self.inflight = [e for e in self.inflight if e[1] is None or e[1] > t - 1]

    # ---- scheduler ------------------------------------------------------------------------
    def due(self, t):
        return self.fsm == "WAIT" or self.phase_end == t

    def decide(self, t, accepted_now):
        """Run the scheduler from period ``t``; returns the next period it must run again
        (or None: only an accepted job can wake it).  While the current job still has
        tokens to start, no job can be accepted and every decision is internal, so the
        scheduler runs ahead on its own until the job's last token has started."""
        while True:
            nxt = self._decide(t, accepted_now)
            if self.to_fetch == 0 or nxt is None:
                return nxt
            t, accepted_now = nxt, False

    def _decide(self, t, accepted_now):
        if self.fsm == "GU" and self.phase_end == t:
            self.queue.append([self.cur[0], self.cur[1], t + self.hidden_lat])
        elif self.fsm == "D" and self.phase_end == t:
            job, last, _ = self.queue.pop(0)
            if last:
                w = t + self.drain
                self.drain_writes.add(w)
                for e in self.inflight:
                    if e[0] is job:
                        e[1] = w + 1
                job.last_issue = t
                self._write(w, job)
        elif self.fsm != "WAIT":
            return self.phase_end
        q = len(self.queue)
        head_valid = self.to_fetch > 0 and t >= self.stable_from
        coming = self.to_fetch > 0 or accepted_now
        if head_valid and q < 2:
            job = self.job
            G, D = self.G, self.D
            if (q == 1 and self.to_fetch >= 3 and self.queue[0][0] is job and self.hidden_lat <= G + D
                    and self.queue[0][2] <= t + G):
                # steady state inside a job: GU(i+1) D(i) pairs back to back, no waits
                m = self.to_fetch - 1
                span = m * (G + D)
                self.to_fetch -= m
                self.mac_cycles += span
                if self.issues is not None:
                    self.issues.append((t + 1, t + span, "GU+D", job))
                if job.first_issue is None:
                    job.first_issue = t + 1
                t_m = t + span
                prev = t_m - (G + D)                  # the last of these takes
                self.stable_from = prev + 2
                self.queue = [[job, False, 0], [job, False, prev + G + self.hidden_lat]]
                self.fsm, self.phase_end = "D", t_m
                return t_m
            self.to_fetch -= 1
            self.stable_from = t + 2
            self.cur = (job, self.to_fetch == 0)
            if job.first_issue is None:
                job.first_issue = t + 1
            if self.to_fetch == 0:
                self.fetch_done_at = t + 1      # the next job may be accepted from here
                if self.wake is not None:
                    self.wake(t + 1)
            self.fsm, self.phase_end = "GU", t + self.G
            self.mac_cycles += self.G
            if self.issues is not None:
                self.issues.append((t + 1, t + self.G, "GU", job))
            return self.phase_end
        if q and not (coming and q < 2) and self.queue[0][2] <= t:
            self.fsm, self.phase_end = "D", t + self.D
            self.mac_cycles += self.D
            if self.issues is not None:
                self.issues.append((t + 1, t + self.D, "D", self.queue[0][0]))
            return self.phase_end
        self.fsm, self.phase_end = "WAIT", None
        wake = []
        if self.to_fetch > 0 and self.stable_from > t:
            wake.append(self.stable_from)
        if q and self.queue[0][2] > t:
            wake.append(self.queue[0][2])
        if self.to_fetch > 0 and not wake:
            wake.append(t + 1)
        return min(wake) if wake else None
