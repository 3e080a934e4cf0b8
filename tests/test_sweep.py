"""fsedp sweep: a LocalCluster gives the serial results, a killed worker's point is rerun,
an interrupted sweep resumes from its cache (a corrupt cache file is recomputed), every
bad flag and sweep-file field is one line and exit 2, and the heatmap CSVs hold the
ratios of the measured cycles in points.jsonl.  Small: rtl-2x2, tiny-8x2, fast engine."""

import csv
import io
import json

import pytest

from sim import cli
from sim.eval import grid, heatmaps, sweep

#: 2 D2D x 2 DRAM bandwidths x 2 budgets: at 1 KiB nothing fits (one 768 B slice of
#: tiny-8x2 per chiplet, FSE-DP needs two); at 12 KiB every strategy fits.
TINY = {"presets": "rtl-2x2", "models": "tiny-8x2", "tokens": "16", "d2d": "x0.5,x1", "dram": "x1,x2",
        "sram": "1KiB,12KiB"}
WALL = ("seconds", "wall_seconds", "run_wall_seconds")


def run(out, jobs=1, **axes):
    spec = sweep.SweepSpec(out=out, definition=sweep.definition(TINY | axes), jobs=jobs)
    return sweep.run_sweep(spec, log=io.StringIO())


def measured(value):
    """A record without its wall times (everything else is simulated, so deterministic)."""
    if isinstance(value, dict):
        return {k: measured(v) for k, v in value.items() if k not in WALL}
    if isinstance(value, list):
        return [measured(v) for v in value]
    return value


def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    out = tmp_path_factory.mktemp("serial")
    return out, run(out)


def test_the_serial_sweep_measures_every_point(serial):
    out, summary = serial
    assert (summary["points"], summary["computed"], summary["cached"]) == (8, 8, 0)
    records = summary["records"]
    assert [measured(r) for r in lines(out / "points.jsonl")] == [measured(r) for r in records]
    d2d = sorted({r["point"]["d2d_bytes_per_cycle"] for r in records})
    assert d2d == [5.625, 11.25]          # x0.5 and x1 of rtl-2x2's 11.25 B/cycle
    for r in records:
        ran = {x["strategy"]: x["cycles"] for x in r["runs"]}
        if r["point"]["sram"] == 1024:
            assert ran == {} and {s["strategy"]: s["fits"] for s in r["not_run"]} == dict.fromkeys(
                ["fse-dp-paired", "ep", "hydra", "ep-paper"], False)
        else:
            assert set(ran) == {"fse-dp-paired", "ep", "hydra", "ep-paper"}
            assert all(c >= r["point"]["bound"]["cycles"] for c in ran.values())
    with open(out / "points.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8 * 4
    assert {r["status"] for r in rows} == {"ran", "does not fit"}


def test_a_local_cluster_of_two_workers_gives_the_serial_results(serial, tmp_path):
    _, expected = serial
    summary = run(tmp_path / "cluster", jobs=2)
    assert summary["computed"] == 8
    assert [r["key"] for r in summary["records"]] == [r["key"] for r in expected["records"]]
    assert [measured(r) for r in summary["records"]] == [measured(r) for r in expected["records"]]


def test_a_killed_workers_point_is_rerun(serial, tmp_path, monkeypatch):
    _, expected = serial
    marker = tmp_path / "crash-once"
    marker.touch()
    monkeypatch.setenv(sweep.CRASH_ONCE, str(marker))
    assert run(tmp_path / "here", d2d="x1", dram="x1", sram="12KiB")["computed"] == 1
    assert marker.exists()                # only a task on a Dask worker reads the hook
    summary = run(tmp_path / "cluster", jobs=2)
    assert not marker.exists()            # a worker took the marker and ended its process
    assert [measured(r) for r in summary["records"]] == [measured(r) for r in expected["records"]]


def test_a_sweep_resumes_from_its_cache_and_recomputes_a_corrupt_file(serial, tmp_path, monkeypatch):
    _, expected = serial
    out = tmp_path / "s"
    first = run(out)
    keys = [r["key"] for r in first["records"]]
    cache = out / "cache"
    for k in keys[1], keys[5]:
        (cache / f"{k}.json").unlink()
    text = (cache / f"{keys[6]}.json").read_text()
    (cache / f"{keys[6]}.json").write_text(text[:len(text) // 2])       # a partly written file
    (out / "points.jsonl").write_text("".join(f"{json.dumps(r)}\n" for r in first["records"][:3]))
    computed = []
    run_point = grid.run_point
    monkeypatch.setattr(grid, "run_point", lambda point, *a: computed.append(point) or run_point(point, *a))
    second = run(out)
    assert (second["cached"], second["computed"]) == (5, 3)
    assert [grid.where(p) for p in computed] == [
        f"{r['point']['preset']} tiny-8x2 real:c4 L=16 {r['point']['sram_label']}"
        for r in (first["records"][i] for i in (1, 5, 6))]
    assert [measured(r) for r in lines(out / "points.jsonl")] == [measured(r) for r in expected["records"]]
    untouched = [i for i in range(8) if i not in (1, 5, 6)]
    assert [second["records"][i] for i in untouched] == [first["records"][i] for i in untouched]  # read, not rerun
    assert run(out)["computed"] == 0 and len(computed) == 3


def test_the_key_covers_the_configuration_and_the_code(tmp_path, monkeypatch):
    points = list(sweep.sweep_points(sweep.definition(TINY), tmp_path).values())
    keys = {sweep.point_key(p) for p in points}
    assert len(keys) == 8
    again = {sweep.point_key(p) for p in sweep.sweep_points(sweep.definition(TINY), tmp_path).values()}
    assert again == keys
    config = sweep.point_config(points[0])
    assert config["hardware"]["[d2d] bytes_per_cycle"] == 5.625 and config["model"] == "tiny-8x2"
    assert config["code"] == sweep.code_version() and len(config["code"]) == 64
    monkeypatch.setattr(sweep, "code_version", lambda: "0" * 64)
    assert sweep.point_key(points[0]) not in keys


def test_the_default_sweep_is_two_planes_around_the_preset(tmp_path):
    points = sweep.sweep_points(sweep.definition(sweep.DEFAULT_SWEEP), tmp_path).values()
    coords = {(p.point.preset.link_bytes_per_cycle, round(p.point.preset.dram_bytes_per_cycle, 6), p.point.sram)
              for p in points}
    assert len(coords) == len(points) == 4 * 4 + 3 * 4          # the planes share the preset D2D at 'paper'
    assert {c[0] for c in coords} == {90.0, 180.0, 360.0, 720.0}
    assert {c[1] for c in coords} == {16.0, 32.0, 64.0, 128.0}
    assert {c[2] for c in coords if c[0] == 360.0} == {1 << 20, 2 << 20, 8 << 20, "paper"}
    assert {p.point.model for p in points} == {"mixtral-8x7b"} and {p.point.spec for p in points} == {"mixtral:c4"}


def test_a_sweep_file_gives_the_points_of_the_same_flags(tmp_path):
    spec = tmp_path / "s.toml"
    spec.write_text('presets = "rtl-2x2"\nmodels = ["tiny-8x2"]\ntokens = 16\ndram = ["x1", "x2"]\n'
                    '[[block]]\nd2d = ["x0.5", 11.25]\nsram = ["1KiB", 12288]\n')
    from_file = sweep.sweep_points(sweep.definition(sweep.read_spec(spec), str(spec)), tmp_path)
    assert list(from_file) == list(sweep.sweep_points(sweep.definition(TINY), tmp_path))


def test_grid_on_a_local_cluster_writes_the_serial_grid(tmp_path, capsys):
    args = ["grid", "--presets", "rtl-2x2", "--models", "tiny-8x2", "--tokens", "8,16", "--sram", "6KiB,12KiB"]
    for jobs in ("1", "2"):
        assert cli.main(args + ["--out", str(tmp_path / jobs), "--jobs", jobs]) == 0
    assert "on 2 Dask worker processes" in capsys.readouterr().err
    names = sorted(p.name for p in (tmp_path / "1").glob("rtl-2x2__*.json"))
    assert len(names) == 4
    for name in names:
        one, two = (json.loads((tmp_path / j / name).read_text()) for j in ("1", "2"))
        assert measured(two) == measured(one)


# ----------------------------------------------------------------------------- errors

BAD_FLAGS = [
    (["--d2d", "fast"], "--d2d: 'fast' is not a bandwidth; give bytes per cycle"),
    (["--d2d", "0"], "d2d 0: hardware 'paper-2x2+d2d=0': link_bytes_per_cycle must be a positive number, not 0.0"),
    (["--dram", "x-1"], "dram x-1: hardware 'paper-2x2+dram=-32': dram_bytes_per_cycle must be a positive number"),
    (["--dram", "x2GB/s"], "--dram: 'x2GB/s' is not a bandwidth"),
    (["--sram", "8 MB"], "--sram: '8 MB' is not a memory size"),
    (["--sram", "1000"], "is not a whole number of the paper-2x2 weight words"),
    (["--presets", "nope"], "--presets: unknown hardware preset 'nope'"),
    (["--presets", "missing.toml"], "missing.toml: no such description file"),
    (["--models", "tiny-8x2,nope"], "--models: unknown model preset 'nope'"),
    (["--tokens", "16,x"], "--tokens: 'x' is not an integer"),
    (["--presets", "rtl-2x2", "--models", "tiny-8x2", "--tokens", "5000"], "--tokens 5000: rtl-2x2 holds at most 2048"),
    (["--presets", "rtl-2x2", "--models", "tiny-8x2", "--slices", "7"], "slices must be a positive divisor of the "
                                                                        "expert FFN size 64, not 7"),
    (["--slices", "0"], "--slices: S must be positive, not 0"),
    (["--slices", "three"], "--slices: 'three' is not an integer or 'auto'"),
    (["--strategies", "ep,warp"], "--strategies: unknown strategy 'warp'; choose from fse-dp"),
    (["--engine", "warp"], "--engine: unknown engine 'warp'; choose one of: fast, rtl"),
    (["--engine", "rtl"], "--engine rtl simulates only the rtl-* presets; paper-2x2 is paper scale"),
    (["--routing", "real:nope"], "unknown domain 'nope'"),
    (["--presets", "rtl-2x2", "--models", "tiny-8x2", "--routing", "olmoe:c4"], "has 64 experts, top-8"),
    (["--seed", "-1"], "--seed must be an integer from 0 to 2**63 - 1, not -1"),
    (["--jobs", "0"], "--jobs must be a positive integer, not 0"),
    (["--jobs", "x"], "argument --jobs/-j: invalid int value: 'x'"),
    (["--jobs", "2", "--cluster", "tcp://127.0.0.1:9"], "--jobs sizes the local cluster"),
    (["--spec", "missing.toml"], "--spec missing.toml: cannot read it: No such file or directory"),
]

BAD_FILES = [
    ('speed = 1\n', "unknown key 'speed'; allowed: presets, d2d, dram"),
    ('d2d = ["fast"]\n', "s.toml: d2d: 'fast' is not a bandwidth"),
    ('d2d = [-1]\n', "s.toml: d2d -1: hardware 'paper-2x2+d2d=-1': link_bytes_per_cycle must be a positive"),
    ('tokens = [16, "x"]\n', "s.toml: tokens: 'x' is not an integer"),
    ('tokens = true\n', "s.toml: tokens: 'True' is not an integer"),
    ('sram = ["8 MB"]\n', "s.toml: sram: '8 MB' is not a memory size"),
    ('presets = ["nope"]\n', "s.toml: presets: unknown hardware preset 'nope'"),
    ('models = [["tiny-8x2"]]\n', "s.toml: models: [['tiny-8x2']] is not a value or a list of values"),
    ('strategies = ["warp"]\n', "s.toml: strategies: unknown strategy 'warp'"),
    ('engine = "warp"\n', "s.toml: engine: unknown engine 'warp'"),
    ('seed = -1\n', "s.toml: seed: must be an integer from 0 to 2**63 - 1"),
    ('block = 3\n', "s.toml: block must be one or more [[block]] tables of axes"),
    ('[[block]]\nengine = "rtl"\n', "s.toml [[block]] 1: unknown key 'engine' in a block; a block takes the axes"),
    ('presets = "rtl-2x2"\nmodels = "tiny-8x2"\n[[block]]\n[[block]]\nslices = [7]\n',
     "s.toml [[block]] 2: slices must be a positive divisor of the expert FFN size 64, not 7"),
    ('d2d = [\n', "s.toml: not a TOML sweep file: "),
]


def _one_line_error(capsys, args):
    with pytest.raises(SystemExit) as exc:
        cli.main(["sweep", *args])
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert err.count("\n") == 1 and err.startswith("fsedp: error: sweep: "), err
    return err


@pytest.mark.parametrize("args,message", BAD_FLAGS)
def test_a_bad_flag_is_one_line_before_any_work(tmp_path, capsys, args, message):
    err = _one_line_error(capsys, ["--out", str(tmp_path / "o"), *args])
    assert message in err, err
    assert not (tmp_path / "o" / "points.jsonl").exists()


@pytest.mark.parametrize("text,message", BAD_FILES)
def test_a_bad_sweep_file_field_is_one_line_before_any_work(tmp_path, capsys, text, message):
    spec = tmp_path / "s.toml"
    spec.write_text(text)
    err = _one_line_error(capsys, ["--out", str(tmp_path / "o"), "--spec", str(spec)])
    assert message in err, err
    assert not (tmp_path / "o" / "points.jsonl").exists()


def test_bad_output_folders_and_a_spec_with_axis_flags(tmp_path, capsys):
    spec, blocker = tmp_path / "s.toml", tmp_path / "file"
    spec.write_text("")
    blocker.write_text("")
    assert f"--out {blocker}: {blocker} is a file, not a folder" in _one_line_error(capsys, ["--out", str(blocker)])
    err = _one_line_error(capsys, ["--out", str(tmp_path / "o"), "--cache", str(blocker / "c")])
    assert f"--cache {blocker / 'c'}: " in err and "is a file, not a folder" in err
    err = _one_line_error(capsys, ["--out", str(tmp_path / "o"), "--spec", str(spec), "--d2d", "x1"])
    assert f"--spec {spec} defines the sweep; give --d2d in the file instead" in err


# --------------------------------------------------------------------------- heatmaps

def _heatmap(out, quantity, plane):
    [path] = out.glob(f"heatmap_{quantity}_{plane}_*.csv")
    assert path.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(path) as f:
        return list(csv.DictReader(f))


def test_heatmap_cells_are_the_measured_ratios_and_a_misfit_is_not_a_number(serial):
    out, _ = serial
    records = {r["key"]: r for r in lines(out / "points.jsonl")}
    for quantity, baselines in (("speedup-best", ("ep", "hydra")), ("speedup-ep-paper", ("ep-paper",)),
                                ("utilisation", None)):
        for plane, panel in (("d2d-dram", "sram"), ("sram-dram", "d2d")):
            rows = _heatmap(out, quantity, plane)
            assert len(rows) == 8 and {r["panel_axis"] for r in rows} == {panel}
            fits = [r for r in rows if r["status"] == "ok"]
            misfits = [r for r in rows if r["status"] != "ok"]
            assert len(fits) == len(misfits) == 4
            for row in misfits:
                assert row["value"] == "" and row["status"].startswith("does not fit: fse-dp-paired")
                assert records[row["key"]]["point"]["sram"] == 1024
            for row in fits:
                runs = {r["strategy"]: r for r in records[row["key"]]["runs"]}
                paired = runs["fse-dp-paired"]
                if baselines is None:
                    expected = sum(paired["compute_utilization"]) / len(paired["compute_utilization"])
                else:
                    expected = min(runs[b]["cycles"] for b in baselines) / paired["cycles"]
                    assert int(row["baseline_cycles"]) == min(runs[b]["cycles"] for b in baselines)
                assert float(row["value"]) == pytest.approx(expected, rel=1e-12)
                assert int(row["fse_cycles"]) == paired["cycles"]


def test_a_baseline_that_does_not_fit_is_labelled_so(serial):
    _, summary = serial
    record = next(r for r in summary["records"] if r["runs"])
    paired = next(r for r in record["runs"] if r["strategy"] == "fse-dp-paired")
    record = record | {"runs": [paired], "not_run": [{"strategy": "ep-paper", "fits": False, "reason": "..."},
                                                     {"strategy": "ep", "fits": None, "reason": "..."}]}
    c = heatmaps.cell(record, ("ep-paper",))
    assert c["value"] is None and c["status"] == "does not fit: ep-paper"
    assert heatmaps.cell(record, ("ep", "hydra"))["status"] == "does not apply: ep, hydra"
    assert heatmaps.cell(record, None)["value"] == pytest.approx(sum(paired["compute_utilization"]) / 4)
