"""Routing traces: which experts each token of one MoE layer invocation is sent to.

Trace file format (JSONL)
-------------------------
One JSON object per line, one line per token, in token order::

    {"token": 0, "experts": [5, 2], "weights": [0.61, 0.39]}

``token``
    Token index, 0 .. L-1, each exactly once, in increasing order.
``experts``
    The token's top-k expert ids in rank order (highest gate score first), distinct,
    each in ``0 .. E-1``.  Every record has the same k.
``weights``
    The gate weights of those experts (same length), finite and non-negative.  The
    hardware uses them as unsigned Q0.8 fixed point (see ``scheduler.golden``).

Blank lines are ignored.  Generators here are seeded with ``numpy.random.default_rng`` and
reproducible: the same arguments give the same trace.

Statistics files
----------------
``scheduler/data/routing/<model>_<domain>.json`` (real per-layer expert-selection counts
of Mixtral-8x7B and OLMoE-1B-7B, Apache-2.0, see the README and LICENSE beside them).
:func:`sample_from_stats` draws, per token, k distinct experts whose inclusion
probabilities equal the recorded marginals ``expert_counts[layer] / tokens_per_layer``
(systematic sampling in a random order, exact for any marginals each <= 1), then ranks
them by the recorded top-1 frequencies.
"""

from __future__ import annotations

import json
import math
import pathlib
from dataclasses import dataclass

import numpy as np

__all__ = [
    "RoutingError", "RoutingTrace", "load_trace", "write_trace", "from_logits", "uniform", "zipf",
    "load_stats", "sample_from_stats", "from_spec", "BUNDLED_STATS", "STATS_DIR",
]

STATS_DIR = pathlib.Path(__file__).parent / "data" / "routing"
#: Bundled statistics by the name ``--routing`` takes, ``<model>:<domain>``.
BUNDLED_STATS = {f"{m}:{d}": STATS_DIR / f"{f}_{d}.json"
                 for m, f in (("mixtral", "mistral"), ("olmoe", "olmoe"))
                 for d in ("c4", "book", "wikipedia")}


class RoutingError(ValueError):
    """A malformed or inconsistent routing trace or statistics file."""


@dataclass(frozen=True, eq=False)
class RoutingTrace:
    """Top-k routing of L tokens.

    Attributes
    ----------
    experts : ndarray, int, shape (L, k)
        Expert ids per token in rank order.
    weights : ndarray, float, shape (L, k)
        Gate weights per token, same order.
    """

    experts: np.ndarray
    weights: np.ndarray

    def __post_init__(self):
        experts = np.asarray(self.experts)
        weights = np.asarray(self.weights, dtype=np.float64)
        if experts.ndim != 2 or experts.shape != weights.shape:
            raise RoutingError(f"experts and weights must both be L x k arrays, "
                               f"not {experts.shape} and {weights.shape}")
        if experts.shape[0] == 0 or experts.shape[1] == 0:
            raise RoutingError("a routing trace needs at least one token and top-k >= 1")
        if not np.issubdtype(experts.dtype, np.integer):
            raise RoutingError(f"expert ids must be integers, not {experts.dtype}")
        object.__setattr__(self, "experts", experts.astype(np.int64))
        object.__setattr__(self, "weights", weights)
        for t in range(experts.shape[0]):
            _check_token(t, list(experts[t]), list(weights[t]), experts.shape[1], None)

    @property
    def num_tokens(self) -> int:
        return self.experts.shape[0]

    @property
    def top_k(self) -> int:
        return self.experts.shape[1]

    def check_fits(self, num_experts: int, top_k: int, what: str = "model") -> None:
        """Raise :class:`RoutingError` unless the trace fits ``num_experts`` and ``top_k``."""
        if self.top_k != top_k:
            raise RoutingError(f"routing has top-{self.top_k} but the {what} uses top-{top_k}")
        high = int(self.experts.max())
        if high >= num_experts or int(self.experts.min()) < 0:
            raise RoutingError(f"routing uses expert {high} but the {what} has experts 0..{num_experts - 1}")

    def tokens_per_expert(self, num_experts: int) -> np.ndarray:
        return np.bincount(self.experts.ravel(), minlength=num_experts)

    def __eq__(self, other):
        return (isinstance(other, RoutingTrace) and np.array_equal(self.experts, other.experts)
                and np.array_equal(self.weights, other.weights))


def _check_token(t, experts, weights, top_k, num_experts):
    if len(experts) != top_k:
        raise RoutingError(f"token {t}: expected top-{top_k} experts, got {len(experts)}")
    if len(weights) != len(experts):
        raise RoutingError(f"token {t}: {len(experts)} experts but {len(weights)} weights")
    if len(set(experts)) != len(experts):
        raise RoutingError(f"token {t}: expert ids repeat in {list(map(int, experts))}")
    for e in experts:
        if isinstance(e, bool) or not isinstance(e, (int, np.integer)):
            raise RoutingError(f"token {t}: expert id {e!r} is not an integer")
        if e < 0 or (num_experts is not None and e >= num_experts):
            hi = "" if num_experts is None else f"..{num_experts - 1}"
            raise RoutingError(f"token {t}: expert id {e} is out of range 0{hi}")
    for w in weights:
        if isinstance(w, bool) or not isinstance(w, (int, float, np.floating, np.integer)):
            raise RoutingError(f"token {t}: gate weight {w!r} is not a number")
        if not math.isfinite(w) or w < 0:
            raise RoutingError(f"token {t}: gate weight {w!r} must be finite and non-negative")
        if w > 1:
            raise RoutingError(f"token {t}: gate weight {w!r} is above 1.0; gate weights are in [0, 1] "
                               f"(softmax probabilities, held by the hardware as unsigned Q0.8)")


def load_trace(path, num_experts: int | None = None) -> RoutingTrace:
    """Read a JSONL trace; any error names the file and line."""
    path = pathlib.Path(path)
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise RoutingError(f"{path}: cannot read routing trace: {exc.strerror}") from None
    experts, weights, top_k = [], [], None
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise RoutingError(f"{where}: not valid JSON ({exc.msg})") from None
        if not isinstance(rec, dict) or set(rec) != {"token", "experts", "weights"}:
            raise RoutingError(f"{where}: a record must be an object with exactly the keys "
                               f"'token', 'experts', 'weights'")
        if rec["token"] != len(experts) or isinstance(rec["token"], bool):
            raise RoutingError(f"{where}: expected token index {len(experts)}, got {rec['token']!r}")
        if not isinstance(rec["experts"], list) or not isinstance(rec["weights"], list):
            raise RoutingError(f"{where}: 'experts' and 'weights' must be lists")
        top_k = len(rec["experts"]) if top_k is None else top_k
        if top_k == 0:
            raise RoutingError(f"{where}: a token needs at least one expert")
        try:
            _check_token(rec["token"], rec["experts"], rec["weights"], top_k, num_experts)
        except RoutingError as exc:
            raise RoutingError(f"{where}: {exc}") from None
        experts.append(rec["experts"])
        weights.append(rec["weights"])
    if not experts:
        raise RoutingError(f"{path}: the routing trace has no tokens")
    return RoutingTrace(np.array(experts, dtype=np.int64), np.array(weights, dtype=np.float64))


def from_logits(logits, top_k: int, renormalize: bool = True) -> RoutingTrace:
    """The top-k routing a softmax router takes from its logits (``L x E``): per token the
    ``top_k`` largest logits in rank order (ties: the lower expert id), with gate weights
    the softmax over all E experts, or, with ``renormalize`` (Mixtral's and OLMoE's
    routers), the softmax over the chosen k."""
    x = np.asarray(logits, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise RoutingError(f"router logits must be an L x E array, not of shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise RoutingError("router logits must be finite")
    _check_shape(x.shape[0], x.shape[1], top_k)
    experts = np.argsort(-x, axis=1, kind="stable")[:, :top_k]
    chosen = np.take_along_axis(x, experts, axis=1)
    if renormalize:
        z = np.exp(chosen - chosen[:, :1])
        weights = z / z.sum(axis=1, keepdims=True)
    else:
        z = np.exp(x - x.max(axis=1, keepdims=True))
        weights = np.take_along_axis(z / z.sum(axis=1, keepdims=True), experts, axis=1)
    return RoutingTrace(experts, np.minimum(weights, 1.0))


def write_trace(trace: RoutingTrace, path) -> None:
    """Write ``trace`` as a JSONL routing trace (the format :func:`load_trace` reads and
    ``--routing FILE.jsonl`` takes), creating missing parent folders."""
    pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for t in range(trace.num_tokens):
            f.write(json.dumps({"token": t, "experts": [int(e) for e in trace.experts[t]],
                                "weights": [float(w) for w in trace.weights[t]]}) + "\n")


def _check_shape(num_tokens, num_experts, top_k):
    for name, v in (("num_tokens", num_tokens), ("num_experts", num_experts), ("top_k", top_k)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0:
            raise RoutingError(f"{name} must be a positive integer, not {v!r}")
    if top_k > num_experts:
        raise RoutingError(f"top_k {top_k} exceeds num_experts {num_experts}")


def _gate_weights(rng, num_tokens, top_k):
    """Softmax of k standard-normal logits per token, sorted descending (rank order)."""
    logits = rng.standard_normal((num_tokens, top_k))
    w = np.exp(logits - logits.max(axis=1, keepdims=True))
    w /= w.sum(axis=1, keepdims=True)
    return -np.sort(-w, axis=1)


def _weighted_without_replacement(rng, p, num_tokens, top_k):
    """Per token, k distinct experts drawn one after another with probabilities ``p``."""
    experts = np.empty((num_tokens, top_k), dtype=np.int64)
    for t in range(num_tokens):
        experts[t] = rng.choice(len(p), size=top_k, replace=False, p=p)
    return experts


def uniform(num_tokens: int, num_experts: int, top_k: int, seed: int = 0) -> RoutingTrace:
    """Every token picks k distinct experts uniformly at random."""
    _check_shape(num_tokens, num_experts, top_k)
    rng = np.random.default_rng(seed)
    p = np.full(num_experts, 1.0 / num_experts)
    return RoutingTrace(_weighted_without_replacement(rng, p, num_tokens, top_k),
                        _gate_weights(rng, num_tokens, top_k))


def zipf(num_tokens: int, num_experts: int, top_k: int, skew: float, seed: int = 0) -> RoutingTrace:
    """Zipf-skewed popularity: the expert of popularity rank r is drawn with weight
    ``r ** -skew`` (ranks assigned to expert ids by a seeded permutation); ``skew = 0`` is
    uniform."""
    _check_shape(num_tokens, num_experts, top_k)
    if not (isinstance(skew, (int, float)) and math.isfinite(skew) and skew >= 0):
        raise RoutingError(f"Zipf skew must be a finite number >= 0, not {skew!r}")
    rng = np.random.default_rng(seed)
    ranks = rng.permutation(num_experts) + 1
    p = ranks.astype(np.float64) ** -float(skew)
    if np.count_nonzero(p) < top_k:
        most = math.floor(700 / math.log(top_k))
        raise RoutingError(f"Zipf skew {skew:g} leaves fewer than top-{top_k} experts with a non-zero "
                           f"probability (it underflows); give a skew of at most {most}")
    p /= p.sum()
    return RoutingTrace(_weighted_without_replacement(rng, p, num_tokens, top_k),
                        _gate_weights(rng, num_tokens, top_k))


@dataclass(frozen=True)
class RoutingStats:
    """Recorded per-layer expert-selection counts (one statistics file)."""

    model: str
    domain: str
    num_experts: int
    top_k: int
    layers: tuple
    tokens_per_layer: int
    expert_counts: np.ndarray        # (layers, E)
    expert_counts_top1: np.ndarray   # (layers, E)

    def marginals(self, layer: int) -> np.ndarray:
        """Probability that each expert is among a token's top-k at ``layer``."""
        return self.expert_counts[self._row(layer)] / self.tokens_per_layer

    def top1(self, layer: int) -> np.ndarray:
        return self.expert_counts_top1[self._row(layer)]

    def _row(self, layer):
        if layer not in self.layers:
            raise RoutingError(f"{self.model} {self.domain}: no statistics for layer {layer}; "
                               f"recorded layers are {list(self.layers)}")
        return self.layers.index(layer)


def load_stats(path) -> RoutingStats:
    """Read a statistics JSON in the format of ``scheduler/data/routing``."""
    path = pathlib.Path(path)
    try:
        raw = json.loads(path.read_text())
    except OSError as exc:
        raise RoutingError(f"{path}: cannot read routing statistics: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise RoutingError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    need = ("num_experts", "top_k", "layers", "tokens_per_layer", "expert_counts", "expert_counts_top1")
    missing = [k for k in need if not isinstance(raw, dict) or k not in raw]
    if missing:
        raise RoutingError(f"{path}: routing statistics lack the keys {missing}")
    try:
        e, k = int(raw["num_experts"]), int(raw["top_k"])
        counts = np.asarray(raw["expert_counts"], dtype=np.float64)
        top1 = np.asarray(raw["expert_counts_top1"], dtype=np.float64)
        layers = tuple(int(x) for x in raw["layers"])
        tokens = int(raw["tokens_per_layer"])
    except (TypeError, ValueError):
        raise RoutingError(f"{path}: routing statistics fields have the wrong types") from None
    if not 0 < k <= e or tokens <= 0:
        raise RoutingError(f"{path}: need 0 < top_k <= num_experts and tokens_per_layer > 0")
    for name, arr in (("expert_counts", counts), ("expert_counts_top1", top1)):
        if arr.shape != (len(layers), e):
            raise RoutingError(f"{path}: {name} must be {len(layers)} x {e}, not {arr.shape}")
        if not np.all(np.isfinite(arr)) or np.any(arr < 0):
            raise RoutingError(f"{path}: {name} must be finite and non-negative")
    if np.any(counts > tokens):
        raise RoutingError(f"{path}: an expert count exceeds tokens_per_layer ({tokens})")
    if np.any(counts.sum(axis=1) <= 0):
        raise RoutingError(f"{path}: a layer has no recorded selections")
    return RoutingStats(str(raw.get("model", path.stem)), str(raw.get("domain", "")), e, k, layers,
                        tokens, counts, top1)


def _inclusion_probabilities(marginals, top_k):
    """Scale recorded marginals to sum to exactly k, capping each at 1."""
    pi = np.asarray(marginals, dtype=np.float64)
    pi = pi * (top_k / pi.sum())
    for _ in range(len(pi)):  # redistribute any excess above 1 (never needed for real data)
        over = pi > 1.0
        if not over.any():
            break
        excess = (pi[over] - 1.0).sum()
        pi[over] = 1.0
        free = pi < 1.0
        pi[free] += excess * pi[free] / pi[free].sum()
    return pi


def sample_from_stats(stats: RoutingStats, num_tokens: int, layer: int | None = None,
                      seed: int = 0) -> RoutingTrace:
    """Sample a trace whose per-expert marginals equal the recorded ones at ``layer``
    (default: the middle recorded layer)."""
    _check_shape(num_tokens, stats.num_experts, stats.top_k)
    layer = stats.layers[len(stats.layers) // 2] if layer is None else layer
    pi = _inclusion_probabilities(stats.marginals(layer), stats.top_k)
    rank_weight = stats.top1(layer) + 1.0
    rng = np.random.default_rng(seed)
    k = stats.top_k
    experts = np.empty((num_tokens, k), dtype=np.int64)
    for t in range(num_tokens):
        order = rng.permutation(stats.num_experts)
        edges = np.cumsum(pi[order])
        points = rng.random() + np.arange(k)
        chosen = order[np.searchsorted(edges, points, side="right")]
        # Rank the chosen experts: successive draws weighted by recorded top-1 frequency.
        w = rank_weight[chosen] / rank_weight[chosen].sum()
        experts[t] = rng.choice(chosen, size=k, replace=False, p=w)
    return RoutingTrace(experts, _gate_weights(rng, num_tokens, k))


def from_spec(spec: str, num_tokens: int, num_experts: int, top_k: int, seed: int = 0) -> RoutingTrace:
    """Build a trace from a ``--routing`` value.

    ``uniform``; ``zipf:A`` (skew A >= 0); ``<model>:<domain>[:<layer>]`` for a bundled
    statistics file (``mixtral:c4``, ``olmoe:wikipedia:15``, ...); a path to a statistics
    ``.json`` (optionally ``path.json:<layer>``); or a path to a ``.jsonl`` trace.
    The result is checked against the model's E and k.
    """
    if not isinstance(spec, str) or not spec:
        raise RoutingError("routing spec must be a non-empty string")
    allowed = ("'uniform', 'zipf:A', a bundled statistics name (" + ", ".join(BUNDLED_STATS)
               + "[:layer]), a statistics .json or a .jsonl trace")
    what = f"routing {spec!r}"
    if spec == "uniform":
        return uniform(num_tokens, num_experts, top_k, seed)
    if spec.startswith("zipf:"):
        try:
            skew = float(spec[5:])
        except ValueError:
            raise RoutingError(f"{what}: Zipf skew {spec[5:]!r} is not a number") from None
        return zipf(num_tokens, num_experts, top_k, skew, seed)
    if spec.endswith(".jsonl"):
        trace = load_trace(spec, num_experts)
        if trace.num_tokens != num_tokens:
            raise RoutingError(f"{what}: the trace has {trace.num_tokens} tokens, but {num_tokens} were asked for")
        trace.check_fits(num_experts, top_k)
        return trace
    name, layer = spec, None
    head, _, tail = spec.rpartition(":")
    if tail.isdigit() and (head in BUNDLED_STATS or head.endswith(".json")):
        name, layer = head, int(tail)
    if name in BUNDLED_STATS:
        path = BUNDLED_STATS[name]
    elif name.endswith(".json"):
        path = pathlib.Path(name)
    else:
        raise RoutingError(f"unknown {what}; allowed: {allowed}")
    stats = load_stats(path)
    if (stats.num_experts, stats.top_k) != (num_experts, top_k):
        raise RoutingError(f"{what} has {stats.num_experts} experts, top-{stats.top_k}; "
                           f"the model has {num_experts} experts, top-{top_k}")
    return sample_from_stats(stats, num_tokens, layer, seed)
