"""Amaranth-simulator helpers for the tile controller and the tile: a controller wired to
a real datapath (the router side left to the testbench), host-port loaders, program
text builders and packet streams."""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Elaboratable, Module

from hw.config import TileConfig
from hw.controller import Controller, acc_row_from_beats, host_acc_read, host_program, host_token_row
from hw.packets import parse_packet
from hw.tile import connect_controller
from hw.tile_datapath import TileDatapath
from sim.rtl.amaranth_sim import stream_get, stream_put

__all__ = ["ControllerTop", "load_program", "load_tokens", "read_accumulators", "put_packet",
           "pulse", "prologue", "lut_lines", "PacketMonitor"]


class ControllerTop(Elaboratable):
    """A :class:`Controller` driving a :class:`TileDatapath`; the router side
    (``arrival``, ``compute_done``, ``inject``, ``eject``) and the datapath's weight write
    port (``datapath.wb_wr``) are left for the testbench."""

    def __init__(self, tile: TileConfig, *, max_slots: int = 4):
        self.tile = tile
        self.controller = Controller.from_config(tile, max_slots=max_slots)
        self.datapath = TileDatapath.from_config(tile, max_slots=max_slots)

    def elaborate(self, platform):
        m = Module()
        m.submodules.controller = self.controller
        m.submodules.datapath = self.datapath
        connect_controller(m, self.controller, self.datapath)
        return m


async def pulse(ctx, signal):
    ctx.set(signal, 1)
    await ctx.tick()
    ctx.set(signal, 0)


async def load_program(ctx, host, words):
    """Load a controller program through the host port (``PROG`` commands)."""
    for cmd in host_program(words):
        await stream_put(ctx, host, cmd)


async def load_tokens(ctx, host, rows, mac_rows):
    """Write int8 token rows (an (n, d) array) into token-buffer rows 0..n-1."""
    for r, x in enumerate(np.asarray(rows, dtype=np.int8)):
        for cmd in host_token_row(r, x, mac_rows):
            await stream_put(ctx, host, cmd)


async def read_accumulators(ctx, host, resp, rows, lanes) -> np.ndarray:
    """int32 accumulator rows ``rows`` (``lanes`` each) through the host port."""
    out = []
    for r in rows:
        await stream_put(ctx, host, host_acc_read(r, lanes))
        beats = [await stream_get(ctx, resp) for _ in range((lanes + 1) // 2)]
        out.append(acc_row_from_beats(beats, lanes))
    return np.array(out, dtype=np.int64).astype(np.int32)


async def put_packet(ctx, port, flits):
    """Offer a packet's flits on a ``{data, last}`` stream."""
    for i, f in enumerate(flits):
        await stream_put(ctx, port, {"data": f, "last": int(i == len(flits) - 1)})


def lut_lines(silu) -> list[str]:
    silu = [int(v) & 0xFF for v in silu]
    return [f"LUT {i}, {silu[i]}, {silu[i + 1]}, {silu[i + 2]}, {silu[i + 3]}" for i in range(0, 256, 4)]


def prologue(*, quant, d, fs, token_rows, arrivals=0, results=0, tokens=0, slots=4, slot_words=12,
             chiplet=0, successor=None, ring_len=1, lut=True) -> str:
    """SET lines (and the SiLU table) of a controller program, in the encoder's order."""
    lines = [f"SET CHIPLET_ID, {chiplet}", f"SET SUCCESSOR, {chiplet if successor is None else successor}",
             f"SET RING_LEN, {ring_len}", f"SET SLOTS, {slots}", f"SET SLOT_WORDS, {slot_words}",
             f"SET D_MODEL, {d}", f"SET SLICE_COLS, {fs}", f"SET TOKEN_ROWS, {token_rows}",
             f"SET ARRIVALS, {arrivals}", f"SET RESULTS, {results}", f"SET TOKENS, {tokens}",
             f"SET GATE_MULT, {quant.gate_mult}", f"SET GATE_SHIFT, {quant.gate_shift}",
             f"SET UP_MULT, {quant.up_mult}", f"SET UP_SHIFT, {quant.up_shift}",
             f"SET HIDDEN_MULT, {quant.hidden_mult}", f"SET HIDDEN_SHIFT, {quant.hidden_shift}"]
    if lut:
        lines += lut_lines(quant.silu)
    return "\n".join(lines) + "\n"


class PacketMonitor:
    """Collects the packets a ``{data, last}`` stream carries (ready always high), with
    the cycle of each header flit."""

    def __init__(self, port, link_bytes):
        self.port, self.link_bytes = port, link_bytes
        self.packets, self.cycles = [], []
        self._cur = []

    async def run(self, ctx):
        ctx.set(self.port.ready, 1)
        cycle = 0
        async for _, _, valid, payload in ctx.tick().sample(self.port.valid, self.port.payload):
            cycle += 1
            if not valid:
                continue
            if not self._cur:
                self.cycles.append(cycle)
            self._cur.append(int(payload.data))
            if payload.last:
                self.packets.append(parse_packet(self._cur, self.link_bytes))
                self._cur = []
