"""Cross-validation of the fast model against the RTL on a grid of small configurations.

Used by ``tests/test_fast_vs_rtl.py`` (which asserts the targets) and
``benchmarks/bench_fast.py`` (which prints the table).  Each hardware preset is one
Verilator build and one simulator launch for all its points.
"""

from __future__ import annotations

from dataclasses import dataclass

from scheduler.plan import STRATEGIES

__all__ = ["Row", "grid", "cross_validate", "table", "CYCLE_TOLERANCE"]

#: Largest relative cycle error the fast model may have on any grid point.
CYCLE_TOLERANCE = 0.02

PRESETS = ("rtl-2x2", "rtl-3x3")
#: (model, routings): Mixtral's shape with synthetic and real routing, OLMoE's with real.
MODELS = (("tiny-8x2", ("uniform", "zipf:1.2", "mixtral:c4")), ("tiny-64x8", ("olmoe:c4",)))
TOKENS_SMALL = (4, 16)
TOKENS_FULL = (1, 4, 16, 64)


def grid(full: bool = False) -> list[dict]:
    """Points as keyword arguments of :func:`sim.workload.prepare`."""
    points = []
    for preset in PRESETS:
        for model, routings in MODELS:
            for routing in routings:
                for tokens in (TOKENS_FULL if full else TOKENS_SMALL):
                    for strategy in STRATEGIES:
                        points.append(dict(preset=preset, model=model, tokens=tokens, routing_spec=routing,
                                           strategy=strategy))
    return points


@dataclass
class Row:
    point: dict
    rtl_cycles: int
    fast_cycles: int
    rtl_high_water: list
    fast_high_water: list
    bit_exact: bool

    @property
    def error(self) -> float:
        return (self.fast_cycles - self.rtl_cycles) / self.rtl_cycles

    @property
    def high_water_equal(self) -> bool:
        return self.rtl_high_water == self.fast_high_water

    @property
    def ok(self) -> bool:
        return abs(self.error) <= CYCLE_TOLERANCE and self.high_water_equal and self.bit_exact

    @property
    def name(self) -> str:
        p = self.point
        return f"{p['preset']} {p['model']} {p['routing_spec']} L={p['tokens']} {p['strategy']}"


def cross_validate(points: list[dict], seed: int = 0) -> list[Row]:
    """Run every point on the RTL (bit-exact checked) and on the fast model."""
    from sim import fast, rtl
    from sim.workload import prepare

    rows = []
    for preset in dict.fromkeys(p["preset"] for p in points):
        batch = [p for p in points if p["preset"] == preset]
        workloads = [prepare(**p, seed=seed) for p in batch]
        ref = rtl.run(workloads)
        model = fast.run(workloads)
        for p, r, f in zip(batch, ref, model):
            rows.append(Row(p, r.cycles, f.cycles, [c.slot_high_water for c in r.chiplets],
                            [c.slot_high_water for c in f.chiplets], bool(r.bit_exact)))
    return rows


def table(rows: list[Row]) -> str:
    head = f"{'point':52s} {'RTL cycles':>10s} {'fast cycles':>11s} {'error %':>8s}  high-water equal"
    lines = [head, "-" * len(head)]
    for r in rows:
        hw = "yes" if r.high_water_equal else f"NO (RTL {r.rtl_high_water}, fast {r.fast_high_water})"
        lines.append(f"{r.name:52s} {r.rtl_cycles:10d} {r.fast_cycles:11d} {100 * r.error:+8.2f}  {hw}"
                     + ("" if r.bit_exact else "  (RTL not bit-exact)"))
    if rows:
        worst = max(rows, key=lambda r: abs(r.error))
        exact = sum(r.rtl_cycles == r.fast_cycles for r in rows)
        lines.append(f"worst error {100 * worst.error:+.2f}% ({worst.name}); {exact}/{len(rows)} points "
                     f"cycle-exact; high-water equal on {sum(r.high_water_equal for r in rows)}/{len(rows)}")
    return "\n".join(lines)
