"""Torture runs of the router mesh under Verilator: random slice, weight-load and token
traffic with random stalls on every port, every packet checked (see
``sim.rtl.benches.router_mesh``).  The ring configuration is checked statically first.

Default runs: 2x2 with over a million delivered flits, 3x3 (whose ring has a two-hop
edge routed through another router) with one ring and with two group rings; short runs
of the wide mix of ``benchmarks/bench_torture.py`` (2 x 10^4 flits on 2x2 and 3x3, link
stalls, every flit counted per flow); the checkers' own tests: the packet-order
classifier against a reference, and faults injected into the checkers' input, which they
must count.  Longer runs: ``-m slow``; ``FSEDP_ROUTER_SCALE`` multiplies the traffic of
every run.
"""

import os

import pytest

from hw.topology import check_configuration
from scheduler.ring import mesh_ring
from sim.rtl.benches.router_mesh import (FLOW_FAULTS, TORTURE_TRAFFIC, Fault, checked_flits, delivered_flits,
                                         flow_report, flow_totals, node_params_for, plan_for_flits, plan_run,
                                         run_torture)

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


# ---- the wide mix, counted per flow; the checkers' own tests ------------------------------

@pytest.mark.cocotb
@pytest.mark.parametrize("rows,cols", [(2, 2), (3, 3)])
def test_torture_wide_mix_every_flit_counted(tmp_path, rows, cols):
    """The benchmark's mix (kinds, lengths 1..64 and 1..16, port and link stalls), short:
    every flow lost, duplicated and reordered nothing, and the checkers saw every flit the
    routers delivered and every flit the senders sent."""
    target = 20_000 * SCALE
    plan = plan_for_flits(rows=rows, cols=cols, successors=mesh_ring(rows, cols), flits=target, seed=7,
                          **TORTURE_TRAFFIC)
    result = run_torture(plan, sim="verilator", test_dir=tmp_path, **node_params_for(f"rtl-{rows}x{cols}"))
    assert result["outcome"] == "done" and not result["failures"], \
        "\n".join([result["outcome"]] + result["stuck"] + result["failures"])
    reads = result["reads"]
    flows = flow_report(plan, reads)
    totals = flow_totals(flows)
    assert all(totals[k] == 0 for k in FLOW_FAULTS), totals
    assert totals["received_flits"] == totals["sent_flits"] == checked_flits(reads) == delivered_flits(reads)
    assert totals["received_packets"] == totals["sent_packets"]
    assert totals["received_flits"] > 0.8 * target
    assert {f["kind"] for f in flows} == {"slice", "weight", "token"}
    assert sum(sum(r["link_stalled"]) for r in reads) > 0


def test_flow_order_classifier_matches_its_reference():
    """The HDL packet-order classifier (in order / skipped / late = reordered / duplicated,
    modulo the sequence space, with a window of skipped numbers) agrees with a Python
    reference on a random mix of in-order packets, swaps, losses, repeats and wrap-around."""
    import random

    from amaranth.hdl import Module, Signal
    from amaranth.sim import Simulator

    from sim.rtl.benches.router_mesh import _FlowOrder

    bits, window, nflows = 6, 8, 3
    space = 1 << bits

    def reference(packets):
        expect, missing, verdicts, dup, late = [0] * nflows, [set() for _ in range(nflows)], [], [0] * nflows, \
            [0] * nflows
        for f, s in packets:
            e = expect[f]
            ahead = (s - e) % space
            if ahead < space // 2:
                missing[f] |= {(e + k) % space for k in range(ahead)}
                expect[f] = (s + 1) % space
                missing[f] = {x for x in missing[f] if 1 <= (expect[f] - x) % space <= window}
                verdicts.append("in order" if ahead == 0 else "skip")
            elif (e - s) % space <= window and s in missing[f]:
                missing[f].discard(s)
                late[f] += 1
                verdicts.append("late")
            else:
                dup[f] += 1
                verdicts.append("dup")
        return verdicts, dup, late

    rng = random.Random(3)
    packets, nxt = [], [0] * nflows
    for _ in range(600):
        f, r = rng.randrange(nflows), rng.random()
        if r < 0.1:                                    # two packets swapped
            packets += [(f, (nxt[f] + 1) % space), (f, nxt[f] % space)]
            nxt[f] += 2
        elif r < 0.15:                                 # some lost
            nxt[f] += rng.randrange(1, 12)
        elif r < 0.2:                                  # an earlier one again, or very late
            packets.append((f, (nxt[f] - rng.randrange(1, 12)) % space))
        else:
            packets.append((f, nxt[f] % space))
            nxt[f] += 1
    verdicts, dup, late = reference(packets)
    assert {"in order", "skip", "late", "dup"} <= set(verdicts)

    m = Module()
    valid, flow, seq = Signal(), Signal(range(nflows)), Signal(bits)
    order = _FlowOrder(m, "t", nflows, bits, window)
    in_order, is_dup = order.observe(valid, flow, seq)
    seen, counts = [], {}

    async def bench(ctx):
        for f, s in packets:
            ctx.set(valid, 1)
            ctx.set(flow, f)
            ctx.set(seq, s)
            seen.append((ctx.get(in_order), ctx.get(is_dup)))
            await ctx.tick()
        ctx.set(valid, 0)
        await ctx.tick()
        counts["dup"] = [ctx.get(order.duplicated[i]) for i in range(nflows)]
        counts["late"] = [ctx.get(order.reordered[i]) for i in range(nflows)]

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    for p, v, (io, d) in zip(packets, verdicts, seen):
        assert (io, d) == (v == "in order", v == "dup"), (p, v)
    assert counts == {"dup": dup, "late": late}


@pytest.mark.cocotb
def test_checkers_count_injected_faults(tmp_path):
    """One fault per node, injected into its checkers' input (the router sees a normal
    handshake): a dropped ejected flit, a duplicated one, a dropped ejected packet, a
    dropped and a duplicated slot write.  Each is counted at that node, exactly, and the
    run fails its checks; the other nodes' flows are clean."""
    faults = {0: (Fault.EJECT_DROP_FLIT, 5), 1: (Fault.EJECT_DUP_FLIT, 5), 2: (Fault.EJECT_DROP_PACKET, 3),
              3: (Fault.SLOT_DROP_FLIT, 7), 4: (Fault.SLOT_DUP_FLIT, 9)}
    plan = plan_run(rows=3, cols=3, successors=mesh_ring(3, 3), seed=4, dram_packets=100, token_packets=200,
                    faults=faults)
    result = run_torture(plan, sim="verilator", test_dir=tmp_path, **node_params_for("rtl-3x3"))
    assert result["outcome"] == "done"
    reads = result["reads"]
    assert [r["faults_fired"] for r in reads] == [int(i in faults) for i in range(9)]
    flows = flow_report(plan, reads)

    def at(node, kind):
        return flow_totals([f for f in flows if f["dst"] == node and f["kind"] in kind])

    tokens, slots = ("token",), ("slice", "weight")
    lost = {k: at(k, kind) for k, kind in ((0, tokens), (1, tokens), (2, tokens), (3, slots), (4, slots))}
    assert (lost[0]["lost_flits"], lost[0]["duplicated_flits"], lost[0]["lost_packets"]) == (1, 0, 0)
    assert (lost[1]["lost_flits"], lost[1]["duplicated_flits"], lost[1]["duplicated_packets"]) == (0, 1, 0)
    assert lost[2]["lost_packets"] == 1 and lost[2]["lost_flits"] >= 2 and lost[2]["duplicated_flits"] == 0
    assert (lost[3]["lost_flits"], lost[3]["duplicated_flits"], lost[3]["lost_packets"]) == (1, 0, 0)
    assert (lost[4]["lost_flits"], lost[4]["duplicated_flits"], lost[4]["duplicated_packets"]) == (0, 1, 0)
    seen = [r["slot_flits"] + r["arrivals"] + r["eject_flits"] - sum(r["flow_flits"]) for r in reads]
    assert seen == [1, -1, lost[2]["lost_flits"], 1, -1, 0, 0, 0, 0]     # delivered minus checked
    clean = flow_totals([f for f in flows if f["dst"] > 4])
    assert all(clean[k] == 0 for k in FLOW_FAULTS), clean
    failures = "\n".join(result["failures"])
    for node in faults:
        assert f"router {node} " in failures
