"""PNG plots of a report (matplotlib, Agg backend: no display needed).

Every function takes the report's groups (``[((preset, model, routing, L), {budget:
row})]``, see :func:`sim.eval.report.groups`) and writes one PNG.  Nothing is computed
here beyond a ratio of two measured cycle counts (distance to the bound, speedup) and the
report's own weight-SRAM saving at the reference provisioning (from
:func:`sim.eval.report._paper_points`); the only constant drawn is the paper's claimed
band, :data:`sim.eval.report.PAPER_SPEEDUP` (besides the 1.00x lines: the bound, no speedup).

Conventions of every figure: SRAM sizes in MiB (2**20 bytes) on a log2 axis; the panels
of one figure share both axes; the legend sits below the panels, outside every axes (saved
with ``bbox_inches="tight"``); a series exactly equal at every point to one drawn before
it in the same panel is not drawn again but named in that panel's own legend
("ep = hydra").  The small pure functions below choose what is drawn and are tested on
data (tests/test_report.py).

The energy figure (:func:`energy_bars`) draws estimates, not measurements (each run's
counters x a technology table, :mod:`sim.eval.energy`) and says so in its title; its
panels share the y axis along a row (one model: models differ by orders of magnitude).
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from scheduler.plan import STRATEGIES  # noqa: E402
from scheduler.presets import MiB  # noqa: E402

from .report import PAPER_BUDGET, PAPER_SPEEDUP, _paper_points, _pct, best_baseline  # noqa: E402

__all__ = ["sram_curves", "iso_sram_speedup", "energy_bars", "COMPONENT_STYLE", "energy_unit",
           "STRATEGY_STYLE", "mib", "mib_ticks", "merge_identical",
           "merged_label", "shared_limits", "extremes", "sram_series", "speedup_series", "reference_saving",
           "saving_text"]

#: colour and marker per strategy (FSE-DP blues, the EP family warm colours)
STRATEGY_STYLE = {"fse-dp": ("#6baed6", "o"), "fse-dp-paired": ("#08519c", "s"), "ep": ("#fd8d3c", "^"),
                  "hydra": ("#a63603", "v"), "ep-whole": ("#969696", "D"), "ep-paper": ("#252525", "x")}
#: colour and name per energy component (sim.eval.energy.COMPONENTS order)
COMPONENT_STYLE = {"mac": ("#31a354", "MAC"), "weight_sram": ("#08519c", "weight SRAM"),
                   "token_sram": ("#6baed6", "token SRAM"), "acc_sram": ("#9ecae1", "accumulator SRAM"),
                   "d2d": ("#e6550d", "D2D links"), "dram": ("#636363", "DRAM"), "router": ("#fdae6b", "routers")}
#: short strategy names for the energy bars' ticks
SHORT = {"fse-dp": "FSE", "fse-dp-paired": "FSE-p", "ep": "EP", "hydra": "Hydra", "ep-whole": "EP-w",
         "ep-paper": "EP-ref"}
#: the two FSE-DP variants of the speedup plot: (strategy, its name in labels, line style)
VARIANTS = (("fse-dp-paired", "paired", "-"), ("fse-dp", "unpaired", ":"))


# --------------------------------------------------------------------------- what is drawn (pure)

def mib(nbytes) -> float:
    """Bytes in MiB (binary: 2**20 bytes)."""
    return nbytes / MiB


def mib_ticks(sizes, min_ratio: float = 1.3) -> tuple[list, list]:
    """``(positions in bytes, labels in MiB)`` for a log2 SRAM axis: every distinct size,
    ascending, leaving out one closer than ``min_ratio`` to the previous label kept."""
    kept = []
    for b in sorted(set(sizes)):
        if not kept or b >= min_ratio * kept[-1]:
            kept.append(b)
    return kept, [f"{mib(b):g}" for b in kept]


def merge_identical(series) -> list:
    """``[(names, points)]``: ``series`` (a mapping or ``(name, points)`` pairs, in drawing
    order) with every series exactly equal at every point (same x, same y) to an earlier
    one folded into it; ``names`` lists all it stands for, the first drawn first."""
    out = []
    for name, points in (series.items() if hasattr(series, "items") else series):
        for names, other in out:
            if other == points:
                names.append(name)
                break
        else:
            out.append(([name], points))
    return [(tuple(names), points) for names, points in out]


def merged_label(names) -> str:
    """``"fse-dp = fse-dp-paired"``: the legend label of a series that stands for several."""
    return " = ".join(names)


def shared_limits(values, pad: float = 0.05) -> tuple[float, float]:
    """One ``(low, high)`` for every panel of a figure: the range of ``values`` widened by
    ``pad`` of its span on each side (of 1 if the span is 0)."""
    values = [v for v in values if v is not None]
    lo, hi = min(values), max(values)
    span = (hi - lo) or 1.0
    return lo - pad * span, hi + pad * span


def extremes(points) -> tuple:
    """The lowest and the highest of ``points`` (tuples with the value second: ``(x, y,
    ...)``), the first in order on a tie; ``(None, None)`` without points."""
    points = list(points)
    if not points:
        return None, None
    return min(points, key=lambda p: p[1]), max(points, key=lambda p: p[1])


def sram_series(pts: dict, strategy: str):
    """One strategy's series in a group: ``(curve, paper)``, where ``curve`` is ``((budget,
    cycles / bound), ...)`` on the numeric axis and ``paper`` is ``(its provisioned bytes,
    cycles / bound)`` at the reference provisioning (None if it did not run there);
    None if it ran nowhere."""
    curve = tuple((b, pts[b]["distance"][strategy]) for b in sorted(k for k in pts if isinstance(k, int))
                  if pts[b]["distance"].get(strategy) is not None)
    row = pts.get(PAPER_BUDGET)
    paper = ((row["metrics"][strategy]["provisioned"], row["distance"][strategy])
             if row and row["distance"].get(strategy) is not None else None)
    return (curve, paper) if curve or paper else None


def speedup_series(pts: dict, strategy: str) -> tuple:
    """``((budget, best EP-family cycles / strategy's cycles), ...)`` where both ran."""
    out = []
    for b in sorted(k for k in pts if isinstance(k, int)):
        _, cycles = best_baseline(pts[b])
        mine = pts[b]["cycles"].get(strategy)
        if cycles and mine:
            out.append((b, cycles / mine))
    return tuple(out)


def reference_saving(pts: dict):
    """FSE-DP paired's weight-SRAM saving against ep-paper, each at the reference model's
    provisioning (``1 - paired's / ep-paper's provisioned bytes``, the report's own number);
    None unless both ran there."""
    found = _paper_points([(None, pts)])
    return found[0][1] if found else None


def saving_text(saving, sep: str = " ") -> str:
    """The per-cent saving as the figure states it (``sep`` between its two halves)."""
    return (f"FSE-DP paired {_pct(abs(saving))} {'less' if saving >= 0 else 'more'} weight SRAM than ep-paper"
            f"{sep}at the reference provisioning")


# --------------------------------------------------------------------------- drawing

def _save(fig, path) -> None:
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def _sram_axis(axes, sizes) -> None:
    ticks, labels = mib_ticks(sizes)
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.set_xticks(ticks, labels, fontsize=7)
        ax.minorticks_off()
        ax.set_xlabel("weight buffer per chiplet (MiB)", fontsize=8)


def _merged_legend(ax, handles: list, labels: list) -> None:
    """A panel's own legend, below it, naming the series drawn once for several."""
    if handles:
        ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.2), fontsize=6, frameon=False,
                  title="drawn once (identical at every point):", title_fontsize=6)


def _figure_legend(fig, handles: list, ncol: int) -> None:
    fig.legend(handles=handles, loc="outside lower center", ncol=max(1, min(len(handles), ncol)), fontsize=7,
               frameon=False)


def _strategy_handle(strategy: str, **kw) -> Line2D:
    color, marker = STRATEGY_STYLE[strategy]
    return Line2D([], [], marker=marker, color=color, lw=1.4, ms=4, **kw)


def sram_curves(panels: list, title: str, path) -> bool:
    """Cycles / lower bound against the weight buffer per chiplet, one panel per L, one line
    per strategy (a missing point: the strategy does not fit that budget); each
    strategy's run at the reference model's provisioning, where there is one, as a hollow
    marker at its own buffer size, and FSE-DP paired's weight-SRAM saving there against
    ep-paper in per cent (in the title; per panel only if it differs between them).  The
    y axis spans every value drawn (no cap).  False (nothing written) without a numeric
    budget."""
    panels = [p for p in panels if any(isinstance(b, int) for b in p[1])]
    if not panels:
        return False
    fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels), 3.4), squeeze=False, sharex=True,
                             sharey=True, layout="constrained")
    values, sizes, drawn = [1.0], set(), set()
    savings = [reference_saving(pts) for _, pts in panels]
    distinct = {v for v in savings if v is not None}
    common = distinct.pop() if len(distinct) == 1 else None     # the model's, the same at every L
    for ax, (key, pts), saving in zip(axes[0], panels, savings):
        series = ((s, sram_series(pts, s)) for s in STRATEGIES)
        merged = []
        for names, (curve, paper) in merge_identical((s, v) for s, v in series if v is not None):
            color, marker = STRATEGY_STYLE[names[0]]
            if curve:
                ax.plot([x for x, _ in curve], [y for _, y in curve], marker=marker, color=color, lw=1.4, ms=4)
            if paper:
                ax.plot([paper[0]], [paper[1]], marker=marker, color=color, mfc="none", ms=7, ls="none")
            drawn.add(names[0])
            if len(names) > 1:
                merged.append((_strategy_handle(names[0]), merged_label(names)))
            points = list(curve) + ([paper] if paper else [])
            values += [y for _, y in points]
            sizes.update(x for x, _ in points)
        sizes.update(b for b in pts if isinstance(b, int))
        ax.axhline(1.0, color="black", lw=0.8, ls="--")
        lines = [f"L={key[3]}"] + ([saving_text(saving, sep="\n")] if saving is not None and common is None else [])
        ax.set_title("\n".join(lines), fontsize=9 if len(lines) == 1 else 8)
        _merged_legend(ax, [h for h, _ in merged], [t for _, t in merged])
    _sram_axis(axes[0], sizes)
    axes[0, 0].set_ylim(*shared_limits(values))
    axes[0, 0].set_ylabel("cycles / lower bound")
    handles = [_strategy_handle(s, label=s) for s in STRATEGIES if s in drawn]
    handles += [Line2D([], [], color="black", lw=0.8, ls="--", label="lower bound"),
                Line2D([], [], marker="o", color="#525252", mfc="none", ms=7, ls="none",
                       label="hollow: at the reference model's provisioning")]
    _figure_legend(fig, handles, 4 * len(panels))
    fig.suptitle(f"{title}: cycles against SRAM" + (f"; {saving_text(common)}" if common is not None else ""),
                 fontsize=10)
    _save(fig, path)
    return True


def iso_sram_speedup(groups: list, title: str, path) -> bool:
    """FSE-DP paired (solid) and unpaired (dotted) over the best EP-family baseline at
    each budget, one panel per L, one line per model; the paper's claimed band
    (:data:`~sim.eval.report.PAPER_SPEEDUP`) shaded behind, and each panel's lowest and
    highest speedup labelled with its value (72 markers a panel, most of them near 1.00x,
    are too many to label one by one)."""
    tokens = sorted({k[3] for k, _ in groups})
    models = list(dict.fromkeys(k[1] for k, _ in groups))
    if not tokens:
        return False
    fig, axes = plt.subplots(1, len(tokens), figsize=(3.4 * len(tokens), 3.4), squeeze=False, sharex=True,
                             sharey=True, layout="constrained")
    cmap = plt.get_cmap("tab10")
    color = {m: cmap(i % 10) for i, m in enumerate(models)}
    values, sizes, used = [1.0, *PAPER_SPEEDUP], set(), set()
    lo, hi = PAPER_SPEEDUP
    for ax, t in zip(axes[0], tokens):
        series = []
        for model in models:
            pts = next((p for k, p in groups if k[1] == model and k[3] == t), {})
            for s, name, ls in VARIANTS:
                points = speedup_series(pts, s)
                if points:
                    series.append(((model, name, ls), points))
        merged, labelled = [], []
        for names, points in merge_identical(series):
            model, _, ls = names[0]
            xs, ys = [x for x, _ in points], [y for _, y in points]
            ax.plot(xs, ys, ls=ls, marker="o", ms=3, color=color[model], zorder=3)
            used.add(model)
            values += ys
            sizes.update(xs)
            labelled += [(x, y, color[model]) for x, y in points]
            if len(names) > 1:
                merged.append((Line2D([], [], ls=ls, marker="o", ms=3, color=color[model]),
                               merged_label(f"{m} {n}" for m, n, _ in names)))
        ax.axhspan(lo, hi, color="green", alpha=0.10, lw=0, zorder=0)
        ax.axhline(1.0, color="black", lw=0.8, zorder=1)
        low, high = extremes(labelled)
        for p, offset, va in ((high, 5, "bottom"), (low, -5, "top")):
            if p is not None and (p is high or low[1] != high[1]):
                ax.annotate(f"{p[1]:.2f}", (p[0], p[1]), xytext=(0, offset), textcoords="offset points",
                            ha="center", va=va, fontsize=6, color=p[2], zorder=4,
                            bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.6})
        ax.set_title(f"L={t}", fontsize=9)
        _merged_legend(ax, [h for h, _ in merged], [t for _, t in merged])
    if not used:
        plt.close(fig)
        return False
    _sram_axis(axes[0], sizes)
    axes[0, 0].set_ylim(*shared_limits(values, pad=0.12))  # room for the labels
    axes[0, 0].set_ylabel("speedup over best EP-family")
    handles = [Line2D([], [], marker="o", ms=3, color=color[m], label=m) for m in models if m in used]
    handles += [Line2D([], [], color="black", ls=ls, label=f"FSE-DP {name}") for _, name, ls in VARIANTS]
    handles.append(Patch(color="green", alpha=0.10, label=f"the paper's claim, {lo:.2f}x-{hi:.2f}x"))
    _figure_legend(fig, handles, 5)
    fig.suptitle(f"{title}: FSE-DP paired (solid) and unpaired (dotted) at equal weight SRAM; "
                 f"green: the paper's {lo:.2f}x-{hi:.2f}x; labels: each panel's lowest and highest", fontsize=9)
    _save(fig, path)
    return True


def energy_unit(joules) -> tuple:
    """``(scale, unit)`` for an energy axis whose largest value is ``joules``."""
    for scale, unit in ((1e-6, "uJ"), (1e-3, "mJ")):
        if joules < 1000 * scale:
            return scale, unit
    return 1.0, "J"


def energy_bars(panels: list, title: str, caption: str, path) -> bool:
    """Energy per layer of each strategy, stacked by component (MAC, weight / token /
    accumulator SRAM, D2D links, DRAM, routers): one panel per (model, routing) row and L
    column, from :func:`sim.eval.report.energy_panels`; a strategy that ran without an
    energy estimate is marked "no estimate", one that did not run at all is left empty.
    Components not counted are not drawn (the report names them).  False (nothing
    written) without any energy."""
    from .energy import COMPONENTS

    panels = [p for p in panels if any(v is not None for v in p[1].values())]
    if not panels:
        return False
    rows = list(dict.fromkeys((m, r) for (m, r, _), _ in panels))
    tokens = sorted({t for (_, _, t), _ in panels})
    many_routings = len({r for _, r in rows}) > 1
    peak = max(sum(v for v in stack.values() if v) for _, stacks in panels for stack in stacks.values() if stack)
    scale, unit = energy_unit(peak)
    fig, axes = plt.subplots(len(rows), len(tokens), figsize=(2.6 * len(tokens), 2.4 * len(rows) + 0.6),
                             squeeze=False, sharey="row", layout="constrained")
    found = {key: stacks for key, stacks in panels}
    drawn = set()
    for i, (model, rt) in enumerate(rows):
        for j, t in enumerate(tokens):
            ax = axes[i, j]
            stacks = found.get((model, rt, t))
            ax.set_title(f"{model}{f' ({rt})' if many_routings else ''}, L={t}", fontsize=7)
            ax.set_xticks(range(len(STRATEGIES)), [SHORT[s] for s in STRATEGIES], rotation=90, fontsize=6)
            ax.tick_params(axis="y", labelsize=6)
            if j == 0:
                ax.set_ylabel(f"energy per layer ({unit})", fontsize=7)
            if stacks is None:
                ax.text(0.5, 0.5, "not run", transform=ax.transAxes, ha="center", va="center", fontsize=7)
                continue
            for x, s in enumerate(STRATEGIES):
                if s not in stacks:
                    continue
                if stacks[s] is None:
                    ax.text(x, 0, "no estimate", rotation=90, ha="center", va="bottom", fontsize=5)
                    continue
                bottom = 0.0
                for c in COMPONENTS:
                    v = stacks[s].get(c)
                    if not v:
                        continue
                    ax.bar(x, v / scale, bottom=bottom, color=COMPONENT_STYLE[c][0], width=0.75)
                    bottom += v / scale
                    drawn.add(c)
    handles = [Patch(color=COMPONENT_STYLE[c][0], label=COMPONENT_STYLE[c][1]) for c in COMPONENTS if c in drawn]
    _figure_legend(fig, handles, 7)
    fig.suptitle(f"{title}: energy per layer by component ({caption})", fontsize=8, wrap=True)
    _save(fig, path)
    return True
