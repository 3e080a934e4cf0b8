"""The golden model: integer semantics against an independent scalar reference, and the
slicing property FSE-DP relies on."""

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from scheduler import golden


def scalar_requant(v, mult, shift):
    p = v * mult
    if shift:
        p = (p + (1 << (shift - 1))) >> shift   # Python ints: exact, flooring
    return max(-128, min(127, p))


def scalar_layer(layer, x, experts, gate_q):
    """Plain-Python loops over the documented semantics (no numpy arithmetic)."""
    q = layer.quant
    silu = [int(v) for v in q.silu]
    L, d = x.shape
    out = []
    for t in range(L):
        acc = [0] * d
        for e, gq in zip(experts[t], gate_q[t]):
            for j in range(layer.d_ff):
                g = sum(int(x[t, i]) * int(layer.w_gate[e, i, j]) for i in range(d))
                u = sum(int(x[t, i]) * int(layer.w_up[e, i, j]) for i in range(d))
                a = silu[scalar_requant(g, q.gate_mult, q.gate_shift) + 128]
                h = scalar_requant(a * scalar_requant(u, q.up_mult, q.up_shift) * int(gq),
                                   q.hidden_mult, q.hidden_shift)
                for i in range(d):
                    acc[i] += h * int(layer.w_down[e, j, i])
        out.append([(a + 2**31) % 2**32 - 2**31 for a in acc])
    return np.array(out, dtype=np.int32)


def routed(seed, L, E, k):
    rng = np.random.default_rng(seed)
    experts = np.array([rng.choice(E, size=k, replace=False) for _ in range(L)])
    gate_q = rng.integers(0, 256, size=(L, k)).astype(np.uint8)
    return experts, gate_q


def test_layer_matches_scalar_reference():
    layer = golden.random_layer(4, 8, 16, seed=3)
    x = golden.random_tokens(5, 8, seed=3)
    experts, gate_q = routed(3, 5, 4, 2)
    assert np.array_equal(golden.moe_layer(layer, x, experts, gate_q, slices=4),
                          scalar_layer(layer, x, experts, gate_q))


@pytest.mark.parametrize("v,mult,shift,expect", [
    (5, 1, 1, 3),          # 2.5 rounds half up
    (-5, 1, 1, -2),        # -2.5 rounds half up (towards +inf)
    (7, 1, 2, 2),          # 1.75
    (-7, 1, 2, -2),
    (1000, 1, 0, 127),     # saturation high
    (-1000, 1, 0, -128),   # saturation low
    (-(2**31), 65535, 0, -128),
    (2**31 - 1, 65535, 31, 127),   # 65534.99 saturates
    (300, 3, 4, 56),       # 900 / 16 = 56.25
])
def test_requantize_rounds_half_up_and_saturates(v, mult, shift, expect):
    assert int(golden.requantize(np.array([v]), mult, shift)[0]) == expect == scalar_requant(v, mult, shift)


@given(st.integers(-(2**40), 2**40), st.integers(0, golden.MULT_MAX), st.integers(0, golden.SHIFT_MAX))
def test_requantize_matches_scalar_definition(v, mult, shift):
    assert int(golden.requantize(np.array([v]), mult, shift)[0]) == scalar_requant(v, mult, shift)


@pytest.mark.parametrize("mult,shift", [(-1, 0), (65536, 0), (1, 32), (1, -1)])
def test_requantize_rejects_out_of_range_constants(mult, shift):
    with pytest.raises(ValueError, match="requantization"):
        golden.requantize(np.array([1]), mult, shift)


def test_silu_table_is_int8_and_monotone_above_its_minimum():
    t = golden.silu_table()
    assert t.dtype == np.int8 and t.shape == (256,)
    assert t[128] == 0                      # silu(0) = 0
    assert t[255] == min(127, math.floor(127 / 16 / (1 + math.exp(-127 / 16)) * 16 + 0.5))
    low = int(np.argmin(t))
    assert np.all(np.diff(t[low:].astype(int)) >= 0)


def test_gate_weights_are_q0_8_round_half_up_saturating():
    q = golden.quantize_gate_weights([0.0, 0.5, 1 / 512, 1 / 1024, 0.999, 1.0, 3.0])
    assert q.dtype == np.uint8
    assert q.tolist() == [0, 128, 1, 0, 256 - 1, 255, 255]
    with pytest.raises(ValueError):
        golden.quantize_gate_weights([-0.1])
    with pytest.raises(ValueError):
        golden.quantize_gate_weights([float("nan")])


def test_accumulator_wraps_as_int32():
    assert golden.wrap_int32([2**31, -(2**31) - 1, 2**32 + 5]).tolist() == [-(2**31), 2**31 - 1, 5]


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_summing_slices_in_any_order_gives_the_unsliced_result(data):
    E = data.draw(st.integers(1, 6))
    d = data.draw(st.integers(1, 12))
    f = data.draw(st.integers(1, 24))
    k = data.draw(st.integers(1, E))
    L = data.draw(st.integers(1, 6))
    seed = data.draw(st.integers(0, 2**16))
    layer = golden.random_layer(E, d, f, seed)
    x = golden.random_tokens(L, d, seed)
    experts, gate_q = routed(seed, L, E, k)
    whole = golden.moe_layer(layer, x, experts, gate_q, slices=1)
    # An arbitrary partition of the FFN columns into micro-slices (not necessarily equal or
    # contiguous), applied expert by expert and slice by slice in a random order.
    rng = np.random.default_rng(seed)
    slices = data.draw(st.integers(1, f))
    labels = rng.integers(0, slices, size=f)
    jobs = [(e, np.flatnonzero(labels == s)) for e in range(E) for s in range(slices)]
    rng.shuffle(jobs)
    acc = np.zeros((L, d), dtype=np.int64)
    for e, cols in jobs:
        tok, rank = np.nonzero(experts == e)
        if tok.size and cols.size:
            acc[tok] += golden.apply_slice(layer, e, cols, x[tok], gate_q[tok, rank])
    assert np.array_equal(golden.wrap_int32(acc), whole)


@pytest.mark.parametrize("slices", [2, 4, 8, 16])
def test_equal_slices_match_unsliced(slices):
    layer = golden.random_layer(8, 16, 32, seed=slices)
    x = golden.random_tokens(12, 16, seed=slices)
    experts, gate_q = routed(slices, 12, 8, 2)
    assert np.array_equal(golden.moe_layer(layer, x, experts, gate_q, slices=slices),
                          golden.moe_layer(layer, x, experts, gate_q, slices=1))


def test_slice_columns_partition_the_ffn():
    cols = np.concatenate([golden.slice_columns(64, 8, s) for s in range(8)])
    assert cols.tolist() == list(range(64))
    with pytest.raises(ValueError, match="equal slices"):
        golden.slice_columns(64, 7, 0)
    with pytest.raises(ValueError, match="outside"):
        golden.slice_columns(64, 8, 8)


def test_random_data_is_seeded_and_reproducible():
    a, b = golden.random_layer(4, 8, 16, seed=7), golden.random_layer(4, 8, 16, seed=7)
    assert np.array_equal(a.w_gate, b.w_gate) and np.array_equal(a.w_down, b.w_down)
    assert not np.array_equal(a.w_gate, golden.random_layer(4, 8, 16, seed=8).w_gate)
    assert np.array_equal(golden.random_tokens(3, 8, 1), golden.random_tokens(3, 8, 1))


def test_activations_are_spread_not_saturated():
    """The default constants keep intermediate int8 values informative, so bit-exact
    comparisons exercise real arithmetic rather than constant saturation."""
    layer = golden.random_layer(2, 32, 64, seed=0)
    x = golden.random_tokens(16, 32, seed=0)
    h = golden.hidden_activation(layer, 0, np.arange(64), x, np.full(16, 128))
    assert 10 < h.astype(float).std() < 80
    assert np.mean(np.abs(h.astype(int)) >= 127) < 0.05


def test_moe_layer_rejects_bad_shapes():
    layer = golden.random_layer(2, 4, 8)
    with pytest.raises(ValueError, match="int8"):
        golden.moe_layer(layer, np.zeros((2, 5), np.int8), np.zeros((2, 1), int), np.zeros((2, 1), np.uint8))
