"""PNG plots of a report (matplotlib, Agg backend: no display needed).

Every function takes the report's groups (``[((preset, model, routing, L), {budget:
row})]``, see :func:`sim.eval.report.groups`) and writes one PNG; none computes a metric
of its own beyond a ratio of two measured cycle counts.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from scheduler.plan import STRATEGIES  # noqa: E402

__all__ = ["sram_curves", "iso_sram_speedup", "STRATEGY_STYLE"]

#: colour and marker per strategy (FSE-DP blues, the EP family warm colours)
STRATEGY_STYLE = {"fse-dp": ("#6baed6", "o"), "fse-dp-paired": ("#08519c", "s"), "ep": ("#fd8d3c", "^"),
                  "hydra": ("#a63603", "v"), "ep-whole": ("#969696", "D"), "ep-paper": ("#252525", "x")}
PAPER_RANGE = (1.22, 2.00)
MiB = 1 << 20


def _save(fig, path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _axis(pts) -> list:
    return sorted(b for b in pts if isinstance(b, int))


def _log2_ticks(ax, budgets) -> None:
    """MiB labels on a log2 axis, leaving out a label closer than x1.3 to the previous one."""
    kept = []
    for b in sorted(budgets):
        if not kept or b >= 1.3 * kept[-1]:
            kept.append(b)
    ax.set_xscale("log", base=2)
    ax.set_xticks(kept, [f"{b / MiB:g}" for b in kept], fontsize=7)
    ax.minorticks_off()


def sram_curves(panels: list, title: str, path) -> bool:
    """Cycles / lower bound against the weight buffer per chiplet, one panel per L, one line
    per strategy (a missing point: the strategy does not fit that budget); each
    strategy's run at the reference model's provisioning, where there is one, as a hollow
    marker at its own buffer size.  False (nothing written) without a numeric budget."""
    panels = [p for p in panels if _axis(p[1])]
    if not panels:
        return False
    fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels), 3.2), squeeze=False)
    top = 1.0
    for ax, (key, pts) in zip(axes[0], panels):
        budgets = _axis(pts)
        for s in STRATEGIES:
            color, marker = STRATEGY_STYLE[s]
            xs = [b for b in budgets if pts[b]["distance"].get(s) is not None]
            ys = [pts[b]["distance"][s] for b in xs]
            if ys:
                ax.plot(xs, ys, marker=marker, color=color, label=s, lw=1.4, ms=4)
                top = max(top, max(ys))
            paper = pts.get("paper")
            if paper and paper["distance"].get(s) is not None:
                x = paper["metrics"][s]["provisioned"]
                ax.plot([x], [paper["distance"][s]], marker=marker, color=color, mfc="none", ms=7, ls="none")
                top = max(top, paper["distance"][s])
        ax.axhline(1.0, color="black", lw=0.8, ls="--", label="lower bound")
        ticks = budgets + sorted({pts["paper"]["metrics"][s]["provisioned"] for s in pts.get("paper", {}).get(
            "metrics", {})} if "paper" in pts else set())
        _log2_ticks(ax, sorted(set(ticks)))
        ax.set_title(f"L={key[3]}", fontsize=9)
        ax.set_xlabel("weight buffer per chiplet (MiB)", fontsize=8)
    for ax in axes[0]:
        ax.set_ylim(0.95, min(top * 1.05, 6.0))
    axes[0, 0].set_ylabel("cycles / lower bound")
    axes[0, 0].legend(fontsize=6, loc="upper right")
    fig.suptitle(f"{title}: cycles against SRAM (hollow: the reference model's provisioning)", fontsize=10)
    _save(fig, path)
    return True


def iso_sram_speedup(groups: list, title: str, path) -> bool:
    """FSE-DP paired (solid) and unpaired (dotted) over the best EP-family baseline at
    each budget, one panel per L, one line per model; the paper's 1.22x-2.00x shaded."""
    from .report import best_baseline

    tokens = sorted({k[3] for k, _ in groups})
    models = list(dict.fromkeys(k[1] for k, _ in groups))
    if not tokens:
        return False
    fig, axes = plt.subplots(1, len(tokens), figsize=(3.4 * len(tokens), 3.2), squeeze=False, sharey=True)
    cmap = plt.get_cmap("tab10")
    drawn = False
    for ax, t in zip(axes[0], tokens):
        budgets = set()
        for i, model in enumerate(models):
            pts = next((p for k, p in groups if k[1] == model and k[3] == t), {})
            for s, ls in (("fse-dp-paired", "-"), ("fse-dp", ":")):
                xs, ys = [], []
                for b in _axis(pts):
                    _, cycles = best_baseline(pts[b])
                    mine = pts[b]["cycles"].get(s)
                    if cycles and mine:
                        xs.append(b)
                        ys.append(cycles / mine)
                if xs:
                    drawn = True
                    budgets.update(xs)
                    ax.plot(xs, ys, ls=ls, marker="o", ms=3, color=cmap(i % 10),
                            label=model if s == "fse-dp-paired" else None)
        ax.axhspan(*PAPER_RANGE, color="green", alpha=0.10)
        ax.axhline(1.0, color="black", lw=0.8)
        if budgets:
            _log2_ticks(ax, sorted(budgets))
        ax.set_title(f"L={t}", fontsize=9)
        ax.set_xlabel("weight buffer per chiplet (MiB)", fontsize=8)
    if not drawn:
        plt.close(fig)
        return False
    axes[0, 0].set_ylabel("speedup over best EP-family")
    axes[0, 0].legend(fontsize=6, loc="upper left")
    fig.suptitle(f"{title}: FSE-DP paired (solid) and unpaired (dotted) at equal weight SRAM; "
                 "green: the paper's 1.22x-2.00x", fontsize=9)
    _save(fig, path)
    return True
