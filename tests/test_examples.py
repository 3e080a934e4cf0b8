"""The scripts in ``examples/`` run, print their tables, write their files, and print
numbers that an independent computation through the ``fsedp`` API reproduces."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

import fsedp

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
MiB, KiB = 1 << 20, 1 << 10


def run_example(name: str, *args, timeout: float = 300) -> str:
    """Run ``examples/<name>`` as a user would; its standard output (fails on exit != 0)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    proc = subprocess.run([sys.executable, str(EXAMPLES / name), *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{name} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def table_rows(out: str) -> dict:
    """The rows of a ``compare_table`` in ``out``: strategy -> list of its cells."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:4] == ["strategy", "S", "slots", "cycles"])
    rows = {}
    for line in lines[start + 1:]:
        cells = line.split()
        if not cells or cells[0] not in fsedp.STRATEGIES:
            break
        rows[cells[0]] = cells
    return rows


def test_custom_chiplet(tmp_path):
    out = run_example("custom_chiplet.py", "--out", tmp_path)
    # The description file loads back as the hardware the script describes.
    hw = fsedp.hardware(tmp_path / "my-2x2.toml")
    base = fsedp.hardware("paper-2x2")
    assert (hw.rows, hw.cols, hw.mac_rows, hw.mac_cols) == (2, 2, 64, 64)
    assert hw.weight_sram_bytes == 4 * MiB
    assert hw.link_bytes_per_cycle == 2 * base.link_bytes_per_cycle
    assert (hw.dram_bytes_per_cycle, hw.token_rows) == (base.dram_bytes_per_cycle, base.token_rows)
    assert "loaded back equal: True" in out
    # Its table: the four strategies that fit ran; the two whole-expert ones are listed with reasons.
    rows = table_rows(out)
    assert set(rows) == {"fse-dp", "fse-dp-paired", "ep", "hydra"}
    model = fsedp.model("olmoe-1b-7b")
    trace = fsedp.routing("olmoe:c4", model, tokens=64)
    for s in ("ep-whole", "ep-paper"):
        with pytest.raises(fsedp.FitError) as exc:
            fsedp.prepare(hw, model, trace, s)
        assert f"not run: {s}: {exc.value}" in out
    # One number, recomputed: the cycles of hydra on the loaded hardware.
    assert int(rows["hydra"][3]) == fsedp.run(fsedp.prepare(hw, model, trace, "hydra")).cycles


def test_routing_from_logits(tmp_path):
    out = run_example("routing_from_logits.py", "--out", tmp_path)
    model = fsedp.model("olmoe-1b-7b")
    # The JSONL trace has every token of the logits, and is what from_logits makes of them.
    logits = np.load(tmp_path / "logits.npy")
    assert logits.shape == (64, model.num_experts)
    trace = fsedp.load_trace(tmp_path / "routing.jsonl", model.num_experts)
    assert (trace.num_tokens, trace.top_k) == (64, model.top_k)
    assert trace == fsedp.from_logits(logits, model.top_k)
    # `fsedp run --routing FILE.jsonl` reads it through the same routing spec.
    assert fsedp.routing(str(tmp_path / "routing.jsonl"), model, tokens=64) == trace
    # Tokens per expert as printed.
    lines = out.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("tokens per expert"))
    cells = " ".join(lines[head + 1:head + 1 + model.num_experts // 16])
    printed = {int(e): int(n) for e, n in re.findall(r"(\d+):\s*(\d+)", cells)}
    assert printed == dict(enumerate(trace.tokens_per_expert(model.num_experts).tolist()))
    # The skew of the stand-in logits makes some experts far busier than the mean.
    assert max(printed.values()) > 2 * model.top_k
    # One number, recomputed: the cycles of EP on the trace read back from the file.
    row = next(line.split() for line in out.splitlines() if line.split()[:1] == ["ep"])
    assert int(row[3]) == fsedp.run(fsedp.prepare("paper-2x2", model, trace, "ep")).cycles
    assert any(line.split()[:1] == ["fse-dp-paired"] for line in out.splitlines())


def test_routing_from_logits_rejects_wrong_expert_count(tmp_path):
    np.save(tmp_path / "wrong.npy", np.zeros((4, 8), dtype=np.float32))
    proc = subprocess.run([sys.executable, str(EXAMPLES / "routing_from_logits.py"), "--out", str(tmp_path),
                           "--logits", str(tmp_path / "wrong.npy")], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert "olmoe-1b-7b needs L x 64" in proc.stderr


def test_sweep_sram(tmp_path):
    out = run_example("sweep_sram.py", "--out", tmp_path)
    png = tmp_path / "sweep_sram.png"
    assert png.stat().st_size > 1000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The table: one row per size; 0.5 MiB does not fit any strategy, and says why.
    lines = out.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("SRAM MiB"))
    table = {float(line.split()[0]): line.split()[1:4] for line in lines[head + 1:head + 7]}
    assert sorted(table) == [0.5, 1, 2, 4, 8, 16]
    assert table[0.5] == ["-", "-", "-"]
    assert all(c.isdigit() for size in (1, 2, 4, 8, 16) for c in table[size])
    for s in ("fse-dp-paired", "ep", "hydra"):
        assert f"512 KiB: {s} not run: {s} does not fit" in out
    csv = (tmp_path / "sweep_sram.csv").read_text().splitlines()
    assert csv[0] == "sram_mib,fse-dp-paired,ep,hydra" and csv[2].split(",")[1:] == table[1]
    # One number, recomputed: hydra at 1 MiB.
    model = fsedp.model("olmoe-1b-7b")
    trace = fsedp.routing("olmoe:c4", model, tokens=64)
    work = fsedp.prepare("paper-2x2", model, trace, "hydra", sram="1MiB")
    assert int(table[1][2]) == fsedp.run(work).cycles


@pytest.mark.slow
@pytest.mark.cocotb
def test_custom_chiplet_rtl(tmp_path):
    out = run_example("custom_chiplet.py", "--engine", "rtl", "--out", tmp_path, timeout=1800)
    hw = fsedp.hardware(tmp_path / "my-rtl-2x2.toml")
    assert hw.rtl and hw.weight_sram_bytes == 8 * KiB
    rows = table_rows(out)
    assert set(rows) == {"fse-dp", "fse-dp-paired", "ep", "hydra", "ep-whole"}
    assert all(cells[-1] == "yes" for cells in rows.values())      # bit-exact against the golden model
    assert "not run: ep-paper: ep-paper does not fit" in out
