"""The FSE-DP virtualization rules R1 to R7, one scenario each, on the Amaranth simulator.

Single-router scenarios drive the router's links from Python neighbours (which answer
RESERVE with GRANT when the test says so); mesh scenarios run real routers and links with
Python tiles.
"""

import pytest

from hw.packets import (VC_SLOT, Agent, Flag, PacketKind, control_packet, parse_packet, slice_packet,
                        weight_packet)
from hw.router import Dir, RouterError
from hw.slot_table import SlotState
from sim.rtl.router_harness import MeshBench, RouterBench, ticks, until

LB = 16


def payload(expert, slice_, flits):
    """Slice payload whose every flit names its slice and index."""
    return b"".join(bytes([expert, slice_, i]) + bytes(LB - 3) for i in range(flits))


def packets(peer, kind=None):
    out = [parse_packet(f, LB) for _, f in peer.received]
    return [p for p in out if kind is None or p.kind == kind]


def grant(peer, *, src, dst, slot, agent=Agent.FORWARD):
    peer.send(control_packet(LB, PacketKind.GRANT, src=src, dst=dst, slot=slot, agent=agent), VC_SLOT)


# -- R1 ------------------------------------------------------------------------------------

@pytest.mark.parametrize("successor, direction", [(1, Dir.E), (2, Dir.S), (3, Dir.E)])
def test_forward_goes_to_configured_successor(successor, direction):
    """R1: the reservation and then the slice go to the configured successor, through the
    XY output towards it (a diagonal successor is reached east first)."""
    b = RouterBench()
    peer = b.peers[direction]

    async def scenario(ctx):
        b.configure(ctx, chiplet_id=0, rows=2, cols=2, successor=successor, ring_len=4, slot_count=4)
        b.tile.dram_send(slice_packet(LB, expert=7, slice=3, payload=payload(7, 3, 2)))
        await until(ctx, lambda: packets(peer, PacketKind.RESERVE), what="RESERVE")
        reserve = packets(peer, PacketKind.RESERVE)[0].header
        assert (reserve["src"], reserve["dst"], reserve["agent"]) == (0, successor, Agent.FORWARD)
        grant(peer, src=successor, dst=0, slot=5)
        await until(ctx, lambda: packets(peer, PacketKind.SLICE), what="forwarded slice")
        p = packets(peer, PacketKind.SLICE)[0]
        h = p.header
        assert (h["src"], h["dst"], h["hops"], h["slot"], h["expert"], h["slice"], h["length"]) == \
            (0, successor, 1, 5, 7, 3, 2)
        assert p.payload == payload(7, 3, 2)
        assert b.tile.arrivals[0]["hops"] == 0          # the tile computes on it meanwhile
        others = [q for d, q in enumerate(b.peers) if d != direction]
        assert not any(q.received for q in others)

    b.run(scenario)


def test_slice_travels_xy_to_non_adjacent_successor_without_touching_slots():
    """R1 on a 1x3 line with ring 0 -> 1 -> 2 -> 0: the 2 -> 0 forward passes through
    router 1 without reserving or writing any of its slots."""
    b = MeshBench(rows=1, cols=3, compute_delay=3)

    async def scenario(ctx):
        b.configure(ctx, successors=[1, 2, 0])
        b.tiles[2].dram_send(slice_packet(LB, expert=1, slice=2, payload=payload(1, 2, 3)))
        await until(ctx, lambda: len(b.tiles[1].arrivals) == 1 and len(b.tiles[0].arrivals) == 1, 600,
                    "arrivals at 0 and 1")
        await ticks(ctx, 20)
        writes_at_1 = [e for e in b.rec.of("write") if e[2] == 1]
        # Router 1 got the slice once, as ring member (hops 2), never as a transit hop.
        assert [a["hops"] for a in b.tiles[1].arrivals] == [2]
        assert [a["hops"] for a in b.tiles[0].arrivals] == [1]
        assert len(writes_at_1) == 3
        assert ctx.get(b.stats(1).link_flits[Dir.W]) >= 4   # the 2 -> 0 slice crossed it
        for i in range(3):
            assert ctx.get(b.stats(i).occupancy) == 0

    b.run(scenario)


# -- R2 ------------------------------------------------------------------------------------

def _places_monitor(b, ids, violations, peak):
    """Per cycle: which chiplets hold which slice (a slot written with it and not yet
    FREE); record any slice held in more than two places."""
    held = {}

    async def monitor(ctx):
        seen_writes = 0
        while True:
            writes = b.rec.of("write")
            for cyc, _, chiplet, slot, flit in writes[seen_writes:]:
                if flit == 0:
                    data = b.tiles[chiplet].mem[(slot, 0)]
                    held[(chiplet, slot)] = (data & 0xFF, (data >> 8) & 0xFF)
            seen_writes = len(writes)
            for i, r in enumerate(b.dut.routers):
                states = ctx.get(r.slots.states)
                for s in range(r.max_slots):
                    if states[s] == SlotState.FREE:
                        held.pop((i, s), None)
            places = {}
            for (chiplet, _), ident in held.items():
                places.setdefault(ident, set()).add(chiplet)
            for ident, where in places.items():
                peak[ident] = max(peak.get(ident, 0), len(where))
                if len(where) > 2:
                    violations.append((ident, sorted(where)))
            await ctx.tick()
    return monitor


def test_slice_lives_in_at_most_two_places():
    """R2: with chiplet 0 computing slowly, chiplet 1 receives the slice but may forward it
    to chiplet 3 only once chiplet 0's copy is gone, so no slice is ever held by three
    chiplets; several slices from two DRAM channels go all the way round."""
    b = MeshBench(rows=2, cols=2, compute_delay=[120, 2, 2, 40], link_latency=1)
    violations, peak = [], {}
    slices = [(0, 5, 0), (0, 6, 0), (3, 9, 3), (3, 10, 3)]   # (injecting chiplet, expert, slice)

    async def scenario(ctx):
        b.configure(ctx, successors=[1, 3, 0, 2], slot_count=4)
        for chiplet, e, s in slices:
            b.tiles[chiplet].dram_send(slice_packet(LB, expert=e, slice=s, payload=payload(e, s, 3)))
        await until(ctx, lambda: sum(len(t.arrivals) for t in b.tiles) == 4 * len(slices), 3000,
                    "every slice at every chiplet")
        await until(ctx, lambda: all(ctx.get(b.stats(i).occupancy) == 0 for i in range(4)), 1000,
                    "all slots free")
        assert not violations, f"slices held in three places: {violations[:3]}"
        # Chiplet 1 had slice (5, 0) long before chiplet 0 finished with it, but forwarded
        # it to chiplet 3 only after that.
        arrival = {ch: (c, ev["slot"]) for c, _, ch, ev in b.rec.of("arrival") if ev["expert"] == 5}
        done_at_0 = next(c for c, _, ch, slot in b.rec.of("compute_done") if ch == 0 and slot == arrival[0][1])
        assert arrival[1][0] < done_at_0 < arrival[3][0]

    monitor = _places_monitor(b, None, violations, peak)
    from amaranth.sim import Simulator
    sim = Simulator(b.dut)
    sim.add_clock(1e-8)
    for t in b.tiles:
        sim.add_testbench(t.run, background=True)
    sim.add_testbench(monitor, background=True)
    sim.add_testbench(scenario)
    sim.run()
    assert not violations, f"slices held in three places: {violations[:3]}"
    assert max(peak.values()) == 2          # the check is not vacuous: two places do occur


# -- R3 ------------------------------------------------------------------------------------

@pytest.mark.parametrize("successors, injector, visits", [
    ([1, 3, 0, 2], 2, [2, 0, 1, 3]),          # one ring over the 2x2 mesh
    ([1, 0, 3, 2], 3, [3, 2]),                # rings inside groups {0, 1} and {2, 3}
])
def test_slice_dropped_after_n_minus_1_forwards(successors, injector, visits):
    """R3: a slice visits every chiplet of its ring once (hops 0 .. N-1) and the last one
    drops it; it never comes back and every slot ends free."""
    b = MeshBench(rows=2, cols=2, compute_delay=4)

    async def scenario(ctx):
        b.configure(ctx, successors=successors)
        b.tiles[injector].dram_send(slice_packet(LB, expert=4, slice=1, payload=payload(4, 1, 2)))
        await until(ctx, lambda: sum(len(t.arrivals) for t in b.tiles) == len(visits), 1500, "all visits")
        await ticks(ctx, 150)
        order = [ch for _, _, ch, _ in b.rec.of("arrival")]
        hops = [ev["hops"] for _, _, _, ev in b.rec.of("arrival")]
        assert order == visits
        assert hops == list(range(len(visits)))
        assert sum(ctx.get(b.stats(i).forwards) for i in range(4)) == len(visits) - 1
        assert all(ctx.get(b.stats(i).occupancy) == 0 for i in range(4))
        last = visits[-1]
        assert not any(ev[2] == last for ev in b.rec.of("read")), "the last chiplet must not forward"

    b.run(scenario)


# -- R5 ------------------------------------------------------------------------------------

def test_transfer_starts_only_with_reserved_slot():
    """R5: neither a ring forward nor a remote WEIGHT load sends a single flit before the
    destination granted a slot; the header then names that slot."""
    b = RouterBench(compute_delay=0)
    east, south = b.peers[Dir.E], b.peers[Dir.S]

    async def scenario(ctx):
        b.configure(ctx, chiplet_id=0, rows=2, cols=2, successor=1, ring_len=4, slot_count=4)
        b.tile.dram_send(slice_packet(LB, expert=2, slice=0, payload=payload(2, 0, 4)))
        b.tile.dram_send(weight_packet(LB, expert=9, slice=0, dst=2, payload=payload(9, 0, 2)))
        await ticks(ctx, 200)
        assert [p.kind for p in packets(east)] == [PacketKind.RESERVE]
        assert [p.kind for p in packets(south)] == [PacketKind.RESERVE]
        assert packets(south)[0].header["agent"] == Agent.DRAM
        assert len(b.tile.dram_flits) == 3          # the WEIGHT load waits at the DRAM port
        grant(south, src=2, dst=0, slot=1, agent=Agent.DRAM)
        grant(east, src=1, dst=0, slot=3)
        await until(ctx, lambda: packets(east, PacketKind.SLICE) and packets(south, PacketKind.WEIGHT), 200,
                    "both transfers")
        assert packets(east, PacketKind.SLICE)[0].header["slot"] == 3
        w = packets(south, PacketKind.WEIGHT)[0]
        assert (w.header["slot"], w.header["src"], w.header["dst"]) == (1, 0, 2)
        assert w.payload == payload(9, 0, 2)

    b.run(scenario)


def test_unreserved_arrival_is_flagged_and_blocked():
    """R5 at the receiver: a slice for a slot that was never reserved is a protocol error,
    and its write is blocked (it would overwrite whatever the slot holds): nothing is
    written, nothing arrives, the slot stays free."""
    b = RouterBench()

    async def scenario(ctx):
        b.configure(ctx, chiplet_id=1, rows=2, cols=2, successor=3, ring_len=4, slot_count=4)
        b.peers[Dir.W].send(slice_packet(LB, expert=1, slice=1, src=0, dst=1, hops=1, slot=2,
                                         payload=payload(1, 1, 1)), VC_SLOT)
        await ticks(ctx, 30)
        assert ctx.get(b.dut.stats.error) == RouterError.FILL_NOT_RESERVED
        assert not b.tile.mem and not b.tile.arrivals
        assert ctx.get(b.dut.stats.slot_flits) == 0 and ctx.get(b.dut.stats.arrivals) == 0
        assert ctx.get(b.dut.stats.free_count) == 4

    b.run(scenario)


def test_slot_freed_only_after_compute_and_forward():
    """R5: the slot stays in use while either its compute or its forward is pending, in
    both orders; a forward that started before compute finished also owes the successor
    a RELEASE, sent before the slot is freed."""
    b = RouterBench(compute_delay=None)
    east = b.peers[Dir.E]

    async def scenario(ctx):
        st = b.dut.stats
        b.configure(ctx, chiplet_id=0, rows=2, cols=2, successor=1, ring_len=4, slot_count=4)
        # Slice A: compute finishes first, the forward waits for a grant.
        b.tile.dram_send(slice_packet(LB, expert=1, slice=0, payload=payload(1, 0, 2)))
        await until(ctx, lambda: b.tile.arrivals, 100, "arrival of A")
        b.tile.finish(b.tile.arrivals[0]["slot"])
        await ticks(ctx, 100)
        assert ctx.get(st.occupancy) == 1, "A's forward is pending"
        grant(east, src=1, dst=0, slot=0)
        await until(ctx, lambda: ctx.get(st.occupancy) == 0, 100, "A freed after its forward")
        a = packets(east, PacketKind.SLICE)[0]
        assert a.header["flags"] & Flag.SOLE          # computed before the forward: no RELEASE
        # Slice B: the forward finishes first, compute later.
        b.tile.dram_send(slice_packet(LB, expert=1, slice=1, payload=payload(1, 1, 2)))
        await until(ctx, lambda: len(packets(east, PacketKind.RESERVE)) == 2, 100, "second RESERVE")
        grant(east, src=1, dst=0, slot=2)
        await until(ctx, lambda: len(packets(east, PacketKind.SLICE)) == 2, 100, "B forwarded")
        await ticks(ctx, 100)
        assert ctx.get(st.occupancy) == 1, "B's compute is pending"
        assert not packets(east, PacketKind.RELEASE)
        b.tile.finish(b.tile.arrivals[1]["slot"])
        await until(ctx, lambda: ctx.get(st.occupancy) == 0, 100, "B freed after compute")
        rel = packets(east, PacketKind.RELEASE)
        assert len(rel) == 1 and rel[0].header["slot"] == 2 and rel[0].header["dst"] == 1
        assert not packets(east, PacketKind.SLICE)[1].header["flags"] & Flag.SOLE

    b.run(scenario)


# -- R6 ------------------------------------------------------------------------------------

def test_dram_injection_needs_two_free_slots():
    """R6: a SLICE from DRAM is taken only while two slots are free, so the last free slot
    stays for ring traffic (here a remote RESERVE gets it); a WEIGHT load for this
    chiplet needs one."""
    b = RouterBench(compute_delay=None)
    west = b.peers[Dir.W]

    async def scenario(ctx):
        st = b.dut.stats
        b.configure(ctx, chiplet_id=1, rows=1, cols=2, successor=0, ring_len=1, slot_count=3)
        for s in range(3):
            b.tile.dram_send(slice_packet(LB, expert=3, slice=s, payload=payload(3, s, 1)))
        await until(ctx, lambda: len(b.tile.arrivals) == 2, 100, "two injections")
        await ticks(ctx, 100)
        assert len(b.tile.arrivals) == 2 and ctx.get(st.free_count) == 1
        assert len(b.tile.dram_flits) == 2, "the third slice must wait at the DRAM port"
        west.send(control_packet(LB, PacketKind.RESERVE, src=0, dst=1, agent=Agent.FORWARD), VC_SLOT)
        await until(ctx, lambda: packets(west, PacketKind.GRANT), 100, "GRANT for ring traffic")
        assert ctx.get(st.free_count) == 0
        b.tile.finish(b.tile.arrivals[0]["slot"])
        await ticks(ctx, 50)
        assert len(b.tile.arrivals) == 2, "one free slot is not enough"
        b.tile.finish(b.tile.arrivals[1]["slot"])
        await until(ctx, lambda: len(b.tile.arrivals) == 3, 100, "third slice with two free slots")
        # A WEIGHT load for this chiplet needs only one free slot.
        b.tile.finish(b.tile.arrivals[2]["slot"])
        await until(ctx, lambda: ctx.get(st.free_count) == 2, 100)
        b.tile.dram_send(slice_packet(LB, expert=3, slice=7, payload=payload(3, 7, 1)))
        await until(ctx, lambda: len(b.tile.arrivals) == 4, 100)
        b.tile.dram_send(weight_packet(LB, expert=4, slice=0, dst=1, payload=payload(4, 0, 1)))
        await until(ctx, lambda: len(b.tile.arrivals) == 5, 100, "WEIGHT with one free slot")
        assert b.tile.arrivals[4]["kind"] == PacketKind.WEIGHT

    b.run(scenario)


# -- R7 ------------------------------------------------------------------------------------

def test_forward_waits_for_free_slot_at_successor():
    """R7: chiplet 1 (two slots) is full of slices it has not finished; chiplet 0's next
    forward waits without sending a flit, and goes as soon as chiplet 1 frees a slot."""
    b = MeshBench(rows=1, cols=2, compute_delay=[0, None])

    async def scenario(ctx):
        b.configure(ctx, successors=[1, 0], slot_count=[4, 2])
        for s in range(3):
            b.tiles[0].dram_send(slice_packet(LB, expert=8, slice=s, payload=payload(8, s, 2)))
        await until(ctx, lambda: len(b.tiles[1].arrivals) == 2, 500, "two forwards")
        await ticks(ctx, 200)
        assert len(b.tiles[1].arrivals) == 2
        assert ctx.get(b.stats(0).occupancy) == 1, "the third slice waits at chiplet 0"
        writes_to_1 = len([e for e in b.rec.of("write") if e[2] == 1])
        assert writes_to_1 == 4, "no flit of the third slice may reach chiplet 1"
        b.tiles[1].finish(b.tiles[1].arrivals[0]["slot"])
        await until(ctx, lambda: len(b.tiles[1].arrivals) == 3, 200, "third forward after a slot frees")
        assert [a["slice"] for a in b.tiles[1].arrivals] == [0, 1, 2]

    b.run(scenario)


# -- EP relays ---------------------------------------------------------------------------

def test_relayed_weight_is_staged_in_two_free_slots_and_forwarded_not_computed():
    """A WEIGHT from this chiplet's DRAM channel flagged RELAY for chiplet 2 is written into
    a local slot (only while two are free, like R6), never announced to the tile, and
    forwarded to chiplet 2 by the forward engine once chiplet 2 granted a slot; the local
    slot is freed when the forward ends."""
    b = RouterBench(compute_delay=None)
    south = b.peers[Dir.S]

    async def scenario(ctx):
        st = b.dut.stats
        b.configure(ctx, chiplet_id=0, rows=2, cols=2, successor=0, ring_len=1, slot_count=2)
        b.tile.dram_send(weight_packet(LB, expert=3, slice=0, dst=0, payload=payload(3, 0, 2)))
        b.tile.dram_send(weight_packet(LB, expert=5, slice=4, dst=2, payload=payload(5, 4, 3), flags=Flag.RELAY))
        await until(ctx, lambda: b.tile.arrivals, 100, "the local WEIGHT")
        await ticks(ctx, 60)
        assert len(b.tile.dram_flits) == 4, "the relay waits for two free slots"
        assert not packets(south)
        b.tile.finish(b.tile.arrivals[0]["slot"])
        await until(ctx, lambda: packets(south, PacketKind.RESERVE), 200, "RESERVE to chiplet 2")
        reserve = packets(south, PacketKind.RESERVE)[0].header
        assert (reserve["dst"], reserve["agent"]) == (2, Agent.FORWARD)
        assert len(b.tile.arrivals) == 1, "a relay is not computed here"
        assert ctx.get(st.occupancy) == 1
        await ticks(ctx, 40)
        assert not packets(south, PacketKind.WEIGHT), "no flit before the grant"
        grant(south, src=2, dst=0, slot=6)
        await until(ctx, lambda: packets(south, PacketKind.WEIGHT), 200, "the forwarded WEIGHT")
        w = packets(south, PacketKind.WEIGHT)[0]
        h = w.header
        assert (h["src"], h["dst"], h["slot"], h["expert"], h["slice"], h["hops"], h["length"]) == \
            (0, 2, 6, 5, 4, 0, 3)
        assert not h["flags"] & Flag.RELAY and w.payload == payload(5, 4, 3)
        await until(ctx, lambda: ctx.get(st.occupancy) == 0, 100, "the staging slot freed after its forward")
        assert ctx.get(st.error) == 0

    b.run(scenario)


def test_relay_reaches_its_chiplet_as_a_weight_load_at_link_rate():
    """Across a 2x2 mesh: chiplet 0 relays a tile to chiplet 3; chiplet 3 computes it
    (a WEIGHT arrival with hops 0), chiplet 0 never does, and the payload leaves chiplet 0
    flit after flit (store and forward), not at the DRAM port's pace."""
    b = MeshBench(rows=2, cols=2, compute_delay=3)

    async def scenario(ctx):
        b.configure(ctx, successors=[0, 1, 2, 3], ring_len=1)
        b.tiles[0].dram_send(weight_packet(LB, expert=2, slice=1, dst=3, payload=payload(2, 1, 6),
                                           flags=Flag.RELAY))
        await until(ctx, lambda: b.tiles[3].arrivals, 1000, "arrival at chiplet 3")
        a = b.tiles[3].arrivals[0]
        assert (a["kind"], a["expert"], a["slice"], a["hops"], a["length"]) == (PacketKind.WEIGHT, 2, 1, 0, 6)
        assert b.tiles[3].slot_payload(a["slot"], 6) == [int.from_bytes(bytes([2, 1, i]) + bytes(LB - 3), "little")
                                                         for i in range(6)]
        assert not b.tiles[0].arrivals and not b.tiles[1].arrivals
        reads = [c for c, _, ch, _, _ in b.rec.of("read") if ch == 0]
        assert len(reads) == 6 and reads[-1] - reads[0] <= 8, "forwarded from the slot back to back"
        await ticks(ctx, 50)
        assert all(ctx.get(b.stats(i).occupancy) == 0 for i in range(4))
        assert all(ctx.get(b.stats(i).error) == 0 for i in range(4))

    b.run(scenario)
