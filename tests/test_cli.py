"""The fsedp command line: summaries, JSON, and one-line errors with non-zero exit."""

import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

from sim import cli


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "sim.cli", *args], capture_output=True, text=True)


def test_presets_lists_every_preset():
    out = run_cli("presets")
    assert out.returncode == 0
    for name in ("deepseek-moe-16b", "olmoe-1b-7b", "tiny-8x2", "paper-2x2", "paper-4x4", "rtl-3x3"):
        assert name in out.stdout
    data = json.loads(run_cli("presets", "--json").stdout)
    assert data["hardware"]["paper-2x2"]["macs_per_dram_byte"] == 64


def test_golden_summary_and_json(tmp_path, capsys):
    path = tmp_path / "g.json"
    assert cli.main(["golden", "--tokens", "8", "--json", str(path)]) == 0
    assert "summed = unsliced layer: True" in capsys.readouterr().out
    summary = json.loads(path.read_text())
    assert summary["tokens"] == 8 and sum(summary["tokens_per_expert"]) == 8 * 2
    assert summary["sliced_equals_unsliced"] is True


def test_trace_command_writes_loadable_trace(tmp_path):
    path = tmp_path / "t.jsonl"
    assert cli.main(["trace", "--routing", "zipf:1.0", "-L", "12", "--out", str(path)]) == 0
    out = run_cli("golden", "--routing", str(path), "-L", "12")
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("args,message", [
    (["golden", "--preset", "nope"], "unknown hardware preset 'nope'"),
    (["golden", "--model", "nope"], "unknown model preset 'nope'"),
    (["golden", "--routing", "olmoe:c4"], "has 64 experts, top-8; the model has 8 experts, top-2"),
    (["golden", "--routing", "what"], "unknown routing 'what'"),
    (["golden", "--tokens", "-3"], "must be a positive integer"),
    (["golden", "--slices", "7"], "--slices 7 does not divide the expert FFN size 64"),
    (["golden", "--bogus"], "unrecognized arguments: --bogus"),
    (["golden", "--seed", "-1"], "argument --seed: must be an integer from 0 to 2**63 - 1, not -1"),
    (["golden", "--routing", "zipf:1e6"], "Zipf skew 1e+06 leaves fewer than top-2 experts with a non-zero "
                                          "probability (it underflows); give a skew of at most 1009"),
    (["golden", "--tokens", "10000000"], "--tokens 10000000: rtl-2x2 holds at most 2048 tokens (4 chiplets x 512 "
                                         "token rows)"),
    (["run", "--engine", "fast", "--tokens", "10000000"], "rtl-2x2 holds at most 2048 tokens"),
    (["run", "--engine", "fast", "--slices", "64"], "--slices 64: tiny-8x2 on rtl-2x2 takes an S whose slices are "
                                                    "whole 8-column MAC-array blocks of its FFN size 64 and fit the "
                                                    "header's slice index; allowed: 1, 2, 4, 8"),
    (["golden"], None),
])
def test_bad_input_is_one_line_error_and_nonzero_exit(args, message):
    """Every bad input is exactly one line on standard error, ``fsedp: error: ...``, and
    exit status 2 (argparse's own errors included)."""
    out = run_cli(*args)
    if message is None:            # the control: the same command without the bad input
        assert out.returncode == 0, out.stderr
        return
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("fsedp: error: "), out.stderr
    assert message in out.stderr


def test_help_shows_defaults_and_version_prints(capsys):
    out = run_cli("run", "--help")
    assert out.returncode == 0
    assert "(default: rtl-2x2)" in out.stdout and "(default: fse-dp-paired)" in out.stdout
    assert "weights and tokens (default: 0)" in out.stdout
    assert "``" not in run_cli("--help").stdout
    out = run_cli("--version")
    assert out.returncode == 0 and out.stdout.startswith("fsedp 0.")


def test_default_routing_is_the_models_own_statistics(capsys):
    assert cli.main(["golden", "--model", "tiny-64x8", "--tokens", "8"]) == 0
    assert "routing olmoe:c4" in capsys.readouterr().out
    assert cli.main(["golden", "--tokens", "8"]) == 0
    assert "routing mixtral:c4" in capsys.readouterr().out
    assert cli.main(["golden", "--model", "phi-3.5-moe", "--preset", "paper-2x2", "--tokens", "1"]) == 0
    assert "routing uniform" in capsys.readouterr().out


def test_a_gate_weight_above_one_is_rejected_naming_token_and_line(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"token": 0, "experts": [0, 1], "weights": [0.5, 0.5]}\n'
                    '{"token": 1, "experts": [2, 3], "weights": [1.25, 0.5]}\n')
    out = run_cli("golden", "--routing", str(path), "--tokens", "2")
    assert out.returncode == 2
    assert f"{path}:2: token 1: gate weight 1.25 is above 1.0" in out.stderr and out.stderr.count("\n") == 1


def test_every_output_path_is_checked_before_any_work(tmp_path):
    """One rule: missing parent folders are created; a file path that is a folder, or a
    folder under a file, is an error before anything runs (here the RTL engine, which
    would build first)."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    for flag in ("--json", "--timeline", "--waves"):
        for bad, why in ((tmp_path, "is a folder"), (blocker / "x.vcd", "is a file, not a folder")):
            out = run_cli("run", flag, str(bad))
            assert out.returncode == 2 and why in out.stderr and out.stderr.count("\n") == 1, out.stderr
            assert "building" not in out.stderr
    out = run_cli("compare", "--csv", str(tmp_path))
    assert out.returncode == 2 and "--csv" in out.stderr and "is a folder" in out.stderr
    out = run_cli("verilog", "--out", str(blocker))
    assert out.returncode == 2 and "is a file, not a folder" in out.stderr
    deep = tmp_path / "a" / "b" / "r.json"
    assert cli.main(["run", "--engine", "fast", "--json", str(deep)]) == 0
    assert json.loads(deep.read_text())["engine"] == "fast"


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a running process (Linux ``/proc``)."""
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_ctrl_c_ends_with_one_line_and_status_130():
    import signal
    import time

    # SIGINT at its default in the child: a test run started in the background by a
    # non-interactive shell inherits SIGINT ignored, and Python then never raises
    # KeyboardInterrupt.
    proc = subprocess.Popen([sys.executable, "-m", "sim.cli", "run", "--engine", "fast", "--preset", "paper-4x4",
                             "--model", "mixtral-8x7b", "--tokens", "1024"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    # Interrupt once the run has used 4 s of CPU (well past its imports, into the
    # simulation), however loaded the machine is; a wall-clock wait was too short under load.
    deadline = time.monotonic() + 300
    while proc.poll() is None and _cpu_seconds(proc.pid) < 4 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and err == "fsedp: interrupted\n"


def test_asm_of_a_binary_file_names_the_file(tmp_path):
    prog = tmp_path / "l.fsedp"
    assert cli.main(["programs", "--out", str(prog)]) == 0
    out = run_cli("asm", str(prog), "--out", str(tmp_path / "x.fsedp"))
    assert out.returncode == 2 and f"{prog}: not program text (not UTF-8)" in out.stderr


def test_programs_disasm_asm_round_trip(tmp_path):
    prog, text, again = tmp_path / "l.fsedp", tmp_path / "l.s", tmp_path / "l2.fsedp"
    assert cli.main(["programs", "--strategy", "hydra", "--out", str(prog)]) == 0
    out = run_cli("disasm", str(prog))
    assert out.returncode == 0 and ".controller 0" in out.stdout and "STREAM kind=WEIGHT" in out.stdout
    text.write_text(out.stdout)
    assert cli.main(["asm", str(text), "--out", str(again)]) == 0
    assert again.read_bytes() == prog.read_bytes()


def test_disasm_of_a_bad_file_is_one_line_error(tmp_path):
    bad = tmp_path / "x.fsedp"
    bad.write_bytes(b"junk")
    out = run_cli("disasm", str(bad))
    assert out.returncode == 2 and "bad magic" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize("args,message", [
    (["run", "--strategy", "nope"], "invalid choice: 'nope'"),
    (["run", "--preset", "rtl-9x9"], "unknown hardware preset 'rtl-9x9'"),
    (["compare", "--routing", "olmoe:c4"], "has 64 experts, top-8; the model has 8 experts, top-2"),
    (["run", "--model", "mixtral-8x7b"], "hidden size d 4096 exceeds the token rows' 32 bytes"),
    (["run", "--waves", "x.png"], "must end in .vcd or .fst"),
    (["compare", "--waves", "x.vcd"], "unrecognized arguments: --waves"),
    (["run", "--engine", "spice"], "invalid choice: 'spice'"),
    (["run", "--tokens", "0"], "must be a positive integer"),
    (["run", "--sram", "1000"], "a weight buffer of 1000 bytes is not a whole number of the rtl-2x2 weight words"),
    (["run", "--sram", "8 MB"], "is not a memory size"),
    (["run", "--sram", "512", "--engine", "fast"], "fse-dp-paired does not fit: it needs at least 2 slot(s)"),
    (["run", "--strategy", "ep", "--layout", "contiguous"], "--layout does not apply to ep"),
    (["run", "--strategy", "ep-whole", "--slices", "4"], "--slices does not apply to ep-whole"),
])
def test_run_and_compare_reject_bad_input_before_simulating(args, message):
    out = run_cli(*args)
    assert out.returncode == 2, out.stderr
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("fsedp: error: "), out.stderr
    assert message in out.stderr


RUN_FIELDS = {"strategy", "engine", "cycles", "time_us", "bit_exact", "peak_onchip_bytes", "dram_bytes",
              "d2d_bytes", "compute_utilization", "link_utilization", "slots_in_use_at_end", "config",
              "provisioned_sram_bytes", "provisioned_weight_bytes", "provisioned_token_bytes", "plan_weight_bytes",
              "slices", "slots", "slot_bytes"}


@pytest.mark.cocotb
def test_compare_runs_every_strategy_and_writes_json_and_csv(tmp_path):
    js, csv_path, one = tmp_path / "c.json", tmp_path / "c.csv", tmp_path / "r.json"
    out = run_cli("compare", "--tokens", "8", "--json", str(js), "--csv", str(csv_path))
    assert out.returncode == 0, out.stderr
    assert "fse-dp-paired" in out.stdout and "bit-exact" in out.stdout
    data = json.loads(js.read_text())
    assert [r["strategy"] for r in data["runs"]] == ["fse-dp", "fse-dp-paired", "ep", "hydra", "ep-whole",
                                                     "ep-paper"]
    assert data["not_run"] == []
    assert data["all_bit_exact"] is True
    for r in data["runs"]:
        assert RUN_FIELDS <= set(r)
        assert len(r["peak_onchip_bytes"]) == 4 and r["cycles"] > 0 and r["engine"] == "rtl"
        assert r["config"]["preset"] == "rtl-2x2" and r["config"]["tokens"] == 8
    ep = next(s for s in data["summary"] if s["strategy"] == "ep")
    paired = next(s for s in data["summary"] if s["strategy"] == "fse-dp-paired")
    assert ep["speedup_vs_ep"] == 1.0
    assert paired["speedup_vs_ep"] == ep["cycles"] / paired["cycles"]
    assert csv_path.read_text().splitlines()[0].startswith("strategy,slices,slots,cycles,bit_exact,speedup_vs_ep")
    for r in data["runs"]:
        assert r["provisioned_sram_bytes"] == r["provisioned_weight_bytes"] + r["provisioned_token_bytes"]
        assert r["provisioned_weight_bytes"] == 12 * 1024 and r["plan_weight_bytes"] <= 12 * 1024
        assert max(r["peak_slot_bytes"]) <= r["plan_weight_bytes"]
    # `run` of one strategy on the same build gives the same cycles as in compare.
    assert cli.main(["run", "--tokens", "8", "--strategy", "hydra", "--json", str(one)]) == 0
    hydra = json.loads(one.read_text())
    assert hydra["cycles"] == next(r["cycles"] for r in data["runs"] if r["strategy"] == "hydra")


def test_compare_names_each_strategy_that_does_not_fit_and_runs_the_rest(tmp_path):
    js = tmp_path / "c.json"
    out = run_cli("compare", "--engine", "fast", "--preset", "paper-2x2", "--model", "mixtral-8x7b", "--tokens",
                  "16", "--sram", "8MiB", "--json", str(js))
    assert out.returncode == 0, out.stderr
    data = json.loads(js.read_text())
    ran = [r["strategy"] for r in data["runs"]]
    assert ran == ["fse-dp", "fse-dp-paired", "ep", "hydra"]
    assert [(s["strategy"], s["fits"]) for s in data["not_run"]] == [("ep-whole", False), ("ep-paper", False)]
    assert "ep-whole does not fit: it needs a slot of one whole expert (168 MiB); the weight buffer holds 8 MiB" \
        in out.stdout
    for r in data["runs"]:
        assert r["provisioned_weight_bytes"] == 8 << 20 and r["slices"] == 224 and r["slots"] == 10
        assert max(r["peak_slot_bytes"]) <= r["plan_weight_bytes"] <= 8 << 20
    # an option a strategy does not take: the strategy is listed as not run, with the reason
    out = run_cli("compare", "--engine", "fast", "--slices", "4", "--json", str(js))
    assert out.returncode == 0, out.stderr
    data = json.loads(js.read_text())
    assert [(s["strategy"], s["fits"]) for s in data["not_run"]] == [("ep-whole", None), ("ep-paper", None)]
    assert all(r["slices"] == 4 for r in data["runs"])


def test_verilog_of_the_whole_system_instantiates_the_tile_once_per_chiplet(tmp_path):
    assert cli.main(["verilog", "--top", "system", "--out", str(tmp_path)]) == 0
    system = (tmp_path / "system.v").read_text()
    assert "module tile(" in (tmp_path / "tile.v").read_text()
    assert [f"tile tile{i} (" in system for i in range(4)] == [True] * 4 and "module tile(" not in system


def test_fast_engine_run_writes_a_perfetto_timeline(tmp_path):
    path, js = tmp_path / "t.json", tmp_path / "r.json"
    assert cli.main(["run", "--engine", "fast", "--timeline", str(path), "--json", str(js)]) == 0
    trace = json.loads(path.read_text())
    spans = [e for e in trace["traceEvents"] if e.get("ph") == "X"]
    assert spans and all(e["dur"] >= 0 for e in spans)
    run = json.loads(js.read_text())
    assert run["engine"] == "fast" and run["bit_exact"] is None and run["cycles"] > 0
    # Every span lies within the run.
    assert max(e["ts"] + e["dur"] for e in spans) <= run["time_us"] + 1e-6


@pytest.mark.cocotb
def test_readme_shows_the_default_compare_as_measured(tmp_path):
    """`make run`'s table in the README is what the default compare prints now."""
    import pathlib

    out = run_cli("compare", "--json", str(tmp_path / "c.json"))
    assert out.returncode == 0, out.stderr
    readme = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = readme.split("`results/compare.csv`:\n\n```\n", 1)[1].split("```", 1)[0]
    assert block.strip().splitlines() == out.stdout.strip().splitlines()


@pytest.mark.cocotb
def test_run_executes_an_edited_program_file_with_the_golden_check(tmp_path):
    """programs -> disasm -> edit -> asm -> run --programs: the unedited file runs
    bit-exact with the plan's cycles; an edit that changes a gate weight runs and is
    caught by the golden check (exit 2); a file for another configuration is refused
    before anything runs."""
    prog, text, edited, js = (tmp_path / n for n in ("p.fsedp", "p.s", "e.fsedp", "r.json"))
    flags = ["--strategy", "fse-dp", "--tokens", "8"]
    assert cli.main(["programs", *flags, "--out", str(prog)]) == 0
    out = run_cli("run", *flags, "--programs", str(prog), "--json", str(js))
    assert out.returncode == 0, out.stderr
    assert json.loads(js.read_text())["bit_exact"] is True
    lines = run_cli("disasm", str(prog)).stdout.splitlines()
    i = next(i for i, line in enumerate(lines) if line.startswith("ENTRY"))
    row, gate = lines[i].split("gate=")
    lines[i] = f"{row}gate={(int(gate) + 17) % 256}"
    text.write_text("\n".join(lines) + "\n")
    assert cli.main(["asm", str(text), "--out", str(edited)]) == 0
    out = run_cli("run", *flags, "--programs", str(edited))
    assert out.returncode == 2 and "outputs differ from the golden model" in out.stderr
    assert "bit-exact: False" in out.stdout
    out = run_cli("run", *flags, "--preset", "rtl-3x3", "--programs", str(prog))
    assert out.returncode == 2 and "one .controller section for each of the 9 chiplets" in out.stderr
    assert "building" not in out.stderr


@pytest.mark.cocotb
def test_an_error_in_the_hardware_ends_the_run_with_one_line(tmp_path):
    """A program edited to drop one EXPERT entry of chiplet 1: the first slice of that
    expert to arrive there is UNKNOWN_EXPERT, the system stops at once, and the run ends
    with one line naming chiplet, unit, error and cycle, and status 2 (no result)."""
    prog, text, edited = (tmp_path / n for n in ("p.fsedp", "p.s", "e.fsedp"))
    flags = ["--strategy", "fse-dp", "--tokens", "8"]
    assert cli.main(["programs", *flags, "--out", str(prog)]) == 0
    lines = run_cli("disasm", str(prog)).stdout.splitlines()
    section = lines.index(next(line for line in lines if line.startswith(".controller 1")))
    drop = next(i for i in range(section, len(lines)) if lines[i].startswith("EXPERT"))
    text.write_text("\n".join(lines[:drop] + lines[drop + 1:]) + "\n")
    assert cli.main(["asm", str(text), "--out", str(edited)]) == 0
    out = run_cli("run", *flags, "--programs", str(edited))
    assert out.returncode == 2 and out.stdout == "", out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert re.fullmatch(r"fsedp: error: chiplet 1 controller: UNKNOWN_EXPERT at cycle \d+ \(an arrival for an "
                        r"expert without a valid EXPERT entry\)", last), out.stderr
