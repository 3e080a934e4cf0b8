"""cocotb bench: random slice, weight and token traffic with random stalls on a mesh of
routers (``sim.rtl.benches.router_mesh.MeshTop``); the checking is in HDL, Python only
configures the nodes, waits for one of done / watchdog / error, and reads the counters.

The run plan comes in as JSON in ``FSEDP_ROUTER_PLAN``; results (counters of every node,
cycles, wall time and the simulator process's CPU time) go to the JSON file named by ``FSEDP_ROUTER_RESULT``.  While the run is
under way, about every two seconds, the cycles and flits delivered so far go to the JSON
file named by ``FSEDP_ROUTER_PROGRESS`` (if set).
"""

import json
import os
import time

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, First, RisingEdge, Timer, FallingEdge

from sim.rtl.benches.router_mesh import PROGRESS_FIELDS, check_run, read_addresses, stall_report

#: Seconds of wall time between progress reports.
PROGRESS_SECONDS = 2.0


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


async def read_all(dut, plan, fields=None):
    """Every node's readout fields (all of ``READ_FIELDS``, or ``fields``)."""
    out = []
    for i in range(plan["rows"] * plan["cols"]):
        r = {}
        for name, addr in read_addresses(plan, fields).items():
            r[name] = await _read(dut, i, addr) if isinstance(addr, int) else [await _read(dut, i, a) for a in addr]
        out.append(r)
    return out


async def _wait_for_end(dut, plan, max_cycles, progress_path, t0, c0):
    """Wait for done, the watchdog, a checker error (unless the plan injects faults) or
    ``max_cycles``, reporting progress to ``progress_path`` about every
    :data:`PROGRESS_SECONDS`."""
    stop_on_error = plan.get("stop_on_error", True)
    chunk = 2000
    while True:
        elapsed = int(dut.cycle.value) - c0
        left = max_cycles - elapsed
        if left <= 0:
            return
        triggers = [RisingEdge(dut.done), RisingEdge(dut.stalled), Timer(min(chunk, left) * 10, unit="ns")]
        if stop_on_error:
            triggers.append(RisingEdge(dut.error))
        w0 = time.perf_counter()
        await First(*triggers)
        if dut.done.value == 1 or dut.stalled.value == 1 or (stop_on_error and dut.error.value == 1):
            return
        took = max(time.perf_counter() - w0, 1e-3)
        chunk = max(1000, min(int(chunk * PROGRESS_SECONDS / took), 2_000_000))
        if progress_path:
            reads = await read_all(dut, plan, PROGRESS_FIELDS)
            flits = sum(r["slot_flits"] + r["arrivals"] + r["eject_flits"] for r in reads)
            with open(progress_path + ".tmp", "w") as f:
                json.dump({"cycles": int(dut.cycle.value) - c0, "flits": flits,
                           "wall_s": time.perf_counter() - t0}, f)
            os.replace(progress_path + ".tmp", progress_path)


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
    t0, c0, cpu0 = time.perf_counter(), int(dut.cycle.value), time.process_time()
    await _wait_for_end(dut, plan, max_cycles, os.environ.get("FSEDP_ROUTER_PROGRESS"), t0, c0)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    cycles = int(dut.cycle.value) - c0
    if dut.error.value == 1 and dut.done.value != 1:
        await ClockCycles(dut.clk, 4)       # let the first error latch its context
    reads = await read_all(dut, plan)
    outcome = ("done" if dut.done.value == 1 else "stalled" if dut.stalled.value == 1
               else "error" if dut.error.value == 1 else "timeout")
    failures = check_run(plan, reads, finished=outcome == "done")
    stuck = stall_report(plan, reads) if outcome != "done" else []
    result = {"outcome": outcome, "cycles": cycles, "wall_s": wall, "cpu_s": cpu, "reads": reads,
              "failures": failures, "stuck": stuck}
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
    # With faults injected the caller judges the failures; the run itself must finish.
    assert outcome == "done" and (not failures or not plan.get("stop_on_error", True)), \
        "\n".join(msg + stuck + failures)
