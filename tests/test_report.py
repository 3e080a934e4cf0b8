"""fsedp grid and fsedp report: the lower bound, the real-routing mapping, the report's
arithmetic on synthetic compare files, one-line errors, and a tiny RTL grid."""

import csv
import json
import sys
import types

import numpy as np
import pytest

from scheduler import presets, routing, strategies
from scheduler.routing import RoutingTrace
from sim import cli, grid, realstats, report
from sim.eval.bound import lower_bound, plan_bound
from sim.results import ChipletCounters, RunResult

# ----------------------------------------------------------------------------- bound


def test_lower_bound_hand_computed_dram_limited():
    # tiny-8x2: one expert is 3 * 32 * 64 = 6144 bytes and 6144 MACs per token.
    # 4 tokens, top-2, experts {0, 1, 2} used -> unique bytes 3 * 6144 = 18432,
    # MACs 4 * 2 * 6144 = 49152. rtl-2x2: 4 channels x 1 B/cycle, 4 x 64 MACs/cycle.
    trace = RoutingTrace(np.array([[0, 1], [1, 2], [2, 0], [0, 1]]), np.full((4, 2), 0.5))
    hw = presets.get_hardware("rtl-2x2")
    assert hw.dram_bytes_per_cycle * hw.dram_channels == 4 and hw.macs_per_chiplet * hw.num_chiplets == 256
    for strategy in ("fse-dp-paired", "ep"):
        plan = strategies.build_plan(strategy, presets.get_model("tiny-8x2"), hw, trace)
        b = plan_bound(plan)
        assert (b["unique_weight_bytes"], b["macs"]) == (18432, 49152)
        assert b["dram_cycles"] == 18432 / 4 == 4608 and b["compute_cycles"] == 49152 / 256 == 192
        assert b["cycles"] == 4608 and b["limit"] == "dram"


def test_lower_bound_compute_limited():
    hw = presets.get_hardware("paper-2x2")  # 128 DRAM bytes and 8192 MACs per cycle
    b = lower_bound(unique_weight_bytes=1280, macs=8192 * 30, hw=hw)
    assert (b["dram_cycles"], b["compute_cycles"], b["cycles"], b["limit"]) == (10, 30, 30, "compute")


# ----------------------------------------------------------------------------- routing


def test_resample_experts_splits_and_merges():
    assert realstats.resample_experts([1, 3], 4).tolist() == [0.5, 0.5, 1.5, 1.5]
    assert realstats.resample_experts([1, 2, 3, 4], 2).tolist() == [3, 7]
    assert realstats.resample_experts([1, 2, 3], 3).tolist() == [1, 2, 3]


@pytest.mark.parametrize("model,source,derived", [
    ("mixtral-8x7b", "mixtral:c4", False), ("olmoe-1b-7b", "olmoe:c4", False), ("tiny-8x2", "mixtral:c4", False),
    ("deepseek-moe-16b", "olmoe:c4", True), ("qwen3-30b-a3b", "olmoe:c4", True),
    ("phi-3.5-moe", "mixtral:c4", True), ("yuan2-m32", "olmoe:c4", True),
])
def test_real_routing_mapping(tmp_path, model, source, derived):
    r = realstats.real_routing(model, "c4", tmp_path)
    assert (r.source, r.derived) == (source, derived)
    m = presets.get_model(model)
    if not derived:
        assert r.spec == source
        assert ("its own" in r.note) == (model in ("mixtral-8x7b", "olmoe-1b-7b"))
        return
    assert "no statistics of its own" in r.note and source in r.note
    stats = routing.load_stats(r.spec)
    assert (stats.num_experts, stats.top_k) == (m.num_experts, m.top_k)
    raw = json.loads(open(r.spec).read())
    assert raw["derived_from"]["statistics"] == source
    src = routing.load_stats(routing.BUNDLED_STATS[source])
    assert np.allclose(stats.expert_counts.sum(axis=1), src.tokens_per_layer * m.top_k)
    trace = routing.from_spec(r.spec, 32, m.num_experts, m.top_k, 0)
    assert trace.experts.shape == (32, m.top_k)


def test_doubling_keeps_the_load_skew(tmp_path):
    # Qwen3 (128 experts, top-8) from OLMoE (64, top-8): expert 2j and 2j+1 each carry half of OLMoE's j.
    stats = routing.load_stats(realstats.real_routing("qwen3-30b-a3b", "c4", tmp_path).spec)
    src = routing.load_stats(routing.BUNDLED_STATS["olmoe:c4"])
    assert np.allclose(stats.marginals(7)[0::2], src.marginals(7) / 2)
    assert np.allclose(stats.marginals(7)[1::2], src.marginals(7) / 2)


# ----------------------------------------------------------------------------- report

def _run(strategy, cycles, peak, slot_peak, config, **extra):
    """A run JSON with the fields the report reads (values chosen by the test)."""
    return {"strategy": strategy, "engine": "fast", "cycles": cycles, "time_us": cycles / 800,
            "bit_exact": None, "peak_onchip_bytes": [peak // 2, peak, peak // 4, 0],
            "peak_slot_bytes": [slot_peak, slot_peak // 2, 0, 0], "dram_bytes": 1280 * cycles // 100,
            "d2d_bytes": 0, "compute_utilization": [0.1, 0.2, 0.3, 0.4],
            "link_utilization": [[0.5, 0.0, 0.0, 0.0]] * 4, "macs": [1, 1, 1, 1],
            "config": {**config, "strategy": strategy}, **extra}


def _compare_file(path, config, cycles, peaks, slot_peaks, bound=None, timeline=None):
    runs = [_run(s, cycles[s], peaks[s], slot_peaks[s], config,
                 **({"timeline": timeline} if timeline and s == "fse-dp-paired" else {}))
            for s in ("fse-dp", "fse-dp-paired", "ep", "hydra")]
    # A deliberately wrong summary: the report must compute, not copy.
    doc = {"runs": runs, "summary": [{"strategy": "fse-dp-paired", "speedup_vs_ep": 99.0}], "all_bit_exact": None}
    if bound:
        doc["point"] = {"routing": "real:c4", "routing_source": "synthetic", "bound": bound}
    path.write_text(json.dumps(doc))


MIXTRAL_BOUND = 8 * 3 * 4096 * 14336 / (4 * 32)  # 8 whole experts over 4 x 32 B/cycle: 11010048 cycles


@pytest.fixture
def synthetic(tmp_path):
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    # Point A: bound stored by the grid: 12800 B / 128 B/cycle = 100 cycles (MACs: 81920 / 8192 = 10).
    cfg_a = {"preset": "paper-2x2", "model": "olmoe-1b-7b", "tokens": 16, "routing": "x.json", "seed": 0}
    _compare_file(data / "a.json", cfg_a, {"ep": 300, "hydra": 240, "fse-dp": 200, "fse-dp-paired": 150},
                  {"ep": 1000, "hydra": 1200, "fse-dp": 260, "fse-dp-paired": 250},
                  {"ep": 800, "hydra": 800, "fse-dp": 200, "fse-dp-paired": 200},
                  bound={"unique_weight_bytes": 12800, "macs": 81920})
    # Point B: no point record; the bound is re-planned from the config (uniform routing,
    # 64 tokens top-2 of 8 experts: every expert is used).
    cfg_b = {"preset": "paper-2x2", "model": "mixtral-8x7b", "tokens": 64, "routing": "uniform", "seed": 0,
             "layout": "round-robin"}
    _compare_file(data / "sub" / "b.json", cfg_b,
                  {"ep": int(MIXTRAL_BOUND * 2.5), "hydra": int(MIXTRAL_BOUND * 1.5), "fse-dp": int(MIXTRAL_BOUND * 1.5),
                   "fse-dp-paired": int(MIXTRAL_BOUND * 1.25)},
                  {"ep": 4000, "hydra": 4000, "fse-dp": 1000, "fse-dp-paired": 1000},
                  {"ep": 3000, "hydra": 3000, "fse-dp": 600, "fse-dp-paired": 600})
    (data / "notes.json").write_text(json.dumps({"hello": 1}))
    return data


def _csv(path):
    with open(path) as f:
        return {(r["model"], int(r["tokens"])): r for r in csv.DictReader(f)}


def test_report_computes_speedups_savings_and_bound(synthetic, tmp_path):
    out = tmp_path / "rep"
    assert cli.main(["report", str(synthetic), "--out", str(out)]) == 0
    sp = _csv(out / "speedup.csv")
    a, b = sp["olmoe-1b-7b", 16], sp["mixtral-8x7b", 64]
    assert float(a["speedup_vs_ep"]) == pytest.approx(2.0) and float(a["speedup_vs_hydra"]) == pytest.approx(1.6)
    assert float(a["unpaired_vs_ep"]) == pytest.approx(1.5)
    assert float(b["speedup_vs_ep"]) == pytest.approx(2.0, rel=1e-6)
    assert float(b["speedup_vs_hydra"]) == pytest.approx(1.2, rel=1e-6)
    mem = _csv(out / "memory.csv")
    ma = mem["olmoe-1b-7b", 16]
    assert int(ma["peak_ep"]) == 1000 and int(ma["peak_fse-dp-paired"]) == 250  # max over chiplets
    assert float(ma["saving_vs_ep"]) == pytest.approx(0.75)
    assert float(ma["saving_vs_hydra"]) == pytest.approx(1 - 250 / 1200)
    assert float(ma["weight_saving_vs_ep"]) == pytest.approx(0.75)
    bd = _csv(out / "bound.csv")
    assert float(bd["olmoe-1b-7b", 16]["bound_cycles"]) == pytest.approx(100)
    assert float(bd["olmoe-1b-7b", 16]["distance_fse-dp-paired"]) == pytest.approx(1.5)
    assert float(bd["olmoe-1b-7b", 16]["distance_ep"]) == pytest.approx(3.0)
    assert float(bd["mixtral-8x7b", 64]["bound_cycles"]) == pytest.approx(MIXTRAL_BOUND)
    assert bd["mixtral-8x7b", 64]["bound_limit"] == "dram"
    assert float(bd["mixtral-8x7b", 64]["distance_fse-dp-paired"]) == pytest.approx(1.25, rel=1e-6)

    md = (out / "report.md").read_text()
    assert "FSE-DP paired over EP: **2.00x to 2.00x**" in md
    assert "FSE-DP paired over Hydra: **1.20x to 1.60x**" in md
    assert "less than the paper's lowest speedup at 1 of 2 points" in md
    assert "no schedule could beat Hydra by more than 1.50x" in md
    assert "up to **75.0%** less" in md and "78.8%" in md
    assert "`notes.json`" in md and "99.00x" not in md
    assert "Utilization over time: skipped" in md
    for name in ("speedup_paper-2x2.png", "memory_paper-2x2.png", "utilization_paper-2x2.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({name})" in md


def test_report_plots_a_timeline_when_a_run_carries_one(tmp_path):
    data, out = tmp_path / "d", tmp_path / "d" / "report"
    data.mkdir()
    timeline = [{"name": "compute", "ph": "X", "ts": 0, "dur": 50, "pid": 0, "tid": "chiplet 0"},
                {"name": "dram", "ph": "X", "ts": 10, "dur": 80, "pid": 0, "tid": "dram 0"}]
    cfg = {"preset": "paper-2x2", "model": "olmoe-1b-7b", "tokens": 16, "routing": "x.json", "seed": 0}
    four = dict.fromkeys(("ep", "hydra", "fse-dp", "fse-dp-paired"), 100)
    _compare_file(data / "p.json", cfg, four, four, four, bound={"unique_weight_bytes": 1, "macs": 1},
                  timeline=timeline)
    md = report.write_report(data).read_text()  # default out: DIR/report
    assert "Utilization over time: skipped" not in md
    assert (out / "timeline_p_fse-dp-paired.png").exists()
    # A second report over the same folder ignores its own output folder.
    assert report.write_report(data).read_text() == md


# ----------------------------------------------------------------------------- errors

@pytest.mark.parametrize("args,message", [
    (["grid", "--presets", "nope"], "unknown hardware preset 'nope'"),
    (["grid", "--models", "tiny-8x2,nope"], "unknown model preset 'nope'"),
    (["grid", "--tokens", "16,x"], "--tokens: 'x' is not an integer"),
    (["grid", "--tokens", "16,0"], "token counts must be positive"),
    (["grid", "--engine", "warp"], "unknown engine 'warp'"),
    (["grid", "--engine", "rtl"], "--engine rtl simulates only the rtl-* presets"),
    (["grid", "--engine", "rtl", "--presets", "rtl-2x2", "--routing", "real:nope"], "unknown domain 'nope'"),
    (["grid", "--engine", "rtl", "--presets", "rtl-2x2", "--routing", "olmoe:c4"], "has 64 experts, top-8"),
    (["report", "/nonexistent/folder"], "no such folder"),
])
def test_bad_flags_are_one_line_errors(tmp_path, capsys, args, message):
    if args[0] == "grid":
        args = args + ["--out", str(tmp_path / "g")] + ([] if "--models" in args else ["--models", "tiny-8x2"])
    with pytest.raises(SystemExit) as exc:
        cli.main(args)
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert err.count("\n") == 1 and err.startswith("fsedp: error: ") and message in err, err


def test_report_of_a_folder_without_compare_files(tmp_path, capsys):
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(SystemExit) as exc:
        cli.main(["report", str(tmp_path)])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.startswith("fsedp: error: ") and "no compare JSON files" in err


def test_grid_without_the_fast_engine_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "sim.fast", types.SimpleNamespace())  # no run() yet
    with pytest.raises(SystemExit) as exc:
        cli.main(["grid", "--out", str(tmp_path), "--tokens", "16"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1
    assert "the fast engine (sim.fast.run) is not available" in err


# ----------------------------------------------------------------------------- grid

def _stand_in_engine(workloads):
    """Stand-in for sim.fast.run (same signature and return type): counters derived from
    the plan, so the grid's plumbing at paper scale is tested without a simulator."""
    out = []
    for i, w in enumerate(workloads):
        hw, n = w.plan.hardware, w.plan.num_chiplets
        chips = [ChipletCounters(busy_cycles=10, mac_cycles=10, macs=w.plan.macs() // n, slot_high_water=2,
                                 slot_occupancy_end=0, link_flits=[0] * 4, link_busy=[0] * 4,
                                 link_stalled=[0] * 4) for _ in range(n)]
        out.append(RunResult(spec=w.spec, engine="fast", cycles=1000 * (1 + w.plan.strategy.startswith("fse")),
                             bit_exact=None, chiplets=chips, slot_bytes=w.plan.slot_bytes,
                             token_row_bytes=[0] * n, link_bytes=64, macs_per_chiplet=hw.macs_per_chiplet,
                             clock_ghz=hw.clock_ghz))
    return out


def test_grid_runs_paper_presets_on_the_fast_engine_interface(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "sim.fast", types.SimpleNamespace(run=_stand_in_engine))
    out = tmp_path / "g"
    assert cli.main(["grid", "--out", str(out), "--presets", "paper-2x2", "--models", "phi-3.5-moe,mixtral-8x7b",
                     "--tokens", "16"]) == 0
    err = capsys.readouterr().err
    assert "phi-3.5-moe: no statistics of its own; derived from Mixtral-8x7B-v0.1 c4" in err
    assert "[2/2] paper-2x2 mixtral-8x7b real:c4 L=16" in err
    index = json.loads((out / "index.json").read_text())
    assert [p["file"] for p in index["points"]] == ["paper-2x2__phi-3.5-moe__real-c4__L16.json",
                                                   "paper-2x2__mixtral-8x7b__real-c4__L16.json"]
    doc = json.loads((out / index["points"][0]["file"]).read_text())
    assert [r["strategy"] for r in doc["runs"]] == ["fse-dp", "fse-dp-paired", "ep", "hydra"]
    assert doc["runs"][0]["config"]["routing"].endswith("routing/phi-3.5-moe_c4.json")
    assert doc["point"]["routing"] == "real:c4" and doc["point"]["bound"]["limit"] == "dram"
    sp = _csv(report.write_report(out).parent / "speedup.csv")
    assert float(sp["mixtral-8x7b", 16]["speedup_vs_ep"]) == pytest.approx(0.5)


@pytest.mark.cocotb
def test_tiny_grid_on_the_rtl_engine(tmp_path, capsys):
    # Seed 1: with seed 0 this point's hydra run ends with a router error (UNEXPECTED_GRANT)
    # in the RTL, a bug outside the grid; the grid reports it and exits 2.
    out = tmp_path / "g"
    assert cli.main(["grid", "--out", str(out), "--engine", "rtl", "--presets", "rtl-2x2", "--models", "tiny-8x2",
                     "--tokens", "4", "--routing", "real", "--seed", "1"]) == 0
    assert "[1/1] rtl-2x2 tiny-8x2 real:c4 L=4" in capsys.readouterr().err
    doc = json.loads((out / "rtl-2x2__tiny-8x2__real-c4__L4.json").read_text())
    assert doc["all_bit_exact"] is True and doc["point"]["routing_spec"] == "mixtral:c4"
    cycles = {r["strategy"]: r["cycles"] for r in doc["runs"]}
    rep = report.write_report(out)
    row = _csv(rep.parent / "speedup.csv")["tiny-8x2", 4]
    assert float(row["speedup_vs_ep"]) == pytest.approx(cycles["ep"] / cycles["fse-dp-paired"])
    bound = _csv(rep.parent / "bound.csv")["tiny-8x2", 4]
    assert float(bound["distance_fse-dp-paired"]) >= 1.0  # no run beats the physical bound
    assert "Bit-exact against the golden model: 4 of 4 checked runs." in rep.read_text()


def test_grid_isolates_a_failing_point_and_reports_it(tmp_path, monkeypatch, capsys):
    def engine(workloads):
        if any(w.plan.trace.num_tokens == 32 for w in workloads):
            raise RuntimeError("simulation stalled: test")
        return _stand_in_engine(workloads)

    monkeypatch.setitem(sys.modules, "sim.fast", types.SimpleNamespace(run=engine))
    out = tmp_path / "g"
    with pytest.raises(SystemExit) as exc:
        cli.main(["grid", "--out", str(out), "--presets", "paper-2x2", "--models", "mixtral-8x7b", "--tokens", "16,32"])
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert "[2/2] paper-2x2 mixtral-8x7b real:c4 L=32: FAILED: simulation stalled: test" in err
    assert err.splitlines()[-1].startswith("fsedp: error: 1 point(s) failed to simulate (paper-2x2 mixtral-8x7b")
    index = json.loads((out / "index.json").read_text())
    assert [bool(p.get("error")) for p in index["points"]] == [False, True]
    assert (out / "paper-2x2__mixtral-8x7b__real-c4__L16.json").exists()
    md = report.write_report(out).read_text()
    assert "Failed to simulate (1 points, from index.json; not in the tables): paper-2x2 mixtral-8x7b" in md
