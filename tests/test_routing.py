"""Routing traces: format round trip, generators, statistics sampling and input errors."""

import json

import numpy as np
import pytest

from scheduler import routing
from scheduler.routing import RoutingError


def test_jsonl_round_trip(tmp_path):
    trace = routing.zipf(40, 16, 4, skew=1.2, seed=3)
    path = tmp_path / "t.jsonl"
    routing.write_trace(trace, path)
    lines = path.read_text().splitlines()
    assert len(lines) == 40
    assert set(json.loads(lines[0])) == {"token", "experts", "weights"}
    assert routing.load_trace(path) == trace


@pytest.mark.parametrize("make", [
    lambda s: routing.uniform(64, 8, 2, seed=s),
    lambda s: routing.zipf(64, 8, 2, skew=1.0, seed=s),
    lambda s: routing.from_spec("mixtral:c4", 64, 8, 2, seed=s),
    lambda s: routing.from_spec("olmoe:book:15", 64, 64, 8, seed=s),
])
def test_generators_are_seeded_and_reproducible(make):
    a, b, c = make(5), make(5), make(6)
    assert a == b
    assert a != c


@pytest.mark.parametrize("make,E,k", [
    (lambda: routing.uniform(300, 16, 4, seed=1), 16, 4),
    (lambda: routing.zipf(300, 16, 4, skew=2.0, seed=1), 16, 4),
    (lambda: routing.from_spec("olmoe:wikipedia:0", 300, 64, 8, seed=1), 64, 8),
])
def test_generated_tokens_have_distinct_in_range_experts_and_ranked_weights(make, E, k):
    trace = make()
    assert trace.experts.shape == (300, k)
    assert trace.experts.min() >= 0 and trace.experts.max() < E
    assert all(len(set(row)) == k for row in trace.experts.tolist())
    assert np.allclose(trace.weights.sum(axis=1), 1.0)
    assert np.all(np.diff(trace.weights, axis=1) <= 0)   # rank order: descending weights


def test_zipf_skew_concentrates_load():
    flat = routing.zipf(2000, 16, 2, skew=0.0, seed=0).tokens_per_expert(16)
    skewed = routing.zipf(2000, 16, 2, skew=1.5, seed=0).tokens_per_expert(16)
    assert flat.max() / flat.min() < 1.5
    assert skewed.max() / skewed.min() > 8


@pytest.mark.parametrize("name,layer", [("mixtral:c4", 7), ("olmoe:c4", 15), ("olmoe:book", 0)])
def test_sampled_marginals_approach_recorded_statistics(name, layer):
    stats = routing.load_stats(routing.BUNDLED_STATS[name])
    tokens = 20000
    trace = routing.sample_from_stats(stats, tokens, layer=layer, seed=11)
    observed = trace.tokens_per_expert(stats.num_experts) / tokens
    expected = stats.marginals(layer)
    # Binomial standard error of each marginal; the seeded run is deterministic, and 4.5 sigma
    # catches a sampler that draws successively by the marginals (biased for skewed experts).
    sigma = np.sqrt(expected * (1 - expected) / tokens)
    assert np.all(np.abs(observed - expected) < 4.5 * sigma + 1e-9), np.max(np.abs(observed - expected) / sigma)


def test_sampled_rank_order_follows_recorded_top1():
    stats = routing.load_stats(routing.BUNDLED_STATS["olmoe:c4"])
    trace = routing.sample_from_stats(stats, 4000, layer=7, seed=2)
    top1 = np.bincount(trace.experts[:, 0], minlength=64)
    assert np.corrcoef(top1, stats.top1(7))[0, 1] > 0.7


def test_statistics_layer_must_be_recorded():
    stats = routing.load_stats(routing.BUNDLED_STATS["mixtral:c4"])
    with pytest.raises(RoutingError, match="recorded layers are \\[0, 7, 15\\]"):
        routing.sample_from_stats(stats, 4, layer=3)


def write_lines(tmp_path, lines):
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("lines,message", [
    (['{"token": 0, "experts": [1, 9], "weights": [0.5, 0.5]}'], r"bad.jsonl:1: .*expert id 9 is out of range 0..7"),
    (['{"token": 0, "experts": [1, 1], "weights": [0.5, 0.5]}'], r":1: .*repeat"),
    (['{"token": 0, "experts": [1, 2], "weights": [0.5, 0.5]}',
      '{"token": 1, "experts": [3], "weights": [1.0]}'], r"bad.jsonl:2: .*expected top-2"),
    (['{"token": 0, "experts": [1, 2], "weights": [0.5, -0.1]}'], r":1: .*non-negative"),
    (['{"token": 0, "experts": [1, 2], "weights": [0.5, NaN]}'], r":1: .*finite"),
    (['{"token": 0, "experts": [1, 2], "weights": [0.5]}'], r":1: .*2 experts but 1 weights"),
    (['{"token": 0, "experts": [1, 2], "weights": [0.5, 0.5]}', '{"token": 2, "experts": [1, 2], '
      '"weights": [0.5, 0.5]}'], r":2: expected token index 1"),
    (['{"token": 0, "experts": [1, 2], "weights": [0.5, 0.5]', ], r":1: not valid JSON"),
    (['{"token": 0, "experts": [1, 2]}'], r":1: a record must be an object"),
    (['{"token": 0, "experts": ["a", 2], "weights": [0.5, 0.5]}'], r":1: .*not an integer"),
    ([""], r"has no tokens"),
])
def test_malformed_trace_gets_one_line_error_with_line_number(tmp_path, lines, message):
    with pytest.raises(RoutingError, match=message) as info:
        routing.load_trace(write_lines(tmp_path, lines), num_experts=8)
    assert "\n" not in str(info.value)


def test_trace_must_fit_the_model(tmp_path):
    path = tmp_path / "t.jsonl"
    routing.write_trace(routing.uniform(8, 16, 2, seed=0), path)
    with pytest.raises(RoutingError, match="top-2 but the model uses top-8"):
        routing.from_spec(str(path), 8, 64, 8)
    with pytest.raises(RoutingError, match="8 tokens, but 4 were asked for"):
        routing.from_spec(str(path), 4, 16, 2)
    with pytest.raises(RoutingError, match="out of range 0..3"):
        routing.from_spec(str(path), 8, 4, 2)


@pytest.mark.parametrize("spec,message", [
    ("bogus", "unknown routing 'bogus'; allowed: 'uniform', 'zipf:A'"),
    ("zipf:x", "Zipf skew 'x' is not a number"),
    ("zipf:-1", "Zipf skew must be a finite number >= 0"),
    ("mixtral:c4:3", "recorded layers are"),
    ("olmoe:c4", "has 64 experts, top-8; the model has 8 experts, top-2"),
    ("missing.json", "cannot read routing statistics"),
])
def test_bad_routing_spec_is_a_clear_error(spec, message):
    with pytest.raises(RoutingError, match=message):
        routing.from_spec(spec, 8, 8, 2)


def test_statistics_file_path_and_validation(tmp_path):
    good = json.loads(routing.BUNDLED_STATS["mixtral:book"].read_text())
    path = tmp_path / "s.json"
    path.write_text(json.dumps(good))
    assert routing.from_spec(f"{path}:15", 10, 8, 2, seed=1).num_tokens == 10
    bad = dict(good, expert_counts=[[1, 2, 3]] * 3)
    path.write_text(json.dumps(bad))
    with pytest.raises(RoutingError, match="expert_counts must be 3 x 8"):
        routing.load_stats(path)
    path.write_text(json.dumps({"num_experts": 8}))
    with pytest.raises(RoutingError, match="lack the keys"):
        routing.load_stats(path)


@pytest.mark.parametrize("args,message", [
    ((0, 8, 2), "num_tokens must be a positive integer"),
    ((4, 8, 9), "top_k 9 exceeds num_experts 8"),
    ((4, 0, 1), "num_experts must be a positive integer"),
])
def test_generator_shapes_are_validated(args, message):
    with pytest.raises(RoutingError, match=message):
        routing.uniform(*args)


def test_routing_trace_validates_arrays():
    with pytest.raises(RoutingError, match="repeat"):
        routing.RoutingTrace(np.array([[1, 1]]), np.array([[0.5, 0.5]]))
    with pytest.raises(RoutingError, match="L x k"):
        routing.RoutingTrace(np.array([1, 2]), np.array([0.5, 0.5]))
