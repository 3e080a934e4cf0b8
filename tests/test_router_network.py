"""Unicast routing, flow control and counters of the router (Amaranth simulator)."""

from hw.packets import (VC_SLOT, VC_TILE, Agent, PacketKind, control_packet, parse_packet, slice_packet,
                        token_packet, result_packet)
from hw.router import Dir, Router, RouterError, input_channel_names
from sim.rtl.amaranth_sim import assert_rejects
from sim.rtl.router_harness import RouterBench, ticks, until

LB = 16


def packets(peer, kind=None):
    out = [parse_packet(f, LB) for _, f in peer.received]
    return [p for p in out if kind is None or p.kind == kind]


def test_xy_routing_from_the_centre_of_a_3x3_mesh():
    """Dimension order: along the row to the destination's column first, then along the
    column; packets for this chiplet are ejected to the tile, unknown destinations
    dropped (and flagged).  Also through traffic: inputs are routed the same way."""
    b = RouterBench()
    expect = {0: Dir.W, 3: Dir.W, 6: Dir.W, 2: Dir.E, 5: Dir.E, 8: Dir.E, 1: Dir.N, 7: Dir.S}

    async def scenario(ctx):
        b.configure(ctx, chiplet_id=4, rows=3, cols=3, successor=5, ring_len=9)
        for dst in range(9):
            b.tile.inject(token_packet(LB, src=0, dst=dst, token=dst, vector=range(20)))
        b.peers[Dir.W].send(token_packet(LB, src=3, dst=2, token=100, vector=[1]), VC_TILE)
        b.peers[Dir.N].send(token_packet(LB, src=1, dst=7, token=101, vector=[1]), VC_TILE)
        b.peers[Dir.E].send(token_packet(LB, src=5, dst=6, token=102, vector=[1]), VC_TILE)
        b.peers[Dir.S].send(result_packet(LB, src=7, dst=0, token=103, vector=[-1, 2]), VC_TILE)
        b.peers[Dir.W].send(token_packet(LB, src=3, dst=1, token=104, vector=[1]), VC_TILE)
        await until(ctx, lambda: sum(len(p.received) for p in b.peers) == 13, 400, "all forwarded")
        await until(ctx, lambda: b.tile.ejected, 100, "the local packet")
        for dst, d in expect.items():
            got = [p.header["token"] for p in packets(b.peers[d]) if p.header["dst"] == dst and p.header["token"] < 9]
            assert got == [dst], f"packet for {dst} should leave {d.name}"
            assert all(p.header["src"] == 4 for p in packets(b.peers[d]) if p.header["token"] < 9), \
                "the router stamps the source"
        through = {p.header["token"]: d for d in Dir for p in packets(b.peers[d]) if p.header["token"] >= 100}
        assert through == {100: Dir.E, 101: Dir.S, 102: Dir.W, 103: Dir.W, 104: Dir.N}
        ejected = parse_packet(b.tile.ejected[0], LB)
        assert ejected.header["dst"] == 4 and ejected.payload[:20] == bytes(range(20))
        b.tile.inject(token_packet(LB, src=0, dst=9, token=1, vector=[1]))
        await ticks(ctx, 20)
        assert ctx.get(b.dut.stats.error) == RouterError.DROPPED_PACKET

    b.run(scenario)


def test_wormhole_packets_never_interleave_within_a_vc():
    """Two inputs sending multi-flit packets out of the same link on the same VC: each
    packet leaves whole (the receiving peer reassembles per VC), and both VCs share the
    link flit by flit."""
    b = RouterBench(depth=4)

    async def scenario(ctx):
        b.configure(ctx, chiplet_id=3, rows=3, cols=3, successor=4, ring_len=9, slot_count=4)
        for k in range(3):
            b.tile.inject(token_packet(LB, src=0, dst=5, token=k, vector=[k] * 70))
            b.peers[Dir.W].send(token_packet(LB, src=3, dst=4, token=10 + k, vector=[10 + k] * 50), VC_TILE)
            b.peers[Dir.N].send(result_packet(LB, src=0, dst=5, token=20 + k, vector=[20 + k] * 9), VC_TILE)
        b.peers[Dir.W].send(control_packet(LB, PacketKind.GRANT, src=3, dst=4, slot=1), VC_SLOT)
        await until(ctx, lambda: len(b.peers[Dir.E].received) == 10, 800, "all packets through E")
        got = packets(b.peers[Dir.E])
        for p in got:
            t = p.header["token"]
            if p.kind == PacketKind.TOKEN:
                n = 70 if t < 10 else 50
                assert p.payload[:n] == bytes([t]) * n and not any(p.payload[n:])
            elif p.kind == PacketKind.RESULT:
                assert p.payload[:4] == t.to_bytes(4, "little")
        flits = [e for e in b.rec.of("link") if e[2] == "e"]
        assert {e[3] for e in flits} == {VC_TILE, VC_SLOT}

    b.run(scenario)


def test_slices_pass_while_token_ejection_is_blocked():
    """Virtual channels: a tile that stops taking tokens backs up VC 0, but a RESERVE,
    GRANT and slice on VC 1 over the same link still get through."""
    b = RouterBench(depth=4)
    west = b.peers[Dir.W]

    async def scenario(ctx):
        b.configure(ctx, chiplet_id=1, rows=1, cols=2, successor=0, ring_len=2, slot_count=4)
        b.tile.block_eject = True
        west.send(token_packet(LB, src=0, dst=1, token=1, vector=range(160)), VC_TILE)
        await ticks(ctx, 40)
        west.send(control_packet(LB, PacketKind.RESERVE, src=0, dst=1, agent=Agent.FORWARD), VC_SLOT)
        await until(ctx, lambda: packets(west, PacketKind.GRANT), 100, "GRANT despite blocked VC 0")
        slot = packets(west, PacketKind.GRANT)[0].header["slot"]
        west.send(slice_packet(LB, expert=3, slice=4, src=0, dst=1, hops=1, slot=slot, payload=bytes(48)), VC_SLOT)
        await until(ctx, lambda: b.tile.arrivals, 100, "slice arrival despite blocked VC 0")
        assert not b.tile.ejected
        b.tile.block_eject = False
        await until(ctx, lambda: b.tile.ejected, 100, "the token once the tile takes it")
        assert ctx.get(b.dut.stats.error) == 0

    b.run(scenario)


def test_credits_stop_the_sender_at_the_buffer_depth():
    """Credit flow control: a neighbour that frees nothing receives exactly
    ``buffer_depth`` flits per VC, never more; the rest follows when credits return."""
    b = RouterBench(depth=4)
    east = b.peers[Dir.E]

    async def scenario(ctx):
        b.configure(ctx, chiplet_id=0, rows=1, cols=2, successor=1, ring_len=2)
        east.hold_credits = True
        b.tile.inject(token_packet(LB, src=0, dst=1, token=0, vector=range(16 * 9)))
        await ticks(ctx, 60)
        assert len([e for e in b.rec.of("link") if e[2] == "e"]) == 4
        assert ctx.get(b.dut.stats.link_stalled[Dir.E]) > 40
        east.hold_credits = False
        await until(ctx, lambda: east.received, 100, "packet completes")
        assert len(packets(east)[0].payload) == 16 * 9

    b.run(scenario)


def test_counters_and_slot_occupancy():
    b = RouterBench(compute_delay=None)
    east = b.peers[Dir.E]

    async def scenario(ctx):
        st = b.dut.stats
        b.configure(ctx, chiplet_id=0, rows=1, cols=2, successor=1, ring_len=1, slot_count=4)
        b.tile.inject(token_packet(LB, src=0, dst=1, token=0, vector=range(40)))   # 1 + 3 flits
        for s in range(2):
            b.tile.dram_send(slice_packet(LB, expert=1, slice=s, payload=bytes(32)))
        await until(ctx, lambda: east.received and len(b.tile.arrivals) == 2, 100)
        await ticks(ctx, 2)
        assert ctx.get(st.link_flits[Dir.E]) == 4
        assert ctx.get(st.link_busy[Dir.E]) >= 4
        assert ctx.get(st.inject_flits) == 4
        assert ctx.get(st.dram_flits) == 6 and ctx.get(st.slot_flits) == 4 and ctx.get(st.arrivals) == 2
        assert (ctx.get(st.occupancy), ctx.get(st.free_count), ctx.get(st.high_water)) == (2, 2, 2)
        for a in b.tile.arrivals:
            b.tile.finish(a["slot"])
        await until(ctx, lambda: ctx.get(st.occupancy) == 0, 50)
        assert ctx.get(st.high_water) == 2 and ctx.get(st.idle)
        ctx.set(b.dut.clear, 1)
        await ctx.tick()
        ctx.set(b.dut.clear, 0)
        await ctx.tick()
        assert ctx.get(st.link_flits[Dir.E]) == 0 and ctx.get(st.high_water) == 0

    b.run(scenario)


def test_starvation_check_names_the_input():
    b = RouterBench()

    async def scenario(ctx):
        b.configure(ctx, chiplet_id=1, rows=1, cols=2, successor=0, ring_len=2, age_limit=50)
        b.tile.block_eject = True
        b.peers[Dir.W].send(token_packet(LB, src=0, dst=1, token=1, vector=[1]), VC_TILE)
        await ticks(ctx, 40)
        assert not ctx.get(b.dut.stats.starved)
        await ticks(ctx, 30)
        assert ctx.get(b.dut.stats.starved)
        assert input_channel_names()[ctx.get(b.dut.stats.starved_channel)] == "W.vc0"

    b.run(scenario)


def test_router_rejects_bad_parameters():
    assert_rejects(lambda: Router(link_bytes=8), ValueError,
                           "Link width must be at least 12 bytes to carry a header flit, not 8")
    assert_rejects(lambda: Router(max_slots=1), TypeError,
                           "Slot count must be an integer of at least 2, not 1")
    assert_rejects(lambda: Router(buffer_depth="4"), TypeError,
                           "Buffer depth must be an integer of at least 2, not '4'")
