"""A routing trace from your own model's router logits, and FSE-DP and EP run on it.

A router's logits for one MoE layer are an ``L x E`` array (L tokens, E experts), e.g.
saved from your model with ``numpy.save("logits.npy", router_logits)``. This script
turns them into a routing trace with ``fsedp.from_logits`` (per token the top-k experts
and their renormalized softmax gate weights), saves the trace as JSONL with
``fsedp.write_trace`` (the file works with ``fsedp run --routing FILE.jsonl``), and runs
FSE-DP (paired) and EP on it with the fast engine, on a model whose expert count E
matches (default ``olmoe-1b-7b``: 64 experts, top-8, on ``paper-2x2``). It prints the
tokens each expert receives and the cycles of each strategy.

Without ``--logits`` it makes stand-in logits: seeded Gaussian noise plus a per-expert
bias that falls with a Zipf-like skew (``--skew``), so that a few experts are popular,
as in real routers, and saves them as ``DIR/logits.npy``.

Run it::

    python examples/routing_from_logits.py                          # synthetic logits, L = 64
    python examples/routing_from_logits.py --logits my_logits.npy   # your own L x 64 logits
    python examples/routing_from_logits.py --model mixtral-8x7b --logits mixtral_layer7.npy

Writes ``DIR/logits.npy`` (synthetic logits only) and ``DIR/routing.jsonl`` under
``--out DIR`` (default ``results/examples``).
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np

import fsedp

STRATEGIES = ("fse-dp-paired", "ep")


def synthetic_logits(tokens: int, experts: int, skew: float, seed: int) -> np.ndarray:
    """Stand-in router logits (float32, ``tokens x experts``): noise plus a popularity bias
    ``-skew * log(rank)`` over a seeded random ranking of the experts."""
    rng = np.random.default_rng(seed)
    rank = rng.permutation(experts) + 1                    # expert e is the rank[e]-th most popular
    bias = -skew * np.log(rank)
    return (rng.standard_normal((tokens, experts)) + bias).astype(np.float32)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=pathlib.Path, default=pathlib.Path("results/examples"),
                    help="output folder (default: results/examples)")
    ap.add_argument("--logits", type=pathlib.Path, help="router logits, an L x E .npy array (default: synthetic)")
    ap.add_argument("--model", default="olmoe-1b-7b", help="model preset or .toml whose E matches the logits")
    ap.add_argument("--preset", default="paper-2x2", help="hardware preset or .toml (default: paper-2x2)")
    ap.add_argument("--top-k", type=int, help="experts per token (default: the model's top-k)")
    ap.add_argument("--tokens", "-L", type=int, default=64, help="tokens of the synthetic logits (default: 64)")
    ap.add_argument("--skew", type=float, default=1.0, help="popularity skew of the synthetic logits (default: 1.0)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    try:
        model = fsedp.model(args.model)
    except fsedp.PresetError as exc:
        ap.error(str(exc))
    top_k = args.top_k or model.top_k

    # 1. The logits, as a user would have them: an L x E array in a .npy file.
    if args.logits is None:
        logits_path = args.out / "logits.npy"
        np.save(logits_path, synthetic_logits(args.tokens, model.num_experts, args.skew, args.seed))
        print(f"wrote synthetic logits {logits_path} (seed {args.seed}, skew {args.skew:g})")
    else:
        logits_path = args.logits
    logits = np.load(logits_path)
    if logits.ndim != 2 or logits.shape[1] != model.num_experts:
        ap.error(f"{logits_path}: logits of shape {logits.shape}; {model.name} needs L x {model.num_experts}")
    tokens = logits.shape[0]
    print(f"logits {logits_path}: L={tokens} tokens x E={logits.shape[1]} experts")

    # 2. The routing trace: top-k per token, gate weights the softmax over the chosen k.
    try:
        trace = fsedp.from_logits(logits, top_k)
    except fsedp.RoutingError as exc:
        ap.error(f"{logits_path}: {exc}")
    trace_path = args.out / "routing.jsonl"
    fsedp.write_trace(trace, trace_path)
    print(f"wrote {trace_path} ({trace.num_tokens} tokens, top-{trace.top_k}); use it with: "
          f"fsedp run --preset {args.preset} --model {args.model} --tokens {trace.num_tokens} "
          f"--routing {trace_path} --engine fast")

    per_expert = trace.tokens_per_expert(model.num_experts)
    print(f"tokens per expert (expert: tokens), {int((per_expert > 0).sum())} of {model.num_experts} experts active, "
          f"busiest {int(per_expert.max())}, mean {per_expert.mean():.2f}:")
    cells = [f"{e:>3}:{n:>3}" for e, n in enumerate(per_expert)]
    for i in range(0, len(cells), 16):
        print("  " + " ".join(cells[i:i + 16]))

    # 3. FSE-DP and EP on that trace, fast engine.
    print(f"{'strategy':<14} {'S':>4} {'slots':>5} {'cycles':>10} {'time us':>9} {'vs EP':>6}")
    results = {}
    for s in STRATEGIES:
        try:
            work = fsedp.prepare(args.preset, model, trace, s, engine="fast")
        except (fsedp.FitError, fsedp.PresetError) as exc:
            print(f"{s:<14} not run: {exc}")
            continue
        results[s] = fsedp.run(work, engine="fast")
    for s, r in results.items():
        vs_ep = f"{results['ep'].cycles / r.cycles:.3f}" if "ep" in results else "-"
        print(f"{s:<14} {r.spec['slices']:>4} {r.spec['slots']:>5} {r.cycles:>10} "
              f"{r.to_json()['time_us']:>9.1f} {vs_ep:>6}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
