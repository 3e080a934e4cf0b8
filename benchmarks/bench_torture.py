"""The 10^7-flit torture of the router mesh (Verilator): every flit checked, per flow.

    .venv/bin/python benchmarks/bench_torture.py [--flits 1e7] [--only NAME ...] [--seed S]
        [--flows] [--json FILE]

Traffic (``sim.rtl.benches.router_mesh``; generated and checked in HDL by the stand-in
tiles and DRAM channels of every node, so Python only configures the nodes, polls a
progress counter every ~2 s and reads the counters at the end): SLICE packets from the
corner DRAM channels around the ring, WEIGHT loads from them to random chiplets (48/256
of the DRAM packets), TOKEN and RESULT packets between random chiplets; slot packets of
1..64 payload flits, tokens of 1..16, lengths and kinds random per packet; random stalls
with probability 32/256 per cycle at every stand-in port (slot writes, forwarding reads,
arrivals, DRAM and injection valid, ejection ready) and on every outgoing link (on top of
its 45/64 shaper); random compute times.

Scenarios (the rtl presets' links: 16-byte flits, 2 cycles, 45/64 flit per cycle):

* ``2x2-ring``: ring 0 -> 1 -> 3 -> 2, a DRAM channel on every chiplet;
* ``3x3-ring``: the 3x3 ring 0 1 2 5 4 7 8 6 3, whose edge 8 -> 6 is two hops, through router 7;
* ``3x3-groups``: two group rings (0 1 4 3, 2 5 8 7 6), compute slower than forwarding,
  so R2 runs on RELEASE packets.

Prints per scenario: flits checked (header and payload flits, a slice once per chiplet of
its ring), cycles, wall time and CPU time of the simulation (builds are cached in
``build/``; the bench uses a flat Verilator build, 1.2-1.5x faster per CPU second than
the tests' hierarchical one, 3 to 10 minutes to build the first time on two busy cores),
flits and cycles per second,
and per flow kind the packets and flits sent, received, lost, duplicated and reordered
(all 0 in a correct run), corrupt flits, and whether the checkers saw every flit the
routers delivered.  Exit status 1 if any check failed.  Figures are printed, never
asserted.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from hw.topology import check_configuration  # noqa: E402
from scheduler.ring import mesh_ring  # noqa: E402
from sim.rtl.benches.router_mesh import (FLOW_FAULTS, TORTURE_TRAFFIC, Reg, checked_flits,  # noqa: E402
                                         delivered_flits, flow_report, flow_totals, node_params_for,
                                         plan_for_flits, run_torture)

TRAFFIC = TORTURE_TRAFFIC
SCENARIOS = {
    "2x2-ring": (2, 2, mesh_ring(2, 2), None, {}),
    "3x3-ring": (3, 3, mesh_ring(3, 3), None, {}),
    "3x3-groups": (3, 3, [1, 4, 5, 0, 3, 8, 2, 6, 7], [[0, 1, 3, 4], [2, 5, 6, 7, 8]], dict(compute_mask=255)),
}
KINDS = ("slice", "weight", "token")


def _progress(name, target):
    def show(p):
        rate = p["flits"] / max(p["wall_s"], 1e-9)
        print(f"  {name}: {p['flits']:,} of ~{target:,.0f} flits ({100 * p['flits'] / target:.0f} %), "
              f"{p['cycles']:,} cycles, {rate:,.0f} flits/s, {p['wall_s']:.0f} s", file=sys.stderr, flush=True)
    return show


def run(name, flits, seed):
    rows, cols, succ, groups, extra = SCENARIOS[name]
    check_configuration(rows, cols, succ, groups=groups, slot_count=12)
    # Sized for 1 % more than asked, so that the random mix of kinds lands above it.
    plan = plan_for_flits(rows=rows, cols=cols, successors=succ, flits=1.01 * flits, seed=seed,
                          **{**TRAFFIC, **extra})
    params = node_params_for(f"rtl-{rows}x{cols}")
    print(f"{name}: building (cached after the first time) and running ~{flits:,.0f} flits ...", file=sys.stderr,
          flush=True)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fsedp-torture-") as tmp:
        res = run_torture(plan, test_dir=tmp, log_file=pathlib.Path(tmp) / "sim.log", hierarchical=False,
                          max_cycles=int(50 * flits) + 1_000_000, progress=_progress(name, flits), **params)
    total = time.perf_counter() - t0
    reads, flows = res["reads"], flow_report(plan, res["reads"])
    kinds = {k: flow_totals([f for f in flows if f["kind"] == k]) for k in KINDS}
    return {
        "scenario": name, "mesh": f"{rows}x{cols}", "successors": succ, "seed": seed, "outcome": res["outcome"],
        "cycles": res["cycles"], "sim_wall_s": res["wall_s"], "sim_cpu_s": res["cpu_s"], "total_wall_s": total,
        "flits_checked": checked_flits(reads), "flits_delivered": delivered_flits(reads),
        "totals": flow_totals(flows), "kinds": kinds, "flows": flows,
        "corrupt_flits": sum(r["corrupt_flits"] for r in reads),
        "link_flits": sum(sum(r["link_flits"]) for r in reads),
        "link_stalled": sum(sum(r["link_stalled"]) for r in reads),
        "releases": sum(r["releases"] for r in reads), "max_age": max(r["max_age"] for r in reads),
        "failures": res["failures"], "stuck": res["stuck"],
        "traffic": {**TRAFFIC, **extra},
        "dram_packets": plan["nodes"][plan["channels"][0]][Reg.DRAM_PACKETS],
        "token_packets": plan["nodes"][0][Reg.TOKEN_PACKETS],
    }


def report(r, per_flow=False):
    t, wall = r["totals"], r["sim_wall_s"]
    print(f"\n== {r['scenario']} ({r['mesh']}, successors {r['successors']}, seed {r['seed']}): {r['outcome']}, "
          f"{r['flits_checked']:,} flits checked in {r['cycles']:,} cycles")
    cpu = r["sim_cpu_s"]
    print(f"   {wall:.1f} s of simulation ({r['total_wall_s']:.1f} s with build check and set-up): "
          f"{r['flits_checked'] / wall:,.0f} flits/s, {r['cycles'] / wall:,.0f} cycles/s; "
          f"{cpu:.1f} s of CPU: {r['flits_checked'] / cpu:,.0f} flits per CPU second")
    print(f"   {t['flows']} flows: packets sent {t['sent_packets']:,}, received {t['received_packets']:,}; "
          f"flits sent {t['sent_flits']:,}, received {t['received_flits']:,}")
    print(f"   lost {t['lost_packets']} packets / {t['lost_flits']} flits, duplicated {t['duplicated_packets']} / "
          f"{t['duplicated_flits']}, reordered {t['reordered_packets']}; corrupt flits {r['corrupt_flits']}; "
          f"routers delivered {r['flits_delivered']:,} flits, checkers saw {r['flits_checked']:,}")
    for k, v in r["kinds"].items():
        print(f"   {k + 's':8} {v['flows']:3} flows, {v['sent_packets']:>9,} packets, {v['sent_flits']:>11,} flits sent, "
              f"{v['received_flits']:>11,} received; lost {v['lost_flits']}, duplicated {v['duplicated_flits']}, "
              f"reordered {v['reordered_packets']}")
    print(f"   {r['link_flits']:,} link flits, links stalled {r['link_stalled']:,} flit-cycles; "
          f"{r['releases']:,} RELEASEs; oldest packet {r['max_age']:,} cycles")
    if per_flow:
        for f in r["flows"]:
            src = f"ch{f['channel']}@{f['src']}" if f["channel"] is not None else str(f["src"])
            print(f"     {f['kind']:6} {src:>6} -> {f['dst']}: sent {f['sent_packets']}/{f['sent_flits']}, "
                  f"received {f['received_packets']}/{f['received_flits']}, "
                  + ", ".join(f"{k} {f[k]}" for k in FLOW_FAULTS))
    for line in r["stuck"] + r["failures"]:
        print(f"   FAILED: {line}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--flits", type=float, default=1e7, help="flits to check per scenario")
    ap.add_argument("--only", choices=sorted(SCENARIOS), action="append", help="run only these scenarios")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--flows", action="store_true", help="also print every flow")
    ap.add_argument("--json", type=pathlib.Path, help="also write the figures as JSON")
    args = ap.parse_args(argv)
    results = []
    for name in args.only or SCENARIOS:
        results.append(run(name, args.flits, args.seed))
        report(results[-1], args.flows)
        sys.stdout.flush()
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    bad = [r["scenario"] for r in results if r["outcome"] != "done" or r["failures"]]
    if bad:
        print(f"\nFAILED: {', '.join(bad)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
