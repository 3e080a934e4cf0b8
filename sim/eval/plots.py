"""PNG plots of a report (matplotlib, Agg backend: no display needed).

Every function takes the report's per-point rows (see :func:`sim.eval.report.point_row`) and
writes one PNG; none computes a metric of its own.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

__all__ = ["speedup_bars", "memory_bars", "utilization_bars", "timeline_plot", "STRATEGY_COLORS"]

STRATEGY_COLORS = {"fse-dp": "#9ecae1", "fse-dp-paired": "#08519c", "ep": "#fd8d3c", "hydra": "#a63603"}
PAPER_RANGE = (1.22, 2.00)


def _label(row) -> str:
    return f"{row['model']}\n{row['routing']}"


def _groups(rows) -> list:
    """Distinct (model, routing) in row order."""
    return list(dict.fromkeys((r["model"], r["routing"]) for r in rows))


def _save(fig, path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def speedup_bars(rows: list, title: str, path) -> None:
    """FSE-DP paired over EP (top) and over Hydra (bottom): bars per model, one per L,
    with the paper's claimed range shaded."""
    groups = _groups(rows)
    tokens = sorted({r["tokens"] for r in rows})
    fig, axes = plt.subplots(2, 1, figsize=(max(6, 1.6 * len(groups)), 7), sharex=True)
    width = 0.8 / len(tokens)
    for ax, key, name in zip(axes, ("speedup_vs_ep", "speedup_vs_hydra"), ("EP", "Hydra")):
        for j, t in enumerate(tokens):
            vals = [next((r[key] for r in rows if (r["model"], r["routing"]) == g and r["tokens"] == t), None)
                    for g in groups]
            xs = np.arange(len(groups)) + (j - (len(tokens) - 1) / 2) * width
            ax.bar(xs, [v or 0 for v in vals], width, label=f"L={t}")
        ax.axhspan(*PAPER_RANGE, color="green", alpha=0.12, label="paper: 1.22x-2.00x")
        ax.axhline(1.0, color="black", lw=0.8)
        ax.set_ylabel(f"speedup over {name}")
        top = max([r[key] or 0 for r in rows] + [PAPER_RANGE[1]])
        ax.set_ylim(0, top * 1.3)
    axes[0].set_title(f"FSE-DP paired speedup, {title}")
    axes[0].legend(fontsize=8, ncol=len(tokens) + 1, loc="upper right")
    axes[1].set_xticks(np.arange(len(groups)), [f"{m}\n{r}" for m, r in groups], fontsize=8)
    _save(fig, path)


def memory_bars(rows: list, strategies, title: str, path) -> None:
    """Peak on-chip bytes per chiplet (log scale): one panel per L, bars per strategy."""
    groups = _groups(rows)
    tokens = sorted({r["tokens"] for r in rows})
    fig, axes = plt.subplots(len(tokens), 1, figsize=(max(6, 1.6 * len(groups)), 2.6 * len(tokens)),
                             sharex=True, squeeze=False)
    width = 0.8 / len(strategies)
    for ax, t in zip(axes[:, 0], tokens):
        for j, s in enumerate(strategies):
            vals = [next((r["peak"].get(s) for r in rows if (r["model"], r["routing"]) == g
                          and r["tokens"] == t), None) for g in groups]
            xs = np.arange(len(groups)) + (j - (len(strategies) - 1) / 2) * width
            ax.bar(xs, [v or 0 for v in vals], width, label=s, color=STRATEGY_COLORS.get(s))
        ax.set_yscale("log")
        peaks = [v for r in rows if r["tokens"] == t for v in r["peak"].values() if v]
        if peaks:
            ax.set_ylim(min(peaks) / 2, max(peaks) * 6)
        ax.set_ylabel(f"L={t}\npeak bytes")
    axes[0, 0].set_title(f"Peak on-chip memory per chiplet (weights + tokens), {title}")
    axes[0, 0].legend(fontsize=8, ncol=len(strategies), loc="upper right")
    axes[-1, 0].set_xticks(np.arange(len(groups)), [f"{m}\n{r}" for m, r in groups], fontsize=8)
    _save(fig, path)


def utilization_bars(rows: list, strategies, title: str, path) -> None:
    """Compute utilization of every chiplet, one panel per (model, routing), bars per
    strategy; ``rows`` are the points to show (one per panel)."""
    n = len(rows)
    cols = min(3, n)
    nrows = -(-n // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 2.8 * nrows), squeeze=False)
    for ax, row in zip(axes.ravel(), rows):
        chips = max(len(u) for u in row["compute_util"].values())
        width = 0.8 / len(strategies)
        for j, s in enumerate(strategies):
            u = row["compute_util"].get(s) or [0] * chips
            ax.bar(np.arange(chips) + (j - (len(strategies) - 1) / 2) * width, u, width, label=s,
                   color=STRATEGY_COLORS.get(s))
        ax.set_ylim(0, 1)
        ax.set_title(f"{row['model']} {row['routing']} L={row['tokens']}", fontsize=9)
        ax.set_xticks(range(chips))
        ax.set_xlabel("chiplet", fontsize=8)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    axes[0, 0].set_ylabel("compute utilization")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"Per-chiplet compute utilization, {title}")
    _save(fig, path)


def _timeline_events(timeline) -> list:
    """Complete events (``ph`` "X") of a Chrome trace-event timeline (a list of events or
    ``{"traceEvents": [...]}``)."""
    events = timeline.get("traceEvents", []) if isinstance(timeline, dict) else timeline
    return [e for e in events or [] if isinstance(e, dict) and e.get("ph") == "X"
            and isinstance(e.get("ts"), (int, float)) and isinstance(e.get("dur"), (int, float))]


def timeline_plot(timeline, title: str, path, bins: int = 100) -> bool:
    """Busy fraction over time of every track (pid/tid) of a trace-event timeline.
    Returns False (and writes nothing) when it has no complete events."""
    events = _timeline_events(timeline)
    if not events:
        return False
    end = max(e["ts"] + e["dur"] for e in events)
    edges = np.linspace(0, end, bins + 1)
    tracks = {}
    for e in events:
        key = f"{e.get('pid', '')}/{e.get('tid', '')}"
        busy = tracks.setdefault(key, np.zeros(bins))
        lo, hi = e["ts"], e["ts"] + e["dur"]
        busy += np.clip(np.minimum(edges[1:], hi) - np.maximum(edges[:-1], lo), 0, None)
    fig, ax = plt.subplots(figsize=(9, 0.35 * len(tracks) + 1.5))
    names = sorted(tracks)
    image = np.array([tracks[k] / np.diff(edges) for k in names])
    ax.imshow(np.clip(image, 0, 1), aspect="auto", cmap="Blues", vmin=0, vmax=1,
              extent=(0, end, len(names) - 0.5, -0.5), interpolation="nearest")
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_xlabel("time (trace units)")
    ax.set_title(f"Utilization over time, {title}")
    _save(fig, path)
    return True
