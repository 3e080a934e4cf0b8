"""The router's tile port plugs straight into the datapath's weight buffer
(``hw.sram.WeightBuffer``): slices from DRAM land in the buffer's slots and are forwarded
from there, bit for bit."""

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.packets import VC_SLOT, PacketKind, control_packet, parse_packet, slice_packet
from hw.router import Router
from hw.sram import WeightBuffer
from sim.rtl.router_harness import LinkPeer, Recorder, configure, simulate, until

LB = 16


class RouterWithWeightBuffer(wiring.Component):
    def __init__(self):
        self.wb = WeightBuffer(mac_rows=8, mac_cols=8, link_bytes=LB, depth=64, max_slots=4)
        self.router = Router(link_bytes=LB, max_slots=4, max_chiplets=4, flit_bits=self.wb.flit_bits)
        r = self.router
        super().__init__({**{f"in_{d}": In(r.inputs[0].signature.flip()) for d in "nesw"},
                          **{f"out_{d}": Out(r.outputs[0].signature) for d in "nesw"},
                          "tile": Out(r.tile.signature), "dram": In(r.dram.signature.flip()),
                          "cfg": In(r.cfg.signature.flip()), "slot_words": In(7)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.router, m.submodules.wb = r, wb = self.router, self.wb
        wiring.connect(m, r.tile.wr, wb.wr)
        wiring.connect(m, r.tile.rd_req, wb.fwd_req)
        wiring.connect(m, wb.fwd_data, r.tile.rd_data)
        for d in "nesw":
            wiring.connect(m, wiring.flipped(getattr(self, f"in_{d}")), getattr(r, f"in_{d}"))
            wiring.connect(m, getattr(r, f"out_{d}"), wiring.flipped(getattr(self, f"out_{d}")))
        wiring.connect(m, wiring.flipped(self.dram), r.dram)
        wiring.connect(m, wiring.flipped(self.cfg), r.cfg)
        m.d.comb += [wb.slot_words.eq(self.slot_words), wb.slot_count.eq(self.cfg.slot_count)]
        # The remaining tile streams (arrival, compute_done, inject, eject) go to the test.
        for name in ("arrival", "eject"):
            wiring.connect(m, getattr(r.tile, name), wiring.flipped(getattr(self.tile, name)))
        for name in ("compute_done", "inject"):
            wiring.connect(m, wiring.flipped(getattr(self.tile, name)), getattr(r.tile, name))
        return m


def test_slices_go_through_the_weight_buffer():
    dut = RouterWithWeightBuffer()
    rec = Recorder()
    east = LinkPeer(dut.in_e, dut.out_e, "e", rec, depth=4)
    idle = [LinkPeer(getattr(dut, f"in_{d}"), getattr(dut, f"out_{d}"), d, rec, depth=4) for d in "nsw"]
    data = bytes((7 * i + 3) & 0xFF for i in range(LB * 16))        # 16 flits = 4 weight words
    arrivals = []

    async def tile(ctx):
        ctx.set(dut.tile.arrival.ready, 1)
        while True:
            _, _, v, p = await ctx.tick().sample(dut.tile.arrival.valid, dut.tile.arrival.payload)
            if v:
                arrivals.append((p.slot, p.expert, p.slice, p.length))

    async def dram(ctx):
        flits = slice_packet(LB, expert=5, slice=2, payload=data)
        for i, f in enumerate(flits):
            ctx.set(dut.dram.valid, 1)
            ctx.set(dut.dram.payload.data, f)
            ctx.set(dut.dram.payload.last, i == len(flits) - 1)
            await ctx.tick().until(dut.dram.ready)
        ctx.set(dut.dram.valid, 0)

    async def scenario(ctx):
        configure(ctx, dut.cfg, chiplet_id=0, rows=1, cols=2, successor=1, ring_len=2, slot_count=4)
        ctx.set(dut.slot_words, 4)
        await until(ctx, lambda: arrivals, 200, "arrival")
        slot = arrivals[0][0]
        assert arrivals[0][1:] == (5, 2, 16)
        # The words in the buffer are the payload, flit by flit in lane order.
        mem = dut.wb.mem.data
        words = b"".join(ctx.get(mem[slot * 4 + w]).to_bytes(64, "little") for w in range(4))
        assert words == data
        ctx.set(dut.tile.compute_done.valid, 1)
        ctx.set(dut.tile.compute_done.payload, slot)
        await ctx.tick()
        ctx.set(dut.tile.compute_done.valid, 0)
        await until(ctx, lambda: east.received, 100, "RESERVE")
        east.send(control_packet(LB, PacketKind.GRANT, src=1, dst=0, slot=3), VC_SLOT)
        await until(ctx, lambda: len(east.received) == 2, 200, "forwarded slice")
        p = parse_packet(east.received[1][1], LB)
        assert p.kind == PacketKind.SLICE and p.header["slot"] == 3 and p.payload == data
        assert ctx.get(dut.router.stats.error) == 0 and ctx.get(dut.wb.wr_error) == 0

    simulate(dut, [east.run, tile, dram] + [p.run for p in idle], scenario)
