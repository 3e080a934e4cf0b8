"""Workloads for one tile datapath: slices, tokens, token lists, jobs and the golden
accumulators, shared by the Amaranth-simulator tests, the cocotb bench and the benchmark.

Everything a bench drives into :class:`hw.tile_datapath.TileDatapath` is encoded here from
the hardware's own definitions: the slice byte order from :mod:`hw.slice_layout`, port
payloads from the layouts the datapath exposes (:func:`encode`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from amaranth.hdl import Const

from hw import slice_layout
from scheduler import golden, routing

__all__ = ["encode", "decode_words", "SliceJob", "DatapathWorkload", "acc_words", "quant_config"]


def encode(layout, **fields) -> int:
    """The integer value of a payload of ``layout`` (an ``amaranth.lib.data`` layout)."""
    return Const.cast(layout.const(fields)).value


def decode_words(value: int, width: int, count: int, signed: bool = True) -> list[int]:
    """Split an integer into ``count`` lanes of ``width`` bits (lane 0 least significant)."""
    mask = (1 << width) - 1
    lanes = [(value >> (i * width)) & mask for i in range(count)]
    if signed:
        lanes = [v - (1 << width) if v >> (width - 1) else v for v in lanes]
    return lanes


def acc_words(row, mac_cols: int) -> list[list[int]]:
    """An int32 accumulator row (length d) as accumulator-buffer words of ``mac_cols`` lanes."""
    row = [int(v) for v in np.asarray(row, dtype=np.int64)]
    return [row[i:i + mac_cols] for i in range(0, len(row), mac_cols)]


def quant_config(quant: golden.QuantParams) -> dict:
    """The datapath's requantization config fields for ``quant``."""
    return dict(gate_mult=quant.gate_mult, gate_shift=quant.gate_shift, up_mult=quant.up_mult,
                up_shift=quant.up_shift, hidden_mult=quant.hidden_mult, hidden_shift=quant.hidden_shift)


@dataclass
class SliceJob:
    """One job: slice ``index`` of ``expert`` in weight ``slot``, applied to the token-list
    range ``base .. base + count - 1``."""

    expert: int
    index: int
    slot: int
    base: int
    count: int
    columns: np.ndarray = field(repr=False)


class DatapathWorkload:
    """A random MoE layer on one chiplet: ``tokens`` resident tokens, each routed to
    ``top_k`` of ``experts`` experts (Zipf-skewed, so some experts get no local token),
    experts cut into ``slices`` micro-slices, and the jobs that apply every slice of every
    expert, slice by slice, rotating over ``slots`` weight slots.

    Attributes
    ----------
    layer : golden.MoELayer
    x : ndarray int8 (tokens, d)
    experts, gate_q : ndarray (tokens, top_k)
    token_list : list of (token slot, gate_q)
        The per-expert table: expert ``e``'s entries are contiguous from ``base[e]``.
    jobs : list of SliceJob
    initial : ndarray int32 (tokens, d)
        Accumulator contents before the jobs (random when ``random_initial``).
    """

    def __init__(self, *, mac_rows: int, mac_cols: int, d: int, f: int, slices: int, experts: int,
                 tokens: int, top_k: int, slots: int, seed: int = 0, skew: float = 1.0,
                 random_initial: bool = False, quant: golden.QuantParams | None = None):
        slice_layout.check_shape(d, f // slices, mac_rows, mac_cols)
        self.mac_rows, self.mac_cols = mac_rows, mac_cols
        self.d, self.f, self.slices, self.fs = d, f, slices, f // slices
        self.num_experts, self.num_tokens, self.slots = experts, tokens, slots
        self.layer = golden.random_layer(experts, d, f, seed)
        if quant is not None:
            self.layer = golden.MoELayer(self.layer.w_gate, self.layer.w_up, self.layer.w_down, quant)
        self.x = golden.random_tokens(tokens, d, seed)
        trace = routing.zipf(tokens, experts, top_k, skew, seed)
        self.experts = np.asarray(trace.experts)
        self.gate_q = golden.quantize_gate_weights(trace.weights)
        rng = np.random.default_rng([seed, 7])
        self.initial = (rng.integers(-(1 << 31), 1 << 31, size=(tokens, d), dtype=np.int64).astype(np.int32)
                        if random_initial else np.zeros((tokens, d), dtype=np.int32))
        self.token_list: list[tuple[int, int]] = []
        self.base, self.count = [], []
        for e in range(experts):
            tok, rank = np.nonzero(self.experts == e)
            self.base.append(len(self.token_list))
            self.count.append(len(tok))
            self.token_list += [(int(t), int(self.gate_q[t, r])) for t, r in zip(tok, rank)]
        self.jobs = [SliceJob(e, s, k % slots, self.base[e], self.count[e], golden.slice_columns(f, slices, s))
                     for k, (e, s) in enumerate((e, s) for e in range(experts) for s in range(slices))]

    @property
    def quant(self) -> golden.QuantParams:
        return self.layer.quant

    @property
    def slice_words(self) -> int:
        return slice_layout.slice_words(self.d, self.fs, self.mac_rows, self.mac_cols)

    def slice_image(self, job: SliceJob) -> np.ndarray:
        """The job's slice as weight words (``hw.slice_layout.pack_slice``)."""
        e, cols = job.expert, job.columns
        return slice_layout.pack_slice(self.layer.w_gate[e][:, cols], self.layer.w_up[e][:, cols],
                                       self.layer.w_down[e][cols, :], self.mac_rows, self.mac_cols)

    def job_tokens(self, job: SliceJob) -> tuple[np.ndarray, np.ndarray]:
        entries = self.token_list[job.base:job.base + job.count]
        return (np.array([t for t, _ in entries], dtype=np.int64),
                np.array([q for _, q in entries], dtype=np.uint8))

    def expected(self, jobs=None) -> np.ndarray:
        """int32 accumulators after ``jobs`` (default: all), from ``golden.apply_slice``."""
        acc = self.initial.astype(np.int64)
        for job in self.jobs if jobs is None else jobs:
            tok, q = self.job_tokens(job)
            if tok.size:
                acc[tok] += golden.apply_slice(self.layer, job.expert, job.columns, self.x[tok], q)
        return golden.wrap_int32(acc)

    def expected_layer(self) -> np.ndarray:
        """The whole layer by ``golden.moe_layer`` (equals :meth:`expected` of all jobs
        when the accumulators start at zero)."""
        return golden.moe_layer(self.layer, self.x, self.experts, self.gate_q, slices=self.slices)
