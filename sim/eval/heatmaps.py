"""Heatmaps of a sweep as the FSE-DP paper draws them (matplotlib, Agg backend).

Three quantities, each over two planes of the hardware axes:

- ``utilisation``: FSE-DP paired's compute utilisation, as the compare summary reports it
  (``mean_compute_utilization``: MACs / (MAC units x cycles), averaged over the chiplets);
- ``speedup-best``: FSE-DP paired's speedup over the best baseline at the same point,
  best = fewest cycles of the tiled ``ep`` and ``hydra`` (baseline cycles / FSE-DP paired
  cycles);
- ``speedup-ep-paper``: the same over ``ep-paper``, the paper's own baseline.

The planes are D2D bandwidth x DRAM bandwidth (one panel per weight budget) and weight
budget x DRAM bandwidth (one panel per D2D bandwidth), one figure per *context* (base
preset, model, routing, L, S); a panel is drawn where the sweep has at least two values
on both its axes.  Each cell carries its value; a cell where a strategy it needs did not
fit (or did not apply, or failed to simulate) is hatched and labelled so, never 0; a cell
the sweep did not visit is left blank.  One colour scale per figure.  Bandwidths are in
bytes per cycle and GB/s at the preset clock, budgets in binary units (MiB).  Each figure
is ``<out>/heatmap_<quantity>_<x>-<y>_<context>.png`` with its cells in the ``.csv`` of
the same name.  Nothing is computed here but the ratio of two measured cycle counts.
"""

from __future__ import annotations

import csv
import pathlib
import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import colors  # noqa: E402
from matplotlib.cm import ScalarMappable  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from scheduler.presets import format_size  # noqa: E402
from sim import results  # noqa: E402

__all__ = ["QUANTITIES", "PLANES", "cell", "panels", "write_heatmaps", "CSV_COLUMNS"]

PAIRED = "fse-dp-paired"
#: quantity: (figure title, colour-bar label, the baselines it compares with; None: utilisation).
QUANTITIES = {
    "utilisation": ("FSE-DP paired: compute utilisation (MACs / (MAC units x cycles), mean over chiplets)",
                    "compute utilisation", None),
    "speedup-best": ("FSE-DP paired: speedup over the best baseline at the same point (fewest cycles of ep "
                     "and hydra)", "baseline cycles / FSE-DP paired cycles", ("ep", "hydra")),
    "speedup-ep-paper": ("FSE-DP paired: speedup over ep-paper, the paper's own baseline (whole experts, one "
                         "resident at a time)", "ep-paper cycles / FSE-DP paired cycles", ("ep-paper",)),
}
#: (x axis, y axis, the axis that makes the panels).
PLANES = (("d2d", "dram", "sram"), ("sram", "dram", "d2d"))
AXIS_NAMES = {"d2d": "D2D link bandwidth per direction", "dram": "DRAM bandwidth per channel",
              "sram": "weight buffer per chiplet"}
CONTEXT = ("base", "model", "routing", "tokens", "slices")
CSV_COLUMNS = CONTEXT + ("panel_axis", "panel", "x_axis", "x", "y_axis", "y", "value", "status", "fse_cycles",
                         "baseline", "baseline_cycles", "key")


def _coordinate(record: dict, axis: str):
    p = record["point"]
    return {"d2d": p["d2d_bytes_per_cycle"], "dram": p["dram_bytes_per_cycle"], "sram": p["sram"]}[axis]


def _order(value):
    """Sort key of axis values: sizes and bandwidths by number, then the words (paper, preset)."""
    return (isinstance(value, str), value if not isinstance(value, str) else 0, str(value))


def _missing(record: dict, strategies) -> str:
    """Why the strategies a cell needs did not run: 'does not fit: ep-paper' and the like."""
    why = {s["strategy"]: "does not fit" if s["fits"] is False else "does not apply" for s in record["not_run"]}
    reasons = sorted({why[s] for s in strategies if s in why}) or ["not run"]
    return f"{' / '.join(reasons)}: {', '.join(strategies)}"


def cell(record: dict, baselines) -> dict:
    """One cell of a quantity (``baselines`` of :data:`QUANTITIES`): ``value`` (None where
    there is none), ``status`` ('ok' or why not) and the cycles it is made of."""
    if "error" in record:
        return {"value": None, "status": "failed", "key": record["key"]}
    runs = {r["strategy"]: r for r in record["runs"]}
    out = {"key": record["key"], "fse_cycles": runs[PAIRED]["cycles"] if PAIRED in runs else None}
    if PAIRED not in runs:
        return out | {"value": None, "status": _missing(record, [PAIRED])}
    if baselines is None:
        return out | {"value": results.summarize([runs[PAIRED]])[0]["mean_compute_utilization"], "status": "ok"}
    ran = [b for b in baselines if b in runs]
    if not ran:
        return out | {"value": None, "status": _missing(record, baselines)}
    best = min(ran, key=lambda b: runs[b]["cycles"])
    return out | {"value": runs[best]["cycles"] / runs[PAIRED]["cycles"], "status": "ok", "baseline": best,
                  "baseline_cycles": runs[best]["cycles"]}


def _is_plane(cells: dict) -> bool:
    """At least two values on each axis."""
    return len({x for x, _ in cells}) > 1 and len({y for _, y in cells}) > 1


def panels(records: list, plane: tuple) -> dict:
    """``{context: {panel value: {(x, y): record}}}``: the panels of ``plane`` with at
    least two x and two y values, in axis order; contexts without one are left out."""
    x, y, panel = plane
    found = {}
    for r in records:
        context = tuple(r["point"][c] for c in CONTEXT)
        found.setdefault(context, {}).setdefault(_coordinate(r, panel), {})[
            _coordinate(r, x), _coordinate(r, y)] = r
    kept = {c: {v: cells for v, cells in sorted(ps.items(), key=lambda kv: _order(kv[0])) if _is_plane(cells)}
            for c, ps in found.items()}
    return {c: ps for c, ps in kept.items() if ps}


def _tick(axis: str, value, clock_ghz: float) -> str:
    if axis == "sram":
        return value if isinstance(value, str) else format_size(value)
    return f"{value:.4g} B/cyc\n{value * clock_ghz:.4g} GB/s"


def _scale(quantity: str, values: list):
    """One colour scale for a figure: viridis over the figure's utilisations; for
    speedups red-white-blue symmetric about 1.00x (white: a tie, blue: FSE-DP paired
    faster), wide enough for the figure's extremes."""
    if quantity == "utilisation":
        lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
        return colors.Normalize(lo - 0.01 * (lo == hi), hi + 0.01 * (lo == hi)), plt.get_cmap("viridis")
    half = max([abs(v - 1.0) for v in values] + [0.02])
    return colors.Normalize(1.0 - half, 1.0 + half), plt.get_cmap("RdBu")


def _label(quantity: str, c: dict) -> str:
    if c["value"] is None:
        return c["status"].replace(": ", "\n")
    return f"{c['value']:.2f}" + ("" if quantity == "utilisation" else "x")


def _draw_cell(ax, i: int, j: int, quantity: str, c: dict, norm, cmap) -> None:
    if c["value"] is None:
        ax.add_patch(Rectangle((i - 0.5, j - 0.5), 1, 1, facecolor="white", edgecolor="0.55", hatch="///"))
        ax.text(i, j, _label(quantity, c), ha="center", va="center", fontsize=6.5,
                bbox={"facecolor": "white", "edgecolor": "none", "pad": 1.0})
        return
    face = cmap(norm(c["value"]))
    dark = 0.299 * face[0] + 0.587 * face[1] + 0.114 * face[2] < 0.5
    ax.add_patch(Rectangle((i - 0.5, j - 0.5), 1, 1, facecolor=face, edgecolor="white"))
    ax.text(i, j, _label(quantity, c), ha="center", va="center", fontsize=8, color="white" if dark else "black")


def _figure(path: pathlib.Path, quantity: str, plane: tuple, context: tuple, cells: dict, clock_ghz: float) -> None:
    """Draw one figure: a panel per value of the panel axis, ``cells[panel][(x, y)]``."""
    x, y, panel = plane
    title, bar, _ = QUANTITIES[quantity]
    norm, cmap = _scale(quantity, [c["value"] for p in cells.values() for c in p.values() if c["value"] is not None])
    fig, axes = plt.subplots(1, len(cells), figsize=(3.4 * len(cells) + 1.4, 4.4), squeeze=False,
                             layout="constrained")
    for ax, (value, grid) in zip(axes[0], cells.items()):
        xs, ys = (sorted({k[n] for k in grid}, key=_order) for n in (0, 1))
        for (xv, yv), c in grid.items():
            _draw_cell(ax, xs.index(xv), ys.index(yv), quantity, c, norm, cmap)
        ax.set_xlim(-0.5, len(xs) - 0.5)
        ax.set_ylim(-0.5, len(ys) - 0.5)
        ax.set_xticks(range(len(xs)), [_tick(x, v, clock_ghz) for v in xs], fontsize=7)
        ax.set_yticks(range(len(ys)), [_tick(y, v, clock_ghz) for v in ys], fontsize=7)
        ax.set_xlabel(AXIS_NAMES[x], fontsize=8)
        ax.set_title(f"{AXIS_NAMES[panel]}\n{_tick(panel, value, clock_ghz).replace(chr(10), ', ')}", fontsize=8)
    axes[0][0].set_ylabel(AXIS_NAMES[y], fontsize=8)
    fig.colorbar(ScalarMappable(norm, cmap), ax=axes[0].tolist(), label=bar, shrink=0.9)
    base, model, routing, tokens, slices = context
    fig.suptitle(f"{title}\n{base}, {model}, routing {routing}, L = {tokens}, S = {slices or 'auto'}", fontsize=9)
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)


def _write_csv(path: pathlib.Path, plane: tuple, context: tuple, cells: dict) -> None:
    x, y, panel = plane
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, CSV_COLUMNS, extrasaction="ignore")
        w.writeheader()
        for value, grid in cells.items():
            for (xv, yv), c in sorted(grid.items(), key=lambda kv: (_order(kv[0][1]), _order(kv[0][0]))):
                w.writerow(dict(zip(CONTEXT, context)) | c | {
                    "panel_axis": panel, "panel": value, "x_axis": x, "x": xv, "y_axis": y, "y": yv,
                    "value": "" if c["value"] is None else c["value"]})


def _slug(context: tuple) -> str:
    base, model, routing, tokens, slices = context
    names = [pathlib.Path(n).stem if str(n).endswith(".toml") else n for n in (base, model)]
    text = "_".join(names + [routing, f"L{tokens}"] + ([f"S{slices}"] if slices else []))
    return re.sub(r"[^A-Za-z0-9._+-]+", "-", text)


def _drawable(records: list, quantity: str) -> bool:
    """Whether the sweep ran the strategies a quantity needs (FSE-DP paired, a baseline)."""
    baselines = QUANTITIES[quantity][2]
    ran = {s for r in records for s in r["point"]["strategies"]}
    return PAIRED in ran and (baselines is None or bool(ran & set(baselines)))


def write_heatmaps(records: list, out) -> list:
    """Every figure and its CSV for a sweep's records; returns the paths written."""
    out = pathlib.Path(out)
    written = []
    for plane in PLANES:
        for context, found in panels(records, plane).items():
            clock = next(iter(next(iter(found.values())).values()))["point"]["clock_ghz"]
            for quantity in (q for q in QUANTITIES if _drawable(records, q)):
                baselines = QUANTITIES[quantity][2]
                cells = {v: {k: cell(r, baselines) for k, r in grid.items()} for v, grid in found.items()}
                png, table = (out / f"heatmap_{quantity}_{plane[0]}-{plane[1]}_{_slug(context)}.{ext}"
                              for ext in ("png", "csv"))
                _figure(png, quantity, plane, context, cells, clock)
                _write_csv(table, plane, context, cells)
                written += [png, table]
    return written
