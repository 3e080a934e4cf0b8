"""System runs under Icarus Verilog as well as Verilator (docs/system.md, "A second
simulator"): the Verilog rewrite Icarus needs, the flags, and in the slow set the default
compare under both simulators with equal cycles, counters and outputs."""

import json
import re
import shutil
import subprocess
import sys

import pytest

from hw.dram import DramChannel
from hw.system import SystemConfig
from scheduler import presets
from sim import cli, rtl
from sim.rtl import toolchain


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "sim.cli", *args], capture_output=True, text=True)


def test_single_statement_always_blocks_become_always_comb():
    """Only Yosys's single-statement ``always @*`` blocks (no time-0 kick) are rewritten,
    for Icarus only; among them the DRAM channel's header ``src`` copy of ``chiplet_id``."""
    config = SystemConfig.from_preset(presets.get_hardware("rtl-2x2"))
    text = toolchain.to_verilog(DramChannel.from_config(config), "dram")
    assert toolchain.for_simulator(text, "verilator") == text
    out = toolchain.for_simulator(text, "icarus")
    single = re.findall(r"always @\*\n\s+(?!begin\b)([^\n]*);", text)
    assert "req_new[15:8] = chiplet_id" in single
    assert re.findall(r"always_comb\n\s+([^\n]*);", out) == single
    assert "always @*\n" not in out.replace("always @* begin", "")     # every other block is left alone
    assert out.count("always @* begin") == text.count("always @* begin") > 0


def test_flags(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["compare", "--engine", "fast", "--sim", "icarus"])
    assert exc.value.code == 2
    assert "--sim icarus picks the RTL engine's simulator; give --engine rtl too" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        cli.main(["run", "--sim", "icarus", "--waves", "w.vcd"])
    assert exc.value.code == 2
    assert "waveforms are recorded with Verilator only" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown simulator 'ghdl'"):
        rtl.build(SystemConfig.from_preset(presets.get_hardware("rtl-2x2")), sim="ghdl")


@pytest.mark.slow
@pytest.mark.cocotb
def test_default_compare_under_icarus_equals_verilator(tmp_path):
    """The README's default compare under Icarus: every strategy bit-exact, with the
    cycles and every counter of the Verilator run."""
    assert shutil.which("iverilog"), "Icarus Verilog is not installed (make test-all installs it)"
    docs = {}
    for sim in ("verilator", "icarus"):
        out = run_cli("compare", "--sim", sim, "--json", str(tmp_path / f"{sim}.json"))
        assert out.returncode == 0, out.stderr
        docs[sim] = json.loads((tmp_path / f"{sim}.json").read_text())
    wall = ("wall_seconds", "run_wall_seconds")
    runs = {sim: [{k: v for k, v in r.items() if k not in wall} for r in d["runs"]] for sim, d in docs.items()}
    assert [r["strategy"] for r in runs["icarus"]] == [r["strategy"] for r in runs["verilator"]]
    assert all(r["bit_exact"] is True for r in runs["icarus"])
    assert runs["icarus"] == runs["verilator"]
