"""The memory layout of one expert micro-slice: the one definition shared by hardware and
software.

A micro-slice of a SwiGLU expert holds FFN columns ``f_s`` (``fs`` of them) of the gate
and up projections (``d x fs`` each) and the same rows of the down projection
(``fs x d``).  For EP the "slice" is a whole expert (``fs = f``) in the same layout.  The
slice is stored, in DRAM, in flight on the D2D links and in a weight-buffer slot, as a
sequence of *words* of ``mac_rows * mac_cols`` bytes: one word is one ``mac_rows x
mac_cols`` block of weights, which the MAC array consumes in one cycle.

Byte order inside a word (little-endian: byte ``b`` is bits ``8b .. 8b+7``)::

    byte(r, c) = r * mac_cols + c            r: activation row, c: output column

Word order inside a slice (the order in which :class:`hw.slice_engine.SliceEngine`
streams the words into the MAC array for one token, so its address generator is a plain
counter)::

    gate/up region, words 0 .. 2 * (d/R) * (fs/C) - 1:
        for cb in range(fs / C):                     output column block
            for proj in (GATE, UP):
                for rb in range(d / R):              input row block
                    W_proj[rb*R : rb*R+R, cb*C : cb*C+C]
    down region, words 2 * (d/R) * (fs/C) .. 3 * d * fs / (R*C) - 1:
        for kb in range(d / C):                      output column block
            for jb in range(fs / R):                 input row block
                W_down[jb*R : jb*R+R, kb*C : kb*C+C]

with ``R = mac_rows`` and ``C = mac_cols``; ``d`` and ``fs`` must be multiples of both.
(A shape that is not can be zero-padded exactly: zero gate/up columns give ``h8 = 0``
and zero down rows add nothing.)  Gate and up blocks of one column block are adjacent so
the vector unit receives ``g`` and ``u`` of the same columns back to back.

The byte stream of a slice (``pack_slice(...).reshape(-1)``) is what a DRAM image holds
and what the D2D link carries in order, ``link_bytes`` per flit: flit ``k`` of a slice
is byte range ``k * link_bytes ..`` and lands in lane ``k % (word/link)`` of word
``k // (word/link)`` of the slot.

The helpers :func:`gate_up_words`, :func:`down_word_base` and :func:`weight_byte` take
Python integers or Amaranth values alike; the hardware uses them for its address
generation and its weight-word unpacking, the packer below for the byte order.
"""

from __future__ import annotations

import numpy as np
from amaranth.lib import enum

__all__ = [
    "Projection", "check_shape", "weight_byte", "gate_up_words", "down_word_base", "slice_words",
    "word_order", "pack_slice", "unpack_slice", "slice_flits", "token_words",
]


class Projection(enum.IntEnum, shape=2):
    """Order of the two projections inside one gate/up column block (also the tag the
    engine attaches to a MAC result)."""

    GATE = 0
    UP = 1
    DOWN = 2


def _is_pow2(n) -> bool:
    return isinstance(n, int) and n > 0 and n & (n - 1) == 0


def check_shape(d: int, fs: int, mac_rows: int, mac_cols: int) -> None:
    """Raise ``ValueError`` unless a ``d x fs`` slice fits a ``mac_rows x mac_cols`` array."""
    for name, value in (("mac_rows", mac_rows), ("mac_cols", mac_cols)):
        if not _is_pow2(value):
            raise ValueError(f"{name} must be a positive power of two, not {value!r}")
    for name, value in (("hidden size d", d), ("slice columns fs", fs)):
        if not isinstance(value, (int, np.integer)) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if value % mac_rows or value % mac_cols:
            raise ValueError(f"{name} = {value} must be a multiple of both mac_rows ({mac_rows}) "
                             f"and mac_cols ({mac_cols})")


def weight_byte(row, col, mac_cols: int):
    """Byte index, inside a weight word, of the weight for activation ``row`` and output
    column ``col`` of a MAC-array block."""
    return row * mac_cols + col


def gate_up_words(row_blocks, col_blocks):
    """Words of the gate/up region: ``2 * (d/R) * (fs/C)`` for ``row_blocks = d/R`` and
    ``col_blocks = fs/C``."""
    return (row_blocks * col_blocks) * 2


def down_word_base(row_blocks, col_blocks):
    """Word offset of the first down-projection block (the gate/up region comes first)."""
    return gate_up_words(row_blocks, col_blocks)


def slice_words(d: int, fs: int, mac_rows: int, mac_cols: int) -> int:
    """Words one slice occupies: ``3 * d * fs / (mac_rows * mac_cols)``."""
    check_shape(d, fs, mac_rows, mac_cols)
    return 3 * d * fs // (mac_rows * mac_cols)


def word_order(d: int, fs: int, mac_rows: int, mac_cols: int):
    """Yield ``(projection, row_block, col_block)`` for every word of a slice, in address
    order.  For ``GATE``/``UP`` the block is ``W[rb*R:, cb*C:]`` of the d x fs matrix; for
    ``DOWN`` it is ``W_down[jb*R:, kb*C:]`` of the fs x d matrix."""
    check_shape(d, fs, mac_rows, mac_cols)
    for cb in range(fs // mac_cols):
        for proj in (Projection.GATE, Projection.UP):
            for rb in range(d // mac_rows):
                yield proj, rb, cb
    for kb in range(d // mac_cols):
        for jb in range(fs // mac_rows):
            yield Projection.DOWN, jb, kb


def _as_int8(name, w, shape):
    w = np.asarray(w)
    if w.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, not {w.shape}")
    if w.dtype != np.int8:
        raise ValueError(f"{name} must be int8, not {w.dtype}")
    return w


def pack_slice(w_gate_cols, w_up_cols, w_down_rows, mac_rows: int, mac_cols: int) -> np.ndarray:
    """The words of a slice, as a ``(slice_words, mac_rows * mac_cols)`` uint8 array.

    Parameters
    ----------
    w_gate_cols, w_up_cols : ndarray int8, shape (d, fs)
        The slice's columns of the gate and up projections.
    w_down_rows : ndarray int8, shape (fs, d)
        The slice's rows of the down projection.
    mac_rows, mac_cols : int
        MAC array shape (powers of two).
    """
    w_gate_cols = np.asarray(w_gate_cols)
    if w_gate_cols.ndim != 2:
        raise ValueError(f"gate columns must be a d x fs matrix, not shape {w_gate_cols.shape}")
    d, fs = w_gate_cols.shape
    check_shape(d, fs, mac_rows, mac_cols)
    mats = {Projection.GATE: _as_int8("gate columns", w_gate_cols, (d, fs)),
            Projection.UP: _as_int8("up columns", w_up_cols, (d, fs)),
            Projection.DOWN: _as_int8("down rows", w_down_rows, (fs, d))}
    r, c = mac_rows, mac_cols
    words = np.empty((slice_words(d, fs, r, c), r * c), dtype=np.uint8)
    for k, (proj, rb, cb) in enumerate(word_order(d, fs, r, c)):
        block = mats[proj][rb * r:(rb + 1) * r, cb * c:(cb + 1) * c]
        words[k, weight_byte(np.arange(r)[:, None], np.arange(c)[None, :], c)] = block.view(np.uint8)
    return words


def unpack_slice(words, d: int, fs: int, mac_rows: int, mac_cols: int):
    """Inverse of :func:`pack_slice`: ``(w_gate_cols, w_up_cols, w_down_rows)`` as int8."""
    r, c = mac_rows, mac_cols
    n = slice_words(d, fs, r, c)
    words = np.asarray(words, dtype=np.uint8).reshape(-1, r * c)
    if words.shape[0] != n:
        raise ValueError(f"a {d} x {fs} slice on a {r} x {c} array has {n} words, not {words.shape[0]}")
    mats = {Projection.GATE: np.empty((d, fs), np.int8), Projection.UP: np.empty((d, fs), np.int8),
            Projection.DOWN: np.empty((fs, d), np.int8)}
    for k, (proj, rb, cb) in enumerate(word_order(d, fs, r, c)):
        block = words[k, weight_byte(np.arange(r)[:, None], np.arange(c)[None, :], c)]
        mats[proj][rb * r:(rb + 1) * r, cb * c:(cb + 1) * c] = block.view(np.int8)
    return mats[Projection.GATE], mats[Projection.UP], mats[Projection.DOWN]


def slice_flits(words, link_bytes: int) -> list[int]:
    """The slice as link flits (little-endian integers of ``link_bytes`` bytes), in the
    order the D2D link carries them: flit ``k`` goes to flit index ``k`` of the slot."""
    flat = np.asarray(words, dtype=np.uint8).reshape(-1)
    if flat.size % link_bytes:
        raise ValueError(f"link width {link_bytes} bytes does not divide the slice ({flat.size} bytes)")
    return [int.from_bytes(flat[i:i + link_bytes].tobytes(), "little")
            for i in range(0, flat.size, link_bytes)]


def token_words(x, mac_rows: int) -> list[int]:
    """A token's int8 activations (length d) as token-buffer words of ``mac_rows`` bytes:
    word ``b`` byte ``i`` is ``x[b * mac_rows + i]`` (the MAC array's row ``i``)."""
    x = np.asarray(x, dtype=np.int8).reshape(-1)
    if x.size % mac_rows:
        raise ValueError(f"token length {x.size} is not a multiple of mac_rows {mac_rows}")
    raw = x.view(np.uint8)
    return [int.from_bytes(raw[i:i + mac_rows].tobytes(), "little") for i in range(0, x.size, mac_rows)]
