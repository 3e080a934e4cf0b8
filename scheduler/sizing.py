"""How a strategy divides the weight buffer a chiplet provisions: slices per expert S and
weight slots K, from the budget (``HardwarePreset.weight_sram_bytes``, ``--sram``).

Every strategy that streams slices or tiles (FSE-DP, FSE-DP paired, EP, Hydra) follows
the same rule, so that at one budget they run on slots of the same size:

- S: the smallest S that fills whole MAC-array column blocks (``d_ff / S`` a multiple of
  the array's rows and columns), is not below the model preset's S moved to such a value
  (:func:`aligned_slices`), fits the header's 8-bit slice index and 16-bit length, and
  gives at least ``slot_target`` slots in the budget; if no S reaches the target, the S
  with the most slots (the smallest slice the model allows).  ``--slices`` overrides it.
- K: as many slots as the budget holds, at most the router's slot table.  FSE-DP needs
  two (rule R6: DRAM injects only into two free slots), and so do EP and Hydra (a tile for
  another chiplet is staged in the channel's chiplet under the same rule).

Whole-expert strategies: ``ep-whole`` uses S = 1 and as many whole-expert slots as fit
(at least one; an expert must fit one packet).  ``ep-paper`` provisions the reference
model's two whole-expert buffers, of which a load needs both free, so it needs the space
of two experts and holds one at a time: one slot, through which an expert too large for
one packet's length field streams as the fewest equal tiles that fit (S > 1), each loaded
only once the previous one is computed, so loads never overlap compute either way.

:func:`paper_budget` is each strategy's weight buffer in the paper's reference model:
``slot_target`` (12) micro-slices of the model's S for the slice-streaming strategies, two
whole experts for the whole-expert ones.

A budget that cannot hold what a strategy needs, or a slot that exceeds a field, raises
:class:`scheduler.plan.FitError` naming both.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Shape

from hw.config import SystemConfig
from hw.packets import Header

from .plan import FitError, PlanError
from .presets import HardwarePreset, ModelPreset, format_size

__all__ = ["Sizing", "size_plan", "aligned_slices", "slice_candidates", "paper_budget", "WHOLE_EXPERT",
           "MIN_SLOTS", "field_max"]

#: Strategies that load whole experts (S = 1).
WHOLE_EXPERT = ("ep-whole", "ep-paper")

#: Fewest weight slots each strategy runs with.
MIN_SLOTS = {"fse-dp": 2, "fse-dp-paired": 2, "ep": 2, "hydra": 2, "ep-whole": 1, "ep-paper": 1}

#: ``ep-paper``: whole-expert buffers per chiplet, all of which must be free for a load
#: (the reference model's ``expert_buffer_size`` 2 and its "remaining space < 2" check).
EP_PAPER_BUFFERS = 2


def field_max(layout, name: str) -> int:
    """Largest value of field ``name`` of a ``data.Struct`` layout."""
    return (1 << Shape.cast(dict(layout.as_shape())[name].shape).width) - 1


@dataclass(frozen=True)
class Sizing:
    slices: int         # S: slices or tiles per expert
    slots: int          # K: weight slots per chiplet
    slot_bytes: int
    buffer_bytes: int   # weight-buffer bytes the plan needs


def _block(hw: HardwarePreset) -> int:
    import math
    return math.lcm(hw.mac_rows, hw.mac_cols)


def slice_candidates(model: ModelPreset, hw: HardwarePreset) -> list[int]:
    """Every S whose slices fill whole MAC-array blocks and fit the 8-bit slice index."""
    block = _block(hw)
    limit = field_max(Header, "slice") + 1
    return [s for s in range(1, min(model.d_ff, limit) + 1)
            if model.d_ff % s == 0 and (model.d_ff // s) % block == 0]


def aligned_slices(model: ModelPreset, hardware: HardwarePreset) -> int:
    """The model preset's S moved to a value whose slices fill whole MAC-array column
    blocks (so that no MAC cycle of the gate and up projections works on zero padding):
    among the divisors of ``d_ff`` whose slice width ``d_ff / S`` is a multiple of the MAC
    array's column count, the one nearest the preset's S (ties: the larger S).  If no such
    S exists, the preset's S.  O(d_ff / mac_cols)."""
    cols = hardware.mac_cols
    if model.d_ff % cols:
        return model.slices
    blocks = model.d_ff // cols
    candidates = [s for s in range(1, blocks + 1) if blocks % s == 0]
    return min(candidates, key=lambda s: (abs(s - model.slices), -s))


def _flits_ok(slot_bytes: int, link_bytes: int) -> bool:
    return -(-slot_bytes // link_bytes) <= field_max(Header, "length")


def _length_error(strategy, slot_bytes, link_bytes, what) -> FitError:
    flits = -(-slot_bytes // link_bytes)
    return FitError(f"{strategy} does not fit: {what} of {format_size(slot_bytes)} is {flits} flits of "
                    f"{link_bytes} B; a packet header's length field holds at most "
                    f"{field_max(Header, 'length')} flits")


def _budget(hw: HardwarePreset) -> str:
    return f"the weight buffer holds {format_size(hw.weight_sram_bytes)} per chiplet (--sram)"


def paper_budget(strategy: str, model: ModelPreset, hw: HardwarePreset) -> int:
    """The weight buffer per chiplet the paper's reference model gives ``strategy``
    (the paper's reference model, ``docs/sram.md``), in bytes: two whole experts for ``ep-whole`` and
    ``ep-paper``; ``slot_target`` micro-slices of the model's default S (moved to whole
    MAC-array blocks) for the others.  Rounded up to whole weight words."""
    if strategy in WHOLE_EXPERT:
        need = EP_PAPER_BUFFERS * model.expert_bytes
    else:
        need = hw.slot_target * (model.expert_bytes // aligned_slices(model, hw))
    return -(-need // hw.word_bytes) * hw.word_bytes


def size_plan(strategy: str, model: ModelPreset, hw: HardwarePreset, slices: int | None = None) -> Sizing:
    """S and K of ``strategy`` for ``model`` on ``hw`` (its weight budget); ``slices``
    overrides S where the strategy streams slices or tiles."""
    from .program import check_model_fits

    tile = SystemConfig.from_preset(hw).tile
    check_model_fits(strategy, model, tile)
    budget, link = hw.weight_sram_bytes, tile.link_bytes
    table = min(hw.max_slots, field_max(Header, "slot") + 1)
    if strategy in WHOLE_EXPERT:
        if slices is not None:
            raise PlanError(f"--slices does not apply to {strategy}: it loads whole experts "
                            f"(use ep or hydra for tiled experts)")
        slot = model.expert_bytes
        need = EP_PAPER_BUFFERS * slot if strategy == "ep-paper" else slot
        if budget < need:
            what = (f"{EP_PAPER_BUFFERS} whole-expert buffers ({EP_PAPER_BUFFERS} x {format_size(slot)} = "
                    f"{format_size(need)})" if strategy == "ep-paper" else
                    f"a slot of one whole expert ({format_size(slot)})")
            raise FitError(f"{strategy} does not fit: it needs {what}; {_budget(hw)}")
        if strategy == "ep-paper":
            chunks = next((s for s in slice_candidates(model, hw) if _flits_ok(model.expert_bytes // s, link)), None)
            if chunks is None:
                raise _length_error(strategy, slot, link, "a whole expert")
            return Sizing(chunks, 1, model.expert_bytes // chunks, need)
        if not _flits_ok(slot, link):
            raise _length_error(strategy, slot, link, "a whole expert")
        k = min(budget // slot, table)
        return Sizing(1, k, slot, k * slot)
    need_slots = MIN_SLOTS[strategy]
    if slices is not None:
        if not isinstance(slices, int) or slices <= 0 or model.d_ff % slices:
            raise PlanError(f"slices must be a positive divisor of the expert FFN size {model.d_ff}, "
                            f"not {slices!r}")
        allowed = slice_candidates(model, hw)
        if slices not in allowed:
            raise PlanError(f"--slices {slices}: {model.name} on {hw.name} takes an S whose slices are whole "
                            f"{_block(hw)}-column MAC-array blocks of its FFN size {model.d_ff} and fit the "
                            f"header's slice index; allowed: {', '.join(map(str, allowed)) or 'none'}")
        chosen, smallest = slices, False
        if not _flits_ok(model.expert_bytes // chosen, link):
            raise _length_error(strategy, model.expert_bytes // chosen, link, f"a slice (S={chosen})")
    else:
        floor = aligned_slices(model, hw)
        cands = [s for s in slice_candidates(model, hw) if s >= floor and _flits_ok(model.expert_bytes // s, link)]
        if not cands:
            chosen, smallest = floor, False   # no aligned S: the capacity check names the MAC-array rule
        else:
            target = min(hw.slot_target, table)
            chosen = next((s for s in cands if budget // (model.expert_bytes // s) >= target), cands[-1])
            smallest = chosen == cands[-1]
    slot = model.expert_bytes // chosen
    k = min(budget // slot, table)
    if k < need_slots:
        why = (" (rule R6: DRAM injects a slice, or stages a tile for another chiplet, only into two free "
               "slots)" if need_slots == 2 else "")
        which = f"S={chosen}" + (", the smallest slice this model and the header allow" if smallest else "")
        raise FitError(f"{strategy} does not fit: it needs at least {need_slots} slot(s){why} of "
                       f"{format_size(slot)} ({which}) = {format_size(need_slots * slot)}; {_budget(hw)}")
    return Sizing(chosen, k, slot, k * slot)
