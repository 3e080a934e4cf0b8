"""Energy (an estimate): counters x a technology table, recomputed here by hand; the
table's validation; --tech; the JSON fields; compare's columns; the report's EDP table."""

import csv
import dataclasses
import json
import pathlib
import subprocess
import sys
import tomllib

import pytest

from sim import cli, results
from sim.eval import energy, report
from sim.results import ChipletCounters, RunResult

ROOT = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_TOML = ROOT / "sim" / "eval" / "data" / "tech_default.toml"
KiB, MiB = 1 << 10, 1 << 20


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "sim.cli", *args], capture_output=True, text=True)


# ----------------------------------------------------------------------------- synthetic runs

@dataclasses.dataclass
class Counted(ChipletCounters):
    """ChipletCounters with every counter the energy needs (set by the test), whatever
    the engines have today."""

    weight_read_bytes: int = 0
    weight_write_bytes: int = 0
    token_read_bytes: int = 0
    token_write_bytes: int = 0
    acc_read_bytes: int = 0
    acc_write_bytes: int = 0
    link_header_flits: list = dataclasses.field(default_factory=lambda: [0, 0, 0, 0])
    router_flits: int = 0


@dataclasses.dataclass
class Bare:
    """Counters of an engine that counts none of the new quantities."""

    busy_cycles: int = 10
    mac_cycles: int = 10
    macs: int = 0
    slot_high_water: int = 1
    slot_occupancy_end: int = 0
    link_flits: list = dataclasses.field(default_factory=lambda: [0, 0, 0, 0])
    link_busy: list = dataclasses.field(default_factory=lambda: [0, 0, 0, 0])
    link_stalled: list = dataclasses.field(default_factory=lambda: [0, 0, 0, 0])
    dram_flits: int = 0
    done_cycle: int = 0
    error: int = 0


def two_chiplets(counted=True):
    """Two chiplets with chosen counts (chiplet 0 has the DRAM channel)."""
    kind = Counted if counted else Bare
    base = dict(busy_cycles=10, mac_cycles=10, slot_high_water=1, slot_occupancy_end=0, link_busy=[1, 0, 0, 0],
                link_stalled=[0, 0, 0, 0])
    a = kind(**base, macs=1000, link_flits=[10, 0, 5, 0], dram_flits=50)
    b = kind(**base, macs=3000, link_flits=[0, 20, 0, 0], dram_flits=0)
    if counted:
        for c, k in ((a, 1), (b, 2)):
            c.weight_read_bytes, c.weight_write_bytes = 400 * k, 200 * k
            c.token_read_bytes, c.token_write_bytes = 30 * k, 10 * k
            c.acc_read_bytes, c.acc_write_bytes = 60 * k, 70 * k
            c.router_flits = 100 * k
        a.link_header_flits, b.link_header_flits = [2, 0, 1, 0], [0, 4, 0, 0]
    return [a, b]


def synthetic_run(counted=True, strategy="fse-dp-paired", cycles=2000, weight=12 * KiB):
    """A RunResult of hand-picked counters: 16-byte flits, 0.8 GHz, weight buffer
    ``weight``, token buffer 16 KiB and accumulator buffer 64 KiB."""
    return RunResult(spec={"strategy": strategy, "preset": "rtl-2x2", "model": "tiny-8x2", "tokens": 8,
                           "routing": "uniform", "seed": 0, "slices": 8, "slots": 4},
                     engine="fast", cycles=cycles, bit_exact=None, chiplets=two_chiplets(counted), slot_bytes=768,
                     token_row_bytes=[100, 100], link_bytes=16, macs_per_chiplet=64, clock_ghz=0.8,
                     provisioned={"weight": weight, "token": 80 * KiB, "total": weight + 80 * KiB,
                                  "plan_weight": weight, "token_buffer": 16 * KiB, "acc_buffer": 64 * KiB})


def run_json(counted=True, tech=None, **kw):
    """A run's JSON; ``counted=False``: its energy as an engine without the new counters
    (no such ChipletCounters fields) would give it."""
    j = synthetic_run(**kw).to_json(tech=tech)
    if not counted:
        j["energy"] = energy.of_result(synthetic_run(counted=False, **kw), tech)
    return j


# Hand computation with the default table's figures (docs/energy.md), in pJ:
# MAC 0.23 pJ; SRAM 8 KB 10/64 pJ/bit, 32 KB 20/64; D2D 0.5; DRAM 1300/64; router 2 x 10/64 per bit.
PJ = 1e-12
HAND = {
    "mac": (1000 + 3000) * 0.23 * PJ,
    "weight_sram": ((400 + 800) * 8 * 10 / 64 + (200 + 400) * 8 * 10 / 64) * PJ,      # 12 KiB -> 8 KB array
    "token_sram": ((30 + 60) * 8 * 10 / 64 + (10 + 20) * 8 * 10 / 64) * PJ,           # 16 KiB -> 8 KB array
    "acc_sram": ((60 + 120) * 8 * 20 / 64 + (70 + 140) * 8 * 20 / 64) * PJ,           # 64 KiB -> 32 KB array
    "d2d": (15 + 20) * 16 * 8 * 0.5 * PJ,                                            # every flit sent, 128 bits
    "dram": 50 * 16 * 8 * 1300 / 64 * PJ,
    "router": (100 + 200) * 16 * 8 * (10 / 64 + 10 / 64) * PJ,
}
TIME_S = 2000 / 0.8e9


def test_energy_is_counters_times_table_entries_by_hand():
    e = synthetic_run().to_json()["energy"]
    assert e["by_component_j"] == pytest.approx(HAND, rel=1e-12)
    assert list(e["by_component_j"]) == ["mac", "weight_sram", "token_sram", "acc_sram", "d2d", "dram", "router"]
    total = sum(HAND.values())
    assert e["total_j"] == pytest.approx(total, rel=1e-12)
    assert e["time_s"] == pytest.approx(TIME_S) and e["edp_js"] == pytest.approx(total * TIME_S, rel=1e-12)
    assert e["missing"] == {}
    # header flits: 3 + 4 of the 35 sent
    assert e["detail_j"]["d2d_header_j"] == pytest.approx(7 * 128 * 0.5 * PJ)
    assert e["detail_j"]["d2d_payload_j"] == pytest.approx(28 * 128 * 0.5 * PJ)
    assert e["inputs"]["dram_payload_bytes"] == [800, 0]
    # the SRAM entry follows the buffer's size: a 2 MiB weight buffer is priced as 1 MB banks
    big = synthetic_run(weight=2 * MiB).to_json()["energy"]
    assert big["entries"]["weight_sram"]["read"]["entry"] == "sram_read.1MiB"
    assert big["by_component_j"]["weight_sram"] == pytest.approx((1200 + 600) * 8 * 100 / 64 * PJ)
    # smaller than every array: the smallest array
    assert energy.load_table().sram("sram_read", 1024).key == "sram_read.8KiB"


def test_the_default_table_file_holds_the_documented_figures():
    raw = tomllib.loads(DEFAULT_TOML.read_text())
    assert raw["mac_int8"]["value"] == 0.2 + 0.03 and raw["mac_int8"]["unit"] == "pJ/op"
    assert {k: v["value"] for k, v in raw["sram_read"].items()} == {"8KiB": 10 / 64, "32KiB": 20 / 64,
                                                                   "1MiB": 100 / 64}
    assert raw["dram"]["value"] == 1300 / 64 and raw["d2d"]["value"] == 0.5
    assert raw["router"]["value"] == 2 * 10 / 64
    docs = (ROOT / "docs" / "energy.md").read_text()
    t = energy.load_table("default")
    for key, e in t.entries.items():
        assert e.source.strip() and e.unit in ("pJ/op", "pJ/bit")
        assert f"| `{key}` | {e.value:g} {e.unit} |" in docs, key       # every default documented
    adv = energy.load_table("ucie-advanced")
    assert adv.get("d2d").value == 0.25 and adv.get("dram") == t.get("dram")
    # shipped in the package
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "eval/data/*.toml" in package_data["sim"]


def test_missing_counters_are_null_with_a_reason():
    e = energy.of_result(synthetic_run(counted=False))
    got = e["by_component_j"]
    assert got["mac"] == pytest.approx(HAND["mac"]) and got["d2d"] == pytest.approx(HAND["d2d"])
    assert got["dram"] == pytest.approx(HAND["dram"])
    for c in ("weight_sram", "token_sram", "acc_sram", "router"):
        assert got[c] is None and "not counted by this engine" in e["missing"][c]
    assert "weight_read_bytes, weight_write_bytes" in e["missing"]["weight_sram"]
    assert "router_flits" in e["missing"]["router"]
    assert e["total_j"] is None and e["edp_js"] is None and e["detail_j"] == {}


def test_the_json_says_it_is_an_estimate_and_names_the_table():
    j = synthetic_run().to_json()
    e = j["energy"]
    assert e["estimate"] is True and "estimate, not measured" in e["note"] and "x the per-action energies" in e["note"]
    assert e["table"] == {"name": "default", "path": "sim/eval/data/tech_default.toml"}
    assert set(e) >= {"total_j", "by_component_j", "edp_js", "table", "estimate", "note", "missing", "inputs"}
    assert e["entries"]["mac"] == {"entry": "mac_int8", "value": 0.23, "unit": "pJ/op"}
    # every existing field is still there, with its meaning
    assert j["d2d_bytes"] == 35 * 16 and j["dram_bytes"] == 50 * 16 and j["macs"] == [1000, 3000]
    # the same quantities priced again give the same energy (the report's path)
    assert energy.price(e["inputs"])["by_component_j"] == e["by_component_j"]


# ----------------------------------------------------------------------------- tables and --tech

def _scaled_table(path, factor, name="scaled"):
    """A complete table with every default value times ``factor``."""
    raw = tomllib.loads(DEFAULT_TOML.read_text())
    lines = [f'[table]\nname = "{name}"\n']
    for key, entry in raw.items():
        if key == "table":
            continue
        subs = entry.items() if key in ("sram_read", "sram_write") else [(None, entry)]
        for label, e in subs:
            lines.append(f"[{key}{'.' + label if label else ''}]")
            for k, v in e.items():
                v = v * factor if k == "value" else v
                lines.append(f"{k} = {json.dumps(v)}")
            lines.append("")
    path.write_text("\n".join(lines))
    return path


def test_tech_file_changes_the_result_proportionally(tmp_path):
    three = _scaled_table(tmp_path / "x3.toml", 3.0)
    run = synthetic_run()
    base, tripled = run.to_json()["energy"], run.to_json(tech=str(three))["energy"]
    assert tripled["table"] == {"name": "scaled", "path": str(three)}
    assert tripled["by_component_j"] == pytest.approx({c: 3 * v for c, v in base["by_component_j"].items()})
    assert tripled["total_j"] == pytest.approx(3 * base["total_j"]) and tripled["edp_js"] == pytest.approx(
        3 * base["edp_js"])
    # one entry changed (on top of the default table): only its component moves
    d2d = tmp_path / "d2d.toml"
    d2d.write_text('[table]\nbase = "default"\n[d2d]\nvalue = 2.0\nunit = "pJ/bit"\nnode = "test"\n'
                   'source = "test figure"\n')
    moved = run.to_json(tech=str(d2d))["energy"]["by_component_j"]
    assert moved["d2d"] == pytest.approx(4 * base["by_component_j"]["d2d"])
    assert {c: v for c, v in moved.items() if c != "d2d"} == {c: v for c, v in base["by_component_j"].items()
                                                              if c != "d2d"}
    # the module-level default is the table used when none is given
    try:
        energy.DEFAULT_TABLE = str(three)
        assert run.to_json()["energy"]["total_j"] == pytest.approx(3 * base["total_j"])
    finally:
        energy.DEFAULT_TABLE = "default"


def test_run_tech_flag_threads_the_table_through(tmp_path):
    adv, std = tmp_path / "adv.json", tmp_path / "std.json"
    assert cli.main(["run", "--engine", "fast", "--json", str(std)]) == 0
    assert cli.main(["run", "--engine", "fast", "--tech", "ucie-advanced", "--json", str(adv)]) == 0
    a, s = (json.loads(p.read_text())["energy"] for p in (adv, std))
    assert a["table"]["name"] == "ucie-advanced" and s["table"]["name"] == "default"
    assert a["by_component_j"]["d2d"] == pytest.approx(s["by_component_j"]["d2d"] / 2)
    assert a["by_component_j"]["dram"] == s["by_component_j"]["dram"]
    three = _scaled_table(tmp_path / "x3.toml", 3.0)
    x3 = tmp_path / "x3.json"
    assert cli.main(["run", "--engine", "fast", "--tech", str(three), "--json", str(x3)]) == 0
    t = json.loads(x3.read_text())["energy"]
    for c, v in s["by_component_j"].items():
        assert t["by_component_j"][c] == (None if v is None else pytest.approx(3 * v))


ENTRY = '[{key}]\nvalue = 1.0\nunit = "pJ/bit"\nnode = "n"\nsource = "s"\n'


@pytest.mark.parametrize("text,message", [
    ('[table]\nbase = "default"\n[sram]\nvalue = 1\n', "unknown key 'sram' (known: table, mac_int8"),
    ('[table]\nbase = "default"\n[d2d]\nvalue = 1.0\nunit = "pJ/bit"\nnode = "n"\nsource = "s"\nvaule = 2\n',
     "[d2d]: unknown key 'vaule' (allowed: value, unit, node, source, scaled_from, note)"),
    ('[table]\nbase = "default"\n[d2d]\nvalue = 1.0\nunit = "pJ/bit"\nnode = "n"\n',
     "[d2d]: missing key 'source'; every figure names where it comes from"),
    ('[table]\nbase = "default"\n[d2d]\nvalue = 1.0\nunit = "pJ/bit"\nnode = "n"\nsource = " "\n',
     "[d2d].source: must be a non-empty string"),
    ('[table]\nbase = "default"\n[dram]\nvalue = 0\nunit = "pJ/bit"\nnode = "n"\nsource = "s"\n',
     "[dram].value: must be positive, not 0"),
    ('[table]\nbase = "default"\n[dram]\nvalue = -2.5\nunit = "pJ/bit"\nnode = "n"\nsource = "s"\n',
     "[dram].value: must be positive, not -2.5"),
    ('[table]\nbase = "default"\n[dram]\nvalue = "5"\nunit = "pJ/bit"\nnode = "n"\nsource = "s"\n',
     "[dram].value: must be a number, not '5'"),
    ('[table]\nbase = "default"\n[mac_int8]\nvalue = 1.0\nunit = "pJ/bit"\nnode = "n"\nsource = "s"\n',
     "[mac_int8].unit: must be 'pJ/op'"),
    ('[table]\nbase = "default"\n[sram_read.4KiB]\nvalue = 1.0\nunit = "pJ/bit"\nnode = "n"\nsource = "s"\n',
     "[sram_read.4KiB]: missing key 'array_bytes'"),
    ('[table]\nbase = "default"\n[sram_read.4KiB]\narray_bytes = 0\nvalue = 1.0\nunit = "pJ/bit"\nnode = "n"\n'
     'source = "s"\n', "[sram_read.4KiB].array_bytes: must be a positive whole number of bytes"),
    ('[table]\nbase = "other"\n', "[table].base: unknown bundled table 'other'"),
    ('[table]\nnmae = "x"\n', "[table]: unknown key 'nmae'"),
    ("".join(ENTRY.format(key=k) for k in ("d2d", "dram", "router")), "missing key 'mac_int8'"),
    ('[table\nname = "x"\n', "not a TOML file"),
])
def test_a_bad_table_is_one_line_naming_file_and_key(tmp_path, text, message):
    path = tmp_path / "my.toml"
    path.write_text(text)
    with pytest.raises(energy.TechError) as exc:
        energy.load_table(str(path))
    assert str(exc.value).startswith(f"{path}: ") and message in str(exc.value) and "\n" not in str(exc.value)
    # on the command line: one line before any work, exit status 2
    out = run_cli("run", "--tech", str(path))
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert out.stderr.startswith("fsedp: error: run: argument --tech: ") and message in out.stderr
    assert "building" not in out.stderr


def test_an_unknown_table_name_or_missing_file(tmp_path):
    out = run_cli("compare", "--tech", "nope")
    assert out.returncode == 2 and "unknown technology table 'nope'" in out.stderr
    out = run_cli("compare", "--tech", str(tmp_path / "none.toml"))
    assert out.returncode == 2 and "none.toml: no such technology table" in out.stderr


# ----------------------------------------------------------------------------- compare

def test_compare_table_has_energy_and_edp_columns_and_the_estimate_line():
    runs = [synthetic_run(strategy="fse-dp-paired").to_json(), synthetic_run(strategy="ep", cycles=4000).to_json()]
    rows = results.summarize(runs)
    assert rows[0]["energy_j"] == pytest.approx(sum(HAND.values()))
    assert rows[1]["edp_js"] == pytest.approx(sum(HAND.values()) * 4000 / 0.8e9)
    assert rows[0]["energy_table"] == "default" and rows[0]["energy_missing"] is None
    lines = results.table(rows).splitlines()
    assert lines[0].split()[-5:] == ["energy", "uJ", "EDP", "J*s", "bit-exact"]
    energy_uj = sum(HAND.values()) * 1e6
    assert f"{energy_uj:.3f}" in lines[1] and f"{sum(HAND.values()) * TIME_S:.3e}" in lines[1]
    assert lines[3] == ("energy uJ (one layer) and EDP J*s (energy x time at the preset clock) are estimates, not "
                        "measured: counters x per-action energies of technology table 'default' "
                        "(sim/eval/data/tech_default.toml); docs/energy.md")
    # without every counter: '-' and the components named
    rows = results.summarize([run_json(counted=False)])
    lines = results.table(rows).splitlines()
    assert lines[1].split()[-3:] == ["-", "-", "-"]
    assert lines[-1] == ("-: no estimate, the engine does not count every component yet (missing: weight_sram, "
                         "token_sram, acc_sram, router)")
    # runs from before the energy model: no energy, no line
    old = {k: v for k, v in synthetic_run().to_json().items() if k != "energy"}
    assert len(results.table(results.summarize([old])).splitlines()) == 2


def test_compare_prints_and_writes_energy(tmp_path):
    js, cs = tmp_path / "c.json", tmp_path / "c.csv"
    out = run_cli("compare", "--engine", "fast", "--json", str(js), "--csv", str(cs))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "energy uJ" in lines[1] and "EDP J*s" in lines[1]
    assert any(line.startswith("energy uJ (one layer) and EDP J*s") and "'default'" in line for line in lines)
    doc = json.loads(js.read_text())
    for run, row in zip(doc["runs"], doc["summary"]):
        assert row["energy_j"] == run["energy"]["total_j"] and row["edp_js"] == run["energy"]["edp_js"]
    header = cs.read_text().splitlines()[0].split(",")
    assert {"energy_j", "edp_js", "energy_table", "energy_missing"} <= set(header)


# ----------------------------------------------------------------------------- report

def _compare_file(path, runs, budget, tokens):
    doc = results.compare_document(runs)
    doc["point"] = {"preset": "rtl-2x2", "model": "tiny-8x2", "tokens": tokens, "routing": "uniform",
                    "sram": budget, "sram_label": str(budget),
                    "bound": {"unique_weight_bytes": 12288, "macs": 4000, "lockstep": 1.0}}
    path.write_text(json.dumps(doc))


def _runs(cycles: dict, tokens, counted=True):
    out = []
    for s, c in cycles.items():
        j = run_json(counted=counted, strategy=s, cycles=c)
        j["config"]["tokens"] = tokens
        out.append(j)
    return out


@pytest.fixture
def tiny_grid(tmp_path):
    """Two L at one budget (12 KiB): FSE-DP paired, EP and Hydra with the hand counters."""
    data = tmp_path / "grid"
    data.mkdir()
    for tokens, cycles in ((8, {"fse-dp-paired": 2000, "ep": 4000, "hydra": 3000}),
                           (16, {"fse-dp-paired": 5000, "ep": 4000, "hydra": 3000})):
        _compare_file(data / f"p{tokens}.json", _runs(cycles, tokens), 12 * KiB, tokens)
    return data


def test_report_edp_table_csv_and_plot_on_a_tiny_grid(tiny_grid, tmp_path):
    out = tmp_path / "rep"
    assert cli.main(["report", str(tiny_grid), "--out", str(out)]) == 0
    total = sum(HAND.values())
    edp = lambda cycles: total * cycles / 0.8e9  # noqa: E731
    with open(out / "energy.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6
    r = next(r for r in rows if r["tokens"] == "8" and r["strategy"] == "ep")
    assert float(r["energy_j"]) == pytest.approx(total) and float(r["edp_js"]) == pytest.approx(edp(4000))
    assert float(r["dram_j"]) == pytest.approx(HAND["dram"]) and r["table"] == "default" and r["missing"] == ""
    md = (out / "report.md").read_text()
    assert "### Energy-delay product at 12 KiB (estimates, not measured" in md and "'default'" in md
    # L=8: paired 2000 cycles against Hydra's 3000 (the lowest EDP of the baselines): 0.67x
    line8 = next(line for line in md.splitlines() if line.startswith("| tiny-8x2 | 8 |") and "J*s" not in line
                 and f"{edp(2000):.3g}" in line)
    cells = [c.strip() for c in line8.strip("|").split("|")]
    assert cells[2:8] == ["does not fit", f"{edp(2000):.3g}", f"{edp(4000):.3g}", f"{edp(3000):.3g}",
                          "does not fit", "does not fit"]
    assert cells[8:] == ["1.00x", "0.67x (hydra)"]
    line16 = next(line for line in md.splitlines() if line.startswith("| tiny-8x2 | 16 |") and f"{edp(5000):.3g}"
                  in line)
    assert line16.rstrip().endswith("| 1.67x (hydra) |")
    assert (out / "energy_rtl-2x2.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "](energy_rtl-2x2.png)" in md and "estimates, not measured: counters x technology table 'default'" in md
    # --tech prices every run again: the whole report scales
    out3 = tmp_path / "rep3"
    three = _scaled_table(tmp_path / "x3.toml", 3.0)
    assert cli.main(["report", str(tiny_grid), "--out", str(out3), "--tech", str(three)]) == 0
    with open(out3 / "energy.csv") as f:
        again = list(csv.DictReader(f))
    assert [float(r["energy_j"]) for r in again] == pytest.approx([3 * float(r["energy_j"]) for r in rows])
    assert "'scaled'" in (out3 / "report.md").read_text()


def test_energy_panels_and_bars_come_from_the_runs(tiny_grid, monkeypatch):
    from sim.eval import plots

    points, _ = report.load_points(tiny_grid)
    items = report.groups([report.point_row(p, d) for p, d in points])
    panels = report.energy_panels(items, 12 * KiB)
    assert [k for k, _ in panels] == [("tiny-8x2", "uniform", 8), ("tiny-8x2", "uniform", 16)]
    assert panels[0][1]["ep"] == pytest.approx(HAND) and set(panels[0][1]) == {"fse-dp-paired", "ep", "hydra"}
    got = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: got.append(fig))
    assert plots.energy_bars(panels, "t", "estimates from table 'default'", "unused.png") is True
    [fig] = got
    a8, a16 = fig.axes
    assert a8.get_ylim() == a16.get_ylim() and "uJ" in a8.get_ylabel()
    # three stacks of seven components each
    assert len(a8.patches) == 3 * 7
    assert "estimates" in fig._suptitle.get_text()
    assert plots.energy_unit(5e-6) == (1e-6, "uJ") and plots.energy_unit(0.3) == (1e-3, "mJ")
    assert plots.energy_bars([], "t", "c", "unused.png") is False


def test_report_of_old_jsons_omits_energy_with_a_note(tmp_path):
    data = tmp_path / "old"
    data.mkdir()
    runs = _runs({"fse-dp-paired": 2000, "ep": 4000}, 8)
    for r in runs:
        del r["energy"]
    _compare_file(data / "p.json", runs, 12 * KiB, 8)
    out = tmp_path / "rep"
    md = report.write_report(data, out).read_text()
    assert "Energy: omitted; none of these compare files carries the runs' energy counters" in md
    assert "Energy-delay product" not in md and not (out / "energy.csv").exists()
    assert not (out / "energy_rtl-2x2.png").exists()
    # a mix: the old runs are named and left out; runs without every counter have no total
    _compare_file(data / "q.json", _runs({"fse-dp-paired": 2000, "ep": 4000}, 16, counted=False), 12 * KiB, 16)
    md = report.write_report(data, out).read_text()
    assert "2 of 4 runs have no energy" in md
    assert "No energy total for runs whose engine did not count every component: weight_sram at 2 runs" in md
    with open(out / "energy.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and all(r["energy_j"] == "" and "router: not counted" in r["missing"] for r in rows)
