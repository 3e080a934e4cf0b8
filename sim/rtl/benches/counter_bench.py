"""cocotb bench of a free-running counter (``count <= rst ? 0 : count + 1``): the smallest
design a test can build with Verilator, to check the build cache and trace windows.

``FSEDP_CLOCK_PS`` (default 1250): clock period.  ``FSEDP_CYCLES`` (default 1000): cycles
to count after reset.  ``FSEDP_WAVES_WINDOW`` ``"from,to"``: in a trace build, trace
only cycles ``from`` to ``to`` (cycle 0 is the first edge after reset, after which the
counter reads 1; cycle n is at t0 + n * period).  The bench logs ``t0`` as
``cycle 0 at <t0> ps``.
"""

import os

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge
from cocotb.utils import get_sim_time

from sim.rtl.benches.tracing import NEVER, trace_window_setter


@cocotb.test()
async def counts(dut):
    period = int(os.environ.get("FSEDP_CLOCK_PS", "1250"))
    cycles = int(os.environ.get("FSEDP_CYCLES", "1000"))
    window = os.environ.get("FSEDP_WAVES_WINDOW")
    set_window = trace_window_setter() if window else None
    if set_window:
        set_window(NEVER, NEVER)
    Clock(dut.clk, period, unit="ps").start()
    dut.rst.value = 1
    await ClockCycles(dut.clk, 3)
    await FallingEdge(dut.clk)
    dut.rst.value = 0
    await RisingEdge(dut.clk)
    t0 = int(get_sim_time("ps"))
    dut._log.info("cycle 0 at %d ps", t0)
    if set_window:
        lo, hi = (int(x) for x in window.split(","))
        set_window(t0 + lo * period, t0 + hi * period)
    await ClockCycles(dut.clk, cycles)
    await FallingEdge(dut.clk)
    assert int(dut.count.value) == cycles + 1
