"""Strategy plans on hand-built routings where the right answer is obvious, and a numpy
execution of every plan that must reproduce the golden layer exactly."""

import numpy as np
import pytest

from scheduler import golden, presets, ring
from scheduler.plan import STRATEGIES
from scheduler.presets import ModelPreset
from scheduler.routing import RoutingTrace, uniform, zipf
from scheduler.strategies import PlanError, build_plan, expert_order, spread_tokens

HW = presets.get_hardware("rtl-2x2")
MODEL = ModelPreset("t-4x1", d_model=8, d_ff=32, num_experts=4, top_k=1, slices=4, source="test")
MODEL2 = ModelPreset("t-8x2", d_model=8, d_ff=32, num_experts=8, top_k=2, slices=4, source="test")


def trace_of(experts):
    experts = np.array(experts)
    return RoutingTrace(experts, np.full(experts.shape, 1.0 / experts.shape[1]))


def execute(plan, layer, x):
    """Apply a plan's jobs in numpy: each chiplet applies the slices (tiles) of each of its
    experts that it receives to the listed token-buffer rows; EP results travel back and
    are added."""
    L, d = x.shape
    buffers = {}
    for c in range(plan.num_chiplets):
        rows = plan.token_rows(c)
        buf = np.zeros((rows, d), dtype=np.int8)
        for t in plan.resident_tokens(c):
            buf[plan.token_row[t]] = x[t]
        if plan.remote_rows:
            for (src, t), r in plan.remote_rows[c].items():
                assert plan.token_home[t] == src
                buf[r] = x[t]
        buffers[c] = buf
    acc = {c: np.zeros((len(buffers[c]), d), dtype=np.int64) for c in buffers}
    for c in range(plan.num_chiplets):
        for e, entries in plan.jobs[c].items():
            if not entries:
                continue
            rows = np.array([r for r, _ in entries])
            q = np.array([g for _, g in entries])
            for s in plan.tiles(c)[e]:
                cols = golden.slice_columns(layer.d_ff, plan.slices, s)
                acc[c][rows] += golden.apply_slice(layer, e, cols, buffers[c][rows], q)
    out = np.zeros((L, d), dtype=np.int64)
    for t in range(L):
        out[t] += acc[plan.token_home[t]][plan.token_row[t]]
    for s in plan.token_sends:
        out[s.token] += acc[s.dst][plan.remote_rows[s.dst][(s.src, s.token)]]
    return golden.wrap_int32(out)


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("make", [lambda: uniform(13, 8, 2, seed=1), lambda: zipf(29, 8, 2, 1.5, seed=2),
                                  lambda: uniform(1, 8, 2, seed=3)])
def test_every_plan_computes_the_golden_layer(strategy, make):
    trace = make()
    layer = golden.random_layer(8, 8, 16, seed=4)
    x = golden.random_tokens(trace.num_tokens, 8, seed=4)
    plan = build_plan(strategy, MODEL2, HW, trace)
    expect = golden.moe_layer(layer, x, trace.experts, golden.quantize_gate_weights(trace.weights))
    assert np.array_equal(execute(plan, layer, x), expect)


def test_paired_order_interleaves_heaviest_and_lightest():
    assert expert_order([5, 1, 3, 2, 0, 9], paired=True) == [5, 1, 0, 3, 2]
    assert expert_order([5, 1, 3, 2, 0, 9], paired=False) == [0, 1, 2, 3, 5]
    assert expert_order([0, 0, 0], paired=True) == []
    assert expert_order([2, 2, 2], paired=True) == [0, 2, 1]   # ties by id


def test_tokens_spread_evenly_in_blocks():
    home, row = spread_tokens(10, 4)
    assert home == [0, 0, 0, 1, 1, 1, 2, 2, 3, 3]
    assert row == [0, 1, 2, 0, 1, 2, 0, 1, 0, 1]


def test_one_hot_expert_fse_dp_streams_only_its_slices_to_every_chiplet():
    plan = build_plan("fse-dp", MODEL, HW, trace_of([[2]] * 8))
    assert plan.expert_order == (2,)
    transfers = [t for s in plan.streams for t in s]
    assert sorted((t.expert, t.slice) for t in transfers) == [(2, s) for s in range(4)]
    # round-robin: one slice from each of the four channels, each into its own chiplet
    assert [len(s) for s in plan.streams] == [1, 1, 1, 1]
    assert [s[0].dst for s in plan.streams] == list(HW.dram_chiplets)
    assert all(plan.jobs[c] == {2: ((0, 255), (1, 255))} for c in range(4))
    assert plan.successor == (1, 3, 0, 2)
    # 12 KiB of weight buffer holds 64 slices of 192 B: the slot table's 16
    assert plan.slot_bytes == MODEL.expert_bytes // 4 and plan.slots == HW.max_slots == 16


def test_one_hot_expert_ep_whole_loads_it_once_and_gathers_all_tokens():
    plan = build_plan("ep-whole", MODEL, HW, trace_of([[2]] * 8))
    assert plan.placement == {2: (0,)}
    assert [t for s in plan.streams for t in s] == [plan.streams[0][0]]
    assert plan.streams[0][0].dst == 0 and plan.slices == 1 and plan.slot_bytes == MODEL.expert_bytes
    assert len(plan.token_sends) == 6       # the 6 tokens not resident on chiplet 0
    assert len(plan.jobs[0][2]) == 8


def test_one_hot_expert_ep_splits_it_over_every_chiplet():
    """One active expert, four chiplets: tiled EP gives each chiplet a quarter of its FFN
    columns (one of the four tiles), every token goes to the three other chiplets, and
    every channel streams one tile (striped), relayed to chiplets other than its own."""
    plan = build_plan("ep", MODEL, HW, trace_of([[2]] * 8))
    assert plan.slices == 4 and plan.placement == {2: (0, 1, 2, 3)}
    assert [plan.tiles(c) for c in range(4)] == [{2: (s,)} for s in range(4)]
    assert [len(s) for s in plan.streams] == [1, 1, 1, 1]
    assert len(plan.token_sends) == 8 * 3
    kinds = [plan.stream_kind(ch, t) for ch, s in enumerate(plan.streams) for t in s]
    assert kinds.count("RELAY") == sum(t.dst != HW.dram_chiplets[ch] for ch, s in enumerate(plan.streams)
                                       for t in s)
    assert all(plan.remote_uses(c) == {r: 1 for r in plan.remote_rows[c].values()} for c in range(4))


def test_hydra_places_experts_where_their_tokens_live():
    """Chiplet c's two tokens use expert 3 - c: Hydra computes each expert where its tokens
    are (no token moves); EP, blind to token homes, fills chiplets in expert order."""
    routing = [[3 - t // 2] for t in range(8)]
    hydra = build_plan("hydra", MODEL, HW, trace_of(routing))
    assert hydra.placement == {e: (3 - e,) for e in range(4)} and not hydra.token_sends
    ep = build_plan("ep", MODEL, HW, trace_of(routing))
    assert ep.placement == {e: (e,) for e in range(4)} and len(ep.token_sends) == 8


@pytest.mark.parametrize("strategy", ["ep", "hydra"])
@pytest.mark.parametrize("seed", range(5))
def test_tiled_ep_balances_work_to_within_a_tile(strategy, seed):
    trace = zipf(40, 8, 2, 1.3, seed=seed)
    plan = build_plan(strategy, MODEL2, HW, trace)
    counts = trace.tokens_per_expert(8)
    work = [sum(len(t) * counts[e] for e, t in plan.tiles(c).items()) for c in range(4)]
    assert sum(work) == plan.slices * sum(counts)
    assert max(work) - min(work) <= max(counts)
    # every tile streamed once, each channel an equal share (S is a multiple of 4 channels)
    assert sorted(len(s) for s in plan.streams) == [len(plan.expert_order) * plan.slices // 4] * 4


def test_all_tokens_on_one_chiplet():
    plan = build_plan("fse-dp", MODEL, HW, trace_of([[1]]))
    assert plan.token_home == (0,)
    assert plan.jobs[0] == {1: ((0, 255),)} and plan.jobs[3] == {1: ()}


def test_expert_with_zero_tokens_is_never_streamed():
    plan = build_plan("fse-dp-paired", MODEL, HW, trace_of([[0], [1], [3], [3]]))
    assert 2 not in plan.expert_order
    assert all(t.expert != 2 for s in plan.streams for t in s)
    ep = build_plan("ep", MODEL, HW, trace_of([[0], [1], [3], [3]]))
    assert 2 not in ep.placement


def test_every_expert_used_streams_every_slice_exactly_once():
    trace = uniform(64, 8, 2, seed=0)
    assert np.all(trace.tokens_per_expert(8) > 0)
    for strategy in STRATEGIES:
        plan = build_plan(strategy, MODEL2, HW, trace)
        transfers = sorted((t.expert, t.slice) for s in plan.streams for t in s)
        assert transfers == [(e, s) for e in range(8) for s in range(plan.slices)]
        assert plan.weight_bytes_streamed() == 8 * MODEL2.expert_bytes


def test_contiguous_layout_gives_each_channel_one_part():
    plan = build_plan("fse-dp", MODEL2, HW, uniform(64, 8, 2, seed=0), layout="contiguous")
    assert [(t.expert, t.slice) for t in plan.streams[0]] == [(0, s) for s in range(4)] + [(1, s) for s in range(4)]
    assert [len(s) for s in plan.streams] == [8, 8, 8, 8]


def test_bad_options_are_rejected():
    trace = uniform(4, 8, 2, seed=0)
    with pytest.raises(PlanError, match="unknown strategy 'dp'"):
        build_plan("dp", MODEL2, HW, trace)
    with pytest.raises(PlanError, match="positive divisor"):
        build_plan("fse-dp", MODEL2, HW, trace, slices=3)
    with pytest.raises(PlanError, match="unknown slice layout"):
        build_plan("fse-dp", MODEL2, HW, trace, layout="zigzag")
    with pytest.raises(ValueError, match="top-2 but the model uses top-1"):
        build_plan("ep", MODEL, HW, trace)
    with pytest.raises(PlanError, match="--layout does not apply to ep:"):
        build_plan("ep", MODEL2, HW, trace, layout="contiguous")
    with pytest.raises(PlanError, match="--slices does not apply to ep-paper: it loads whole experts"):
        build_plan("ep-paper", MODEL2, HW, trace, slices=2)


@pytest.mark.parametrize("rows,cols", [(2, 2), (3, 3), (4, 4), (2, 3), (1, 3)])
def test_default_ring_visits_every_chiplet_once(rows, cols):
    succ = ring.mesh_ring(rows, cols)
    seen, c = [], 0
    for _ in range(rows * cols):
        seen.append(c)
        c = succ[c]
    assert c == 0 and sorted(seen) == list(range(rows * cols))
    long_edges = [a for a in range(rows * cols) if ring.hop_distance(a, succ[a], cols) > 1]
    if rows % 2 == 0 or cols % 2 == 0:
        assert not long_edges
    elif rows > 1:
        assert len(long_edges) == 1


def test_default_slices_fill_whole_mac_array_column_blocks():
    from scheduler.strategies import aligned_slices

    paper, rtl = presets.get_hardware("paper-2x2"), presets.get_hardware("rtl-2x2")
    for model in presets.MODEL_PRESETS.values():
        s = aligned_slices(model, paper)
        assert model.d_ff % s == 0
        if model.d_ff % paper.mac_cols == 0:
            assert (model.d_ff // s) % paper.mac_cols == 0, model.name
    # Phi-3.5 (f = 6400 = 100 x 64): S = 64 would give 100-column slices; 50 gives 128.
    assert aligned_slices(presets.get_model("phi-3.5-moe"), paper) == 50
    # Already aligned presets keep their S, and the RTL's small models are unchanged.
    assert aligned_slices(presets.get_model("olmoe-1b-7b"), paper) == 16
    assert aligned_slices(presets.get_model("tiny-8x2"), rtl) == 8
