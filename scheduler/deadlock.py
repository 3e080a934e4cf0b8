"""Deadlock freedom of a plan on a configuration, checked before any simulation.

A resource-dependency (wait-for) model: which resources a packet or a slot holds while
it waits for which other resources, on this plan's traffic and this build's rules.  Two
kinds of resources can close a cycle of waits:

* **Link channels** (``(chiplet, direction, vc)``, with their credits).  A packet holds
  the channels it has entered until its destination consumes it.  With slot reservation
  (R5: a transfer starts only once its slot is RESERVED) every VC 1 packet is consumed at
  once by its slot, the RESERVE queue (two entries per chiplet, one per agent that can
  ask) or the grant registers, and every VC 0 packet (a token or a result, EP family)
  by a token-buffer row the plan assigned before the run (``Plan.remote_rows``, capacity
  checked by :func:`scheduler.program.check_fits`); so a channel waits only for the next
  channel of its XY route, and XY routes on a mesh never wait in a cycle.  No plan can
  change that, so there is nothing to check per plan; :mod:`hw.topology` builds the
  channel graph and shows where a cycle would come from: a router *without* slot
  reservation, in which a slice holds its last channel until the successor takes it
  (``tests/test_topology.py``).
* **Weight slots** (the slot pool of each chiplet).  A slot is freed when its compute,
  its forward and its RELEASE are done (R5).  Compute waits for nothing in the network
  (a chiplet computes its arrivals in order, on resident tokens), so the waits are: a
  slice held at chiplet ``c`` that has forwards left waits for a slot at its successor
  (R7); a DRAM channel's SLICE, or a RELAY it stages, waits for ``injection_headroom``
  free slots at its own chiplet (R6: 2); a WEIGHT load waits for one slot at its
  destination, and a staged RELAY for one at its destination, each freed there by
  compute alone.  Only the ring waits close cycles: every ring of the successor table
  on which slices travel.

A cycle of slot waits deadlocks only if every slot on it is held by something that
waits along it.  On a ring (FSE-DP) those are slices with forwards left; the last slot
to fill is then filled by an injection (a forward into a chiplet's last slot frees its
sender's copy after the sender's compute).  With R6 (headroom 2) no injection takes a
chiplet's last free slot, so a ring is never full: no slot deadlock.  With a headroom of
1 a ring can fill up if the slices injected into it are at least as many as its slots
(each slot then holds a distinct slice); the check reports that ring.  Staged relays (EP
family) wait for a slot at their destination, where what lands is freed by compute
alone, so only staged tiles hold a slot while waiting: a cycle needs chiplets each of
which stages at least as many tiles for the others on it as it has slots, which again
only a headroom of 1 allows.  And a headroom larger than a chiplet's slots means its
DRAM channel can never inject at all.  The check is sound (a plan it passes cannot
deadlock on these resources) and conservative (a cycle it reports can fill, which a
particular timing may still avoid).

:func:`check_plan` runs in :func:`sim.workload.prepare` for both engines; a failure is a
:class:`DeadlockError` with a one-line message that names the cycle.
"""

from __future__ import annotations

from dataclasses import dataclass

from hw.topology import find_cycle, ring_lengths

from .plan import FitError

__all__ = ["DeadlockError", "SlotCycle", "slot_waits", "slot_cycles", "check_plan", "R6_HEADROOM"]

#: The injection headroom rule R6 asks for: DRAM injects a slice only into two free slots.
R6_HEADROOM = 2


class DeadlockError(FitError):
    """A plan that can deadlock (or never start) on this configuration (one line).  A
    :class:`~scheduler.plan.FitError`: the plan cannot run on this hardware, and
    ``compare``, ``grid`` and ``sweep`` list it with its reason as for any plan that does
    not fit."""


@dataclass(frozen=True)
class SlotCycle:
    """A cycle of slot waits: the chiplets in waiting order, their slots, how many slot
    holders wait along it (``holders``: slices injected into a ring, or tiles staged for
    a chiplet of the cycle) and the chiplets whose DRAM channels inject them.  ``kind``:
    ``"ring"`` (R7 forwards) or ``"relay"`` (staged tiles)."""

    ring: tuple
    slots: int
    holders: int
    injectors: tuple
    kind: str = "ring"

    def can_fill(self, headroom: int) -> bool:
        """Whether what waits along this cycle can hold every one of its slots."""
        return headroom < R6_HEADROOM and self.holders >= self.slots and self.holders > 0

    def describe(self) -> str:
        path = " -> ".join(str(c) for c in self.ring + self.ring[:1])
        chiplets = f"chiplet{'s' if len(self.injectors) > 1 else ''} {', '.join(map(str, self.injectors))}"
        if self.kind == "ring":
            return (f"slot waits close the ring {path}: its {self.slots} slots can all hold slices waiting for a "
                    f"slot at their successor (R7), {self.holders} slices injected by the DRAM channels at "
                    f"{chiplets}")
        return (f"slot waits close the cycle {path}: its {self.slots} slots can all hold tiles staged for the "
                f"next chiplet, {self.holders} staged by the DRAM channels at {chiplets}")


def _injections(plan) -> dict:
    """``{chiplet: (slices, {destination: staged relays})}`` that the DRAM channels inject
    at their own chiplet."""
    out = {}
    for k, stream in enumerate(plan.streams):
        chiplet = plan.hardware.dram_chiplets[k]
        slices, relays = out.get(chiplet, (0, {}))
        for t in stream:
            kind = plan.stream_kind(k, t)
            slices += kind == "SLICE"
            if kind == "RELAY":
                relays[t.dst] = relays.get(t.dst, 0) + 1
        out[chiplet] = (slices, relays)
    return out


def slot_waits(plan) -> dict:
    """The wait-for graph of the plan's slot pools: ``{("slots", c): {resources}}`` and
    ``{("dram", k): {resources}}``, a resource waiting for each resource it points to."""
    graph = {("slots", c): set() for c in range(plan.num_chiplets)}
    hw = plan.hardware
    if plan.successor is not None:
        lengths = ring_lengths(plan.successor)
        for c, s in enumerate(plan.successor):
            if lengths[c] > 1:
                graph[("slots", c)].add(("slots", s))            # a forward waits for a successor slot (R7)
    for k, stream in enumerate(plan.streams):
        node = graph.setdefault(("dram", k), set())
        for t in stream:
            kind = plan.stream_kind(k, t)
            node.add(("slots", hw.dram_chiplets[k] if kind != "WEIGHT" else t.dst))
            if kind == "RELAY":
                graph[("slots", hw.dram_chiplets[k])].add(("slots", t.dst))   # a staged tile waits for its dst
    return graph


def _cycles(graph, keep=None):
    """Disjoint cycles of the slot pools of ``graph`` (only chiplets in ``keep``, if given),
    each as its chiplets in waiting order."""
    pools = {n: {w for w in ws if w[0] == "slots" and (keep is None or w[1] in keep)}
             for n, ws in graph.items() if n[0] == "slots" and (keep is None or n[1] in keep)}
    out = []
    while (cycle := find_cycle(pools)) is not None:
        out.append(tuple(c for _, c in cycle))
        for node in cycle:
            pools[node] = set()
    return out


def slot_cycles(plan) -> list[SlotCycle]:
    """The cycles of slot waits (:func:`slot_waits`) that could fill: every ring that
    slices travel, and every cycle of chiplets each of which stages at least as many tiles
    for the next one on the cycle as it has slots (none with enough slots)."""
    graph = slot_waits(plan)
    injected = _injections(plan)
    if plan.successor is not None:
        return [SlotCycle(ring=ring, slots=plan.slots * len(ring),
                          holders=sum(injected.get(c, (0, {}))[0] for c in ring),
                          injectors=tuple(sorted(c for c in ring if injected.get(c, (0, {}))[0])))
                for ring in _cycles(graph)]
    staged = {c: sum(relays.values()) for c, (_, relays) in injected.items()}
    full = {c for c, n in staged.items() if n >= plan.slots}
    return [SlotCycle(ring=ring, slots=plan.slots * len(ring), holders=sum(staged[c] for c in ring),
                      injectors=tuple(sorted(ring)), kind="relay")
            for ring in _cycles(graph, keep=full)]


def check_plan(plan, system) -> None:
    """Raise :class:`DeadlockError` if ``plan`` can deadlock, or never start, on
    ``system`` (a :class:`hw.config.SystemConfig`): a cycle of slot waits that can fill
    (injection headroom below R6's 2), or a DRAM channel whose chiplet has fewer slots
    than the injection headroom."""
    headroom = system.injection_headroom
    for chiplet, (slices, relays) in sorted(_injections(plan).items()):
        if (slices or relays) and plan.slots < headroom:
            what = "slice" if slices else "staged tile"
            raise DeadlockError(
                f"deadlock: the DRAM channel at chiplet {chiplet} can never inject a {what}: it needs "
                f"{headroom} free slots (injection headroom) and the chiplet has {plan.slots}")
    for cycle in slot_cycles(plan):
        if cycle.can_fill(headroom):
            raise DeadlockError(f"deadlock: {cycle.describe()}, and with injection headroom {headroom} "
                                f"(R6 asks for {R6_HEADROOM}) an injection can take a chiplet's last free slot")
