"""The slice memory layout shared by the hardware and the software packer."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hw import slice_layout
from hw.slice_layout import Projection, check_shape, pack_slice, slice_words, unpack_slice, word_order


def random_slice(rng, d, fs):
    return (rng.integers(-128, 128, (d, fs), dtype=np.int8), rng.integers(-128, 128, (d, fs), dtype=np.int8),
            rng.integers(-128, 128, (fs, d), dtype=np.int8))


@settings(max_examples=30, deadline=None)
@given(rows=st.sampled_from([1, 2, 4, 8]), cols=st.sampled_from([1, 2, 4, 8]),
       dm=st.integers(1, 3), fm=st.integers(1, 3), seed=st.integers(0, 2**32 - 1))
def test_unpack_inverts_pack(rows, cols, dm, fm, seed):
    d, fs = max(rows, cols) * dm, max(rows, cols) * fm
    gate, up, down = random_slice(np.random.default_rng(seed), d, fs)
    words = pack_slice(gate, up, down, rows, cols)
    assert words.shape == (slice_words(d, fs, rows, cols), rows * cols) and words.dtype == np.uint8
    for got, want in zip(unpack_slice(words, d, fs, rows, cols), (gate, up, down)):
        np.testing.assert_array_equal(got, want)


def test_word_order_is_gate_then_up_per_column_block_then_down():
    order = list(word_order(4, 4, 2, 2))
    assert order[:4] == [(Projection.GATE, 0, 0), (Projection.GATE, 1, 0), (Projection.UP, 0, 0), (Projection.UP, 1, 0)]
    assert order[4:8] == [(Projection.GATE, 0, 1), (Projection.GATE, 1, 1), (Projection.UP, 0, 1), (Projection.UP, 1, 1)]
    assert order[8:] == [(Projection.DOWN, 0, 0), (Projection.DOWN, 1, 0), (Projection.DOWN, 0, 1), (Projection.DOWN, 1, 1)]
    assert slice_layout.down_word_base(4 // 2, 4 // 2) == 8


def test_byte_order_inside_a_word_is_row_major():
    d, fs, r, c = 4, 4, 2, 4
    gate = np.arange(d * fs, dtype=np.int8).reshape(d, fs)
    words = pack_slice(gate, np.zeros((d, fs), np.int8), np.zeros((fs, d), np.int8), r, c)
    # Word 0 is the gate block rows 0..1, columns 0..3: byte r*C + c = gate[r, c].
    assert list(words[0]) == [0, 1, 2, 3, 4, 5, 6, 7]
    assert slice_layout.weight_byte(1, 2, c) == 6


def test_flits_and_token_words_are_little_endian():
    words = np.arange(2 * 8, dtype=np.uint8).reshape(2, 8)
    assert slice_layout.slice_flits(words, 4) == [0x03020100, 0x07060504, 0x0b0a0908, 0x0f0e0d0c]
    assert slice_layout.token_words(np.array([1, -1, 2, -2], np.int8), 2) == [0xff01, 0xfe02]


@pytest.mark.parametrize("args,message", [
    ((12, 8, 8, 8), "hidden size d = 12 must be a multiple of both mac_rows (8) and mac_cols (8)"),
    ((16, 4, 4, 8), "slice columns fs = 4 must be a multiple of both mac_rows (4) and mac_cols (8)"),
    ((16, 16, 6, 8), "mac_rows must be a positive power of two, not 6"),
    ((0, 16, 8, 8), "hidden size d must be a positive integer, not 0"),
])
def test_shapes_that_do_not_fit_the_array_are_rejected(args, message):
    with pytest.raises(ValueError) as exc:
        check_shape(*args)
    assert message in str(exc.value)


def test_pack_rejects_wrong_dtype_and_shape():
    with pytest.raises(ValueError, match="int8"):
        pack_slice(np.zeros((8, 8), np.int16), np.zeros((8, 8), np.int8), np.zeros((8, 8), np.int8), 8, 8)
    with pytest.raises(ValueError, match="shape"):
        pack_slice(np.zeros((8, 8), np.int8), np.zeros((8, 8), np.int8), np.zeros((16, 8), np.int8), 8, 8)
