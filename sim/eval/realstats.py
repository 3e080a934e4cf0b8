"""Routing "from real statistics" for every model preset, including those without a file.

Real per-layer expert-selection statistics are bundled for two models only: Mixtral-8x7B
(8 experts, top-2) and OLMoE-1B-7B (64 experts, top-8), on three text domains. For any
other model preset the grid uses statistics *derived* from one of them, by this rule:

1. **Same shape.** If a bundled file has exactly the model's expert count E and top-k,
   it is used as it is (its own file for Mixtral and OLMoE; e.g. ``tiny-8x2`` uses
   Mixtral's, ``tiny-64x8`` OLMoE's).
2. **Source.** Otherwise the source is the bundled model whose expert count is closest
   on a log2 scale (ties: the closer top-k, then Mixtral).
3. **Resample experts.** The source's per-expert counts, in expert-id order, are read as
   a piecewise-constant density over ``[0, E_src)``; target expert j gets the mass on
   ``[j E_src / E, (j+1) E_src / E)``. Doubling splits every source expert into two equal
   halves (the load skew is kept); halving merges id-neighbours (some skew averages out).
   The same rule resamples the top-1 counts (used only to rank a token's experts).
4. **Change top-k.** The resampled load shares become inclusion probabilities summing to
   the model's k, each capped at 1 (the sampler's own rule,
   :func:`scheduler.routing._inclusion_probabilities`), times the recorded token count.

The derived statistics are written as an ordinary statistics JSON (loadable with
``--routing path.json``), with ``derived_from`` and ``rule`` fields saying exactly where
they came from; they are never labelled as the target model's own statistics.
"""

from __future__ import annotations

import json
import math
import pathlib
from dataclasses import dataclass

import numpy as np

from scheduler import presets, routing

__all__ = ["BUNDLED_MODELS", "DOMAINS", "RealRouting", "choose_source", "resample_experts",
           "derive_stats", "real_routing"]

#: Bundled statistics families: name in ``--routing`` -> (experts, top-k, model recorded).
BUNDLED_MODELS = {"mixtral": (8, 2, "Mixtral-8x7B-v0.1"), "olmoe": (64, 8, "OLMoE-1B-7B-0924")}
#: Model presets whose own statistics are bundled.
OWN_STATS = {"mixtral-8x7b": "mixtral", "olmoe-1b-7b": "olmoe"}
DOMAINS = ("c4", "book", "wikipedia")

RULE = ("experts resampled by id-order interval mass (x2 splits each expert in halves, /2 merges "
        "id-neighbours), then scaled to inclusion probabilities summing to the model's top-k (capped at 1)")


@dataclass(frozen=True)
class RealRouting:
    """How one model gets "real" routing: the ``--routing`` spec to use and what it is."""

    model: str
    domain: str
    spec: str          # value for routing.from_spec / sim.workload.prepare
    source: str        # bundled statistics name, e.g. "olmoe:c4"
    derived: bool      # False: the bundled file is used as it is
    note: str          # one line for people


def choose_source(num_experts: int, top_k: int) -> str:
    """The bundled family (``mixtral`` or ``olmoe``) a model of this shape draws from."""
    for name, (e, k, _) in BUNDLED_MODELS.items():
        if (e, k) == (num_experts, top_k):
            return name

    def distance(name):
        e, k, _ = BUNDLED_MODELS[name]
        return (abs(math.log2(e) - math.log2(num_experts)), abs(k - top_k), name != "mixtral")

    return min(BUNDLED_MODELS, key=distance)


def resample_experts(values, num_out: int) -> np.ndarray:
    """Resample per-expert masses (id order) to ``num_out`` experts, keeping the total.

    Target j gets the mass of ``[j E / num_out, (j+1) E / num_out)`` with each source
    expert spread evenly over its unit interval: ``[1, 3] -> [.5, .5, 1.5, 1.5]`` and
    ``[1, 2, 3, 4] -> [3, 7]``.
    """
    v = np.asarray(values, dtype=np.float64)
    cum = np.concatenate([[0.0], np.cumsum(v)])
    edges = np.linspace(0.0, len(v), num_out + 1)
    return np.diff(np.interp(edges, np.arange(len(v) + 1), cum))


def derive_stats(source: routing.RoutingStats, num_experts: int, top_k: int) -> dict:
    """Statistics JSON (as a dict) for a model of ``num_experts`` and ``top_k`` derived
    from ``source`` by the module's rule (rows of ``expert_counts`` sum to tokens x k)."""
    tokens = source.tokens_per_layer
    counts, top1 = [], []
    for layer in source.layers:
        share = resample_experts(source.marginals(layer), num_experts)
        pi = routing._inclusion_probabilities(share / share.sum(), top_k)
        counts.append((pi * tokens).tolist())
        t1 = resample_experts(source.top1(layer), num_experts)
        top1.append((t1 * tokens / max(t1.sum(), 1e-300)).tolist())
    return {"num_experts": num_experts, "top_k": top_k, "domain": source.domain,
            "layers": list(source.layers), "tokens_per_layer": tokens,
            "expert_counts": counts, "expert_counts_top1": top1}


def real_routing(model_name: str, domain: str, out_dir) -> RealRouting:
    """The real-statistics routing of ``model_name``: a bundled name, or a derived
    statistics file written to ``out_dir/routing/`` (reused if already there)."""
    if domain not in DOMAINS:
        raise routing.RoutingError(f"unknown statistics domain {domain!r}; choose one of: {', '.join(DOMAINS)}")
    model = presets.get_model(model_name)
    family = choose_source(model.num_experts, model.top_k)
    e_src, k_src, recorded = BUNDLED_MODELS[family]
    source = f"{family}:{domain}"
    if (e_src, k_src) == (model.num_experts, model.top_k):
        own = OWN_STATS.get(model_name) == family
        what = "its own" if own else f"{recorded}'s (same experts and top-k)"
        return RealRouting(model_name, domain, source, source, False,
                           f"{model_name}: {what} {domain} statistics ({source})")
    stats = routing.load_stats(routing.BUNDLED_STATS[source])
    derived = derive_stats(stats, model.num_experts, model.top_k)
    derived["model"] = f"derived for {model_name} from {recorded} {domain}"
    derived["derived_from"] = {"statistics": source, "model": recorded, "num_experts": e_src, "top_k": k_src}
    derived["rule"] = RULE
    path = pathlib.Path(out_dir) / "routing" / f"{model_name}_{domain}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(derived) + "\n")
    note = (f"{model_name}: no statistics of its own; derived from {recorded} {domain} ({source}), "
            f"experts {e_src}->{model.num_experts}, top-{k_src}->top-{model.top_k}")
    return RealRouting(model_name, domain, str(path.resolve()), source, True, note)
