"""cocotb bench of the whole system (``hw.system.System``).

It runs the workloads of a job file (``FSEDP_JOB``, written by ``sim.rtl``) one after the
other on one simulator launch: reset, set the watchdog limits (and a test's fault), load
every chiplet's program and tokens and every DRAM channel's program and weights through
the host ports, pulse ``start``, wait for ``done``, ``error`` or ``stalled`` (the system's
own error status and watchdog) with a single trigger, plus a coarse no-progress poll as a
backstop, read back every accumulator row and every counter, and write them to the job's
output file.  After an error or a stall it reads the status and stops (no readback, no
further workload).  It checks nothing itself: the caller compares with the golden model
and turns the status into a message.

The clock period is the job's ``clock_ps`` (the preset's clock; 10 ns in job files
without it); every wait is counted in cycles of it, and ``cycles`` is the system's own
counter, so no count depends on the period.  A job's ``waves_window`` ``[from, to]``
(cycles from ``start``; ``to`` ``None``: until ``done``) limits a trace build's tracing
to those cycles of each workload, through the trace window of the simulator main
(:mod:`sim.rtl.benches.tracing`).
"""

import json
import os
import time

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, First, FallingEdge, RisingEdge, Timer
from cocotb.utils import get_sim_time

from sim.rtl.benches.tracing import NEVER, trace_window_setter

COUNTER_BITS = 32
CLOCK_NS = 10            # the period of job files without "clock_ps"
SETTLE_CYCLES = 200      # cycles after an error or a stall at which the status is read again


def _sig(dut, name):
    return getattr(dut, name)


async def _send(dut, clk, port, items):
    """Drive ``items`` (payload ints) into a valid/ready port, one per accepted cycle."""
    valid, payload, ready = _sig(dut, f"{port}__valid"), _sig(dut, f"{port}__payload"), _sig(dut, f"{port}__ready")
    for item in items:
        valid.value = 1
        payload.value = item
        while True:
            await RisingEdge(clk)
            if ready.value == 1:     # pre-edge value: accepted at this edge
                break
        await FallingEdge(clk)
    valid.value = 0


async def _send_all(dut, clk, streams):
    """Drive several ports in parallel (one coroutine each), wait for all."""
    tasks = [cocotb.start_soon(_send(dut, clk, port, items)) for port, items in streams if items]
    for t in tasks:
        await t


async def _read_rows(dut, clk, tile, commands, beats_per_row):
    """Issue ACC_READ commands one at a time and collect the response beats."""
    resp_valid = _sig(dut, f"t{tile}_host_resp__valid")
    resp_data = _sig(dut, f"t{tile}_host_resp__payload")
    _sig(dut, f"t{tile}_host_resp__ready").value = 1
    rows = []
    for cmd in commands:
        await _send(dut, clk, f"t{tile}_host", [cmd])
        beats = []
        while len(beats) < beats_per_row:
            await RisingEdge(clk)
            if resp_valid.value == 1:
                beats.append(str(resp_data.value.to_unsigned()))
        rows.append(beats)
    return rows


def _value(dut, name):
    v = _sig(dut, name).value
    return int(v.to_unsigned()) if hasattr(v, "to_unsigned") else int(v)


def _split(value, n, bits=COUNTER_BITS):
    return [(value >> (bits * i)) & ((1 << bits) - 1) for i in range(n)]


def _tile_status(dut, i):
    s = {name: _value(dut, f"t{i}_stats__{name}") for name in (
        "slot_flits", "eject_flits", "inject_flits", "dram_flits", "arrivals", "forwards", "switched_flits",
        "free_count", "occupancy", "high_water", "error", "starved", "starved_channel", "waiting", "idle",
        "age_high_water", "forward_queue", "forward_status", "requests", "dram_waiting")}
    for name in ("link_flits", "link_busy", "link_stalled", "link_header_flits"):
        s[name] = _split(_value(dut, f"t{i}_stats__{name}"), 4)
    # the datapath's SRAM access counters, in the field order of hw.tile_datapath.SRAM_COUNTERS
    sram = _sig(dut, f"t{i}_sram")
    s["sram"] = _split(_value(dut, f"t{i}_sram"), len(sram) // COUNTER_BITS)
    s.update({f"ctrl_{name}": _value(dut, f"t{i}_counters__{name}") for name in (
        "cycles", "arrivals", "jobs", "tokens_sent", "results_sent", "tokens_received", "results_received")})
    s.update({name: _value(dut, f"t{i}_{name}") for name in ("busy_cycles", "mac_cycles", "macs", "done",
                                                               "error", "running", "watch")})
    s["error_bits"] = s.pop("error")
    return s


def _dram_status(dut, k):
    s = {name: _value(dut, f"d{k}_stats__{name}") for name in (
        "flits", "packets", "busy", "stalled", "wait_latency", "wait_bandwidth", "wait_program")}
    s.update({name: _value(dut, f"d{k}_{name}") for name in ("done", "error", "watch")})
    return s


def _progress(dut, tiles, drams):
    total = 0
    for i in range(tiles):
        total += _value(dut, f"t{i}_stats__slot_flits") + _value(dut, f"t{i}_stats__eject_flits")
        total += _value(dut, f"t{i}_counters__jobs") + _value(dut, f"t{i}_macs")
    for k in range(drams):
        total += _value(dut, f"d{k}_stats__flits")
    return total


def _report_progress(dut, index, count, tiles, drams):
    """Write a progress record for the runner (``FSEDP_PROGRESS``), replaced atomically."""
    path = os.environ.get("FSEDP_PROGRESS")
    if not path:
        return
    done = sum(_value(dut, f"t{i}_done") for i in range(tiles)) + sum(_value(dut, f"d{k}_done")
                                                                      for k in range(drams))
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"workload": index, "of": count, "cycles": _value(dut, "cycles"), "done": done,
                   "units": tiles + drams}, f)
    os.replace(tmp, path)


@cocotb.test()
async def run_job(dut):
    with open(os.environ["FSEDP_JOB"]) as f:
        job = json.load(f)
    clk = dut.clk
    period = int(job.get("clock_ps", CLOCK_NS * 1000))          # picoseconds
    high = period // 2
    Clock(clk, period, unit="ps", period_high=None if period % 2 == 0 else high).start()
    window = job.get("waves_window")
    trace_window = trace_window_setter() if window else None
    if trace_window:
        trace_window(NEVER, NEVER)           # nothing before the first window
    tiles, drams = job["tiles"], job["drams"]
    results = []
    for index, w in enumerate(job["workloads"]):
        dut.rst.value = 1
        dut.start.value = 0
        dut.clear.value = 0
        dut.age_limit.value = w["age_limit"]
        if w.get("dram_jitter_seed") or hasattr(dut, "dram_jitter_seed"):   # a build with DRAM latency jitter
            dut.dram_jitter_seed.value = w.get("dram_jitter_seed", 0)
        dut.stall_limit.value = w["stall_limit"]
        if w.get("fault") is not None:
            dut.fault.value = int(w["fault"])
        for i in range(tiles):
            _sig(dut, f"t{i}_host__valid").value = 0
            _sig(dut, f"t{i}_host_resp__ready").value = 0
        for k in range(drams):
            _sig(dut, f"d{k}_weight_wr__valid").value = 0
            _sig(dut, f"d{k}_program_wr__valid").value = 0
            _sig(dut, f"d{k}_program_words").value = w["drams"][k]["program_words"]
        await ClockCycles(clk, 3)
        await FallingEdge(clk)
        dut.rst.value = 0
        await FallingEdge(clk)

        streams = [(f"t{i}_host", [int(x) for x in t["host"]]) for i, t in enumerate(w["tiles"])]
        for k, d in enumerate(w["drams"]):
            streams.append((f"d{k}_program_wr", [int(x) for x in d["program"]]))
            streams.append((f"d{k}_weight_wr", [int(x) for x in d["weights"]]))
        await _send_all(dut, clk, streams)

        dut.start.value = 1
        # The edge that samples start is cycle 0: the counter reads 0 after it and n after
        # the n-th edge after it.  Tracing of this time step has not happened yet.
        await RisingEdge(clk)
        start_ps = int(get_sim_time("ps"))
        if trace_window:
            lo, hi = window
            trace_from, trace_to = start_ps + lo * period, NEVER if hi is None else start_ps + hi * period
            trace_window(trace_from, trace_to)
        await FallingEdge(clk)
        dut.start.value = 0
        t_start = time.perf_counter()
        stalled, cycles_waited, last = None, 0, -1
        stall_window, limit = w["stall_window"], w["cycle_limit"]
        while True:
            # A timer, not ClockCycles: no Python callback on every clock edge.  The system's
            # own watchdog ends a stalled run (``stalled``); the poll is only a backstop.
            await First(RisingEdge(dut.done), RisingEdge(dut.error), RisingEdge(dut.stalled),
                        Timer(stall_window * period, unit="ps"))
            if dut.done.value == 1 or dut.error.value == 1 or dut.stalled.value == 1:
                break
            cycles_waited += stall_window
            _report_progress(dut, index, len(job["workloads"]), tiles, drams)
            now = _progress(dut, tiles, drams)
            if now == last:
                stalled = f"no progress for {stall_window} cycles"
                break
            if cycles_waited >= limit:
                stalled = f"not done after the cycle limit of {limit}"
                break
            last = now
        run_wall = time.perf_counter() - t_start
        if trace_window:                     # the window ends at done (this time step) at the latest
            trace_window(trace_from, min(trace_to, int(get_sim_time("ps"))))
        await FallingEdge(clk)
        out = {"cycles": _value(dut, "cycles"), "stalled": stalled, "run_wall_s": run_wall,
               "start_ps": start_ps, "clock_ps": period,
               "error": _value(dut, "error"), "error_status": _value(dut, "error_status"),
               "watchdog": _value(dut, "stalled"), "stall_status": _value(dut, "stall_status"),
               "quiet_high_water": _value(dut, "quiet_high_water"),
               "tiles": [_tile_status(dut, i) for i in range(tiles)],
               "drams": [_dram_status(dut, k) for k in range(drams)], "rows": []}
        failed = stalled is not None or out["error"] or out["watchdog"]
        if out["error"] or out["watchdog"]:
            # The system stopped: a while later nothing has moved (every controller halted,
            # no DRAM channel issues; flits already in the network may still land).
            await ClockCycles(clk, SETTLE_CYCLES)
            out["settled"] = {"cycles": _value(dut, "cycles"),
                              "tiles": [_tile_status(dut, i) for i in range(tiles)],
                              "drams": [_dram_status(dut, k) for k in range(drams)]}
        if not failed:
            for i, t in enumerate(w["tiles"]):
                out["rows"].append(await _read_rows(dut, clk, i, [int(c) for c in t["readback"]], t["beats_per_row"]))
        results.append(out)
        if failed:
            break
    with open(job["out"], "w") as f:
        json.dump(results, f)
