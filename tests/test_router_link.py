"""The D2D link model: latency, bandwidth shaping, credit return (Amaranth simulator)."""

import pytest
from amaranth.sim import Simulator

from hw.link import Link, rate_for
from hw.packets import token_packet
from hw.router import Dir
from scheduler.presets import get_hardware
from sim.rtl.amaranth_sim import assert_rejects
from sim.rtl.router_harness import MeshBench, until


def _drive(link, cycles, *, offer=lambda c: True, credit=lambda c: 0):
    """Offer a flit (numbered by cycle) whenever ``offer``; return the cycles flits were
    accepted at ``i``, delivered at ``o`` (with their numbers) and credits seen at ``i``."""
    sent, got, credits = [], [], []

    async def tb(ctx):
        for c in range(cycles):
            ctx.set(link.i.valid, offer(c))
            ctx.set(link.i.payload.data, c)
            ctx.set(link.o.credit, credit(c))
            _, _, iv, ir, ov, od, ic = await ctx.tick().sample(link.i.valid, link.i.ready, link.o.valid,
                                                               link.o.payload.data, link.i.credit)
            if iv and ir:
                sent.append(c)
            if ov:
                got.append((c, od))
            if ic:
                credits.append((c, ic))

    sim = Simulator(link)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    return sent, got, credits


@pytest.mark.parametrize("latency", [1, 2, 5])
def test_link_latency(latency):
    """A flit accepted in cycle t leaves in cycle t + latency; a credit takes as long back."""
    link = Link(link_bytes=16, latency=latency)
    sent, got, credits = _drive(link, 30, offer=lambda c: c in (3, 4, 9), credit=lambda c: 2 if c == 7 else 0)
    assert sent == [3, 4, 9]
    assert got == [(3 + latency, 3), (4 + latency, 4), (9 + latency, 9)]
    assert credits == [(7 + latency, 2)]


@pytest.mark.parametrize("rate", [(45, 64), (1, 2), (3, 7), (1, 1)])
def test_link_bandwidth_shaping(rate):
    """Saturated, the shaper passes exactly num flits per den cycles; flits keep order."""
    num, den = rate
    cycles = 10 * den
    link = Link(link_bytes=16, latency=2, rate=rate)
    sent, got, _ = _drive(link, cycles)
    assert abs(len(sent) - cycles * num / den) <= 1
    assert [d for _, d in got] == sent[:len(got)]
    window = [c for c in sent if den <= c < 2 * den]
    assert len(window) == num                 # exact in every steady-state period


def test_link_rate_matches_a_preset():
    """rtl-2x2's D2D link is 11.25 B/cycle: 16-byte flits at 45/64 of a flit per cycle."""
    hw = get_hardware("rtl-2x2")
    assert rate_for(hw.link_bytes_per_cycle, 16) == (45, 64)
    assert rate_for(hw.link_bytes_per_cycle, 16)[0] * 16 / 64 == hw.link_bytes_per_cycle


def test_shaped_links_limit_router_throughput():
    """Through real routers: a long token stream across a 45/64 link runs at 45/64 of a
    flit per cycle, and the link counters say so."""
    b = MeshBench(rows=1, cols=2, link_latency=2, link_rate=(45, 64), buffer_depth=8)

    async def scenario(ctx):
        b.configure(ctx, successors=[1, 0])
        for k in range(8):
            b.tiles[0].inject(token_packet(16, src=0, dst=1, token=k, vector=[k] * 16 * 63))   # 64 flits
        await until(ctx, lambda: len(b.tiles[1].ejected) == 8, 1200, "all tokens")
        flits = ctx.get(b.stats(0).link_flits[Dir.E])
        assert flits == 8 * 64
        ejects = [e[0] for e in b.rec.of("eject")]
        rate = (7 * 64) / (ejects[-1] - ejects[0])
        assert abs(rate - 45 / 64) < 0.02
        assert ctx.get(b.stats(0).link_stalled[Dir.E]) > 0.25 * flits   # shaper holds flits back

    b.run(scenario)


def test_link_rejects_bad_parameters():
    assert_rejects(lambda: Link(link_bytes=16, latency=0), TypeError,
                           "Link latency must be a positive integer, not 0")
    assert_rejects(lambda: Link(link_bytes=16, rate=(5, 4)), ValueError,
                           "Link rate must satisfy 0 < num <= den <= 65536, not 5/4")
    assert_rejects(lambda: Link(link_bytes=16, rate=0.7), TypeError,
                           "Link rate must be a (num, den) tuple of integers, not 0.7")
