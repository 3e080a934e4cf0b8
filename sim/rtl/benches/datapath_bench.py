"""cocotb bench of ``hw.tile_datapath.TileDatapath``: slices loaded at link width in the
shared slice layout, tokens, SiLU table, token lists, jobs for several slices of one
expert and of different experts, accumulators read back and compared bit for bit with
``scheduler.golden``.

Parameters come from the environment (set by the pytest wrapper through
``runner.test(extra_env=...)``):

``FSEDP_TILE``
    JSON of the TileDatapath constructor arguments the Verilog was built with.
``FSEDP_SHAPES``
    JSON list of workloads, each ``{"d", "f", "slices", "experts", "tokens", "top_k",
    "slots", "seed", "random_initial"}`` (see ``sim.rtl.datapath_workload.DatapathWorkload``).
"""

from __future__ import annotations

import json
import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly, RisingEdge

from hw import slice_layout
from hw.sram import AccOp
from hw.tile_datapath import TileDatapath
from sim.rtl.datapath_workload import DatapathWorkload, decode_words, encode

__all__ = ["TileBench"]

INPUT_STREAMS = ("wb_wr", "wb_fwd_req", "tb_wr", "acc_cmd", "silu_wr", "list_wr", "job")
OUTPUT_STREAMS = ("wb_fwd_data", "acc_resp", "done")


class TileBench:
    """Owns the clock and reset of a TileDatapath and drives its ports.

    Inputs are driven and outputs sampled at the falling edge of the clock; a handshake
    seen there (after :class:`ReadOnly` settles the combinational logic) completes at the
    next rising edge."""

    def __init__(self, dut, params: dict):
        self.dut = dut
        self.params = params
        # A software twin of the hardware gives the port payload layouts to encode with.
        self.hw = TileDatapath(**params)
        self.word_bits = 32 * params["mac_cols"]

    async def start(self):
        dut = self.dut
        Clock(dut.clk, 10, unit="ns").start()
        for name in INPUT_STREAMS:
            getattr(dut, f"{name}__valid").value = 0
            getattr(dut, f"{name}__payload").value = 0
        for name in OUTPUT_STREAMS:
            getattr(dut, f"{name}__ready").value = 0
        for name in ("slot_words", "slot_count", "d", "fs", "gate_mult", "gate_shift", "up_mult",
                     "up_shift", "hidden_mult", "hidden_shift"):
            getattr(dut, f"cfg__{name}").value = 0
        dut.counters_clear.value = 0
        dut.rst.value = 1
        await ClockCycles(dut.clk, 2)
        await FallingEdge(dut.clk)
        dut.rst.value = 0

    def configure(self, *, d, fs, slot_words, slot_count, quant):
        for name, value in dict(d=d, fs=fs, slot_words=slot_words, slot_count=slot_count,
                                gate_mult=quant.gate_mult, gate_shift=quant.gate_shift,
                                up_mult=quant.up_mult, up_shift=quant.up_shift,
                                hidden_mult=quant.hidden_mult, hidden_shift=quant.hidden_shift).items():
            getattr(self.dut, f"cfg__{name}").value = value

    async def burst(self, name, payloads):
        """Drive an always-ready stream with one payload per cycle."""
        valid, payload = getattr(self.dut, f"{name}__valid"), getattr(self.dut, f"{name}__payload")
        for value in payloads:
            payload.value = value
            valid.value = 1
            await FallingEdge(self.dut.clk)
        valid.value = 0

    async def put(self, name, value):
        """One handshake on a stream with back-pressure."""
        dut = self.dut
        getattr(dut, f"{name}__payload").value = value
        getattr(dut, f"{name}__valid").value = 1
        while True:
            await ReadOnly()
            accepted = getattr(dut, f"{name}__ready").value == 1
            await FallingEdge(dut.clk)
            if accepted:
                break
        getattr(dut, f"{name}__valid").value = 0

    async def load_silu(self, table):
        layout = self.hw.silu_layout
        await self.burst("silu_wr", [encode(layout, index=i, value=int(v)) for i, v in enumerate(table)])

    async def load_tokens(self, x):
        layout = self.hw.token_write_layout
        await self.burst("tb_wr", [encode(layout, slot=t, word=w, data=word)
                                   for t in range(len(x))
                                   for w, word in enumerate(slice_layout.token_words(x[t], self.params["mac_rows"]))])

    async def load_list(self, entries):
        layout = self.hw.list_write_layout
        await self.burst("list_wr", [encode(layout, index=i, token=t, gate_q=q) for i, (t, q) in enumerate(entries)])

    async def load_slice(self, slot, words):
        layout = self.hw.weight_write_layout
        flits = slice_layout.slice_flits(words, self.params["link_bytes"])
        await self.burst("wb_wr", [encode(layout, slot=slot, flit=k, data=f) for k, f in enumerate(flits)])

    async def write_acc(self, rows):
        layout, c = self.hw.acc_command_layout, self.params["mac_cols"]
        for t, row in enumerate(rows):
            for w in range(len(row) // c):
                await self.put("acc_cmd", encode(layout, op=AccOp.WRITE, slot=t, word=w,
                                                 data=[int(v) for v in row[w * c:(w + 1) * c]]))

    async def read_acc(self, tokens, d):
        """Read ``tokens`` rows of ``d`` accumulators, one command per cycle."""
        dut, c = self.dut, self.params["mac_cols"]
        layout = self.hw.acc_command_layout
        cmds = [(t, w) for t in range(tokens) for w in range(d // c)]
        words, sent = [], 0
        dut.acc_resp__ready.value = 1
        while len(words) < len(cmds):
            if sent < len(cmds):
                t, w = cmds[sent]
                dut.acc_cmd__payload.value = encode(layout, op=AccOp.READ, slot=t, word=w, data=[0] * c)
            dut.acc_cmd__valid.value = int(sent < len(cmds))
            await ReadOnly()
            if sent < len(cmds) and dut.acc_cmd__ready.value == 1:
                sent += 1
            if dut.acc_resp__valid.value == 1:
                words.append(decode_words(dut.acc_resp__payload.value.to_unsigned(), 32, c))
            await FallingEdge(dut.clk)
        dut.acc_cmd__valid.value = 0
        dut.acc_resp__ready.value = 0
        return np.array(words, dtype=np.int64).reshape(tokens, d)

    def encode_job(self, *, slot, base, count):
        return encode(self.hw.job_layout, slot=slot, base=base, count=count)

    async def run_job(self, *, slot, base, count):
        """Start a job and wait for ``done`` with a single trigger."""
        dut = self.dut
        dut.done__ready.value = 1
        await self.put("job", self.encode_job(slot=slot, base=base, count=count))
        if dut.done__valid.value != 1:
            await RisingEdge(dut.done__valid)
            await FallingEdge(dut.clk)
        assert dut.done__payload.value.to_unsigned() == slot
        await FallingEdge(dut.clk)          # done is taken at the rising edge in between

    def counters(self):
        return int(self.dut.busy_cycles.value), int(self.dut.mac_cycles.value)

    async def run_workload(self, wl: DatapathWorkload):
        """Load everything, run every job (slices loaded slot by slot, ``wl.slots`` at a
        time), read the accumulators back."""
        self.configure(d=wl.d, fs=wl.fs, slot_words=wl.slice_words, slot_count=wl.slots, quant=wl.quant)
        await self.load_silu(wl.quant.silu)
        await self.load_tokens(wl.x)
        if np.any(wl.initial):
            await self.write_acc(wl.initial)
        else:
            await self.write_acc(np.zeros_like(wl.initial))
        await self.load_list(wl.token_list)
        for first in range(0, len(wl.jobs), wl.slots):
            group = wl.jobs[first:first + wl.slots]
            for job in group:
                await self.load_slice(job.slot, wl.slice_image(job))
            for job in group:
                await self.run_job(slot=job.slot, base=job.base, count=job.count)
        assert self.dut.wb_wr_error.value == 0
        return await self.read_acc(wl.num_tokens, wl.d)


def tile_params():
    return json.loads(os.environ["FSEDP_TILE"])


def shapes():
    return json.loads(os.environ.get("FSEDP_SHAPES", "[]"))


@cocotb.test()
async def slices_of_one_and_of_several_experts_match_golden(dut):
    params = tile_params()
    tb = TileBench(dut, params)
    await tb.start()
    for shape in shapes():
        wl = DatapathWorkload(mac_rows=params["mac_rows"], mac_cols=params["mac_cols"], **shape)
        busy0, mac0 = tb.counters()
        got = await tb.run_workload(wl)
        busy, mac = (a - b for a, b in zip(tb.counters(), (busy0, mac0)))
        want = wl.expected()
        mismatch = np.argwhere(got != want)
        assert mismatch.size == 0, f"{shape}: {len(mismatch)} accumulators differ, first at (token, " \
            f"element) {tuple(mismatch[0])}: got {got[tuple(mismatch[0])]}, want {want[tuple(mismatch[0])]}"
        if not np.any(wl.initial):
            assert np.array_equal(got, wl.expected_layer())
        words = wl.slice_words
        assert mac == sum(job.count for job in wl.jobs) * words, "MAC cycles != token-slices x words"
        dut._log.info(f"{shape}: {len(wl.jobs)} jobs, {sum(job.count for job in wl.jobs)} token-slices, "
                      f"{mac} MAC cycles in {busy} busy cycles ({mac / max(busy, 1):.1%})")


@cocotb.test()
async def the_forward_port_reads_a_slot_back_under_back_pressure(dut):
    params = tile_params()
    tb = TileBench(dut, params)
    await tb.start()
    rng = np.random.default_rng(11)
    r, c, link = params["mac_rows"], params["mac_cols"], params["link_bytes"]
    d, fs = 2 * max(r, c), max(r, c)
    words = slice_layout.pack_slice(*(rng.integers(-128, 128, shape, dtype=np.int8)
                                      for shape in ((d, fs), (d, fs), (fs, d))), r, c)
    tb.configure(d=d, fs=fs, slot_words=len(words), slot_count=2, quant=_unit_quant())
    await tb.load_slice(1, words)
    flits = slice_layout.slice_flits(words, link)
    layout = tb.hw.weight_forward_layout
    got, sent = [], 0
    while len(got) < len(flits):
        if sent < len(flits):
            dut.wb_fwd_req__payload.value = encode(layout, slot=1, flit=sent)
        dut.wb_fwd_req__valid.value = int(sent < len(flits) and rng.random() < 0.7)
        dut.wb_fwd_data__ready.value = int(rng.random() < 0.6)
        await ReadOnly()
        if dut.wb_fwd_req__valid.value == 1 and dut.wb_fwd_req__ready.value == 1:
            sent += 1
        if dut.wb_fwd_data__valid.value == 1 and dut.wb_fwd_data__ready.value == 1:
            got.append(dut.wb_fwd_data__payload.value.to_unsigned())
        await FallingEdge(dut.clk)
    assert got == flits


@cocotb.test()
async def jobs_issued_back_to_back_overlap_and_report_done(dut):
    """Every slice of every expert resident in its own slot, all jobs pushed without
    waiting for ``done`` (the controller's normal mode): results bit-exact, ``done`` for
    each job exactly once, jobs with tokens in order."""
    params = tile_params()
    tb = TileBench(dut, params)
    await tb.start()
    r, c = params["mac_rows"], params["mac_cols"]
    unit = max(r, c)
    wl = DatapathWorkload(mac_rows=r, mac_cols=c, d=2 * unit, f=3 * unit, slices=3, experts=4, tokens=5,
                          top_k=2, slots=12, seed=2, skew=2.0, random_initial=True)
    assert wl.slice_words * len(wl.jobs) <= params["weight_words"] and 0 in wl.count
    tb.configure(d=wl.d, fs=wl.fs, slot_words=wl.slice_words, slot_count=len(wl.jobs), quant=wl.quant)
    await tb.load_silu(wl.quant.silu)
    await tb.load_tokens(wl.x)
    await tb.write_acc(wl.initial)
    await tb.load_list(wl.token_list)
    for k, job in enumerate(wl.jobs):
        job.slot = k
        await tb.load_slice(k, wl.slice_image(job))
    dones = []

    async def collect_done():          # this test is about the done stream: watch it every cycle
        dut.done__ready.value = 1
        while len(dones) < len(wl.jobs):
            await FallingEdge(dut.clk)
            if dut.done__valid.value == 1:
                dones.append(dut.done__payload.value.to_unsigned())

    monitor = cocotb.start_soon(collect_done())
    busy0, mac0 = tb.counters()
    for job in wl.jobs:
        await tb.put("job", tb.encode_job(slot=job.slot, base=job.base, count=job.count))
    await monitor
    busy, mac = (a - b for a, b in zip(tb.counters(), (busy0, mac0)))
    assert sorted(dones) == list(range(len(wl.jobs)))
    working = [job.slot for job in wl.jobs if job.count]
    assert [s for s in dones if s in working] == working
    got = await tb.read_acc(wl.num_tokens, wl.d)
    assert np.array_equal(got, wl.expected())
    dut._log.info(f"{len(wl.jobs)} jobs back to back: {mac} MAC cycles in {busy} busy cycles ({mac / busy:.1%})")


def _unit_quant():
    from scheduler.golden import QuantParams
    return QuantParams(1, 0, 1, 0, 1, 0)
