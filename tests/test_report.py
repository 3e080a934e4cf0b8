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
from scheduler.plan import STRATEGIES
from sim import cli
from sim.eval import area, grid, realstats, report
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

MiB = 1 << 20


def _run(strategy, cycles, config, budget, **extra):
    """A run JSON with the fields the report reads (values chosen by the test)."""
    return {"strategy": strategy, "engine": "fast", "cycles": cycles, "time_us": cycles / 800,
            "bit_exact": None, "peak_onchip_bytes": [100, 200, 50, 0], "peak_slot_bytes": [64, 32, 0, 0],
            "token_bytes": [36, 40, 50, 0], "dram_bytes": 1280 * cycles // 100, "d2d_bytes": 7,
            "compute_utilization": [0.1, 0.2, 0.3, 0.4], "link_utilization": [[0.5, 0.0, 0.0, 0.0]] * 4,
            "macs": [1, 1, 1, 1], "provisioned_weight_bytes": budget, "plan_weight_bytes": budget,
            "slices": 16, "slots": 4, "config": {**config, "strategy": strategy}, **extra}


def _point(path, config, budget, cycles, budgets=None, bound=None, label=None):
    """A compare file at one budget: ``cycles`` of the strategies that ran (the others did
    not fit); ``budgets`` per strategy for the paper point."""
    runs = [_run(s, c, config, (budgets or {}).get(s, budget)) for s, c in cycles.items()]
    not_run = [{"strategy": s, "fits": False, "reason": f"{s} does not fit: test"}
               for s in STRATEGIES if s not in cycles]
    # A deliberately wrong summary: the report must compute, not copy.
    doc = {"runs": runs, "summary": [{"strategy": "fse-dp-paired", "speedup_vs_ep": 99.0}], "all_bit_exact": None,
           "not_run": not_run}
    if bound:
        doc["point"] = {"preset": config["preset"], "model": config["model"], "tokens": config["tokens"],
                        "routing": "real:c4", "routing_source": "synthetic", "bound": bound,
                        "sram": label or budget, "sram_label": str(label or budget)}
    path.write_text(json.dumps(doc))


@pytest.fixture
def synthetic(tmp_path):
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    # One group on three budgets and the paper point; bound stored by the grid:
    # 12800 B / 128 B/cycle = 100 cycles (MACs: 81920 / 8192 = 10).
    cfg = {"preset": "paper-2x2", "model": "olmoe-1b-7b", "tokens": 16, "routing": "x.json", "seed": 0}
    bound = {"unique_weight_bytes": 12800, "macs": 81920}
    _point(data / "a1.json", cfg, 1 * MiB, {"ep": 400, "hydra": 500}, bound=bound)
    _point(data / "a2.json", cfg, 2 * MiB, {"fse-dp": 200, "fse-dp-paired": 180, "ep": 300, "hydra": 240},
           bound=bound)
    _point(data / "sub" / "a4.json", cfg, 4 * MiB, {"fse-dp": 190, "fse-dp-paired": 150, "ep": 160, "hydra": 240,
                                                    "ep-whole": 320}, bound=bound)
    _point(data / "ap.json", cfg, None, {"fse-dp-paired": 150, "ep-paper": 600}, bound=bound, label="paper",
           budgets={"fse-dp-paired": 9 * MiB // 2, "ep-paper": 12 * MiB})
    (data / "notes.json").write_text(json.dumps({"hello": 1}))
    return data


def _rows(path, **match):
    with open(path) as f:
        return [r for r in csv.DictReader(f) if all(r[k] == str(v) for k, v in match.items())]


def test_report_computes_iso_sram_speedups_sram_needed_and_the_paper_baseline(synthetic, tmp_path):
    out = tmp_path / "rep"
    assert cli.main(["report", str(synthetic), "--out", str(out)]) == 0
    pts = out / "points.csv"
    [p2] = _rows(pts, budget="2 MiB", strategy="fse-dp-paired")
    assert float(p2["iso_sram_speedup"]) == pytest.approx(240 / 180) and p2["best_baseline"] == "hydra"
    [u4] = _rows(pts, budget="4 MiB", strategy="fse-dp")
    assert float(u4["iso_sram_speedup"]) == pytest.approx(160 / 190) and u4["best_baseline"] == "ep"
    assert float(u4["distance"]) == pytest.approx(1.9) and float(u4["bound_cycles"]) == pytest.approx(100)
    [nf] = _rows(pts, budget="1 MiB", strategy="fse-dp")
    assert nf["fits"] == "False" and nf["reason"] == "fse-dp does not fit: test"
    need = {r["strategy"]: r["sram_needed_bytes"] for r in _rows(out / "sram_needed.csv")}
    # within 5% of its own best: paired 150 (at 4 MiB; 180 at 2 MiB is not), hydra 240 already at 2 MiB
    assert need["fse-dp-paired"] == str(4 * MiB) and need["hydra"] == str(2 * MiB) and need["ep"] == str(4 * MiB)
    assert need["ep-paper"] == ""       # never on the numeric axis
    paper = {r["strategy"]: r for r in _rows(out / "paper.csv")}
    assert float(paper["ep-paper"]["speedup_of_paired"]) == pytest.approx(4.0)

    md = (out / "report.md").read_text()
    assert "1.33 / 1.20 (hydra)" in md and "1.07 / 0.84 (ep)" in md and "FSE-DP does not fit" in md
    assert "**FSE-DP paired** against the best EP-family baseline at equal weight SRAM: 2 wins, 0 ties, 0 losses" in md
    assert "**FSE-DP** against the best EP-family baseline at equal weight SRAM: 1 wins, 0 ties, 1 losses" in md
    assert "-100.0%" in md                              # paired needs 4 MiB where Hydra needs 2
    assert "| 4.00x |" in md and "62.5%" in md           # 600 / 150; 1 - 4.5 / 12 MiB
    assert "`notes.json`" in md and "99.00x" not in md
    name = "sram_paper-2x2_olmoe-1b-7b.png"
    assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"]({name})" in md
    assert (out / "iso_sram_paper-2x2.png").exists()
    # A second report over the same folder ignores its own output folder.
    assert report.write_report(synthetic, out).read_text() == md


def test_report_names_a_point_that_appears_twice(synthetic, tmp_path, capsys):
    (synthetic / "copy.json").write_text((synthetic / "a2.json").read_text())
    with pytest.raises(SystemExit) as exc:
        cli.main(["report", str(synthetic), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "are the same point (paper-2x2 olmoe-1b-7b real:c4 L=16 at 2 MiB)" in err


# ----------------------------------------------------------------------------- plots

def _groups(folder):
    points, _ = report.load_points(folder)
    return report.groups([report.point_row(p, d) for p, d in points])


@pytest.fixture
def identical(tmp_path):
    """A group where FSE-DP paired equals unpaired and Hydra equals EP at every point."""
    data = tmp_path / "same"
    data.mkdir()
    cfg = {"preset": "paper-2x2", "model": "olmoe-1b-7b", "tokens": 64, "routing": "x.json", "seed": 0}
    bound = {"unique_weight_bytes": 12800, "macs": 81920}
    _point(data / "b1.json", cfg, 1 * MiB, {"ep": 400, "hydra": 400}, bound=bound)
    _point(data / "b2.json", cfg, 2 * MiB, {"fse-dp": 200, "fse-dp-paired": 200, "ep": 300, "hydra": 300}, bound=bound)
    _point(data / "b4.json", cfg, 4 * MiB, {"fse-dp": 150, "fse-dp-paired": 150, "ep": 160, "hydra": 160,
                                             "ep-whole": 320}, bound=bound)
    return data


def _figure(monkeypatch, draw, *args):
    """The figure a plot function would save, for inspection instead of pixels."""
    from sim.eval import plots

    got = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: got.append(fig))
    assert draw(*args, "t", "unused.png") is True
    [fig] = got
    fig.canvas.draw()  # runs the layout: legends and axes at their final places
    return fig


def _legend_texts(legend):
    return [t.get_text() for t in legend.get_texts()] if legend else []


def _assert_legends_cover_no_axes(fig):
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
    assert legends
    for legend in legends:
        box = legend.get_window_extent()
        for ax in fig.axes:
            assert not box.overlaps(ax.get_window_extent()), (_legend_texts(legend), ax.get_title())


def test_plot_helpers_mib_ticks_merging_limits_extremes():
    from sim.eval import plots

    assert plots.mib(3 * MiB // 2) == 1.5 and plots.mib(336 * MiB) == 336
    # 4.5 MiB is within x1.3 of 4 MiB, 36 of 32: their labels are left out
    assert plots.mib_ticks([4 * MiB, 1 * MiB, 2 * MiB, 9 * MiB // 2, 32 * MiB, 36 * MiB, 2 * MiB]) == (
        [1 * MiB, 2 * MiB, 4 * MiB, 32 * MiB], ["1", "2", "4", "32"])
    a, b = ((1, 1.5), (2, 1.0)), ((1, 1.5), (2, 1.01))
    merged = plots.merge_identical({"fse-dp": a, "ep": b, "fse-dp-paired": a, "hydra": ((1, 1.5),)})
    assert merged == [(("fse-dp", "fse-dp-paired"), a), (("ep",), b), (("hydra",), ((1, 1.5),))]
    assert plots.merge_identical([("x", a)]) == [(("x",), a)] and plots.merge_identical({}) == []
    assert plots.merged_label(("fse-dp", "fse-dp-paired")) == "fse-dp = fse-dp-paired"
    assert plots.shared_limits([2.0, None, 1.0]) == pytest.approx((0.95, 2.05))
    assert plots.shared_limits([1.0, 1.0]) == pytest.approx((0.95, 1.05))
    assert plots.extremes([(1, 2.0, "a"), (2, 0.5, "b"), (3, 2.0, "c"), (4, 0.5, "d")]) == ((2, 0.5, "b"),
                                                                                          (1, 2.0, "a"))
    assert plots.extremes([]) == (None, None)
    # one copy of the paper's claim: the report's
    assert plots.PAPER_SPEEDUP is report.PAPER_SPEEDUP and not hasattr(plots, "PAPER_RANGE")


def test_plot_series_come_from_the_measured_points(synthetic):
    from sim.eval import plots

    [(_, pts)] = _groups(synthetic)
    # cycles / bound (100 cycles) on the axis, and at the reference provisioning (4.5 MiB)
    assert plots.sram_series(pts, "fse-dp-paired") == (((2 * MiB, 1.8), (4 * MiB, 1.5)), (9 * MiB // 2, 1.5))
    assert plots.sram_series(pts, "ep-paper") == ((), (12 * MiB, 6.0))
    assert plots.sram_series(pts, "ep")[1] is None
    assert plots.speedup_series(pts, "fse-dp-paired") == ((2 * MiB, 240 / 180), (4 * MiB, 160 / 150))
    assert plots.speedup_series(pts, "fse-dp") == ((2 * MiB, 240 / 200), (4 * MiB, 160 / 190))
    assert plots.reference_saving(pts) == pytest.approx(1 - 4.5 / 12)   # the 62.5% of table (d)
    assert plots.saving_text(0.625) == ("FSE-DP paired 62.5% less weight SRAM than ep-paper at the reference "
                                        "provisioning")
    assert plots.saving_text(-0.5).startswith("FSE-DP paired 50.0% more")


def test_sram_curves_figure(synthetic, monkeypatch):
    from sim.eval import plots

    items = _groups(synthetic)
    fig = _figure(monkeypatch, plots.sram_curves, items)
    [ax] = fig.axes
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "4", "12"]   # MiB; 4.5 too close to 4
    assert "MiB" in ax.get_xlabel()
    assert ax.get_ylim() == pytest.approx(plots.shared_limits([1.0, 6.0]))         # bound .. ep-paper's 6.0x
    assert "62.5% less weight SRAM than ep-paper" in fig._suptitle.get_text()
    [legend] = fig.legends
    assert _legend_texts(legend) == list(STRATEGIES) + ["lower bound", "hollow: at the reference model's "
                                                                        "provisioning"]
    assert ax.get_legend() is None            # nothing identical here
    _assert_legends_cover_no_axes(fig)


def test_identical_series_are_drawn_once_and_named_together(synthetic, identical, monkeypatch):
    from sim.eval import plots

    items = _groups(identical)
    fig = _figure(monkeypatch, plots.sram_curves, items)
    [ax] = fig.axes
    drawn = [ln for ln in ax.get_lines() if ln.get_linestyle() != "--"]      # all but the bound
    assert len(drawn) == 3                    # fse-dp (= paired), ep (= hydra), ep-whole
    assert _legend_texts(ax.get_legend()) == ["fse-dp = fse-dp-paired", "ep = hydra"]
    assert _legend_texts(fig.legends[0])[:3] == ["fse-dp", "ep", "ep-whole"]
    _assert_legends_cover_no_axes(fig)
    # the saving at the reference provisioning: once in the title if it is the model's at every L, else per panel
    both = _groups(synthetic) + items
    fig = _figure(monkeypatch, plots.sram_curves, both)
    assert "62.5% less" in fig._suptitle.get_text() and [ax.get_title() for ax in fig.axes] == ["L=16", "L=64"]
    monkeypatch.setattr(plots, "reference_saving", lambda pts: 0.5 if "paper" in pts else -0.25)
    fig = _figure(monkeypatch, plots.sram_curves, both)
    assert "weight SRAM" not in fig._suptitle.get_text()
    assert [ax.get_title().split("\n") for ax in fig.axes] == [
        ["L=16", "FSE-DP paired 50.0% less weight SRAM than ep-paper", "at the reference provisioning"],
        ["L=64", "FSE-DP paired 25.0% more weight SRAM than ep-paper", "at the reference provisioning"]]
    fig = _figure(monkeypatch, plots.iso_sram_speedup, items)
    [ax] = fig.axes
    assert len([ln for ln in ax.get_lines() if list(ln.get_xdata()) == [2 * MiB, 4 * MiB]]) == 1  # one line for both
    assert _legend_texts(ax.get_legend()) == ["olmoe-1b-7b paired = olmoe-1b-7b unpaired"]
    _assert_legends_cover_no_axes(fig)


def test_iso_sram_speedup_figure(synthetic, identical, monkeypatch):
    from sim.eval import plots

    items = _groups(synthetic) + _groups(identical)    # L=16 and L=64: two panels
    fig = _figure(monkeypatch, plots.iso_sram_speedup, items)
    a16, a64 = fig.axes
    assert a16.get_ylim() == a64.get_ylim() and a16.get_xlim() == a64.get_xlim()   # one scale
    assert [t.get_text() for t in a16.get_xticklabels()] == ["2", "4"]
    for ax in (a16, a64):
        [band] = [p for p in ax.patches if p.get_zorder() == 0]
        ys = (band.get_y(), band.get_y() + band.get_height())
        assert ys == pytest.approx(report.PAPER_SPEEDUP)          # the paper's claim, behind the lines
        assert all(ln.get_zorder() > band.get_zorder() for ln in ax.get_lines())
    # each panel's lowest and highest speedup labelled with its measured value
    assert sorted(t.get_text() for t in a16.texts) == sorted([f"{160 / 190:.2f}", f"{240 / 180:.2f}"])
    assert sorted(t.get_text() for t in a64.texts) == sorted([f"{300 / 200:.2f}", f"{160 / 150:.2f}"])
    texts = _legend_texts(fig.legends[0])
    assert texts[:3] == ["olmoe-1b-7b", "FSE-DP paired", "FSE-DP unpaired"] and "1.22x-2.00x" in texts[3]
    _assert_legends_cover_no_axes(fig)


def test_report_writes_every_plot_and_the_same_bytes_twice(synthetic, identical, tmp_path):
    import shutil

    for f in identical.iterdir():
        shutil.copy(f, synthetic / f"same_{f.name}")
    out1, out2 = tmp_path / "r1", tmp_path / "r2"
    md = report.write_report(synthetic, out1).read_text()
    report.write_report(synthetic, out2)
    pngs = sorted(p.name for p in out1.glob("*.png"))
    assert pngs == ["iso_sram_paper-2x2.png", "sram_paper-2x2_olmoe-1b-7b.png"]
    for name in pngs:
        assert f"]({name})" in md
        assert (out1 / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (out1 / name).read_bytes() == (out2 / name).read_bytes()     # deterministic


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
    (["grid", "--sram", "8 MB"], "--sram: '8 MB' is not a memory size"),
    (["grid", "--sram", "1000"], "is not a whole number of the paper-2x2 weight words"),
    (["grid", "--jobs", "0"], "--jobs must be a positive integer"),
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
    for w in workloads:
        n = w.plan.num_chiplets
        chips = [ChipletCounters(busy_cycles=10, mac_cycles=10, macs=w.plan.macs() // n, slot_high_water=2,
                                 slot_occupancy_end=0, link_flits=[0] * 4, link_busy=[0] * 4,
                                 link_stalled=[0] * 4) for _ in range(n)]
        out.append(RunResult.of_plan(w.plan, spec=w.spec, engine="fast",
                                     cycles=1000 * (1 + w.plan.strategy.startswith("fse")), bit_exact=None,
                                     chiplets=chips, link_bytes=64))
    return out


def test_grid_runs_paper_presets_on_the_fast_engine_interface(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "sim.fast", types.SimpleNamespace(run=_stand_in_engine))
    out = tmp_path / "g"
    assert cli.main(["grid", "--out", str(out), "--presets", "paper-2x2", "--models", "phi-3.5-moe,mixtral-8x7b",
                     "--tokens", "16", "--sram", "8MiB,paper", "--jobs", "1"]) == 0
    err = capsys.readouterr().err
    assert "phi-3.5-moe: no statistics of its own; derived from Mixtral-8x7B-v0.1 c4" in err
    assert "[4/4] paper-2x2 mixtral-8x7b real:c4 L=16 paper" in err
    index = json.loads((out / "index.json").read_text())
    assert [p["file"] for p in index["points"]] == [
        "paper-2x2__phi-3.5-moe__real-c4__L16__8MiB.json", "paper-2x2__phi-3.5-moe__real-c4__L16__paper.json",
        "paper-2x2__mixtral-8x7b__real-c4__L16__8MiB.json", "paper-2x2__mixtral-8x7b__real-c4__L16__paper.json"]
    doc = json.loads((out / index["points"][2]["file"]).read_text())
    assert [r["strategy"] for r in doc["runs"]] == ["fse-dp", "fse-dp-paired", "ep", "hydra"]
    assert [s["strategy"] for s in doc["not_run"]] == ["ep-whole", "ep-paper"]
    assert all(r["provisioned_weight_bytes"] == 8 * MiB for r in doc["runs"])
    assert doc["point"]["routing"] == "real:c4" and doc["point"]["bound"]["limit"] == "dram"
    paper = json.loads((out / index["points"][3]["file"]).read_text())
    budgets = {r["strategy"]: r["provisioned_weight_bytes"] for r in paper["runs"]}
    # the reference model's provisioning: 12 slices of S = 56 (3 MiB), two whole experts (chunked, 336 MiB)
    assert budgets["fse-dp-paired"] == 36 * MiB and budgets["ep-paper"] == 336 * MiB
    phi = json.loads((out / index["points"][0]["file"]).read_text())
    assert phi["runs"][0]["config"]["routing"].endswith("routing/phi-3.5-moe_c4.json")
    rep = report.write_report(out).parent
    [row] = _rows(rep / "points.csv", model="mixtral-8x7b", budget="8 MiB", strategy="fse-dp-paired")
    assert float(row["iso_sram_speedup"]) == pytest.approx(0.5)


@pytest.mark.cocotb
def test_tiny_grid_on_the_rtl_engine(tmp_path, capsys):
    out = tmp_path / "g"
    assert cli.main(["grid", "--out", str(out), "--engine", "rtl", "--presets", "rtl-2x2", "--models", "tiny-8x2",
                     "--tokens", "4", "--routing", "real", "--seed", "1"]) == 0
    assert "[1/1] rtl-2x2 tiny-8x2 real:c4 L=4 preset" in capsys.readouterr().err
    doc = json.loads((out / "rtl-2x2__tiny-8x2__real-c4__L4__preset.json").read_text())
    assert doc["all_bit_exact"] is True and doc["point"]["routing_spec"] == "mixtral:c4"
    cycles = {r["strategy"]: r["cycles"] for r in doc["runs"]}
    assert set(cycles) == set(STRATEGIES)
    rep = report.write_report(out)
    best = min(cycles[b] for b in ("ep", "hydra", "ep-whole", "ep-paper"))
    [row] = _rows(rep.parent / "points.csv", strategy="fse-dp-paired")
    assert float(row["iso_sram_speedup"]) == pytest.approx(best / cycles["fse-dp-paired"])
    assert float(row["distance"]) >= 1.0  # no run beats the physical bound
    assert "Bit-exact against the golden model: 6 of 6 checked runs." in rep.read_text()


def test_grid_resumes_from_its_point_files(tmp_path, monkeypatch, capsys):
    """A grid run again into its folder takes every point whose file holds that point's
    result (same configuration and code) without simulating it; a truncated file, or a
    point of another configuration, is computed again."""
    calls = []

    def engine(workloads):
        calls.append(workloads[0].plan.trace.num_tokens)
        return _stand_in_engine(workloads)

    monkeypatch.setitem(sys.modules, "sim.fast", types.SimpleNamespace(run=engine))
    out = tmp_path / "g"
    argv = ["grid", "--out", str(out), "--presets", "paper-2x2", "--models", "mixtral-8x7b", "--tokens", "16,32",
            "--sram", "8MiB", "--jobs", "1"]
    assert cli.main(argv) == 0 and calls == [16, 32]
    files = [out / f"paper-2x2__mixtral-8x7b__real-c4__L{n}__8MiB.json" for n in (16, 32)]
    first = [f.read_text() for f in files]
    assert all(len(json.loads(t)["point"]["cache_key"]) == 64 for t in first)
    capsys.readouterr()
    calls.clear()
    assert cli.main(argv) == 0 and calls == []
    assert [f.read_text() for f in files] == first
    err = capsys.readouterr().err
    assert err.count("(cached: its file holds this configuration's result)") == 2
    assert len(json.loads((out / "index.json").read_text())["points"]) == 2
    files[1].write_text(first[1][:100])              # a file cut short: computed again
    assert cli.main(argv) == 0 and calls == [32] and files[1].read_text() == first[1]
    calls.clear()
    assert cli.main(argv + ["--seed", "1"]) == 0 and calls == [16, 32]     # another configuration
    assert json.loads(files[0].read_text())["point"]["cache_key"] != json.loads(first[0])["point"]["cache_key"]


def test_grid_isolates_a_failing_point_and_reports_it(tmp_path, monkeypatch, capsys):
    def engine(workloads):
        if any(w.plan.trace.num_tokens == 32 for w in workloads):
            raise RuntimeError("simulation stalled: test")
        return _stand_in_engine(workloads)

    monkeypatch.setitem(sys.modules, "sim.fast", types.SimpleNamespace(run=engine))
    out = tmp_path / "g"
    with pytest.raises(SystemExit) as exc:
        cli.main(["grid", "--out", str(out), "--presets", "paper-2x2", "--models", "mixtral-8x7b", "--tokens", "16,32",
                  "--sram", "8MiB", "--jobs", "1"])
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert "[2/2] paper-2x2 mixtral-8x7b real:c4 L=32 8MiB: FAILED: simulation stalled: test" in err
    assert err.splitlines()[-1].startswith("fsedp: error: 1 point(s) failed to simulate (paper-2x2 mixtral-8x7b")
    index = json.loads((out / "index.json").read_text())
    assert [bool(p.get("error")) for p in index["points"]] == [False, True]
    assert (out / "paper-2x2__mixtral-8x7b__real-c4__L16__8MiB.json").exists()
    md = report.write_report(out).read_text()
    assert "Failed to simulate (1 points, from index.json; not in the tables): paper-2x2 mixtral-8x7b" in md


def test_iso_area_view_prices_each_run_and_compares_on_equal_die(synthetic, tmp_path):
    out = tmp_path / "rep"
    assert cli.main(["report", str(synthetic), "--out", str(out)]) == 0
    die = {(r["budget"], r["strategy"]): r for r in _rows(out / "die_area.csv")}
    d2, d4, dp = (float(die[k]["die_mm2"]) for k in (("2 MiB", "hydra"), ("4 MiB", "ep"), ("paper", "ep-paper")))
    # Only the weight buffer differs between runs: two read ports, LLMCompass's formula.
    w = lambda n: area.sram_area_um2(8, n, read_ports=2)[0] / 1e6
    assert d4 - d2 == pytest.approx(w(4 * MiB) - w(2 * MiB))
    assert dp - d4 == pytest.approx(w(12 * MiB) - w(4 * MiB))
    parts = ("weight_sram_mm2", "token_sram_mm2", "other_sram_mm2", "logic_mm2", "phy_mm2")
    assert float(die["4 MiB", "ep"]["die_mm2"]) == pytest.approx(sum(float(die["4 MiB", "ep"][p]) for p in parts))
    md = (out / "report.md").read_text()
    # paired needs 4 MiB (150); the least-needing baseline is Hydra at 2 MiB (240); on the
    # paired die the fastest baseline is EP at 4 MiB (160): 160 / 150.
    row = next(line for line in md.splitlines() if line.startswith("| olmoe-1b-7b | 16 | ") and "mm2" in line)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2] == f"{d4:.1f} mm2 (4 MiB)" and cells[3] == f"{d2:.1f} mm2 (2 MiB, hydra)"
    assert cells[4] == f"{100 * (1 - d4 / d2):.1f}%" and cells[5] == "-100.0%"
    assert cells[6] == "ep (4 MiB)" and cells[7] == "1.07x"
