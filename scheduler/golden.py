"""Bit-exact numpy golden model of one quantized MoE layer.

Every output of the RTL is compared with this model bit for bit; ``docs/numerics.md``
states the same semantics in prose.  All arithmetic is on integers:

Tokens ``x`` are int8 vectors of length d.  Expert ``e`` has int8 weights
``W_gate[e]`` (d x f), ``W_up[e]`` (d x f) and ``W_down[e]`` (f x d).  For every token
``t`` routed to ``e`` with Q0.8 gate weight ``q`` (uint8) and every FFN column ``j``::

    g   = sum_i x[i] * W_gate[e][i, j]                      (exact, int32 never overflows)
    u   = sum_i x[i] * W_up[e][i, j]
    g8  = requant(g, gate_mult, gate_shift)                  int8
    u8  = requant(u, up_mult, up_shift)                      int8
    a8  = SILU[g8 + 128]                                     int8 table lookup
    p   = a8 * u8 * q                                        |p| < 2**22
    h8  = requant(p, hidden_mult, hidden_shift)              int8
    acc[t, :] += h8 * W_down[e][j, :]                        int32, wrapping

    requant(v, m, s) = clamp((v * m + (1 << (s - 1) if s > 0 else 0)) >> s, -128, 127)

with ``>>`` an arithmetic (flooring) shift, so rounding is half-up, ``m`` an unsigned
16-bit multiplier and ``s`` a shift of 0..31.  The layer output is the int32 accumulator
``acc`` (L x d).  The gate weight is folded into the hidden activation, so a token's
accumulator sums the products of all its experts and all their slices: every column ``j``
contributes independently, which is what lets FSE-DP apply an expert one micro-slice at a
time on each chiplet, in any order, with the same result.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "QuantParams", "MoELayer", "requantize", "silu_table", "quantize_gate_weights",
    "wrap_int32", "slice_columns", "apply_slice", "moe_layer", "random_layer", "random_tokens",
    "MULT_MAX", "SHIFT_MAX",
]

MULT_MAX = (1 << 16) - 1
SHIFT_MAX = 31
GATE_FRAC_BITS = 8


def requantize(values, mult: int, shift: int) -> np.ndarray:
    """int8 of ``clamp(round_half_up(values * mult / 2**shift))`` (see module docstring)."""
    _check_mult_shift(mult, shift)
    v = np.asarray(values, dtype=np.int64) * np.int64(mult)
    if shift:
        v = (v + (np.int64(1) << np.int64(shift - 1))) >> np.int64(shift)
    return np.clip(v, -128, 127).astype(np.int8)


def _check_mult_shift(mult, shift):
    if not isinstance(mult, (int, np.integer)) or not 0 <= mult <= MULT_MAX:
        raise ValueError(f"requantization multiplier must be an integer in 0..{MULT_MAX}, not {mult!r}")
    if not isinstance(shift, (int, np.integer)) or not 0 <= shift <= SHIFT_MAX:
        raise ValueError(f"requantization shift must be an integer in 0..{SHIFT_MAX}, not {shift!r}")


def silu_table(in_scale: float = 1 / 16, out_scale: float = 1 / 16) -> np.ndarray:
    """The SiLU lookup table: entry ``i`` is the int8 output for int8 input ``i - 128``.

    ``round_half_up(silu(q * in_scale) / out_scale)``, saturated.  The table is data: the
    hardware is loaded with exactly these 256 bytes, so the float maths used to build it
    never has to be reproduced in RTL.
    """
    out = []
    for q in range(-128, 128):
        r = q * in_scale
        y = r / (1.0 + math.exp(-r)) / out_scale
        out.append(min(127, max(-128, math.floor(y + 0.5))))
    return np.array(out, dtype=np.int8)


def quantize_gate_weights(weights) -> np.ndarray:
    """Float gate weights to unsigned Q0.8: ``min(255, floor(w * 256 + 0.5))``."""
    w = np.asarray(weights, dtype=np.float64)
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("gate weights must be finite and non-negative")
    return np.minimum(255, np.floor(w * (1 << GATE_FRAC_BITS) + 0.5)).astype(np.uint8)


def wrap_int32(values) -> np.ndarray:
    """Two's-complement wrap of integers to int32."""
    v = np.asarray(values, dtype=np.int64)
    return ((v + (1 << 31)) % (1 << 32) - (1 << 31)).astype(np.int32)


@dataclass(frozen=True)
class QuantParams:
    """Per-layer requantization constants and the SiLU table (256 int8 entries)."""

    gate_mult: int
    gate_shift: int
    up_mult: int
    up_shift: int
    hidden_mult: int
    hidden_shift: int
    silu: np.ndarray = field(default_factory=silu_table, compare=False, repr=False)

    def __post_init__(self):
        for m, s in ((self.gate_mult, self.gate_shift), (self.up_mult, self.up_shift),
                     (self.hidden_mult, self.hidden_shift)):
            _check_mult_shift(m, s)
        table = np.asarray(self.silu)
        if table.shape != (256,) or table.dtype != np.int8:
            raise ValueError(f"the SiLU table must be 256 int8 entries, not {table.shape} {table.dtype}")

    @classmethod
    def for_shape(cls, d_model: int, weight_std: float = 20.0, token_std: float = 24.0):
        """Constants that keep int8 activations well spread (std about 32) for data drawn
        by :func:`random_layer` and :func:`random_tokens`."""
        shift = 16
        proj = round((1 << shift) * 32.0 / (math.sqrt(d_model) * weight_std * token_std))
        proj = max(1, min(MULT_MAX, proj))
        hidden = round((1 << 20) * 32.0 / (20.0 * 32.0 * 128.0))
        return cls(proj, shift, proj, shift, hidden, 20)


@dataclass(frozen=True, eq=False)
class MoELayer:
    """Weights and quantization constants of one MoE layer.

    Attributes
    ----------
    w_gate, w_up : ndarray int8, shape (E, d, f)
    w_down : ndarray int8, shape (E, f, d)
    quant : QuantParams
    """

    w_gate: np.ndarray
    w_up: np.ndarray
    w_down: np.ndarray
    quant: QuantParams

    def __post_init__(self):
        e, d, f = self.w_gate.shape
        if self.w_up.shape != (e, d, f) or self.w_down.shape != (e, f, d):
            raise ValueError(f"expert weights must be gate/up (E, d, f) and down (E, f, d), not "
                             f"{self.w_gate.shape}, {self.w_up.shape}, {self.w_down.shape}")
        for w in (self.w_gate, self.w_up, self.w_down):
            if w.dtype != np.int8:
                raise ValueError(f"expert weights must be int8, not {w.dtype}")

    @property
    def num_experts(self) -> int:
        return self.w_gate.shape[0]

    @property
    def d_model(self) -> int:
        return self.w_gate.shape[1]

    @property
    def d_ff(self) -> int:
        return self.w_gate.shape[2]


def _int8_normal(rng, shape, std):
    return np.clip(np.rint(rng.standard_normal(shape) * std), -128, 127).astype(np.int8)


def random_layer(num_experts: int, d_model: int, d_ff: int, seed: int = 0) -> MoELayer:
    """Seeded random int8 weights with roughly Gaussian values (std 20)."""
    rng = np.random.default_rng([seed, 1])
    return MoELayer(_int8_normal(rng, (num_experts, d_model, d_ff), 20.0),
                    _int8_normal(rng, (num_experts, d_model, d_ff), 20.0),
                    _int8_normal(rng, (num_experts, d_ff, d_model), 20.0),
                    QuantParams.for_shape(d_model))


def random_tokens(num_tokens: int, d_model: int, seed: int = 0) -> np.ndarray:
    """Seeded random int8 token activations (std 24), shape (L, d)."""
    return _int8_normal(np.random.default_rng([seed, 2]), (num_tokens, d_model), 24.0)


def slice_columns(d_ff: int, slices: int, index: int) -> np.ndarray:
    """FFN columns of micro-slice ``index`` when an expert is cut into ``slices`` equal slices."""
    if slices <= 0 or d_ff % slices:
        raise ValueError(f"d_ff {d_ff} cannot be cut into {slices} equal slices")
    if not 0 <= index < slices:
        raise ValueError(f"slice index {index} is outside 0..{slices - 1}")
    width = d_ff // slices
    return np.arange(index * width, (index + 1) * width)


def hidden_activation(layer: MoELayer, expert: int, columns, x, gate_q) -> np.ndarray:
    """int8 hidden activations ``h8`` (n x len(columns)) of tokens ``x`` (n x d int8) with
    Q0.8 gate weights ``gate_q`` (n,) for the given FFN columns of one expert."""
    q = layer.quant
    x = np.asarray(x, dtype=np.int64)
    g = x @ layer.w_gate[expert][:, columns].astype(np.int64)
    u = x @ layer.w_up[expert][:, columns].astype(np.int64)
    g8 = requantize(g, q.gate_mult, q.gate_shift)
    u8 = requantize(u, q.up_mult, q.up_shift)
    a8 = np.asarray(q.silu)[g8.astype(np.int64) + 128].astype(np.int64)
    p = a8 * u8.astype(np.int64) * np.asarray(gate_q, dtype=np.int64)[:, None]
    return requantize(p, q.hidden_mult, q.hidden_shift)


def apply_slice(layer: MoELayer, expert: int, columns, x, gate_q) -> np.ndarray:
    """int32 partial outputs (n x d) of one expert micro-slice (FFN ``columns``) applied
    to tokens ``x`` (n x d int8) with Q0.8 gate weights ``gate_q``."""
    h8 = hidden_activation(layer, expert, columns, x, gate_q).astype(np.int64)
    return wrap_int32(h8 @ layer.w_down[expert][columns, :].astype(np.int64))


def moe_layer(layer: MoELayer, x, experts, gate_q, slices: int = 1) -> np.ndarray:
    """int32 output (L x d) of the layer for tokens ``x`` (L x d int8) routed to
    ``experts`` (L x k ids) with Q0.8 gate weights ``gate_q`` (L x k uint8), computed one
    micro-slice at a time with every expert cut into ``slices`` slices."""
    x = np.asarray(x)
    experts = np.asarray(experts)
    gate_q = np.asarray(gate_q)
    if x.ndim != 2 or x.shape[1] != layer.d_model or x.dtype != np.int8:
        raise ValueError(f"tokens must be int8 of shape (L, {layer.d_model}), not {x.dtype} {x.shape}")
    if experts.shape != gate_q.shape or experts.shape[0] != x.shape[0]:
        raise ValueError("experts and gate weights must both be L x k for the L tokens")
    acc = np.zeros(x.shape, dtype=np.int64)
    for e in range(layer.num_experts):
        tok, rank = np.nonzero(experts == e)
        if tok.size == 0:
            continue
        for s in range(slices):
            cols = slice_columns(layer.d_ff, slices, s)
            acc[tok] += apply_slice(layer, e, cols, x[tok], gate_q[tok, rank])
    return wrap_int32(acc)
