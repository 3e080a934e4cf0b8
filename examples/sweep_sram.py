"""Sweep one parameter, the weight buffer per chiplet, and plot cycles against it.

Runs FSE-DP (paired), tiled EP and Hydra with the fast engine on one paper-scale MoE
layer (default: ``olmoe-1b-7b``, L = 64 tokens routed by OLMoE's C4 statistics, on
``paper-2x2``) for each weight-buffer size in ``--sram`` (passed as ``sram=`` to
``fsedp.compare``: every strategy's weight slots are carved out of that buffer), skips
the points where a strategy does not fit (and prints why), prints the cycles as a table
and saves a plot of cycles against SRAM (MiB, log2 axis).

The default sizes are 0.5, 1, 2, 4, 8 and 16 MiB; 0.5 MiB is below the two slots of
384 KiB every strategy needs for this layer, so that point shows what a refusal looks
like. The default layer takes a few seconds per point.

Run it::

    python examples/sweep_sram.py
    python examples/sweep_sram.py --model qwen3-30b-a3b --routing uniform --tokens 16 --sram 1,4,16

Writes ``DIR/sweep_sram.png`` and ``DIR/sweep_sram.csv`` under ``--out DIR`` (default
``results/examples``).
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import fsedp  # noqa: E402

MiB = 1 << 20
STRATEGIES = ("fse-dp-paired", "ep", "hydra")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=pathlib.Path, default=pathlib.Path("results/examples"),
                    help="output folder (default: results/examples)")
    ap.add_argument("--sram", default="0.5,1,2,4,8,16",
                    help="weight buffer sizes per chiplet in MiB, comma-separated (default: 0.5,1,2,4,8,16)")
    ap.add_argument("--preset", default="paper-2x2", help="hardware preset or .toml (default: paper-2x2)")
    ap.add_argument("--model", default="olmoe-1b-7b", help="model preset or .toml (default: olmoe-1b-7b)")
    ap.add_argument("--tokens", "-L", type=int, default=64, help="tokens in the layer (default: 64)")
    ap.add_argument("--routing", default="olmoe:c4", help="routing spec (default: olmoe:c4)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    try:
        sizes = [fsedp.parse_size(f"{v.strip()}MiB") for v in args.sram.split(",")]
        hw = fsedp.hardware(args.preset)
        model = fsedp.model(args.model)
        trace = fsedp.routing(args.routing, model, tokens=args.tokens, seed=args.seed)
    except (fsedp.PresetError, fsedp.RoutingError) as exc:
        ap.error(str(exc))
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"{hw.name}, {model.name} (E={model.num_experts}, top-{model.top_k}, expert "
          f"{fsedp.format_size(model.expert_bytes)}), L={args.tokens}, routing {args.routing}, fast engine")

    # cycles[strategy][size] for the points that ran
    cycles = {s: {} for s in STRATEGIES}
    for size in sizes:
        try:
            results, skipped = fsedp.compare(hw, model, trace, strategies=STRATEGIES, sram=size, seed=args.seed)
        except fsedp.PresetError as exc:       # e.g. a size that is not a whole number of weight words
            print(f"{fsedp.format_size(size)}: not run: {exc}")
            continue
        for r in results:
            cycles[r.strategy][size] = r.cycles
        for s in skipped:
            print(f"{fsedp.format_size(size)}: {s['strategy']} not run: {s['reason']}")

    # The table: one row per size, "-" where a strategy did not fit.
    head = f"{'SRAM MiB':>8}  " + "  ".join(f"{s:>13}" for s in STRATEGIES) + "  fse-dp-paired speedup vs best of ep, hydra"
    print(head)
    lines = ["sram_mib," + ",".join(STRATEGIES)]
    for size in sizes:
        row = [cycles[s].get(size) for s in STRATEGIES]
        best_base = min((c for s, c in zip(STRATEGIES, row) if s != "fse-dp-paired" and c), default=None)
        ratio = f"{best_base / row[0]:.3f}" if row[0] and best_base else "-"
        print(f"{size / MiB:>8g}  " + "  ".join(f"{c if c else '-':>13}" for c in row) + f"  {ratio:>42}")
        lines.append(f"{size / MiB:g}," + ",".join("" if c is None else str(c) for c in row))
    csv_path = args.out / "sweep_sram.csv"
    csv_path.write_text("\n".join(lines) + "\n")

    # The plot: SRAM in MiB on a log2 axis.
    fig, ax = plt.subplots(figsize=(6, 4))
    for s, marker in zip(STRATEGIES, "os^"):
        xs = sorted(cycles[s])
        ax.plot([x / MiB for x in xs], [cycles[s][x] for x in xs], marker=marker, label=s)
    ax.set_xscale("log", base=2)
    ran = sorted({x for c in cycles.values() for x in c})
    ax.set_xticks([x / MiB for x in ran], [f"{x / MiB:g}" for x in ran])
    ax.set_xlabel("weight buffer per chiplet (MiB)")
    ax.set_ylabel("cycles")
    ax.set_title(f"{model.name}, L={args.tokens}, {hw.name} (fast engine)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    png = args.out / "sweep_sram.png"
    fig.savefig(png, dpi=120)
    plt.close(fig)
    print(f"wrote {png} and {csv_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
