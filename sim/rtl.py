"""The RTL engine: build a system configuration once with Verilator, run workloads on it.

:func:`build` generates ``tile.v`` (once) and ``system.v`` (tiles instantiated by name)
into a directory named after the :class:`hw.config.SystemConfig`, rewriting a file only
when its text changes, and lets Verilator rebuild (seconds when nothing changed).
:func:`run` loads any number of workloads into that one build in one simulator launch,
reads back every accumulator row and counter, and checks every output bit-exactly
against the golden model.
"""

from __future__ import annotations

import json
import pathlib
import tempfile
import time

import numpy as np

from hw.config import SystemConfig
from scheduler import golden

from . import toolchain
from .results import ChipletCounters, RunResult
from .workload import Workload

__all__ = ["build", "run", "SimulationStalled"]

#: Cycles the watchdog waits between progress checks.
STALL_WINDOW = 20000


class SimulationStalled(RuntimeError):
    """A run made no progress (or ran past its cycle limit); the message says where."""


def _host_word(layout, cmd) -> int:
    return layout.const(cmd).as_value().value


def _hardware_digest(config: SystemConfig) -> str:
    """A digest of the HDL sources and the configuration: the cached Verilog is
    regenerated exactly when it would differ."""
    import hashlib

    import hw

    h = hashlib.sha256(repr(config).encode())
    for path in sorted(pathlib.Path(hw.__file__).parent.glob("*.py")):
        h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()


def build(config: SystemConfig, *, waves: bool = False):
    """Verilate ``config`` (cached); returns ``(runner, build_dir)``."""
    from hw.system import TILE_MODULE, System, make_tile

    bdir = toolchain.build_dir_for("system", config.name + ("_waves" if waves else ""))
    tile_v, system_v = bdir / "tile.v", bdir / "system.v"
    stamp = bdir / "sources.sha256"
    digest = _hardware_digest(config)
    if not (tile_v.exists() and system_v.exists() and stamp.exists() and stamp.read_text() == digest):
        toolchain.write_if_changed(tile_v, toolchain.to_verilog(make_tile(config), TILE_MODULE))
        toolchain.write_if_changed(system_v, toolchain.to_verilog(System(config), "system"))
        stamp.write_text(digest)
    runner = toolchain.build([tile_v, system_v], "system", bdir, waves=waves, public_top_only=True)
    return runner, bdir


def _job(workloads: list[Workload], config: SystemConfig, out: pathlib.Path) -> dict:
    from hw import controller as ctl
    from hw.system import make_tile

    tile = make_tile(config)
    layout = ctl.host_command_layout(tile.host_bits)
    job = {"tiles": config.num_chiplets, "drams": len(config.dram_chiplets), "out": str(out), "workloads": []}
    for w in workloads:
        d = w.layer.d_model
        tiles = []
        for c in range(config.num_chiplets):
            cmds = ctl.host_program(w.programs.controllers[c].words)
            for r, x in enumerate(w.token_rows[c]):
                cmds += ctl.host_token_row(r, x, config.tile.mac_rows)
            cmds += [ctl.host_acc_zero(r) for r in range(len(w.token_rows[c]))]
            tiles.append({"host": [str(_host_word(layout, cmd)) for cmd in cmds],
                          "readback": [str(_host_word(layout, ctl.host_acc_read(r, d)))
                                       for r in range(len(w.token_rows[c]))],
                          "beats_per_row": (d + 1) // 2})
        drams = []
        for k, img in enumerate(w.dram_images):
            words = [str(int.from_bytes(row.tobytes(), "little")) for row in img]
            drams.append({"program": [str(x) for x in _addressed(w.programs.drams[k].words, config, "program_wr")],
                          "program_words": len(w.programs.drams[k].words),
                          "weights": [str(x) for x in _addressed(words, config, "weight_wr")]})
        macs = w.plan.macs()
        limit = 20 * (macs // config.tile.word_bytes + sum(len(i) for i in w.dram_images) * 64) + 200000
        job["workloads"].append({"tiles": tiles, "drams": drams, "cycle_limit": int(limit),
                                 "stall_window": STALL_WINDOW, "age_limit": 0})
    return job


def _addressed(words, config, port):
    """Payloads ``{addr, data}`` of a DRAM channel's ``port`` (``weight_wr`` or
    ``program_wr``) that write ``words`` from address 0, as ints."""
    from hw.dram import DramChannel

    layout = getattr(DramChannel.from_config(config), port).payload.shape()
    return [layout.const({"addr": a, "data": int(v)}).as_value().value for a, v in enumerate(words)]


def _rows_from_beats(beats, d):
    from hw.controller import acc_row_from_beats
    return np.array(acc_row_from_beats([int(b) for b in beats], d), dtype=np.int64).astype(np.int32)


def _stall_message(out, config) -> str:
    parts = [out["stalled"]]
    for i, t in enumerate(out["tiles"]):
        if t["done"]:
            continue
        state = "running" if t["running"] else "stopped"
        parts.append(f"chiplet {i} ({state}): arrivals {t['ctrl_arrivals']}, jobs {t['ctrl_jobs']}, "
                     f"slots in use {t['occupancy']} (free {t['free_count']}), tokens sent/recv "
                     f"{t['ctrl_tokens_sent']}/{t['ctrl_tokens_received']}, results sent/recv "
                     f"{t['ctrl_results_sent']}/{t['ctrl_results_received']}, DRAM flits in {t['dram_flits']}, "
                     f"router waiting 0x{t['waiting']:x}, error 0x{t['error_bits']:x}")
    for k, d in enumerate(out["drams"]):
        state = "done" if d["done"] else "running"
        parts.append(f"DRAM channel {k} (chiplet {config.dram_chiplets[k]}, {state}): {d['packets']} packets, "
                         f"{d['flits']} flits, stalled {d['stalled']} cycles, waiting for the program "
                     f"{d['wait_program']} cycles, error 0x{d['error']:x}")
    return "simulation stalled: " + "; ".join(parts)


def run(workloads: list[Workload], config: SystemConfig | None = None, *, waves: str | None = None) -> list[RunResult]:
    """Run workloads (all on the same system configuration) and check them."""
    config = config or workloads[0].system
    for w in workloads:
        if w.system != config:
            raise ValueError("all workloads of one run must share the system configuration")
    runner, bdir = build(config, waves=bool(waves))
    with tempfile.TemporaryDirectory(prefix="fsedp-run-") as tmp:
        tmp = pathlib.Path(tmp)
        out = tmp / "results.json"
        (tmp / "job.json").write_text(json.dumps(_job(workloads, config, out)))
        t0 = time.perf_counter()
        runner.test(hdl_toplevel="system", test_module="sim.benches.system_bench", build_dir=str(bdir),
                    test_dir=str(tmp), extra_env={"FSEDP_JOB": str(tmp / "job.json")}, waves=bool(waves))
        wall = time.perf_counter() - t0
        if not out.exists():
            raise RuntimeError(f"the system bench of {config.name} failed before writing its results "
                               "(see the simulator output above)")
        raw = json.loads(out.read_text())
        if waves:
            produced = sorted(tmp.glob("*.fst")) + sorted(tmp.glob("*.vcd"))
            if produced:
                pathlib.Path(waves).write_bytes(produced[0].read_bytes())
    results = []
    for w, out in zip(workloads, raw):
        if out["stalled"]:
            raise SimulationStalled(_stall_message(out, config))
        results.append(_result(w, out, config, wall / len(workloads)))
    return results


def _result(w: Workload, out, config, wall) -> RunResult:
    d = w.layer.d_model
    mismatches = []
    for c, rows in enumerate(out["rows"]):
        got = np.array([_rows_from_beats(b, d) for b in rows]).reshape(-1, d)
        exp = w.expected[c]
        if got.shape != exp.shape or not np.array_equal(got, exp):
            bad = np.argwhere(got != exp) if got.shape == exp.shape else []
            mismatches.append({"chiplet": c, "rows": sorted({int(r) for r, _ in bad})[:10]})
    attached = dict(zip(config.dram_chiplets, range(len(config.dram_chiplets))))
    chiplets = []
    for c, t in enumerate(out["tiles"]):
        k = attached.get(c)
        chiplets.append(ChipletCounters(
            busy_cycles=t["busy_cycles"], mac_cycles=t["mac_cycles"], macs=t["macs"],
            slot_high_water=t["high_water"], slot_occupancy_end=t["occupancy"],
            link_flits=t["link_flits"], link_busy=t["link_busy"], link_stalled=t["link_stalled"],
            dram_flits=out["drams"][k]["flits"] if k is not None else 0,
            done_cycle=t["ctrl_cycles"], error=t["error_bits"]))
    token_bytes = [len(r) * d * 5 for r in w.token_rows]
    hw = w.plan.hardware
    return RunResult(spec=w.spec, engine="rtl", cycles=out["cycles"],
                     bit_exact=not mismatches and all(t["error_bits"] == 0 for t in out["tiles"]),
                     chiplets=chiplets, slot_bytes=w.plan.slot_bytes, token_row_bytes=token_bytes,
                     link_bytes=config.tile.link_bytes, macs_per_chiplet=hw.macs_per_chiplet,
                     clock_ghz=hw.clock_ghz, config={"system": config.name}, mismatches=mismatches,
                     wall_seconds=wall)
