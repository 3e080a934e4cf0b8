"""``fsedp model``: whole-model prefill and decode runs (sim.eval.inference).

Every layer of a whole-model run must be the layer run on its own (the same cycles as
``prepare`` + the engine with that layer's routing and seed), the totals the sums the
docs define, and the timeline the layers laid end to end after the attention cycles."""

import dataclasses
import json
import statistics

import pytest

from scheduler import description, presets, routing
from sim import cli, fast
from sim.eval import inference
from sim.eval.inference import ModelRunSpec, recorded_layer
from sim.workload import prepare


@pytest.fixture
def three_layer_model(tmp_path):
    """tiny-8x2 (Mixtral's experts and top-k) with three MoE layers, as a model file."""
    path = tmp_path / "tiny3.toml"
    path.write_text(description.dump_model(dataclasses.replace(presets.get_model("tiny-8x2"), name="tiny3",
                                                               moe_layers=3)))
    return str(path)


def test_presets_carry_their_moe_layers():
    layers = {m: presets.get_model(m).moe_layers for m in ("olmoe-1b-7b", "mixtral-8x7b", "deepseek-moe-16b",
                                                             "qwen3-30b-a3b", "phi-3.5-moe", "yuan2-m32")}
    assert layers == {"olmoe-1b-7b": 16, "mixtral-8x7b": 32, "deepseek-moe-16b": 27, "qwen3-30b-a3b": 48,
                      "phi-3.5-moe": 32, "yuan2-m32": 24}
    with pytest.raises(presets.PresetError, match="moe_layers must be a positive integer"):
        dataclasses.replace(presets.get_model("tiny-8x2"), moe_layers=0)


def test_recorded_layer_is_the_nearest_in_relative_depth():
    rec = (0, 7, 15)
    # the recorded model itself (16 layers): nearest by index, ties to the shallower
    assert [recorded_layer(l, 16, rec, 16) for l in range(16)] == [0] * 4 + [7] * 8 + [15] * 4
    # Mixtral's 32 layers recorded at 0, 7, 15 of 32: depth l / 31 against r / 31
    assert [recorded_layer(l, 32, rec, 32) for l in (0, 3, 4, 11, 12, 31)] == [0, 0, 7, 7, 15, 15]
    # 48 layers on OLMoE's 16: layer l sits at depth l / 47, recorded layer 7 at 7 / 15; the
    # midpoints 7 / 30 and 11 / 15 fall between layers 10 and 11 and between 34 and 35
    assert [recorded_layer(l, 48, rec, 16) for l in (0, 10, 11, 34, 35, 47)] == [0, 0, 7, 7, 15, 15]
    assert recorded_layer(0, 1, rec, 16) == 0


def test_layer_routings_of_own_and_derived_statistics(tmp_path):
    own, note = inference.layer_routings(ModelRunSpec(model="olmoe-1b-7b"), tmp_path)
    assert [lr.spec for lr in own[:5]] == ["olmoe:c4:0"] * 4 + ["olmoe:c4:7"]
    assert len(own) == 16 and "nearest in relative depth" in note
    derived, note = inference.layer_routings(ModelRunSpec(model="qwen3-30b-a3b", domain="book", layers=8), tmp_path)
    assert len(derived) == 8 and "derived from OLMoE" in note
    m = presets.get_model("qwen3-30b-a3b")
    for lr in derived:      # a derived statistics file with the recorded layer, drawn as any other
        assert lr.spec.endswith(f".json:{lr.recorded}")
        assert routing.from_spec(lr.spec, 4, m.num_experts, m.top_k, 1).num_tokens == 4
    fixed, note = inference.layer_routings(ModelRunSpec(model="olmoe-1b-7b", routing="zipf:1.2", layers=2), tmp_path)
    assert [lr.spec for lr in fixed] == ["zipf:1.2"] * 2 and fixed[0].recorded is None


def test_layer_seeds_differ_by_phase_step_and_layer():
    seeds = {inference.layer_seed(0, ph, s, l) for ph in inference.PHASES for s in range(3) for l in range(16)}
    assert len(seeds) == 2 * 3 * 16
    assert inference.layer_seed(5, "decode", 1, 2) == inference.layer_seed(5, "decode", 1, 2)
    assert all(0 <= s < 2 ** 63 for s in seeds)


def test_whole_model_is_its_layers_end_to_end(three_layer_model):
    """Fast engine: every layer equals the layer run alone; totals, throughput and the
    decode latency are the documented sums; the timeline lays layers end to end."""
    att = 100
    spec = ModelRunSpec(preset="rtl-2x2", model=three_layer_model, strategies=("fse-dp-paired", "ep", "ep-paper"),
                        prefill=16, batch=4, steps=2, attention_cycles=att, seed=3)
    doc = inference.run_model(spec, log=open("/dev/null", "w"))
    assert [(r["phase"], r["step"], r["layer"]) for r in doc["layers"]] == (
        [("prefill", 0, l) for l in range(3)] + [("decode", s, l) for s in range(2) for l in range(3)])
    m = presets.get_model(three_layer_model)
    for rec in doc["layers"]:
        assert rec["routing"] == f"real:c4:{rec['recorded_layer']}"
        for s in spec.strategies:
            w = prepare(preset="rtl-2x2", model=three_layer_model, tokens=rec["tokens"],
                        routing_spec=f"mixtral:c4:{rec['recorded_layer']}", strategy=s, seed=rec["seed"],
                        with_data=False)
            alone = fast.run([w])[0].to_json()
            run = rec["runs"][s]
            assert run["status"] == "ran" and run["cycles"] == alone["cycles"]
            assert run["done_cycle"] == alone["done_cycle"] and run["energy_j"] == alone["energy"]["total_j"]
            assert run["idle_chiplet_cycles"] == sum(alone["cycles"] - d for d in alone["done_cycle"])
    # the routing differs from layer to layer and step to step (their own seeds)
    traces = {tuple(map(tuple, routing.from_spec(f"mixtral:c4:{r['recorded_layer']}", r["tokens"], m.num_experts,
                                                 m.top_k, r["seed"]).experts.tolist())) for r in doc["layers"]}
    assert len(traces) == len(doc["layers"])

    clock = doc["clock_ghz"]
    for s in spec.strategies:
        pre = [r["runs"][s]["cycles"] for r in doc["layers"] if r["phase"] == "prefill"]
        steps = [[r["runs"][s]["cycles"] for r in doc["layers"] if r["phase"] == "decode" and r["step"] == k]
                 for k in range(2)]
        t = doc["totals"][s]
        assert t["prefill"]["cycles"] == sum(pre) + 3 * att and t["prefill"]["moe_cycles"] == sum(pre)
        assert t["prefill"]["tokens_per_s"] == pytest.approx(16 / (t["prefill"]["cycles"] / (clock * 1e9)))
        step_cycles = [sum(c) + 3 * att for c in steps]
        assert t["decode"]["step_cycles"] == step_cycles
        assert t["decode"]["token_latency_us"] == pytest.approx(statistics.fmean(step_cycles) / (clock * 1e3))
        assert t["decode"]["tokens_per_s"] == pytest.approx(4 * 2 / (sum(step_cycles) / (clock * 1e9)))
        e = sum(r["runs"][s]["energy_j"] for r in doc["layers"] if r["phase"] == "decode")
        assert t["decode"]["energy_per_token_j"] == pytest.approx(e / 8)

    # timeline: layer l starts A cycles after layer l - 1 ends, chiplets end at their done cycle
    trace = inference.timeline(doc)
    names = {e["pid"]: e["args"]["name"] for e in trace["traceEvents"] if e.get("name") == "process_name"}
    assert sorted(names.values()) == sorted(f"{s} {p}" for s in spec.strategies for p in inference.PHASES)
    pid = next(p for p, n in names.items() if n == "ep decode")
    layers = [e for e in trace["traceEvents"] if e["pid"] == pid and e.get("cat") == "layer"]
    starts, t = [], 0
    for c in [r["runs"]["ep"]["cycles"] for r in doc["layers"] if r["phase"] == "decode"]:
        starts.append(t + att)
        t += att + c
    ns = 1 / clock
    assert [e["ts"] for e in layers] == [int(c * ns) / 1000 for c in starts]
    chip = [e for e in trace["traceEvents"] if e["pid"] == pid and e.get("cat") == "chiplet"]
    assert len(chip) == 6 * 4
    decode = [r["runs"]["ep"] for r in doc["layers"] if r["phase"] == "decode"]
    assert sum(e["args"]["waits_for_last_chiplet"] for e in chip) == sum(r["idle_chiplet_cycles"] for r in decode)
    assert [e["args"]["done_cycle"] for e in chip] == [d for r in decode for d in r["done_cycle"]]
    assert all(t[p]["status"] == "ran" for t in doc["totals"].values() for p in inference.PHASES)


def test_cli_writes_every_output(tmp_path, three_layer_model, capsys):
    out = tmp_path / "m"
    assert cli.main(["model", "--preset", "rtl-2x2", "--model", three_layer_model, "--prefill", "16", "--batch",
                     "4", "--steps", "1", "--jobs", "1", "--strategies", "fse-dp,ep", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "decode us/token" in text and "MoE layer time (us) per layer, prefill, L = 16" in text
    assert "attention and gate: 0 cycles per layer" in text
    doc = json.loads((out / "model.json").read_text())
    assert doc["layers_run"] == 3 and set(doc["totals"]) == {"fse-dp", "ep"}
    rows = (out / "layers.csv").read_text().splitlines()
    assert rows[0].startswith("phase,step,layer,recorded_layer") and len(rows) == 1 + 6 * 2
    assert (out / "latency.png").stat().st_size > 1000
    assert json.loads((out / "timeline.json").read_text())["traceEvents"]


def test_what_does_not_fit_says_so_by_layer(tmp_path, three_layer_model, capsys):
    argv = ["model", "--preset", "rtl-2x2", "--model", three_layer_model, "--prefill", "16", "--batch", "0",
            "--jobs", "1", "--out", str(tmp_path / "o")]
    assert cli.main(argv + ["--sram", "4KiB", "--strategies", "fse-dp,ep-whole"]) == 0
    text = capsys.readouterr().out
    assert "ep-whole prefill: does not fit: layer 0: ep-whole does not fit: it needs a slot of one whole expert" in text
    with pytest.raises(SystemExit) as exc:
        cli.main(argv + ["--sram", "1KiB"])
    assert exc.value.code == 2
    assert "fsedp: error: no strategy can run here: fse-dp" in capsys.readouterr().err


@pytest.mark.parametrize("argv,message", [
    (["--layers", "40"], "--layers 40: olmoe-1b-7b has 16 MoE layers"),
    (["--prefill", "0", "--batch", "0"], "nothing to run"),
    (["--prefill", "100000"], "--prefill 100000: paper-2x2 holds at most"),
    (["--engine", "rtl"], "--engine rtl: paper-2x2 is not an RTL preset"),
    (["--strategies", "ep,nope"], "unknown strategy 'nope'"),
    (["--preset", "rtl-2x2", "--hardware", "x.toml"], "give --preset or --hardware, not both"),
    (["--routing", "zipf:x"], "Zipf skew 'x' is not a number"),
    (["--routing", "t.jsonl"], "a .jsonl trace is one layer's fixed tokens"),
])
def test_bad_flags_are_one_line(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        cli.main(["model", "--out", str(tmp_path / "o")] + argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("fsedp: error: ") and message in err and "\n" not in err


def test_rtl_engine_runs_every_layer_bit_exact(three_layer_model):
    """The RTL engine: every layer invocation is checked against the golden model."""
    spec = ModelRunSpec(preset="rtl-2x2", model=three_layer_model, strategies=("fse-dp-paired", "ep"), engine="rtl",
                        prefill=16, batch=4, steps=1, layers=2, seed=1)
    doc = inference.run_model(spec, log=open("/dev/null", "w"))
    assert len(doc["layers"]) == 4
    assert all(r["runs"][s]["bit_exact"] is True for r in doc["layers"] for s in spec.strategies)
    assert all(doc["totals"][s][p]["bit_exact"] is True for s in spec.strategies for p in inference.PHASES)


def test_python_api_whole_model():
    """``fsedp.whole_model`` takes preset objects and gives the document ``fsedp model`` writes."""
    import fsedp

    m = dataclasses.replace(fsedp.model("tiny-8x2"), moe_layers=2)
    doc = fsedp.whole_model(m, fsedp.hardware("rtl-2x2"), strategies=["fse-dp", "ep"], prefill=16, batch=4,
                            steps=1, attention_cycles=10)
    assert doc["layers_run"] == 2 and len(doc["layers"]) == 4 and doc["attention_cycles"] == 10
    t = doc["totals"]["ep"]["decode"]
    assert t["cycles"] == sum(10 + r["runs"]["ep"]["cycles"] for r in doc["layers"] if r["phase"] == "decode")


def test_a_layer_that_fails_to_simulate_is_named_and_exits_2(tmp_path, three_layer_model, monkeypatch, capsys):
    """The other layers still run and are written; the end is one line naming the layer."""
    from sim.eval import grid

    real = grid.run_point

    def run_point(point, engine, seed):
        if point.spec.endswith(":15") and point.tokens == 16:
            return None, 0.0, "simulation stalled: test"
        return real(point, engine, seed)

    monkeypatch.setattr(grid, "run_point", run_point)
    with pytest.raises(SystemExit) as exc:
        cli.main(["model", "--preset", "rtl-2x2", "--model", three_layer_model, "--prefill", "16", "--batch", "0",
                  "--jobs", "1", "--strategies", "ep", "--out", str(tmp_path / "o")])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("fsedp: error: 2 point(s) failed to simulate (prefill layer 1; prefill layer 2)")
    doc = json.loads((tmp_path / "o" / "model.json").read_text())
    assert [r["runs"]["ep"]["status"] for r in doc["layers"]] == ["ran", "failed", "failed"]
    assert doc["totals"]["ep"]["prefill"]["status"] == "failed"
