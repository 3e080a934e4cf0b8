"""cocotb bench of ``hw.requant.Requantizer``: random values, multipliers and shifts,
random output back-pressure; every output checked against ``scheduler.golden``."""

import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge

from scheduler.golden import requantize


@cocotb.test()
async def random_values_match_golden(dut):
    rng = np.random.default_rng(int(os.environ.get("FSEDP_BENCH_SEED", "0")))
    count = int(os.environ.get("FSEDP_BENCH_COUNT", "2000"))
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    dut.i__valid.value = 0
    dut.i__payload.value = 0
    dut.o__ready.value = 0
    dut.mult.value = 0
    dut.shift.value = 0
    await ClockCycles(dut.clk, 2)
    await FallingEdge(dut.clk)
    dut.rst.value = 0
    for mult, shift in [(1, 0), (65535, 31), (65535, 0)] + [
            (int(rng.integers(0, 1 << 16)), int(rng.integers(0, 32))) for _ in range(7)]:
        dut.mult.value = mult
        dut.shift.value = shift
        values = [int(v) for v in rng.integers(-(1 << 31), 1 << 31, size=count // 10)]
        values[:4] = [-(1 << 31), (1 << 31) - 1, 0, -1]
        expect = [int(v) for v in requantize(np.array(values), mult, shift)]
        got, sent = [], 0
        while len(got) < len(values):
            # Signals sampled at the falling edge; a handshake completes at the next rising edge.
            if dut.o__valid.value == 1 and dut.o__ready.value == 1:
                got.append(dut.o__payload.value.to_signed())
            if dut.i__valid.value == 1 and dut.i__ready.value == 1:
                sent += 1
            dut.i__valid.value = int(sent < len(values) and rng.random() < 0.8)
            dut.i__payload.value = values[sent] if sent < len(values) else 0
            dut.o__ready.value = int(rng.random() < 0.7)
            await FallingEdge(dut.clk)
        dut.i__valid.value = 0
        assert got == expect, f"mult={mult} shift={shift}: first mismatch at " \
            f"{next(i for i, (a, b) in enumerate(zip(got, expect)) if a != b)}"
