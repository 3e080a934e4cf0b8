"""FSE-DP in chiplet groups (``--groups``, ``scheduler.groups``): the partitions, the
plans (trajectories, tokens and DRAM streams stay in their group; each group streams
exactly its tokens' experts), the controller programs, the command line's one-line
errors, and bit-exact RTL runs."""

import json
import subprocess
import sys

import numpy as np
import pytest

from hw import isa
from scheduler import golden, groups, presets, program, ring
from scheduler.groups import GroupError
from scheduler.plan import PlanError
from scheduler.routing import from_spec
from scheduler.strategies import FSE_DP, build_plan, expert_order, spread_tokens
from sim.workload import prepare

from test_strategies import execute

TINY = presets.get_model("tiny-8x2")


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "sim.cli", *args], capture_output=True, text=True)


# ---------------------------------------------------------------------------- partitions

def test_default_partitions():
    assert groups.default_partitions(3, 3)[2] == ((0, 1, 4, 3), (2, 5, 8, 7, 6))
    assert groups.default_partitions(4, 4)[4] == ((0, 1, 5, 4), (2, 3, 7, 6), (8, 9, 13, 12), (10, 11, 15, 14))
    assert groups.default_partitions(4, 4)[2] == ((0, 1, 2, 3, 7, 6, 5, 4), (8, 9, 10, 11, 15, 14, 13, 12))
    assert groups.default_partitions(2, 2)[2] == ((0, 1), (2, 3))
    for rows, cols in ((2, 2), (3, 3), (4, 4), (2, 3)):
        parts = groups.default_partitions(rows, cols)
        assert parts[1] == (tuple(ring.ring_order(rows, cols)),)
        for n, rings in parts.items():       # every default is a legal set of rings
            assert len(rings) == n and sorted(c for r in rings for c in r) == list(range(rows * cols))


def test_resolve_forms_agree():
    hw = presets.get_hardware("rtl-3x3")
    rings = ((0, 1, 4, 3), (2, 5, 8, 7, 6))
    assert groups.resolve(2, hw) == groups.resolve("2", hw) == groups.resolve("0,1,4,3; 2,5,8,7,6", hw) \
        == groups.resolve([[0, 1, 4, 3], [2, 5, 8, 7, 6]], hw) == rings
    assert groups.resolve(None, hw) is None
    assert groups.successors(rings, 9) == (1, 4, 5, 0, 3, 8, 2, 6, 7)


@pytest.mark.parametrize("spec,message", [
    ("x", "--groups 'x': 'x' is not a chiplet number"),
    ("0,1;;2", "ring 1 is empty"),
    ("0", "the number of groups must be at least 1"),
    ("3", "--groups 3: the default partition into 3 rings (0 1 2 | 3 4 5 | 6 7 8) leaves a ring without a DRAM "
          "channel (channels on chiplets 0, 2, 8, 6); rtl-3x3 takes --groups 1, 2, or explicit rings"),
    ("5", "the 3x3 mesh has no default partition into 5 rings; rtl-3x3 takes --groups 1, 2"),
    ("0,1,4,3;2,5,8,7,9", "chiplet 9 is outside the 3x3 mesh (chiplets 0..8)"),
    ("0,1,4;3,4,2,5,8,7,6", "chiplet 4 is in groups 0 and 1"),
    ("0,1,4,3,1;2,5,8,7,6", "chiplet 1 is twice in group 0"),
    ("0,1,4,3;2,5,8", "chiplets 6, 7 are in no group"),
])
def test_bad_groupings_are_refused(spec, message):
    with pytest.raises(GroupError) as err:
        groups.resolve(spec, presets.get_hardware("rtl-3x3"))
    assert message in str(err.value) and "\n" not in str(err.value)


# ---------------------------------------------------------------------------- plans

CASES = [("rtl-3x3", 2, 16, "mixtral:c4"), ("rtl-3x3", 2, 5, "zipf:1.2"), ("rtl-4x4", 4, 64, "mixtral:c4"),
         ("rtl-4x4", 2, 16, "uniform"), ("rtl-2x2", 2, 13, "mixtral:c4"), ("rtl-3x3", "0,1,2,5,4,3;6,7,8", 16,
                                                                            "uniform")]


@pytest.mark.parametrize("strategy", FSE_DP)
@pytest.mark.parametrize("preset,spec,tokens,routing", CASES)
def test_group_plans_keep_trajectories_tokens_and_streams_in_their_group(strategy, preset, spec, tokens, routing):
    hw = presets.get_hardware(preset)
    trace = from_spec(routing, tokens, TINY.num_experts, TINY.top_k, seed=1)
    plan = build_plan(strategy, TINY, hw, trace, groups=spec)
    rings = groups.resolve(spec, hw)
    assert plan.groups == rings
    home, _ = spread_tokens(tokens, hw.num_chiplets)
    assert list(plan.token_home) == home                       # tokens stay at their home chiplets
    for g, members in enumerate(rings):
        for i, c in enumerate(members):                         # the trajectory: this ring, each chiplet once
            assert plan.successor[c] == members[(i + 1) % len(members)]
            assert plan.ring_len(c) == len(members)
        mine = [t for t in range(tokens) if home[t] in members]
        counts = np.bincount(trace.experts[mine].ravel(), minlength=TINY.num_experts)
        want = tuple(expert_order(counts, paired=strategy == "fse-dp-paired"))
        assert plan.group_experts(g) == want                   # exactly its tokens' experts, in its own order
        channels = [ch for ch, c in enumerate(hw.dram_chiplets) if c in members]
        streamed = [t for ch in channels for t in plan.streams[ch]]
        assert sorted((t.expert, t.slice) for t in streamed) == sorted((e, s) for e in want
                                                                        for s in range(plan.slices))
        for ch in channels:                                     # injected into the channel's own chiplet
            assert all(t.dst == hw.dram_chiplets[ch] for t in plan.streams[ch])
        for c in members:
            assert tuple(plan.jobs[c]) == want and plan.arrivals(c) == len(want) * plan.slices
    # and the plan computes the golden layer
    layer = golden.random_layer(TINY.num_experts, TINY.d_model, TINY.d_ff, seed=2)
    x = golden.random_tokens(tokens, TINY.d_model, seed=2)
    expect = golden.moe_layer(layer, x, trace.experts, golden.quantize_gate_weights(trace.weights))
    assert np.array_equal(execute(plan, layer, x), expect)


@pytest.mark.parametrize("strategy", FSE_DP)
@pytest.mark.parametrize("preset", ["rtl-2x2", "rtl-3x3"])
def test_one_group_is_the_plan_without_groups(strategy, preset):
    hw = presets.get_hardware(preset)
    trace = from_spec("mixtral:c4", 16, 8, 2, seed=0)
    a, b = build_plan(strategy, TINY, hw, trace), build_plan(strategy, TINY, hw, trace, groups=1)
    assert a.groups is None and b.groups == (tuple(ring.ring_order(hw.rows, hw.cols)),)
    assert (a.successor, a.streams, a.jobs, a.expert_order) == (b.successor, b.streams, b.jobs, b.expert_order)
    assert all(a.ring_len(c) == hw.num_chiplets for c in range(hw.num_chiplets))


def test_contiguous_layout_splits_each_groups_sequence_over_its_channels():
    hw = presets.get_hardware("rtl-3x3")
    plan = build_plan("fse-dp", TINY, hw, from_spec("uniform", 16, 8, 2, seed=0), groups=2, layout="contiguous")
    s = plan.slices
    group_b = [plan.streams[ch] for ch, c in enumerate(hw.dram_chiplets) if c != 0]     # chiplets 2, 8, 6
    sequence = [(e, i) for e in plan.group_experts(1) for i in range(s)]
    assert [(t.expert, t.slice) for part in group_b for t in part] == sequence
    assert max(map(len, group_b)) - min(map(len, group_b)) <= 1


def test_a_group_with_tokens_but_no_dram_channel_is_an_error():
    hw = presets.get_hardware("rtl-3x3")
    trace = from_spec("uniform", 16, 8, 2, seed=0)
    with pytest.raises(PlanError, match=r"--groups: group 1 \(chiplets 3 4 5\) holds tokens but none of its "
                                        r"chiplets has a DRAM channel \(channels on chiplets 0, 2, 8, 6\)"):
        build_plan("fse-dp", TINY, hw, trace, groups="0,1,2;3,4,5;6,7,8")
    # without tokens there (3 tokens live on chiplets 0, 1, 2) nothing needs streaming there
    plan = build_plan("fse-dp", TINY, hw, from_spec("uniform", 3, 8, 2, seed=0), groups="0,1,2;3,4,5;6,7,8")
    assert all(plan.jobs[c] == {} and plan.arrivals(c) == 0 for c in (3, 4, 5, 6, 7, 8))


@pytest.mark.parametrize("strategy", ["ep", "hydra", "ep-whole", "ep-paper"])
def test_groups_do_not_apply_to_the_ep_family(strategy):
    with pytest.raises(PlanError, match=f"--groups does not apply to {strategy}"):
        build_plan(strategy, TINY, presets.get_hardware("rtl-3x3"), from_spec("uniform", 16, 8, 2), groups=2)


def test_controller_programs_carry_each_chiplets_ring():
    w = prepare(preset="rtl-3x3", model="tiny-8x2", tokens=16, routing_spec="mixtral:c4", strategy="fse-dp-paired",
                groups=2)
    assert w.spec["groups"] == [[0, 1, 4, 3], [2, 5, 8, 7, 6]]
    for p in w.programs.controllers:
        ops = [program.decode(word) for word in p.words]
        regs = {f["reg"]: f["value"] for op, f in ops if op is isa.Opcode.SET}
        assert regs[isa.Reg.SUCCESSOR] == w.plan.successor[p.index]
        assert regs[isa.Reg.RING_LEN] == (4 if p.index in (0, 1, 3, 4) else 5)
        assert regs[isa.Reg.ARRIVALS] == w.plan.arrivals(p.index)
        assert [f["expert"] for op, f in ops if op is isa.Opcode.EXPERT] == list(w.plan.jobs[p.index])
    # the expected accumulators still add up to the golden layer
    out = np.array([w.expected[w.plan.token_home[t]][w.plan.token_row[t]] for t in range(16)])
    assert np.array_equal(out, w.output)


# ---------------------------------------------------------------------------- command line

@pytest.mark.parametrize("args,message", [
    (["--groups", "0,1,x"], "--groups '0,1,x': 'x' is not a chiplet number"),
    (["--groups", "0,1,4,3;2,5,8,7,9"], "chiplet 9 is outside the 3x3 mesh"),
    (["--groups", "0,1,4,3;2,4,5,8,7,6"], "chiplet 4 is in groups 0 and 1"),
    (["--groups", "0,1,4,3;2,5,8,7"], "chiplet 6 is in no group"),
    (["--groups", "0,1,2;3,4,5;6,7,8"], "group 1 (chiplets 3 4 5) holds tokens but none of its chiplets has a DRAM "
                                        "channel (channels on chiplets 0, 2, 8, 6)"),
    (["--groups", "4"], "--groups 4: the 3x3 mesh has no default partition into 4 rings"),
    (["--groups", "2", "--strategy", "ep"], "--groups does not apply to ep: only FSE-DP"),
    (["--groups", "2"], None),
])
def test_run_refuses_bad_groups_in_one_line(args, message):
    out = run_cli("run", "--engine", "fast", "--preset", "rtl-3x3", *args)
    if message is None:
        assert out.returncode == 0, out.stderr
        assert "chiplet groups (--groups): rings 0 1 4 3 | 2 5 8 7 6 for fse-dp-paired" in out.stdout
        return
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("fsedp: error: "), out.stderr
    assert message in out.stderr


def test_compare_runs_fse_dp_in_groups_and_the_ep_family_on_the_whole_mesh(tmp_path):
    js = tmp_path / "c.json"
    out = run_cli("compare", "--engine", "fast", "--preset", "rtl-3x3", "--groups", "2", "--json", str(js))
    assert out.returncode == 0, out.stderr
    assert ("chiplet groups (--groups): rings 0 1 4 3 | 2 5 8 7 6 for fse-dp, fse-dp-paired; ep, hydra, ep-whole, "
            "ep-paper ran without groups, on the whole mesh") in out.stdout
    runs = {r["strategy"]: r for r in json.loads(js.read_text())["runs"]}
    assert len(runs) == 6
    for s, r in runs.items():
        assert r["config"].get("groups") == ([[0, 1, 4, 3], [2, 5, 8, 7, 6]] if s in FSE_DP else None)


# ---------------------------------------------------------------------------- RTL

@pytest.mark.cocotb
def test_compare_rtl_3x3_in_two_groups_is_bit_exact(tmp_path):
    js = tmp_path / "c.json"
    out = run_cli("compare", "--preset", "rtl-3x3", "--groups", "2", "--json", str(js))
    assert out.returncode == 0, out.stderr
    runs = {r["strategy"]: r for r in json.loads(js.read_text())["runs"]}
    for s in FSE_DP:
        assert runs[s]["bit_exact"] is True and runs[s]["config"]["groups"] == [[0, 1, 4, 3], [2, 5, 8, 7, 6]]
        assert all(n == 0 for n in runs[s]["slots_in_use_at_end"])
    assert all(r["bit_exact"] is True for r in runs.values())


@pytest.mark.cocotb
def test_rtl_2x2_in_pairs_and_in_single_chiplets_is_bit_exact_and_the_fast_model_agrees():
    """Two 1x2 rings, and four rings of one chiplet each (every chiplet streams its own
    tokens' experts from its own channel; RING_LEN 1: no forward at all)."""
    from sim import fast, rtl

    works = [prepare(preset="rtl-2x2", model="tiny-8x2", tokens=16, routing_spec="mixtral:c4", strategy=s,
                     groups=g) for g in (2, "0;1;2;3") for s in FSE_DP]
    assert all(w.plan.ring_len(c) == 1 for w in works[2:] for c in range(4))
    ref, model = rtl.run(works), fast.run(works)
    for w, r, f in zip(works, ref, model):
        assert r.bit_exact is True, w.plan.groups
        assert abs(f.cycles - r.cycles) <= 0.01 * r.cycles, (w.plan.groups, r.cycles, f.cycles)
        for k in ("macs", "dram_flits", "link_flits", "slot_high_water"):
            assert [getattr(c, k) for c in r.chiplets] == [getattr(c, k) for c in f.chiplets], k
    assert all(sum(c.link_flits) == 0 for r in ref[2:] for c in r.chiplets)    # no D2D traffic at all


# ---------------------------------------------------------------------------- evaluation grid

def test_grid_runs_fse_dp_in_groups_and_the_ep_family_on_the_whole_mesh(tmp_path):
    import io

    from sim.eval import grid

    spec = grid.GridSpec(out=tmp_path, presets=("rtl-3x3",), models=("tiny-8x2",), tokens=(16,),
                         routings=("uniform",), srams=("preset",), groups="2")
    index = grid.run_grid(spec, log=io.StringIO())
    assert index["grid"]["groups"] == "2" and len(index["points"]) == 1
    doc = json.loads((tmp_path / index["points"][0]["file"]).read_text())
    assert doc["point"]["groups"] == [[0, 1, 4, 3], [2, 5, 8, 7, 6]]
    runs = {r["strategy"]: r for r in doc["runs"]}
    assert len(runs) == 6
    assert all(("groups" in r["config"]) == (s in FSE_DP) for s, r in runs.items())
    with pytest.raises(grid.GridError, match=r"--groups 4: the 3x3 mesh has no default partition into 4 rings.*"
                                             r"\(preset rtl-3x3\)"):
        grid.check_spec(grid.GridSpec(out=tmp_path, presets=("paper-4x4", "rtl-3x3"), groups="4"))
