"""A minimal discrete-event kernel with cycle-exact ordering inside a cycle.

Times are integer clock cycles (*periods*: the interval between two rising edges).  An
event at ``(t, phase)`` stands for something that is true, or decided, during period
``t``.  Registered state written in period ``t`` is visible from ``t + 1``, so handlers
schedule their effects one or more cycles ahead; the phase orders what happens inside a
period: state becoming visible (``UPDATE``), network arbitration (``NET``, ``ARB``), then
the per-chiplet decisions that read all of it (``EVAL``).
"""

from __future__ import annotations

import heapq

__all__ = ["Kernel", "UPDATE", "NET", "ARB", "EVAL", "LATE"]

UPDATE, NET, ARB, EVAL, LATE = range(5)


class Kernel:
    __slots__ = ("_heap", "_seq", "now", "events")

    def __init__(self):
        self._heap = []
        self._seq = 0
        self.now = 0
        self.events = 0

    def at(self, t: int, phase: int, fn, *args) -> None:
        if t < self.now:
            raise RuntimeError(f"event scheduled in the past ({t} < {self.now}): {fn}")
        self._seq += 1
        heapq.heappush(self._heap, (t, phase, self._seq, fn, args))

    def run(self, limit: int | None = None) -> None:
        heap = self._heap
        pop = heapq.heappop
        while heap:
            t, _, _, fn, args = pop(heap)
            if limit is not None and t > limit:
                raise RuntimeError(f"fast model ran past {limit} cycles")
            self.now = t
            self.events += 1
            fn(*args)
