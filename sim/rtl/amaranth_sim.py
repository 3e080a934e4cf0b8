"""Small async helpers for Amaranth-simulator testbenches (``sim.add_testbench``), and a
driver for :class:`hw.tile_datapath.TileDatapath` built on them."""

from __future__ import annotations

import gc
import warnings

import numpy as np
from amaranth.sim import Simulator

from hw import slice_layout
from hw.sram import AccOp

__all__ = ["stream_put", "stream_get", "run_testbench", "assert_rejects", "TileDriver"]


#: Cycles a stream helper waits for its handshake before it fails the test (no hangs).
STREAM_LIMIT = 50_000


def _name(stream) -> str:
    return getattr(stream.valid, "name", "stream").removesuffix("__valid")


async def stream_put(ctx, stream, payload, limit: int = STREAM_LIMIT):
    """Offer one payload on a stream and return once it has been accepted (an
    ``AssertionError`` after ``limit`` cycles without ``ready``)."""
    ctx.set(stream.payload, payload)
    ctx.set(stream.valid, 1)
    for _ in range(limit):
        *_, ready = await ctx.tick().sample(stream.ready)
        if ready:
            ctx.set(stream.valid, 0)
            return
    raise AssertionError(f"stream {_name(stream)}: payload not accepted within {limit} cycles")


async def stream_get(ctx, stream, limit: int = STREAM_LIMIT):
    """Accept one payload from a stream and return it (an ``AssertionError`` after
    ``limit`` cycles without ``valid``)."""
    ctx.set(stream.ready, 1)
    for _ in range(limit):
        *_, valid, payload = await ctx.tick().sample(stream.valid, stream.payload)
        if valid:
            ctx.set(stream.ready, 0)
            return payload
    raise AssertionError(f"stream {_name(stream)}: no payload within {limit} cycles")


def run_testbench(dut, *testbenches, vcd: str | None = None, deadline: float | None = None):
    """Simulate ``dut`` with a 100 MHz ``sync`` clock until every testbench has returned."""
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    for tb in testbenches:
        sim.add_testbench(tb)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run() if deadline is None else sim.run_until(deadline)
    else:
        sim.run() if deadline is None else sim.run_until(deadline)


def assert_rejects(factory, exc_type, message: str) -> None:
    """Assert that ``factory()`` raises ``exc_type`` with exactly ``message``.

    A component whose constructor raises is still an ``Elaboratable`` that Amaranth warns
    about ("created but never used") when it is collected; that object is collected here,
    with the warning silenced, so it cannot leak into other tests' output.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*created but never used")
        try:
            factory()
        except exc_type as exc:
            got = str(exc)
        else:
            raise AssertionError(f"expected {exc_type.__name__}({message!r}), nothing was raised")
        finally:
            gc.collect()
    assert got == message, f"expected {message!r}, got {got!r}"


class TileDriver:
    """Drives a :class:`~hw.tile_datapath.TileDatapath` through its external ports."""

    def __init__(self, dut):
        self.dut = dut
        self.p = dut.params

    def configure(self, ctx, *, d, fs, slot_words, slot_count, quant):
        if slot_words * slot_count > self.p["weight_words"]:
            raise ValueError(f"{slot_count} slots of {slot_words} words do not fit a weight buffer of "
                             f"{self.p['weight_words']} words")
        slice_layout.check_shape(d, fs, self.p["mac_rows"], self.p["mac_cols"])
        cfg = self.dut.cfg
        for name, value in dict(d=d, fs=fs, slot_words=slot_words, slot_count=slot_count,
                                gate_mult=quant.gate_mult, gate_shift=quant.gate_shift,
                                up_mult=quant.up_mult, up_shift=quant.up_shift,
                                hidden_mult=quant.hidden_mult, hidden_shift=quant.hidden_shift).items():
            ctx.set(getattr(cfg, name), value)
        ctx.set(self.dut.done.ready, 1)

    async def load_silu(self, ctx, table):
        for i, v in enumerate(np.asarray(table, dtype=np.int8)):
            await stream_put(ctx, self.dut.silu_wr, {"index": i, "value": int(v)})

    async def write_slice(self, ctx, slot, words):
        for k, flit in enumerate(slice_layout.slice_flits(words, self.p["link_bytes"])):
            await stream_put(ctx, self.dut.wb_wr, {"slot": slot, "flit": k, "data": flit})

    async def write_token(self, ctx, slot, x):
        for w, word in enumerate(slice_layout.token_words(x, self.p["mac_rows"])):
            await stream_put(ctx, self.dut.tb_wr, {"slot": slot, "word": w, "data": word})

    async def write_list(self, ctx, entries, base=0):
        for i, (token, gate_q) in enumerate(entries):
            await stream_put(ctx, self.dut.list_wr, {"index": base + i, "token": token, "gate_q": gate_q})

    async def write_acc(self, ctx, slot, row):
        c = self.p["mac_cols"]
        row = [int(v) for v in row]
        for w in range(len(row) // c):
            await stream_put(ctx, self.dut.acc_cmd, {"op": AccOp.WRITE, "slot": slot, "word": w,
                                                     "data": row[w * c:(w + 1) * c]})

    async def read_acc(self, ctx, slot, d) -> list[int]:
        c = self.p["mac_cols"]
        row = []
        for w in range(d // c):
            await stream_put(ctx, self.dut.acc_cmd, {"op": AccOp.READ, "slot": slot, "word": w,
                                                     "data": [0] * c})
            row += list(await stream_get(ctx, self.dut.acc_resp))
        return row

    async def run_job(self, ctx, *, slot, base, count) -> int:
        """Run one job; return the cycles it occupied the engine, from the cycle it was
        accepted to the cycle ``done`` was taken, inclusive."""
        await stream_put(ctx, self.dut.job, {"slot": slot, "base": base, "count": count})
        cycles = 2
        while not ctx.get(self.dut.done.valid):
            await ctx.tick()
            cycles += 1
        done_slot = ctx.get(self.dut.done.payload.slot)
        await ctx.tick()  # `done.ready` is held high by `configure`
        assert done_slot == slot, f"done reports slot {done_slot}, the job used slot {slot}"
        return cycles

    async def run_workload(self, ctx, workload, jobs=None):
        """Load a :class:`sim.rtl.datapath_workload.DatapathWorkload` through the ports (SiLU
        table, tokens, initial accumulators, token list), then for each job write its
        slice into its slot and run it; return the accumulators (tokens x d) and the
        cycles of each job."""
        wl = workload
        self.configure(ctx, d=wl.d, fs=wl.fs, slot_words=wl.slice_words, slot_count=wl.slots, quant=wl.quant)
        await self.load_silu(ctx, wl.quant.silu)
        for t in range(wl.num_tokens):
            await self.write_token(ctx, t, wl.x[t])
            if np.any(wl.initial[t]):
                await self.write_acc(ctx, t, wl.initial[t])
        await self.write_list(ctx, wl.token_list)
        cycles = []
        for job in wl.jobs if jobs is None else jobs:
            await self.write_slice(ctx, job.slot, wl.slice_image(job))
            cycles.append(await self.run_job(ctx, slot=job.slot, base=job.base, count=job.count))
        acc = np.array([await self.read_acc(ctx, t, wl.d) for t in range(wl.num_tokens)], dtype=np.int64)
        assert not ctx.get(self.dut.wb_wr_error), "a weight write fell outside the configured slots"
        return acc.astype(np.int32), cycles
