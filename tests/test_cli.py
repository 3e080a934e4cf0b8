"""The fsedp command line: summaries, JSON, and one-line errors with non-zero exit."""

import json
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
])
def test_bad_input_is_one_line_error_and_nonzero_exit(args, message):
    out = run_cli(*args)
    assert out.returncode == 2
    last = out.stderr.strip().splitlines()[-1]
    assert message in last and "Traceback" not in out.stderr


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
