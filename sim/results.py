"""Run results: what an engine measured, turned into the documented JSON, tables and CSV.

Every number here comes from counters an engine read out of the simulation (cycles,
busy cycles, MACs, flits, slot high-water marks); the only inputs from the plan are
sizes used to convert counts into bytes (slot bytes, token-row bytes).  The one
exception is ``energy``: an estimate, counters x the per-action energies of a technology
table (``sim.eval.energy``, docs/energy.md), and it says so.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field

from scheduler.presets import TOKEN_ROW_BYTES_PER_ELEMENT

__all__ = ["ChipletCounters", "RunResult", "summarize", "write_compare", "SRAM_TRAFFIC"]

#: The buffer traffic of a chiplet, each ``<name>_bytes`` in ChipletCounters and the JSON.
SRAM_TRAFFIC = ("weight_read", "weight_write", "token_read", "token_write", "acc_read", "acc_write")


def sram_traffic(counts: dict, tile) -> dict:
    """``{<name>_bytes: ...}`` (the ChipletCounters fields) from the datapath's SRAM access
    counters (``hw.tile_datapath.SRAM_COUNTERS``) of a tile configuration."""
    from hw.tile_datapath import sram_access_bytes

    b = sram_access_bytes(counts, mac_rows=tile.mac_rows, mac_cols=tile.mac_cols, link_bytes=tile.link_bytes)
    return {f"{name}_bytes": b[name] for name in SRAM_TRAFFIC}


@dataclass
class ChipletCounters:
    """Counters of one chiplet at the end of a run."""

    busy_cycles: int            # cycles the slice engine was busy
    mac_cycles: int             # cycles the MAC array took a weight block
    macs: int                   # MACs performed
    slot_high_water: int        # most weight slots in use at once
    slot_occupancy_end: int     # weight slots still in use at the end (0: no leak)
    link_flits: list            # flits sent per output link (N, E, S, W)
    link_busy: list             # cycles each output link was busy
    link_stalled: list          # cycles each output link had a flit waiting but could not send
    dram_flits: int = 0         # payload flits its DRAM channel delivered (0: no channel)
    done_cycle: int = 0         # cycle the chiplet signalled done
    error: int = 0              # error bits (0 in a correct run)
    # SRAM traffic of the datapath's buffers from start to done, in bytes
    # (hw.tile_datapath.sram_access_bytes of the access counters)
    weight_read_bytes: int = 0      # MAC-port words and flits read to forward
    weight_write_bytes: int = 0     # slot fills
    token_read_bytes: int = 0       # MAC port and the controller's sends
    token_write_bytes: int = 0      # tokens received
    acc_read_bytes: int = 0         # datapath and network adds, result reads
    acc_write_bytes: int = 0        # datapath and network adds
    link_header_flits: list = field(default_factory=lambda: [0, 0, 0, 0])   # per output link: headers and
                                                                              # control packets
    router_flits: int = 0           # flits through the router's crossbar (links, local sources and sinks)


@dataclass
class RunResult:
    """One layer run on one engine."""

    spec: dict                  # workload choices (preset, model, tokens, routing, strategy, seed, ...)
    engine: str                 # "rtl" or "fast"
    cycles: int                 # cycles from start until every chiplet reported done
    bit_exact: bool | None      # every accumulator row equals the golden model (None: not checked)
    chiplets: list              # ChipletCounters per chiplet
    slot_bytes: int
    token_row_bytes: list       # per chiplet: token rows in use x (d int8 + d int32)
    link_bytes: int
    macs_per_chiplet: int
    clock_ghz: float
    provisioned: dict = field(default_factory=dict)   # per chiplet: weight / token / total SRAM bytes
    config: dict = field(default_factory=dict)
    mismatches: list = field(default_factory=list)
    wall_seconds: float = 0.0       # wall time of the simulation (loading and readback included)
    run_wall_seconds: float = 0.0   # wall time from start to done only
    # RTL only, not in the JSON: the watchdog's measurements of the run (sim.rtl.runner)
    watchdog: dict = field(default_factory=dict)

    @classmethod
    def of_plan(cls, plan, **measured) -> "RunResult":
        """A result for ``plan``: the sizes that turn counts into bytes come from the plan
        and its hardware (the same for both engines); everything else is ``measured``."""
        hw = plan.hardware
        d = plan.model.d_model
        return cls(slot_bytes=plan.slot_bytes,
                   token_row_bytes=[plan.token_rows(c) * d * TOKEN_ROW_BYTES_PER_ELEMENT
                                    for c in range(plan.num_chiplets)],
                   macs_per_chiplet=hw.macs_per_chiplet, clock_ghz=hw.clock_ghz,
                   provisioned={"weight": hw.weight_sram_bytes, "token": hw.token_sram_bytes,
                                "total": hw.provisioned_sram_bytes, "plan_weight": plan.buffer_bytes,
                                # the two buffers of "token": int8 token rows, int32 accumulator rows
                                "token_buffer": hw.token_rows * hw.d_max * 1,
                                "acc_buffer": hw.token_rows * hw.d_max * 4},
                   **measured)

    @property
    def strategy(self) -> str:
        return self.spec["strategy"]

    def to_json(self, tech=None) -> dict:
        """The run's JSON; ``energy`` priced with technology table ``tech`` (a name, a
        .toml path or a table; default :data:`sim.eval.energy.DEFAULT_TABLE`)."""
        from sim.eval import energy

        n = len(self.chiplets)
        peak_slots = [c.slot_high_water * self.slot_bytes for c in self.chiplets]
        d2d_flits = sum(sum(c.link_flits) for c in self.chiplets)
        link_util = [[b / self.cycles if self.cycles else 0.0 for b in c.link_busy] for c in self.chiplets]
        return {
            "strategy": self.strategy,
            "engine": self.engine,
            "cycles": self.cycles,
            "time_us": self.cycles / (self.clock_ghz * 1e3),
            "bit_exact": self.bit_exact,
            "provisioned_sram_bytes": self.provisioned.get("total"),
            "provisioned_weight_bytes": self.provisioned.get("weight"),
            "provisioned_token_bytes": self.provisioned.get("token"),
            "plan_weight_bytes": self.provisioned.get("plan_weight"),
            "slices": self.spec.get("slices"),
            "slots": self.spec.get("slots"),
            "slot_bytes": self.slot_bytes,
            "peak_onchip_bytes": [peak_slots[i] + self.token_row_bytes[i] for i in range(n)],
            "peak_slot_bytes": peak_slots,
            "token_bytes": list(self.token_row_bytes),
            "slot_high_water": [c.slot_high_water for c in self.chiplets],
            "slots_in_use_at_end": [c.slot_occupancy_end for c in self.chiplets],
            "dram_bytes": sum(c.dram_flits for c in self.chiplets) * self.link_bytes,
            "d2d_bytes": d2d_flits * self.link_bytes,
            "compute_utilization": [c.macs / (self.macs_per_chiplet * self.cycles) if self.cycles else 0.0
                                    for c in self.chiplets],
            "link_utilization": link_util,
            "link_stalled_cycles": [list(c.link_stalled) for c in self.chiplets],
            "busy_cycles": [c.busy_cycles for c in self.chiplets],
            "macs": [c.macs for c in self.chiplets],
            **{f"{name}_bytes": [getattr(c, f"{name}_bytes") for c in self.chiplets] for name in SRAM_TRAFFIC},
            "link_payload_flits": [[f - h for f, h in zip(c.link_flits, c.link_header_flits)] for c in self.chiplets],
            "link_header_flits": [list(c.link_header_flits) for c in self.chiplets],
            "router_flits": [c.router_flits for c in self.chiplets],
            "done_cycle": [c.done_cycle for c in self.chiplets],
            "errors": [c.error for c in self.chiplets],
            "mismatches": self.mismatches[:20],
            "wall_seconds": round(self.wall_seconds, 3),
            "run_wall_seconds": round(self.run_wall_seconds, 4),
            "config": {**self.spec, **self.config},
            "energy": energy.of_result(self, tech),
        }


def summarize(runs: list) -> list[dict]:
    """Per strategy: the comparison fields, with speedups over EP and Hydra (None where
    that baseline did not run)."""
    by = {r["strategy"]: r for r in runs}
    rows = []
    for r in runs:
        speedup = lambda base: by[base]["cycles"] / r["cycles"] if base in by and r["cycles"] else None  # noqa: E731
        rows.append({
            "strategy": r["strategy"], "slices": r.get("slices"), "slots": r.get("slots"),
            "cycles": r["cycles"], "bit_exact": r["bit_exact"],
            "speedup_vs_ep": speedup("ep"), "speedup_vs_hydra": speedup("hydra"),
            "speedup_vs_ep_paper": speedup("ep-paper"),
            "mean_compute_utilization": sum(r["compute_utilization"]) / len(r["compute_utilization"]),
            "dram_bytes": r["dram_bytes"], "d2d_bytes": r["d2d_bytes"],
            "max_link_utilization": max(max(u) for u in r["link_utilization"]),
            "plan_weight_bytes": r.get("plan_weight_bytes"),
            "max_peak_onchip_bytes": max(r["peak_onchip_bytes"]),
            **_energy_fields(r.get("energy")),
        })
    return rows


def _energy_fields(e: dict | None) -> dict:
    """The summary's energy fields: estimates from the run's ``energy`` (None without one)."""
    e = e or {}
    return {"energy_j": e.get("total_j"), "edp_js": e.get("edp_js"),
            "energy_table": (e.get("table") or {}).get("name"), "energy_table_path": (e.get("table") or {}).get("path"),
            "energy_missing": ", ".join(e.get("missing") or {}) or None}


def _fmt(v):
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "NO"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def table(rows: list[dict]) -> str:
    """The compare table; below it, when the runs carry energy, the line that says the
    energy and EDP columns are estimates and names the technology table."""
    cols = ["strategy", "slices", "slots", "cycles", "speedup_vs_ep", "speedup_vs_hydra", "mean_compute_utilization",
            "dram_bytes", "d2d_bytes", "max_link_utilization", "plan_weight_bytes", "max_peak_onchip_bytes",
            "energy_j", "edp_js", "bit_exact"]
    heads = ["strategy", "S", "slots", "cycles", "vs EP", "vs Hydra", "compute util", "DRAM B", "D2D B",
             "max link util", "weight slots B", "peak occupancy B", "energy uJ", "EDP J*s", "bit-exact"]
    special = {"energy_j": lambda v: "-" if v is None else f"{v * 1e6:.3f}",
               "edp_js": lambda v: "-" if v is None else f"{v:.3e}"}
    cells = [heads] + [[special.get(c, _fmt)(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
    lines = ["  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(row, widths)))
             for row in cells]
    return "\n".join(lines + energy_note(rows))


def energy_note(rows: list[dict]) -> list[str]:
    """The lines under the compare table on its energy columns (none without energy)."""
    tables = list(dict.fromkeys((r["energy_table"], r.get("energy_table_path")) for r in rows
                                if r.get("energy_table")))
    if not tables:
        return []
    named = "; ".join(f"{name!r} ({path})" for name, path in tables)
    lines = [f"energy uJ (one layer) and EDP J*s (energy x time at the preset clock) are estimates, not measured: "
             f"counters x per-action energies of technology table {named}; docs/energy.md"]
    missing = list(dict.fromkeys(m for r in rows if r.get("energy_missing") for m in r["energy_missing"].split(", ")))
    if missing:
        lines.append(f"-: no estimate, the engine does not count every component yet (missing: {', '.join(missing)})")
    return lines


def compare_document(runs: list, skipped: list = ()) -> dict:
    """The ``fsedp compare --json`` document: ``runs``, ``summary``, ``all_bit_exact`` and
    ``not_run`` (``{strategy, fits, reason}`` for every strategy that did not run: ``fits``
    False when it does not fit the hardware, None when an option given does not apply)."""
    return {"runs": runs, "summary": summarize(runs),
            "all_bit_exact": (None if any(r["bit_exact"] is None for r in runs)
                              else all(r["bit_exact"] for r in runs)),
            "not_run": list(skipped)}


def write_compare(runs: list, json_path=None, csv_path=None, skipped: list = ()) -> list[dict]:
    import pathlib

    doc = compare_document(runs, skipped)
    for path in (json_path, csv_path):
        if path:
            pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
    if json_path:
        with open(json_path, "w") as f:
            json.dump(doc, f, indent=2)
    if csv_path:
        with open(csv_path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(doc["summary"][0]) + ["not_run_reason"])
            w.writeheader()
            w.writerows(doc["summary"])
            for sk in skipped:
                w.writerow({"strategy": sk["strategy"], "not_run_reason": sk["reason"]})
    return doc["summary"]
