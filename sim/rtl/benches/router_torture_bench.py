"""cocotb bench: random slice, weight and token traffic with random stalls on a mesh of
routers (``sim.rtl.benches.router_mesh.MeshTop``); the checking is in HDL, Python only
configures the nodes, waits for one of done / watchdog / error, and reads the counters.

The run plan comes in as JSON in ``FSEDP_ROUTER_PLAN``; results (counters of every node,
cycles, wall time) go to the JSON file named by ``FSEDP_ROUTER_RESULT``.
"""

import json
import os
import time

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, First, RisingEdge, Timer, FallingEdge

from sim.rtl.benches.router_mesh import READ_FIELDS, check_run, stall_report


async def _write(dut, node, addr, value):
    dut.cfg_node.value = node
    dut.cfg_addr.value = int(addr)
    dut.cfg_data.value = int(value) & 0xFFFFFFFF
    dut.cfg_we.value = 1
    await FallingEdge(dut.clk)
    dut.cfg_we.value = 0


async def _read(dut, node, addr):
    dut.rd_node.value = node
    dut.rd_addr.value = int(addr)
    await Timer(1, unit="ns")
    return int(dut.rd_data.value)


async def read_all(dut, plan):
    n = plan["rows"] * plan["cols"]
    sizes = {"chiplets": n, "channels": len(plan["channels"])}
    out = []
    for i in range(n):
        r = {}
        for name, (addr, count) in READ_FIELDS.items():
            if count is None:
                r[name] = await _read(dut, i, addr)
            else:
                k = sizes.get(count, count)
                r[name] = [await _read(dut, i, int(addr) + j) for j in range(k)]
        out.append(r)
    return out


@cocotb.test()
async def torture(dut):
    plan = json.loads(os.environ["FSEDP_ROUTER_PLAN"])
    plan["nodes"] = [{int(k): v for k, v in regs.items()} for regs in plan["nodes"]]
    max_cycles = int(os.environ.get("FSEDP_ROUTER_MAX_CYCLES", "20000000"))
    Clock(dut.clk, 10, unit="ns").start()
    for s in (dut.cfg_we, dut.cfg_node, dut.cfg_addr, dut.cfg_data, dut.rd_node, dut.rd_addr):
        s.value = 0
    dut.wd_limit.value = int(os.environ.get("FSEDP_ROUTER_WATCHDOG", "20000"))
    dut.rst.value = 1
    await ClockCycles(dut.clk, 2)
    await FallingEdge(dut.clk)
    dut.rst.value = 0
    for i, regs in enumerate(plan["nodes"]):
        for addr, value in sorted(regs.items()):
            await _write(dut, i, addr, value)
    await _write(dut, 255, 19, 1)          # Reg.START on every node
    t0, c0 = time.perf_counter(), int(dut.cycle.value)
    end = await First(RisingEdge(dut.done), RisingEdge(dut.stalled), RisingEdge(dut.error),
                      Timer(max_cycles * 10, unit="ns"))
    wall = time.perf_counter() - t0
    cycles = int(dut.cycle.value) - c0
    if end is not None and dut.error.value == 1:
        await ClockCycles(dut.clk, 4)       # let the first error latch its context
    reads = await read_all(dut, plan)
    outcome = ("done" if dut.done.value == 1 else "stalled" if dut.stalled.value == 1
               else "error" if dut.error.value == 1 else "timeout")
    failures = check_run(plan, reads)
    stuck = stall_report(plan, reads) if outcome != "done" else []
    result = {"outcome": outcome, "cycles": cycles, "wall_s": wall, "reads": reads, "failures": failures,
              "stuck": stuck}
    path = os.environ.get("FSEDP_ROUTER_RESULT")
    if path:
        with open(path, "w") as f:
            json.dump(result, f)
    msg = []
    if outcome == "stalled":
        msg.append(f"watchdog: no progress for {int(dut.wd_limit.value)} cycles at cycle {cycles}")
    elif outcome == "timeout":
        msg.append(f"run did not finish within {max_cycles} cycles")
    elif outcome == "error":
        msg.append(f"a checker fired at cycle {cycles}")
    assert outcome == "done" and not failures, "\n".join(msg + stuck + failures)
