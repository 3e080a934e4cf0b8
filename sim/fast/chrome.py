"""Chrome trace-event JSON of one fast-model run (open it in Perfetto or chrome://tracing).

Tracks: per DRAM channel, its packets (header taken to last flit) and the stalls before
them (no free slot, R6, or waiting for a remote grant); per chiplet, the slice engine's
jobs (first to last MAC beat), each weight slot's occupancy (reserved to free, one track
per slot), the forward engine's transfers and its waits for a successor slot or a
predecessor's release (R7, R2), the controller's TOKEN/RESULT packets, and a slots-in-use
counter.  Flow arrows follow each slice from its DRAM channel through its ring.  Times
are in microseconds at the preset's clock; every event carries its cycles in ``args``.

Complete events on one thread track must be disjoint or properly nested, but a unit's
work overlaps in time (the slice engine starts the next job while the last one drains;
the forward engine's queue waits run under the transfer ahead of them).  So every unit
is drawn on lanes: each item (an event, or a stall and the event it delays, kept
together) goes to the lowest-numbered lane of its unit that is free by its first cycle,
in order of first cycle.  That greedy interval partitioning uses the fewest lanes there
can be: as many as the unit has items in progress at once.  A unit that needs one lane
keeps its plain name; otherwise its lanes are "<unit> #0", "#1", ...  Event boundaries
are rounded down to whole nanoseconds (what Perfetto keeps) before they are written, so
that events which meet in cycles also meet there, rather than overlap by a rounding step
(at a clock above 1 GHz a one-cycle event may round to zero length).
"""

from __future__ import annotations

import heapq
import math

__all__ = ["chrome_trace"]

# units of a chiplet, in track order (then one per weight slot)
_COMPUTE, _FORWARD, _PACKETS = "slice engine (jobs)", "forward engine", "controller packets"
_STREAM = "stream"


def _lanes(items):
    """Greedy interval partitioning: ``items`` are ``(first, end)`` half-open intervals;
    returns the lane of each (sorted by first, each on the lowest lane free by then) and
    the number of lanes, the most items that overlap at one time."""
    order = sorted(range(len(items)), key=lambda i: (items[i][0], -items[i][1], i))
    lane = [0] * len(items)
    busy, free, n = [], [], 0           # heaps of (end, lane) and of free lanes
    for i in order:
        first, end = items[i]
        while busy and busy[0][0] <= first:
            heapq.heappush(free, heapq.heappop(busy)[1])
        if free:
            k = heapq.heappop(free)
        else:
            k, n = n, n + 1
        lane[i] = k
        heapq.heappush(busy, (end, k))
    return lane, n


def chrome_trace(system) -> dict:
    plan, p = system.plan, system.p
    ns_per_cycle = 1.0 / p.clock_ghz
    ev = []

    def ns(cycle):
        """A cycle boundary in whole nanoseconds, rounded down (Perfetto keeps no finer
        time; rounding down keeps every event within the run)."""
        return math.floor(cycle * ns_per_cycle + 1e-6)

    def us(cycle):
        return ns(cycle) / 1000

    # Units are (pid, name); an item is a list of spans drawn on one lane.  Spans carry
    # cycles until the lanes are known, then get ``tid`` / ``ts`` / ``dur``.
    units = {}                              # (pid, name) -> (order, [item, ...])
    binds = []                              # (flow event, unit, span or None)

    def unit(pid, name, order):
        return units.setdefault((pid, name), (order, []))[1]

    def span(name, first, last, cat, **args):
        return {"ph": "X", "name": name, "cat": cat, "_first": first, "_end": first + max(last - first + 1, 1),
                "args": {"first_cycle": first, "last_cycle": last, **args}}

    def item(pid, name, order, *spans):
        unit(pid, name, order).append(spans)
        return spans[-1]

    def flow(ph, pid, name, fid, t, on=None, **kw):
        e = {"ph": ph, "pid": pid, "id": fid, "name": "slice", "cat": "trajectory", "ts": us(t), **kw}
        ev.append(e)
        binds.append((e, (pid, name), on))

    def label(expert, slice_):
        return f"e{expert}.s{slice_}" if plan.slices > 1 else f"expert {expert}"

    n = plan.num_chiplets
    dram_pid = lambda k: 1000 + k
    for c in range(n):
        ev.append({"ph": "M", "pid": c, "name": "process_name", "args": {"name": f"chiplet {c}"}})
        for order, name in enumerate((_COMPUTE, _FORWARD, _PACKETS)):
            unit(c, name, order)
    for ch in system.drams:
        ev.append({"ph": "M", "pid": dram_pid(ch.index), "name": "process_name",
                   "args": {"name": f"DRAM channel {ch.index} (chiplet {ch.chiplet})"}})
        unit(dram_pid(ch.index), _STREAM, 0)
    slot_unit = lambda i: (f"slot {i}", 3 + i)

    # DRAM streams and their stalls
    fid = 0
    dram_flow = {}
    for ch in system.drams:
        pid = dram_pid(ch.index)
        for header_at, accepted, first, last, tr in ch.packets:
            dst = tr.dst
            spans = []
            if accepted > header_at:
                why = "stall: no free slot (R6)" if plan.successor is not None or dst == ch.chiplet else \
                    "stall: remote slot grant / route"
                spans.append(span(why, header_at, accepted - 1, "stall"))
            spans.append(span(f"{label(tr.expert, tr.slice)} -> chiplet {dst}", accepted, last, "dram",
                              flits=ch.flits))
            packet = item(pid, _STREAM, 0, *spans)
            fid += 1
            flow("s", pid, _STREAM, fid, last, packet)
            dram_flow[(tr.expert, tr.slice, dst, 0)] = fid

    # per-chiplet records
    slot_open = {}
    fwd_flow = {}
    occupancy = {c: [] for c in range(n)}
    tx_open = {}
    for kind, who, t, d in system.events:
        if kind == "reserve":
            slot_open[(who, d)] = [t, None, None, []]
            occupancy[who].append((t, 1))
        elif kind == "arrival":
            i, expert, slice_, hops, _k = d
            rec = slot_open.setdefault((who, i), [t, None, None, []])
            rec[1], rec[2] = t, (expert, slice_, hops)
            f = dram_flow.pop((expert, slice_, who, 0), None) if hops == 0 else \
                fwd_flow.pop((expert, slice_, who), None)
            if f is not None:
                rec[3].append(f)
        elif kind == "slot_free":
            rec = slot_open.pop((who, d), None)
            occupancy[who].append((t, -1))
            if rec is not None and rec[2] is not None:
                expert, slice_, hops = rec[2]
                name, order = slot_unit(d)
                held = item(who, name, order, span(label(expert, slice_), rec[0], t - 1, "slot", slot=d,
                                                   filled=rec[1], hops=hops))
                for f in rec[3]:
                    flow("f", who, name, f, rec[1], held, bp="e")
        elif kind == "forward":
            start, queued, expert, slice_, succ, dst_slot = d
            spans = []
            if start > queued:
                spans.append(span("stall: waiting for successor slot or release (R7/R2)", queued, start - 1,
                                  "stall"))
            spans.append(span(f"{label(expert, slice_)} -> chiplet {succ}", start, t, "forward", slot=dst_slot))
            sent = item(who, _FORWARD, 1, *spans)
            fid += 1
            flow("s", who, _FORWARD, fid, start, sent)
            fwd_flow[(expert, slice_, succ)] = fid
        elif kind == "tx":
            tx_open[who] = (t, d)
        elif kind == "tx_done":
            start, (pk, dst) = tx_open.pop(who)
            item(who, _PACKETS, 2, span(f"{pk} -> chiplet {dst}", start, t - 1, "packet"))
    for (who, i), rec in slot_open.items():         # held at the end of the run: arrows still land
        name, order = slot_unit(i)
        for f in rec[3]:
            unit(who, name, order)
            flow("f", who, name, f, rec[1], bp="e")
    for c, chip in enumerate(system.chiplets):
        for job in chip.all_jobs:
            if job.count and job.first_issue is not None:
                item(c, _COMPUTE, 0, span(label(job.expert, job.slice), job.first_issue, job.last_issue,
                                          "compute", tokens=job.count, accepted=job.accepted, done=job.popped))
        cur, by = 0, {}
        for t, dv in occupancy[c]:
            by[t] = by.get(t, 0) + dv
        for t in sorted(by):
            cur += by[t]
            ev.append({"ph": "C", "pid": c, "name": "slots in use", "ts": us(t), "args": {"slots": cur}})

    # lanes: tids numbered per process in track order, lane 0 of a unit first
    lane0 = {}
    next_tid = {}
    for (pid, name), (order, items) in sorted(units.items(), key=lambda u: (u[0][0], u[1][0])):
        lane, count = _lanes([(it[0]["_first"], it[-1]["_end"]) for it in items])
        base = next_tid.get(pid, 1)
        next_tid[pid] = base + max(count, 1)
        lane0[(pid, name)] = base
        for k in range(max(count, 1)):
            tname = name if count <= 1 else f"{name} #{k}"
            ev.append({"ph": "M", "pid": pid, "tid": base + k, "name": "thread_name", "args": {"name": tname}})
            ev.append({"ph": "M", "pid": pid, "tid": base + k, "name": "thread_sort_index",
                       "args": {"sort_index": base + k}})
        for it, k in zip(items, lane):
            for s in it:
                first, end = s.pop("_first"), s.pop("_end")
                s.update(pid=pid, tid=base + k, ts=us(first), dur=(ns(end) - ns(first)) / 1000)
                ev.append(s)
    for e, u, on in binds:
        e["tid"] = on["tid"] if on is not None else lane0[u]
    r = system.result
    return {"traceEvents": ev, "displayTimeUnit": "ns",
            "otherData": {"engine": "fast", "cycles": r.cycles if r else system.cycles, "clock_ghz": p.clock_ghz,
                          **{k: str(v) for k, v in system.workload.spec.items()}}}
