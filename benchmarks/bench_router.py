"""Speed and link utilization of the router mesh torture runs (Verilator).

    .venv/bin/python benchmarks/bench_router.py [--scale S] [--only NAME] [--json FILE]

Scenarios (each on the rtl-RxC preset's links: 16-byte flits, 2 cycles, 45/64 flit per
cycle = 11.25 B/cycle):

* ``torture-2x2``: the default torture mix (slices, weight loads, tokens, random stalls on
  every port, random compute times), over a million delivered flits;
* ``torture-3x3``: the same on 3x3, whose ring has a two-hop edge;
* ``ring-2x2``: ring traffic only, no stalls, instant compute, DRAM injecting as fast as
  R6 allows: how close the ring links get to the shaper's 45/64.

Prints, per scenario: simulated cycles, wall time of the simulation (build excluded,
builds are cached in ``build/``), flits delivered (written into slots or ejected to
tiles) and per wall second, and per link direction the utilization (flits per cycle),
busy and stalled fractions, plus how long forward engines waited for a slot at the
successor (R7) or for the predecessor's RELEASE (R2).
"""

import argparse
import json
import pathlib
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from hw.topology import check_configuration  # noqa: E402
from scheduler.ring import mesh_ring  # noqa: E402
from sim.rtl.benches.router_mesh import node_params_for, plan_run, run_torture  # noqa: E402

SCENARIOS = {
    "torture-2x2": (2, 2, dict(dram_packets=2750, token_packets=11000)),
    "torture-3x3": (3, 3, dict(seed=2, dram_packets=600, token_packets=2500)),
    "ring-2x2": (2, 2, dict(dram_packets=1000, token_packets=0, weight_prob=0, stall_prob=0, compute_mask=0,
                            slice_len_min=32, slice_len_mask=31)),
}


def run(name, scale):
    rows, cols, traffic = SCENARIOS[name]
    traffic = dict(traffic)
    for key in ("dram_packets", "token_packets"):
        traffic[key] = int(traffic[key] * scale)
    succ = mesh_ring(rows, cols)
    check_configuration(rows, cols, succ)
    plan = plan_run(rows=rows, cols=cols, successors=succ, **traffic)
    params = node_params_for(f"rtl-{rows}x{cols}")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        res = run_torture(plan, test_dir=tmp, **params)
    total = time.perf_counter() - t0
    if res["outcome"] != "done" or res["failures"]:
        raise SystemExit(f"{name}: {res['outcome']}\n" + "\n".join(res["stuck"] + res["failures"]))
    cyc, wall, reads = res["cycles"], res["wall_s"], res["reads"]
    num, den = params["link_rate"]
    delivered = sum(r["slot_flits"] + r["eject_flits"] for r in reads)
    link_flits = sum(sum(r["link_flits"]) for r in reads)
    links = []
    for i, r in enumerate(reads):
        for d, dname in enumerate("NESW"):
            if r["link_flits"][d] or r["link_busy"][d]:
                links.append({"router": i, "dir": dname, "util": r["link_flits"][d] / cyc,
                              "busy": r["link_busy"][d] / cyc, "stalled": r["link_stalled"][d] / cyc})
    out = {
        "scenario": name, "mesh": f"{rows}x{cols}", "cycles": cyc, "sim_wall_s": wall, "total_wall_s": total,
        "flits_delivered": delivered, "link_flits": link_flits, "flits_per_s": delivered / wall,
        "link_flits_per_s": link_flits / wall, "cycles_per_s": cyc / wall, "shaper_max": num / den,
        "links": links,
        "forward_wait_slot": sum(r["forward_wait_slot"] for r in reads) / (cyc * len(reads)),
        "forward_wait_release": sum(r["forward_wait_release"] for r in reads) / (cyc * len(reads)),
        "slot_high_water": max(r["high_water"] for r in reads),
    }
    return out


def report(r):
    print(f"\n== {r['scenario']} ({r['mesh']}): {r['cycles']} cycles in {r['sim_wall_s']:.1f} s of simulation "
          f"({r['total_wall_s']:.1f} s with build check and set-up), {r['cycles_per_s']:.0f} cycles/s")
    print(f"   {r['flits_delivered']} flits delivered = {r['flits_per_s']:.0f} flits/s; "
          f"{r['link_flits']} link flits = {r['link_flits_per_s']:.0f} link flits/s")
    print(f"   forward engines waited for a slot at the successor {100 * r['forward_wait_slot']:.1f} % "
          f"and for a RELEASE {100 * r['forward_wait_release']:.1f} % of cycles; slot high-water "
          f"{r['slot_high_water']}")
    print(f"   link utilization (flits/cycle; shaper max {r['shaper_max']:.3f}):")
    for lk in r["links"]:
        print(f"     router {lk['router']} {lk['dir']}: util {lk['util']:.3f} "
              f"({100 * lk['util'] / r['shaper_max']:.0f} % of max), busy {lk['busy']:.3f}, "
              f"stalled {lk['stalled']:.3f}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every scenario's traffic")
    ap.add_argument("--only", choices=sorted(SCENARIOS), action="append", help="run only these scenarios")
    ap.add_argument("--json", type=pathlib.Path, help="also write the figures as JSON")
    args = ap.parse_args(argv)
    results = [run(name, args.scale) for name in (args.only or SCENARIOS)]
    for r in results:
        report(r)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
