"""Slices and slots from the weight-buffer budget (scheduler.sizing): the rule every
streaming strategy shares, the whole-expert strategies, and the one-line reasons a plan
does not fit."""

import pytest

from scheduler import presets
from scheduler.plan import FitError, PlanError
from scheduler.sizing import MIN_SLOTS, size_plan, slice_candidates

MiB, KiB = presets.MiB, presets.KiB
PAPER = presets.get_hardware("paper-2x2")
RTL = presets.get_hardware("rtl-2x2")
MIXTRAL = presets.get_model("mixtral-8x7b")
TINY = presets.get_model("tiny-8x2")


@pytest.mark.parametrize("strategy", ["fse-dp", "fse-dp-paired", "ep", "hydra"])
def test_streaming_strategies_share_one_rule(strategy):
    # Mixtral on a 32x64 array: S must divide the 224 column blocks; at 8 MiB no S reaches
    # the 12-slot target, so the smallest slice (S = 224, 768 KiB) gives 10 slots.
    s = size_plan(strategy, MIXTRAL, PAPER.with_weight_sram(8 * MiB))
    assert (s.slices, s.slots, s.slot_bytes) == (224, 10, 768 * KiB)
    assert s.buffer_bytes == 10 * 768 * KiB <= 8 * MiB
    # 32 MiB: S = 112 (1.5 MiB slices) is the first to give 12 slots: 21, capped at 16
    s = size_plan(strategy, MIXTRAL, PAPER.with_weight_sram(32 * MiB))
    assert (s.slices, s.slots) == (112, 16)


def test_slice_candidates_fill_whole_mac_blocks_and_the_header():
    cands = slice_candidates(MIXTRAL, PAPER)
    assert cands == [1, 2, 4, 7, 8, 14, 16, 28, 32, 56, 112, 224]
    assert all(MIXTRAL.d_ff // s % 64 == 0 for s in cands)


def test_default_rtl_sizing_fills_the_slot_table():
    assert size_plan("fse-dp", TINY, RTL) == size_plan("ep", TINY, RTL)
    s = size_plan("fse-dp", TINY, RTL)
    assert (s.slices, s.slots, s.slot_bytes) == (8, 16, 768)
    whole = size_plan("ep-whole", TINY, RTL)
    assert (whole.slices, whole.slots, whole.slot_bytes) == (1, 2, TINY.expert_bytes)
    paper = size_plan("ep-paper", TINY, RTL)
    # two whole-expert buffers provisioned, one slot in use at a time (a load needs both free)
    assert (paper.slots, paper.buffer_bytes) == (1, 2 * TINY.expert_bytes)


def test_slices_override_the_budget_rule():
    s = size_plan("ep", TINY, RTL, slices=4)
    assert (s.slices, s.slots) == (4, 8)
    with pytest.raises(PlanError, match="--slices does not apply to ep-whole"):
        size_plan("ep-whole", TINY, RTL, slices=4)


@pytest.mark.parametrize("strategy,budget,message", [
    ("fse-dp", 1 * MiB, r"fse-dp does not fit: it needs at least 2 slot\(s\) \(rule R6: .*\) of 768 KiB "
                        r"\(S=224, the smallest slice this model and the header allow\) = 1.5 MiB; the weight "
                        r"buffer holds 1 MiB per chiplet \(--sram\)"),
    ("ep", 1 * MiB, r"ep does not fit: it needs at least 2 slot"),
    ("ep-whole", 32 * MiB, r"ep-whole does not fit: it needs a slot of one whole expert \(168 MiB\); the "
                           r"weight buffer holds 32 MiB"),
    ("ep-paper", 200 * MiB, r"ep-paper does not fit: it needs 2 whole-expert buffers \(2 x 168 MiB = 336 MiB\)"),
    ("ep-whole", 200 * MiB, r"a whole expert of 168 MiB is 344064 flits of 512 B; a packet header's length "
                            r"field holds at most 65535 flits"),
])
def test_a_budget_that_cannot_hold_a_strategy_names_what_it_needs(strategy, budget, message):
    with pytest.raises(FitError, match=message):
        size_plan(strategy, MIXTRAL, PAPER.with_weight_sram(budget))


def test_minimum_slots_follow_the_rules():
    # R6 for FSE-DP; EP stages tiles for other chiplets under the same two-free-slot rule
    assert MIN_SLOTS["fse-dp"] == MIN_SLOTS["ep"] == MIN_SLOTS["hydra"] == 2
    two = size_plan("ep", TINY, RTL.with_weight_sram(2 * 768))
    assert two.slots == 2


def test_budget_must_be_whole_weight_words():
    with pytest.raises(presets.PresetError, match="not a whole number of the rtl-2x2 weight words"):
        RTL.with_weight_sram(1000)
    assert presets.parse_size("8MiB") == 8 * MiB and presets.parse_size("1.5 MiB") == 3 * MiB // 2
    assert presets.parse_size("6144") == 6144
    with pytest.raises(presets.PresetError, match="is not a memory size"):
        presets.parse_size("8 MB")
