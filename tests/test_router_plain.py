"""The router without the FSE-DP rules (``Router(virtualization=False)``, the baseline of
``fsedp area``): a plain credit router that still switches unicast packets over the same
links and VCs (Amaranth simulator)."""

from hw.packets import (VC_SLOT, VC_TILE, Agent, PacketKind, control_packet, parse_packet, token_packet,
                        weight_packet)
from hw.router import Dir, Router, RouterError
from hw.system import mark_used
from sim.rtl.amaranth_sim import assert_rejects
from sim.rtl.router_harness import MeshBench, RouterBench, until

LB = 16


def test_plain_router_has_no_slot_table():
    r = Router(virtualization=False, max_slots=4)
    assert r.slots is None and r.slot_shape.width == 2
    mark_used(r)
    assert_rejects(lambda: Router(virtualization=1), TypeError, "Virtualization must be True or False, not 1")


def test_plain_mesh_routes_tokens_and_weight_loads_xy():
    """A 2x2 mesh of plain routers: TOKEN packets between every pair of chiplets arrive
    whole at their destination's tile, and a WEIGHT packet from a DRAM port is written into
    the slot its header names at a chiplet two hops away and announced there."""
    b = MeshBench(rows=2, cols=2, virtualization=False)
    payload = bytes(range(48))

    async def scenario(ctx):
        b.configure(ctx, successors=[0, 1, 2, 3], slot_count=4)
        for src in range(4):
            for dst in range(4):
                if dst != src:
                    b.tiles[src].inject(token_packet(LB, src=0, dst=dst, token=10 * src + dst, vector=[src] * 20))
        b.tiles[0].dram_send(weight_packet(LB, expert=5, slice=2, dst=3, slot=3, payload=payload, src=0))
        await until(ctx, lambda: sum(len(t.ejected) for t in b.tiles) == 12 and b.tiles[3].arrivals, 600,
                    "every packet delivered")
        for dst, t in enumerate(b.tiles):
            got = sorted(parse_packet(f, LB).header["token"] for f in t.ejected)
            assert got == sorted(10 * s + dst for s in range(4) if s != dst)
            for f in t.ejected:
                p = parse_packet(f, LB)
                assert p.header["src"] * 10 + dst == p.header["token"], "the router stamps the source"
                assert p.payload[:20] == bytes([p.header["src"]] * 20)
        (a,) = b.tiles[3].arrivals
        assert (a["slot"], a["kind"], a["expert"], a["slice"], a["length"]) == (3, PacketKind.WEIGHT, 5, 2, 3)
        assert b.tiles[3].slot_payload(3, 3) == [int.from_bytes(payload[16 * i:16 * i + 16], "little")
                                                  for i in range(3)]
        for i in range(4):
            assert ctx.get(b.stats(i).error) == 0
        assert ctx.get(b.stats(0).dram_flits) == 4 and ctx.get(b.stats(3).arrivals) == 1
        assert ctx.get(b.stats(3).slot_flits) == 3

    b.run(scenario)


def test_plain_router_drops_control_packets():
    """No RESERVE/GRANT/RELEASE logic: a control packet is dropped and flagged, and other
    traffic on the same VC still passes."""
    b = RouterBench(virtualization=False)

    async def scenario(ctx):
        b.configure(ctx, chiplet_id=4, rows=3, cols=3)
        b.peers[Dir.W].send(control_packet(LB, PacketKind.RESERVE, src=3, dst=4, agent=Agent.FORWARD), VC_SLOT)
        b.peers[Dir.W].send(token_packet(LB, src=3, dst=5, token=7, vector=[1, 2]), VC_TILE)
        await until(ctx, lambda: b.peers[Dir.E].received, 100, "the token passes")
        await until(ctx, lambda: ctx.get(b.dut.stats.error) != 0, 50, "the drop flag")
        assert ctx.get(b.dut.stats.error) == RouterError.DROPPED_PACKET
        assert b.peers[Dir.E].packets()[0].header["token"] == 7

    b.run(scenario)
