"""Torture runs of the router mesh under Verilator: random slice, weight-load and token
traffic with random stalls on every port, every packet checked (see
``sim.rtl.benches.router_mesh``).  The ring configuration is checked statically first.

Default runs: 2x2 with over a million delivered flits, 3x3 (whose ring has a two-hop
edge routed through another router) with one ring and with two group rings.  Longer runs:
``-m slow``; ``FSEDP_ROUTER_SCALE`` multiplies the traffic of every run.
"""

import os

import pytest

from hw.topology import check_configuration
from scheduler.ring import mesh_ring
from sim.rtl.benches.router_mesh import node_params_for, plan_run, run_torture

SCALE = float(os.environ.get("FSEDP_ROUTER_SCALE", "1"))


def _run(rows, cols, successors, tmp_path, *, groups=None, seed=1, dram_packets, token_packets, **traffic):
    # Always Verilator (whatever --sim says): a million flits need its speed.
    cfg = check_configuration(rows, cols, successors, groups=groups, slot_count=12)   # before simulating
    plan = plan_run(rows=rows, cols=cols, successors=successors, seed=seed,
                    dram_packets=int(dram_packets * SCALE), token_packets=int(token_packets * SCALE),
                    age_limit=100_000, **traffic)
    assert [regs[4] for regs in plan["nodes"]] == cfg["ring_len"]      # Reg.RING_LEN
    result = run_torture(plan, sim="verilator", test_dir=tmp_path, **node_params_for(f"rtl-{rows}x{cols}"))
    reads = result["reads"]
    delivered = sum(r["slot_flits"] + r["eject_flits"] for r in reads)
    link = sum(sum(r["link_flits"]) for r in reads)
    print(f"\n{rows}x{cols} {result['outcome']}: {result['cycles']} cycles, {delivered} flits delivered, "
          f"{link} link flits, {result['wall_s']:.1f} s ({delivered / max(result['wall_s'], 1e-9):.0f} flits/s)")
    assert result["outcome"] == "done" and not result["failures"], \
        "\n".join([result["outcome"]] + result["stuck"] + result["failures"])
    return delivered, result


@pytest.mark.cocotb
def test_torture_2x2_a_million_flits(tmp_path):
    delivered, _ = _run(2, 2, mesh_ring(2, 2), tmp_path, dram_packets=2750, token_packets=11000)
    assert delivered >= 1_000_000 * SCALE


@pytest.mark.cocotb
def test_torture_3x3_ring_with_a_two_hop_edge(tmp_path):
    _run(3, 3, mesh_ring(3, 3), tmp_path, seed=2, dram_packets=600, token_packets=2500)


@pytest.mark.cocotb
def test_torture_3x3_two_group_rings_slow_compute(tmp_path):
    """Ring A: 0 -> 1 -> 4 -> 3; ring B: 2 -> 5 -> 8 -> 7 -> 6 -> 2 (6 -> 2 turns: E, E,
    N, N).  Compute is slower than forwarding here, so forwards start before the copy is
    computed and R2 runs on RELEASE packets (in the faster mixes the SOLE flag covers it)."""
    succ = [1, 4, 5, 0, 3, 8, 2, 6, 7]
    _, result = _run(3, 3, succ, tmp_path, groups=[[0, 1, 3, 4], [2, 5, 6, 7, 8]], seed=3,
                     dram_packets=300, token_packets=2500, weight_prob=48, compute_mask=255)
    reads = result["reads"]
    assert sum(r["releases"] for r in reads) > 100
    assert sum(r["forward_wait_release"] for r in reads) > 0


@pytest.mark.cocotb
@pytest.mark.slow
@pytest.mark.parametrize("seed", [11, 12])
def test_torture_2x2_long(tmp_path, seed):
    _run(2, 2, mesh_ring(2, 2), tmp_path, seed=seed, dram_packets=25_000, token_packets=100_000,
         stall_prob=64)


@pytest.mark.cocotb
@pytest.mark.slow
def test_torture_3x3_long(tmp_path):
    _run(3, 3, mesh_ring(3, 3), tmp_path, seed=13, dram_packets=6000, token_packets=25_000,
         compute_mask=127, slots=2)


def test_bench_payload_hash_matches_its_software_mirror():
    """The stand-ins' payload hash (HDL) and ``bench_hash`` agree, so payload flits can be
    built or checked in Python too."""
    import random

    from amaranth.hdl import Module, Signal
    from amaranth.sim import Simulator

    from sim.rtl.benches.router_mesh import _hash_hdl, bench_hash, payload_flit

    m = Module()
    word = Signal(96)
    h = _hash_hdl(m, word, "h")
    rng = random.Random(5)
    values = [rng.getrandbits(96) for _ in range(50)] + [0, (1 << 96) - 1]

    async def tb(ctx):
        for v in values:
            ctx.set(word, v)
            assert ctx.get(h) == bench_hash(v)

    sim = Simulator(m)
    sim.add_testbench(tb)
    sim.run()
    flit = payload_flit(ident=0x1234, src=2, dst=0xFF, index=7, kind=0, cycle=99)
    assert flit >> 96 == bench_hash(flit & ((1 << 96) - 1)) and (flit >> 32) & 0xFFFF == 7
