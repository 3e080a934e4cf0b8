"""Chrome trace-event JSON of one fast-model run (open it in Perfetto or chrome://tracing).

Tracks: per DRAM channel, its packets (header taken to last flit) and the stalls before
them (no free slot, R6, or waiting for a remote grant); per chiplet, the slice engine's
jobs (first to last MAC beat), each weight slot's occupancy (reserved to free, one track
per slot), the forward engine's transfers and its waits for a successor slot or a
predecessor's release (R7, R2), the controller's TOKEN/RESULT packets, and a slots-in-use
counter.  Flow arrows follow each slice from its DRAM channel through its ring.  Times
are in microseconds at the preset's clock; every event carries its cycles in ``args``.
"""

from __future__ import annotations

__all__ = ["chrome_trace"]

_COMPUTE, _FORWARD, _PACKETS, _SLOT0 = 1, 2, 3, 100


def chrome_trace(system) -> dict:
    plan, p = system.plan, system.p
    us = 1.0 / (p.clock_ghz * 1e3)          # microseconds per cycle
    ev = []

    def meta(pid, name, tid=None, tname=None):
        ev.append({"ph": "M", "pid": pid, "name": "process_name", "args": {"name": name}})
        if tid is not None:
            ev.append({"ph": "M", "pid": pid, "tid": tid, "name": "thread_name", "args": {"name": tname}})

    def span(pid, tid, name, first, last, cat, **args):
        ev.append({"ph": "X", "pid": pid, "tid": tid, "name": name, "cat": cat, "ts": first * us,
                   "dur": max(last - first + 1, 1) * us, "args": {"first_cycle": first, "last_cycle": last, **args}})

    def label(expert, slice_):
        return f"e{expert}.s{slice_}" if plan.slices > 1 else f"expert {expert}"

    n = plan.num_chiplets
    dram_pid = lambda k: 1000 + k
    for c in range(n):
        meta(c, f"chiplet {c}", _COMPUTE, "slice engine (jobs)")
        meta(c, f"chiplet {c}", _FORWARD, "forward engine")
        meta(c, f"chiplet {c}", _PACKETS, "controller packets")
    for ch in system.drams:
        meta(dram_pid(ch.index), f"DRAM channel {ch.index} (chiplet {ch.chiplet})", 1, "stream")

    # DRAM streams and their stalls
    flow = 0
    dram_flow = {}
    for ch in system.drams:
        pid = dram_pid(ch.index)
        for header_at, accepted, first, last, tr in ch.packets:
            dst = tr.dst
            if accepted > header_at:
                why = "stall: no free slot (R6)" if plan.successor is not None or dst == ch.chiplet else \
                    "stall: remote slot grant / route"
                span(pid, 1, why, header_at, accepted - 1, "stall")
            span(pid, 1, f"{label(tr.expert, tr.slice)} -> chiplet {dst}", accepted, last, "dram",
                 flits=ch.flits)
            flow += 1
            ev.append({"ph": "s", "pid": pid, "tid": 1, "id": flow, "name": "slice", "cat": "trajectory",
                       "ts": last * us})
            dram_flow[(tr.expert, tr.slice, dst, 0)] = flow

    # per-chiplet records
    slot_open = {}
    fwd_flow = {}
    occupancy = {c: [] for c in range(n)}
    tx_open = {}
    for kind, who, t, d in system.events:
        if kind == "reserve":
            slot_open[(who, d)] = [t, None, None]
            occupancy[who].append((t, 1))
        elif kind == "arrival":
            i, expert, slice_, hops, _k = d
            rec = slot_open.setdefault((who, i), [t, None, None])
            rec[1], rec[2] = t, (expert, slice_, hops)
            fid = dram_flow.pop((expert, slice_, who, 0), None) if hops == 0 else fwd_flow.pop((expert, slice_, who), None)
            if fid is not None:
                ev.append({"ph": "f", "bp": "e", "pid": who, "tid": _SLOT0 + i, "id": fid, "name": "slice",
                           "cat": "trajectory", "ts": t * us})
        elif kind == "slot_free":
            rec = slot_open.pop((who, d), None)
            occupancy[who].append((t, -1))
            if rec is not None and rec[2] is not None:
                expert, slice_, hops = rec[2]
                span(who, _SLOT0 + d, label(expert, slice_), rec[0], t - 1, "slot", slot=d, filled=rec[1],
                     hops=hops)
        elif kind == "forward":
            start, queued, expert, slice_, succ, dst_slot = d
            if start > queued:
                span(who, _FORWARD, "stall: waiting for successor slot or release (R7/R2)", queued, start - 1,
                     "stall")
            span(who, _FORWARD, f"{label(expert, slice_)} -> chiplet {succ}", start, t, "forward", slot=dst_slot)
            flow += 1
            ev.append({"ph": "s", "pid": who, "tid": _FORWARD, "id": flow, "name": "slice", "cat": "trajectory",
                       "ts": start * us})
            fwd_flow[(expert, slice_, succ)] = flow
        elif kind == "tx":
            tx_open[who] = (t, d)
        elif kind == "tx_done":
            start, (pk, dst) = tx_open.pop(who)
            span(who, _PACKETS, f"{pk} -> chiplet {dst}", start, t - 1, "packet")
    for c, chip in enumerate(system.chiplets):
        for i in range(len(chip.slots)):
            if any(e.get("tid") == _SLOT0 + i and e.get("pid") == c for e in ev if e["ph"] == "X"):
                meta(c, f"chiplet {c}", _SLOT0 + i, f"slot {i}")
        for job in chip.all_jobs:
            if job.count and job.first_issue is not None:
                span(c, _COMPUTE, label(job.expert, job.slice), job.first_issue, job.last_issue, "compute",
                     tokens=job.count, accepted=job.accepted, done=job.popped)
        cur, by = 0, {}
        for t, dv in occupancy[c]:
            by[t] = by.get(t, 0) + dv
        for t in sorted(by):
            cur += by[t]
            ev.append({"ph": "C", "pid": c, "name": "slots in use", "ts": t * us, "args": {"slots": cur}})
    r = system.result
    return {"traceEvents": ev, "displayTimeUnit": "ns",
            "otherData": {"engine": "fast", "cycles": r.cycles if r else system.cycles, "clock_ghz": p.clock_ghz,
                          **{k: str(v) for k, v in system.workload.spec.items()}}}
