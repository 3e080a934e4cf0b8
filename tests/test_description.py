"""Hardware and model description files (TOML): round trips of every preset, defaults,
field-by-field one-line errors, the documented field table, and the CLI and grid using a
file wherever a preset name is accepted."""

import dataclasses
import json
import pathlib
import subprocess
import sys

import pytest

from scheduler import description, presets
from sim import cli

DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs" / "description_files.md"

MINIMAL = """
name = "my-chiplet"
[mesh]
rows = 2
cols = 2
[clock]
ghz = 1.0
[mac_array]
rows = 8
cols = 8
[sram]
weight_bytes = "12KiB"
token_rows = 512
d_max = 32
[dram]
gbps = 2.0
latency = 16
[d2d]
bytes_per_cycle = 1.40625
latency = 2
buffer_depth = 4
"""


def _write(tmp_path, text, name="hw.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", list(presets.HARDWARE_PRESETS))
def test_every_hardware_preset_round_trips(tmp_path, name):
    hw = presets.HARDWARE_PRESETS[name]
    path = _write(tmp_path, description.dump_hardware(hw))
    assert description.load_hardware(path) == hw
    assert presets.get_hardware(str(path)) == hw


@pytest.mark.parametrize("name", list(presets.MODEL_PRESETS))
def test_every_model_preset_round_trips(tmp_path, name):
    m = presets.MODEL_PRESETS[name]
    assert description.load_model(_write(tmp_path, description.dump_model(m), "m.toml")) == m


def test_a_minimal_file_takes_the_documented_defaults_and_converts_gbps(tmp_path):
    hw = description.load_hardware(_write(tmp_path, MINIMAL))
    defaults = {f.name: f.default for f in dataclasses.fields(presets.HardwarePreset)
                if f.default is not dataclasses.MISSING}
    assert hw.dram_bytes_per_cycle == 2.0          # 2 GB/s at 1 GHz
    assert hw.weight_sram_bytes == 12 * 1024
    assert hw.dram_chiplets == (0, 1, 3, 2)        # the corners
    for attr in ("slot_target", "max_slots", "table_entries", "program_words", "dram_program_words",
                 "dram_channel_bytes", "rtl"):
        assert getattr(hw, attr) == defaults[attr], attr
    assert hw.source.startswith("description file ")


@pytest.mark.parametrize("edit,message", [
    (("[mesh]\nrows = 2", "[mesh]\nrows = 0"), "[mesh] rows must be a positive integer (chiplets), not 0"),
    (("rows = 8\ncols = 8", "rows = 8\ncols = 8.0"), "[mac_array] cols must be a positive integer (MACs), not 8.0"),
    (("latency = 16", "latency = -1"), "[dram] latency must be a non-negative integer (cycles), not -1"),
    (('weight_bytes = "12KiB"', 'weight_bytes = "12 MB"'), "[sram] weight_bytes must be a positive number of bytes"),
    (("[d2d]", "[d2d]\nwidth = 3"), "unknown key 'width' in [d2d] of a hardware description; allowed: "
                                     "bytes_per_cycle, latency, buffer_depth, gbps"),
    (("[clock]", "[power]\nwatts = 3\n[clock]"), "unknown section [power] in a hardware description"),
    (("[mesh]\nrows = 2\n", "[mesh]\n"), "missing [mesh] rows (required in a hardware description"),
    (("gbps = 2.0", "gbps = 2.0\nbytes_per_cycle = 2.0"), "[dram] gives both bytes_per_cycle and gbps"),
    (("[dram]", "[dram]\nchiplets = [0, 0]"), "[dram] chiplets lists a chiplet twice"),
    (("[dram]", "[dram]\nchiplets = [7]"), "DRAM chiplet 7 is outside 0..3"),
    (("[d2d]", "[slots]\nmax = 1\n[d2d]"), "max_slots must be at least 2 (rule R6)"),
    (('weight_bytes = "12KiB"', "weight_bytes = 1000"), "weight_sram_bytes 1000 is not a whole number of "
                                                         "64-byte weight words"),
    (("name = ", "name = = "), "not valid TOML"),
])
def test_a_bad_field_is_one_line_error_naming_file_and_field(tmp_path, edit, message):
    old, new = edit
    assert old in MINIMAL
    path = _write(tmp_path, MINIMAL.replace(old, new, 1))
    with pytest.raises(description.DescriptionError) as info:
        description.load_hardware(path)
    text = str(info.value)
    assert text.startswith(f"{path}: ") and message in text and "\n" not in text


def test_files_that_cannot_be_read(tmp_path):
    with pytest.raises(description.DescriptionError, match="no such description file"):
        description.load_hardware(tmp_path / "nope.toml")
    binary = tmp_path / "b.toml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(description.DescriptionError, match="not UTF-8"):
        description.load_model(binary)
    with pytest.raises(description.DescriptionError, match="unknown key 'experts'"):
        description.load_model(_write(tmp_path, 'name = "m"\nexperts = 8\n', "m.toml"))


def test_the_docs_list_every_field_as_the_format_defines_it():
    text = DOCS.read_text()
    assert description.field_table(description.HARDWARE_FIELDS, presets.HardwarePreset) in text
    assert description.field_table(description.MODEL_FIELDS, presets.ModelPreset) in text


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "sim.cli", *args], capture_output=True, text=True)


def test_compare_on_an_exported_file_equals_the_preset_and_an_edit_changes_the_result(tmp_path):
    path = tmp_path / "mine.toml"
    assert cli.main(["presets", "--export", "paper-2x2", "--out", str(path)]) == 0
    common = ["compare", "--engine", "fast", "--model", "olmoe-1b-7b", "--tokens", "32"]
    a, b, c = (tmp_path / f"{x}.json" for x in "abc")
    assert cli.main(common + ["--preset", "paper-2x2", "--json", str(a)]) == 0
    assert cli.main(common + ["--hardware", str(path), "--json", str(b)]) == 0
    cycles = lambda p: [r["cycles"] for r in json.loads(p.read_text())["runs"]]   # noqa: E731
    assert cycles(a) == cycles(b)
    # a slower D2D link in the file is what the run uses
    path.write_text(path.read_text().replace("bytes_per_cycle = 360.0", "bytes_per_cycle = 9.0"))
    assert cli.main(common + ["--hardware", str(path), "--json", str(c)]) == 0
    assert cycles(c)[0] > cycles(a)[0]                   # fse-dp: every slice crosses the links
    assert json.loads(c.read_text())["runs"][0]["config"]["preset"] == str(path)


def test_a_model_file_runs_and_grid_takes_description_files(tmp_path):
    hw, model = tmp_path / "hw.toml", tmp_path / "m.toml"
    hw.write_text(description.dump_hardware(presets.get_hardware("rtl-2x2")))
    model.write_text(description.dump_model(dataclasses.replace(presets.get_model("tiny-8x2"), name="mine",
                                                                d_ff=128, slices=8)))
    out = run_cli("run", "--engine", "fast", "--hardware", str(hw), "--model", str(model))
    assert out.returncode == 0, out.stderr
    assert "fse-dp-paired:" in out.stdout
    grid = tmp_path / "grid"
    out = run_cli("grid", "--out", str(grid), "--presets", str(hw), "--models", f"tiny-8x2,{model}",
                  "--tokens", "8", "--routing", "uniform", "--sram", "preset", "--jobs", "1")
    assert out.returncode == 0, out.stderr
    names = sorted(p.name for p in grid.glob("*.json") if p.name != "index.json")
    assert names == ["hw__m__uniform__L8__preset.json", "hw__tiny-8x2__uniform__L8__preset.json"]


@pytest.mark.parametrize("args,message", [
    (["run", "--preset", "paper-2x2", "--hardware", "x.toml"], "give --preset or --hardware, not both"),
    (["run", "--hardware", "missing.toml"], "missing.toml: no such description file"),
    (["run", "--model", "missing.toml"], "missing.toml: no such description file"),
    (["presets", "--export", "nope"], "--export: unknown preset 'nope'"),
    (["grid", "--out", "/tmp/fsedp-unused", "--presets", "missing.toml"], "missing.toml: no such description file"),
])
def test_bad_description_arguments_are_one_line_errors(args, message):
    out = run_cli(*args)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and message in out.stderr, out.stderr
