"""The build cache (``sim.rtl.toolchain.verilate``): progress and heartbeat, cache hits,
the lock, recovery from a damaged cache; trace windows and the waveform's clock.

The Verilator tests build a 16-bit counter (the smallest design, about 15 s) into their
own temporary directories; the one on the system is ``-m slow``.
"""

import pathlib
import re
import subprocess
import sys
import threading
import time

import pytest

from sim.rtl import runner as rtl_runner
from sim.rtl import toolchain

COUNTER_V = """module counter(input clk, input rst, output reg [{msb}:0] count);
  initial count = 0;
  always @(posedge clk) count <= rst ? 0 : count + 1;
endmodule
"""


def _counter(directory: pathlib.Path, width: int = 16) -> pathlib.Path:
    src = directory / "counter.v"
    toolchain.write_if_changed(src, COUNTER_V.format(msb=width - 1))
    return src


def _run_counter(v: toolchain.Verilated, test_dir: pathlib.Path, **env) -> None:
    test_dir.mkdir(parents=True, exist_ok=True)
    v.runner.test(hdl_toplevel="counter", test_module="sim.rtl.benches.counter_bench", build_dir=str(v.directory),
                  test_dir=str(test_dir), waves=v.trace_window, log_file=str(test_dir / "sim.log"),
                  extra_env={k: str(x) for k, x in env.items()})


def _vcd(path: pathlib.Path, signal: str):
    """(timescale, dump times, {time: value of the first ``signal``}) of a VCD file."""
    code, scale, times, values, t = None, None, [], {}, None
    with open(path) as f:
        for line in f:
            if scale is None and line.startswith("$timescale"):
                scale = line.split()[1]
            if code is None:
                m = re.match(r"\s*\$var\s+\S+\s+\d+\s+(\S+)\s+" + signal + r"\s", line)
                if m:
                    code = m.group(1)
                continue
            if line.startswith("#"):
                t = int(line[1:])
                times.append(t)
            elif line.startswith("b") and line.split()[1] == code:
                values[t] = int(line.split()[0][1:], 2)
    return scale, times, values


# --- no simulator -------------------------------------------------------------------

def test_corrupt_cache_reason_tells_damaged_caches_from_real_errors():
    reason = toolchain.corrupt_cache_reason
    assert "truncated" in reason("/usr/bin/ld: error: verilated_vpi.o: file too short\ncollect2: error: "
                                 "ld returned 1 exit status", had_build=False)
    assert "truncated" in reason("Vtop__ALL.a: file truncated", had_build=False)
    assert "not an object file" in reason("x.o: file format not recognized; treating as linker script", False)
    assert "link" in reason("undefined reference to `vlog_startup_routines'", False)
    assert "dependency" in reason("make: *** No rule to make target 'Vtop__Syms.h', needed by 'x.o'.", False)
    assert "complete build" in reason("c++: fatal error: Killed signal terminated program cc1plus", True)
    # Verilator rejected the design: deleting the cache cannot help.
    assert reason("%Error: system.v:12:3: syntax error\n%Error: Exiting due to 1 error(s)", True) is None
    assert reason("c++: fatal error: Killed signal terminated program cc1plus", False) is None


def test_with_heartbeat_reports_while_work_runs_and_passes_results_and_errors():
    lines = []
    assert toolchain.with_heartbeat(lambda: time.sleep(0.55) or 7, lines.append,
                                    lambda s: f"still at it: {s:.1f} s", interval=0.1) == 7
    assert len(lines) >= 3 and lines[0].startswith("still at it: 0.1")
    with pytest.raises(ZeroDivisionError):
        toolchain.with_heartbeat(lambda: 1 / 0, lines.append, str, interval=0.1)
    assert toolchain.with_heartbeat(lambda: 3, None, str) == 3


def test_a_second_process_waiting_on_the_build_lock_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(toolchain, "HEARTBEAT_SECONDS", 0.3)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'w'); "
         "fcntl.flock(f, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(1.2)", str(tmp_path / ".lock")],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    lines = []
    t0 = time.monotonic()
    with toolchain.build_lock(tmp_path, lines.append):
        waited = time.monotonic() - t0
    holder.wait()
    assert waited > 0.5
    assert lines[0] == f"waiting for another process building {toolchain.display_path(tmp_path)} ..."
    assert any(line.startswith("still waiting for another process building") for line in lines)
    assert lines[-1].startswith("the other process is done with")
    lines.clear()
    with toolchain.build_lock(tmp_path, lines.append):     # free: nothing to say
        pass
    assert lines == []


class _FailingRunner:
    """A cocotb runner whose build writes ``log_text`` to the log and fails."""

    def __init__(self, log_text):
        self.log_text, self.calls = log_text, 0

    def build(self, *, log_file, build_dir, **_):
        self.calls += 1
        pathlib.Path(build_dir, f"object{self.calls}.o").write_text("junk")
        pathlib.Path(log_file).write_text(self.log_text)
        raise RuntimeError("Command failed with return code: 2")


def test_a_build_failing_on_a_damaged_cache_is_rebuilt_once_then_names_its_log(tmp_path, monkeypatch):
    fake = _FailingRunner("/usr/bin/ld: Vtop__ALL.a: file truncated\ncollect2: error: ld returned 1 exit status\n")
    monkeypatch.setattr(toolchain, "get_runner", lambda sim, main_cpp=None: fake)
    src, keep = _counter(tmp_path), tmp_path / "sources.sha256"
    keep.write_text("x")
    (tmp_path / "stale.o").write_text("old")
    lines = []
    with pytest.raises(toolchain.BuildError) as err:
        toolchain.verilate([src], "counter", tmp_path, log_file=tmp_path / "build.log", progress=lines.append,
                           keep=[keep])
    assert fake.calls == 2
    message = str(err.value)
    assert "failed again" in message and str(tmp_path / "build.log") in message
    assert "`make clean` removes all builds" in message
    assert any("damaged cache" in line and "deleted and built again" in line for line in lines)
    # The first attempt's objects went; the sources, the kept files and the log stayed.
    assert not (tmp_path / "stale.o").exists() and not (tmp_path / "object1.o").exists()
    assert src.exists() and keep.exists() and (tmp_path / "build.log").exists()


def test_a_design_error_is_not_retried(tmp_path, monkeypatch):
    fake = _FailingRunner("%Error: counter.v:2:3: syntax error, unexpected always\n")
    monkeypatch.setattr(toolchain, "get_runner", lambda sim, main_cpp=None: fake)
    with pytest.raises(toolchain.BuildError) as err:
        toolchain.verilate([_counter(tmp_path)], "counter", tmp_path, log_file=tmp_path / "build.log")
    assert fake.calls == 1
    assert str(tmp_path / "build.log") in str(err.value) and "make clean" not in str(err.value)


def test_trace_main_is_cocotbs_with_a_window(tmp_path):
    main = toolchain._write_trace_main(tmp_path)
    assert main is not None, "cocotb's verilator.cpp changed: update toolchain._write_trace_main"
    text = main.read_text()
    assert f'extern "C" void {toolchain.TRACE_WINDOW_SYMBOL}(' in text
    assert "if (main_time >= fsedp_trace_from && main_time <= fsedp_trace_to) tfp->dump(main_time);" in text


def test_the_bench_clock_follows_the_preset_clock():
    assert rtl_runner.clock_period_ps(0.8) == 1250
    assert rtl_runner.clock_period_ps(1.0) == 1000
    assert rtl_runner.clock_period_ps(2.0) == 500
    with pytest.raises(ValueError):
        rtl_runner.clock_period_ps(0)


def test_run_checks_the_waveform_window_before_building():
    from sim.workload import prepare

    w = prepare(preset="rtl-2x2", model="tiny-8x2", tokens=4, routing_spec="mixtral:c4", strategy="fse-dp", seed=0)
    with pytest.raises(ValueError, match="give waves=<file> too"):
        rtl_runner.run([w], waves_from=10)
    with pytest.raises(ValueError, match="0 <= waves_from <= waves_to"):
        rtl_runner.run([w], waves="x.vcd", waves_from=10, waves_to=5)


def test_system_build_says_waves_need_a_trace_build_and_reuses_the_plain_verilog(tmp_path, monkeypatch):
    """``runner.build`` without Verilator: the calls into the toolchain are recorded."""
    from hw.config import SystemConfig
    from scheduler import presets

    monkeypatch.setenv("FSEDP_BUILD_DIR", str(tmp_path))
    config = SystemConfig.from_preset(presets.get_hardware("rtl-2x2"))
    plain = tmp_path / "system" / config.name
    plain.mkdir(parents=True)
    for name in ("tile.v", "system.v"):
        (plain / name).write_text(f"// {name}\n")
    (plain / "sources.sha256").write_text(rtl_runner._hardware_digest(config))
    calls = []

    def fake_verilate(sources, toplevel, build_dir, **kw):
        calls.append(kw)
        return toolchain.Verilated(object(), build_dir, cached=len(calls) > 1, seconds=0.0, trace_window=True)

    monkeypatch.setattr(toolchain, "verilate", fake_verilate)
    monkeypatch.setattr(toolchain, "to_verilog", lambda *a: pytest.fail("the plain build's Verilog is current"))
    lines = []
    b = rtl_runner.build(config, waves="vcd", progress=lines.append)
    wdir = tmp_path / "system" / f"{config.name}_vcd"
    assert b.directory == wdir and b.converted and not b.cached and b.trace_window
    assert lines[0].startswith(f"--waves needs a build with tracing (a separate cached build, {wdir}; ")
    assert lines[1] == f"reusing the Verilog of {plain}"
    assert (wdir / "system.v").read_text() == "// system.v\n"
    assert calls[0]["waves"] == "vcd" and calls[0]["label"] == wdir.name and calls[0]["progress"] is not None
    (wdir / "system").write_text("")                  # the executable of the trace build
    lines.clear()
    again = rtl_runner.build(config, waves="vcd", progress=lines.append)
    assert again.cached and not again.converted and lines == []


# --- Verilator ------------------------------------------------------------------------

@pytest.mark.cocotb
def test_fresh_build_progress_cache_hit_and_recovery_from_a_truncated_object(tmp_path, monkeypatch):
    monkeypatch.setattr(toolchain, "HEARTBEAT_SECONDS", 2.0)
    bdir, log = tmp_path / "build", tmp_path / "build" / "build.log"
    bdir.mkdir()
    lines = []
    v = toolchain.verilate([_counter(bdir)], "counter", bdir, log_file=log, progress=lines.append)
    assert not v.cached and not v.recovered
    assert lines[0] == f"building counter with Verilator (about a minute; output in {toolchain.display_path(log)})"
    beats = [line for line in lines if line.startswith("still building counter: ")]
    assert beats, lines          # the counter's build takes well over the 2 s heartbeat
    assert re.fullmatch(r"still building counter: \d+ s; .*", beats[0])
    assert re.fullmatch(r"built counter in \d+ s", lines[-1])

    lines.clear()
    again = toolchain.verilate([_counter(bdir)], "counter", bdir, log_file=log, progress=lines.append)
    assert again.cached and lines == []                        # a cache hit says nothing

    # A truncated object file and no executable (say, after a crash or a full disk): make
    # keeps the object, which is newer than its source, and the link fails on it.
    obj = bdir / "verilated_vpi.o"
    obj.write_bytes(obj.read_bytes()[: obj.stat().st_size // 3])
    (bdir / "counter").unlink()
    lines.clear()
    fixed = toolchain.verilate([_counter(bdir)], "counter", bdir, log_file=log, progress=lines.append)
    assert fixed.recovered and not fixed.cached
    assert any("damaged cache" in line and "truncated" in line for line in lines), lines
    _run_counter(fixed, tmp_path / "run", FSEDP_CYCLES=500)     # the rebuilt simulator works


@pytest.mark.cocotb
def test_trace_window_limits_the_waveform_and_the_clock_sets_its_time_axis(tmp_path):
    bdir = tmp_path / "build"
    bdir.mkdir()
    v = toolchain.verilate([_counter(bdir)], "counter", bdir, waves="vcd", log_file=bdir / "build.log")
    assert v.trace_window
    _run_counter(v, tmp_path / "all", FSEDP_CYCLES=3000, FSEDP_CLOCK_PS=1250)
    _run_counter(v, tmp_path / "window", FSEDP_CYCLES=3000, FSEDP_CLOCK_PS=1250, FSEDP_WAVES_WINDOW="1000,1099")
    t0 = int(re.search(r"cycle 0 at (\d+) ps", (tmp_path / "window" / "sim.log").read_text()).group(1))
    whole, window = tmp_path / "all" / "dump.vcd", tmp_path / "window" / "dump.vcd"
    assert window.stat().st_size * 10 < whole.stat().st_size

    scale, times, values = _vcd(window, "count")
    assert scale == "1ps"
    # Only cycles 1000..1099: cycle n at t0 + n * 1250 ps, when the counter turns n + 1.
    assert times[0] == t0 + 1000 * 1250 and times[-1] == t0 + 1099 * 1250
    assert values[times[0]] == 1001 and values[times[-1]] == 1100
    rising = sorted(t for t in values)
    assert {b - a for a, b in zip(rising, rising[1:])} == {1250}     # one cycle = 1250 ps at 0.8 GHz
    _, all_times, _ = _vcd(whole, "count")
    assert all_times[0] == 0 and all_times[-1] > t0 + 3000 * 1250


@pytest.mark.cocotb
@pytest.mark.slow
def test_system_waves_window_on_2x2(tmp_path):
    """The 2x2 system with VCD tracing (a build of several minutes the first time):
    a window of cycles gives a small waveform whose `cycles` port runs from waves_from
    to waves_to at 1250 ps per cycle, and the run's cycle count is the untraced run's."""
    from sim import rtl
    from sim.workload import prepare

    w = prepare(preset="rtl-2x2", model="tiny-8x2", tokens=16, routing_spec="mixtral:c4", strategy="fse-dp-paired",
                seed=0)
    plain = rtl.run([w])[0].to_json()
    lines = []
    b = rtl.build(w.system, waves="vcd", progress=lines.append)
    assert b.trace_window
    out = tmp_path / "w.vcd"
    traced = rtl.run([w], waves=str(out), waves_from=1000, waves_to=1999, built=b, progress=lines.append)[0]
    assert traced.to_json()["cycles"] == plain["cycles"] and traced.to_json()["bit_exact"] is True
    assert out.stat().st_size < 40e6                             # the whole run: about 200 MB
    header = out.open().readline()
    m = re.match(r"\$comment fsedp: rtl-2x2 at 0.8 GHz .*one cycle = 1250 ps; cycle n of workload 1 "
                 r"\(the `cycles` port\) at t = (\d+) \+ n \* 1250 ps; cycles 1000..1999 traced \$end", header)
    assert m, header
    t0 = int(m.group(1))
    scale, times, values = _vcd(out, "cycles")
    assert scale == "1ps" and times[0] == t0 + 1000 * 1250 and times[-1] == t0 + 1999 * 1250
    assert values[times[0]] == 1000 and values[times[-1]] == 1999
    assert any(line.startswith(f"wrote {out} (") for line in lines)
