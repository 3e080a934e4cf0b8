"""Cross-validation of the fast model against the RTL on a grid of small configurations.

Used by ``tests/test_fast_vs_rtl.py`` (which asserts the published agreement) and
``benchmarks/bench_fast.py`` (which prints the table).  Each hardware configuration
(preset and weight budget) is one Verilator build and one simulator launch for all its
points.

The grid: every strategy, on ``rtl-2x2`` and ``rtl-3x3`` (2-cycle links, 4-flit buffers)
with Mixtral's and OLMoE's shapes and real and synthetic routing, and on the paper-timing
presets ``rtl-2x2-long`` and ``rtl-3x3-long`` (8-cycle links, buffers sized to the credit
round trip, 80-cycle DRAM latency, 384-flit slices), each at its preset weight buffer and
at smaller budgets where the strategies get fewer slots (and ``ep-paper``, which needs two
whole experts, does not fit).  :data:`GROUP_CONFIGS` adds FSE-DP (unpaired and paired) in
chiplet groups (``docs/groups.md``): two rings on 3x3, two pairs on 2x2, explicit rings.
"""

from __future__ import annotations

from dataclasses import dataclass

from scheduler.plan import STRATEGIES, FitError
from scheduler.strategies import FSE_DP

__all__ = ["Row", "grid", "cross_validate", "table", "CYCLE_TOLERANCE", "CONFIGS", "GROUP_CONFIGS"]

#: Largest relative cycle error the fast model may have on any point (the README and
#: docs/fast_model.md publish this figure; tests/test_fast_vs_rtl.py asserts it).
CYCLE_TOLERANCE = 0.01

#: Slot high-water marks must be equal on every chiplet, except with packets of at least
#: ``sim.fast.network.LONG_STREAM`` flits, where the model neglects the slot write port's
#: collisions with the local DRAM writer (docs/fast_model.md): there within this many slots.
LONG_HIGH_WATER_SLACK = 1

#: (preset, weight budget in bytes or None for the preset's, model and routings, tokens
#: of the default grid, tokens of the full grid).
CONFIGS = (
    ("rtl-2x2", None, (("tiny-8x2", ("uniform", "zipf:1.2", "mixtral:c4")), ("tiny-64x8", ("olmoe:c4",))),
     (4, 16), (1, 4, 16, 64)),
    ("rtl-2x2", 6144, (("tiny-8x2", ("mixtral:c4", "zipf:1.2")),), (), (4, 16, 64)),
    ("rtl-3x3", None, (("tiny-8x2", ("uniform", "zipf:1.2", "mixtral:c4")), ("tiny-64x8", ("olmoe:c4",))),
     (4, 16), (1, 4, 16, 64)),
    ("rtl-2x2-long", None, (("small-8x2", ("mixtral:c4",)),), (16,), (4, 16, 64)),
    ("rtl-2x2-long", 48 * 1024, (("small-8x2", ("mixtral:c4",)),), (), (16, 64)),
    ("rtl-3x3-long", None, (("small-8x2", ("mixtral:c4",)),), (), (16, 64)),
    ("rtl-3x3-long", 48 * 1024, (("small-8x2", ("mixtral:c4",)),), (), (16,)),
)

#: Chiplet groups, FSE-DP strategies only: the fields of :data:`CONFIGS` and the
#: ``--groups`` value.
GROUP_CONFIGS = (
    ("rtl-3x3", None, (("tiny-8x2", ("mixtral:c4", "zipf:1.2")), ("tiny-64x8", ("olmoe:c4",))), (16,),
     (4, 16, 64), 2),
    ("rtl-3x3", None, (("tiny-8x2", ("uniform", "mixtral:c4")),), (), (16, 64), "0,1,2,5,4,3;6,7,8"),
    ("rtl-2x2", None, (("tiny-8x2", ("mixtral:c4", "uniform")),), (), (4, 16, 64), 2),
    ("rtl-2x2-long", None, (("small-8x2", ("mixtral:c4",)),), (), (16, 64), 2),
)


def grid(full: bool = False, configs=CONFIGS) -> list[dict]:
    """Points as keyword arguments of :func:`sim.workload.prepare` (every strategy, or the
    FSE-DP ones with ``groups`` for :data:`GROUP_CONFIGS`; those that do not fit a budget
    are left out by :func:`cross_validate`)."""
    points = []
    for preset, sram, models, small, large, *grouped in configs:
        extra = {"groups": grouped[0]} if grouped else {}
        for model, routings in models:
            for routing in routings:
                for tokens in (large if full else small):
                    for strategy in (FSE_DP if grouped else STRATEGIES):
                        points.append(dict(preset=preset, sram=sram, model=model, tokens=tokens,
                                           routing_spec=routing, strategy=strategy, **extra))
    return points


@dataclass
class Row:
    point: dict
    rtl_cycles: int
    fast_cycles: int
    rtl_high_water: list
    fast_high_water: list
    bit_exact: bool
    counters_equal: dict            # counter name -> equal on every chiplet (MACs, DRAM flits, link flits)
    long_packets: bool = False      # slots of at least LONG_STREAM flits

    @property
    def error(self) -> float:
        return (self.fast_cycles - self.rtl_cycles) / self.rtl_cycles

    @property
    def high_water_equal(self) -> bool:
        return self.rtl_high_water == self.fast_high_water

    @property
    def high_water_ok(self) -> bool:
        slack = LONG_HIGH_WATER_SLACK if self.long_packets else 0
        return all(abs(a - b) <= slack for a, b in zip(self.rtl_high_water, self.fast_high_water))

    @property
    def ok(self) -> bool:
        return (abs(self.error) <= CYCLE_TOLERANCE and self.high_water_ok and self.bit_exact
                and all(self.counters_equal.values()))

    @property
    def name(self) -> str:
        p = self.point
        budget = f" {p['sram'] // 1024}KiB" if p.get("sram") else ""
        groups = f" groups={p['groups']}" if p.get("groups") else ""
        return f"{p['preset']}{budget}{groups} {p['model']} {p['routing_spec']} L={p['tokens']} {p['strategy']}"


#: Counters that must be equal on every chiplet of every point: the work done and the
#: traffic of every resource the energy model charges (sim/eval/energy.py).
COUNTERS = ("macs", "dram_flits", "link_flits", "link_header_flits", "router_flits", "weight_read_bytes",
            "weight_write_bytes", "token_read_bytes", "token_write_bytes", "acc_read_bytes", "acc_write_bytes")


def cross_validate(points: list[dict], seed: int = 0) -> tuple[list[Row], list[tuple]]:
    """Run every point on the RTL (bit-exact checked) and on the fast model.  Returns the
    rows and ``(point, reason)`` for each point whose plan does not fit its hardware."""
    from sim import fast, rtl
    from sim.workload import prepare

    from .network import LONG_STREAM

    rows, skipped = [], []
    for config in dict.fromkeys((p["preset"], p.get("sram")) for p in points):
        batch, workloads = [], []
        for p in points:
            if (p["preset"], p.get("sram")) != config:
                continue
            try:
                workloads.append(prepare(**p, seed=seed))
                batch.append(p)
            except FitError as exc:
                skipped.append((p, str(exc)))
        if not workloads:
            continue
        ref = rtl.run(workloads)
        model = fast.run(workloads)
        for p, w, r, f in zip(batch, workloads, ref, model):
            equal = {k: [getattr(c, k) for c in r.chiplets] == [getattr(c, k) for c in f.chiplets] for k in COUNTERS}
            rows.append(Row(p, r.cycles, f.cycles, [c.slot_high_water for c in r.chiplets],
                            [c.slot_high_water for c in f.chiplets], bool(r.bit_exact), equal,
                            -(-w.plan.slot_bytes // w.system.tile.link_bytes) >= LONG_STREAM))
    return rows, skipped


def table(rows: list[Row]) -> str:
    head = f"{'point':60s} {'RTL cycles':>10s} {'fast cycles':>11s} {'error %':>8s}  high-water / counters equal"
    lines = [head, "-" * len(head)]
    for r in rows:
        hw = "yes" if r.high_water_equal else (
            f"{'within one slot' if r.high_water_ok else 'NO'} (RTL {r.rtl_high_water}, fast {r.fast_high_water})")
        bad = [k for k, v in r.counters_equal.items() if not v]
        lines.append(f"{r.name:60s} {r.rtl_cycles:10d} {r.fast_cycles:11d} {100 * r.error:+8.3f}  {hw}"
                     + (f"; counters differ: {', '.join(bad)}" if bad else "")
                     + ("" if r.bit_exact else "  (RTL not bit-exact)"))
    if rows:
        worst = max(rows, key=lambda r: abs(r.error))
        exact = sum(r.rtl_cycles == r.fast_cycles for r in rows)
        lines.append(f"worst error {100 * worst.error:+.3f}% ({worst.name}); {exact}/{len(rows)} points "
                     f"cycle-exact; high-water equal on {sum(r.high_water_equal for r in rows)}/{len(rows)}; "
                     f"MACs, DRAM and link flits equal on "
                     f"{sum(all(r.counters_equal.values()) for r in rows)}/{len(rows)}")
    return "\n".join(lines)
