"""Presets: official model sizes, paper hardware numbers, and the ratios small presets keep."""

import pytest

from scheduler import presets
from scheduler.presets import PresetError


@pytest.mark.parametrize("name,d,f,E,k", [
    ("deepseek-moe-16b", 2048, 1408, 64, 6), ("qwen3-30b-a3b", 2048, 768, 128, 8),
    ("phi-3.5-moe", 4096, 6400, 16, 2), ("yuan2-m32", 2048, 8192, 32, 2),
    ("mixtral-8x7b", 4096, 14336, 8, 2), ("olmoe-1b-7b", 2048, 1024, 64, 8),
    ("tiny-8x2", 32, 64, 8, 2), ("tiny-64x8", 16, 32, 64, 8),
])
def test_model_presets_have_official_shapes(name, d, f, E, k):
    m = presets.get_model(name)
    assert (m.d_model, m.d_ff, m.num_experts, m.top_k) == (d, f, E, k)
    assert m.expert_bytes == 3 * d * f and m.source


def test_paper_2x2_matches_reference_hardware():
    p = presets.get_hardware("paper-2x2")
    assert p.num_chiplets == 4 and p.macs_per_chiplet == 2048 and p.dram_channels == 4
    assert p.dram_bytes_per_cycle * p.clock_ghz == pytest.approx(25.6)
    assert p.link_bytes_per_cycle * p.clock_ghz == pytest.approx(288.0)
    assert (p.slice_slots, p.expert_slots) == (12, 2)
    assert p.dram_chiplets == (0, 1, 3, 2)   # the four corners, in ring order
    assert presets.get_hardware("paper-3x3").dram_bytes_per_cycle == pytest.approx(1.5 * p.dram_bytes_per_cycle)
    assert presets.get_hardware("paper-4x4").dram_bytes_per_cycle == pytest.approx(2 * p.dram_bytes_per_cycle)
    assert presets.get_hardware("paper-4x4").dram_chiplets == (0, 3, 15, 12)


@pytest.mark.parametrize("n", [2, 3, 4])
def test_rtl_presets_keep_the_paper_ratios(n):
    paper, rtl = presets.get_hardware(f"paper-{n}x{n}"), presets.get_hardware(f"rtl-{n}x{n}")
    assert rtl.rtl and not paper.rtl
    assert rtl.ratios() == pytest.approx(paper.ratios())
    assert rtl.macs_per_chiplet < paper.macs_per_chiplet


def test_unknown_preset_lists_choices():
    with pytest.raises(PresetError, match="unknown model preset 'gpt'; choose one of: deepseek-moe-16b"):
        presets.get_model("gpt")
    with pytest.raises(PresetError, match="unknown hardware preset"):
        presets.get_hardware("paper-9x9")


def test_inconsistent_presets_are_rejected():
    with pytest.raises(PresetError, match="not divisible by slices"):
        presets.ModelPreset("x", 8, 10, 4, 2, slices=3, source="")
    with pytest.raises(PresetError, match="top_k 5 exceeds"):
        presets.ModelPreset("x", 8, 8, 4, 5, slices=1, source="")
    with pytest.raises(PresetError, match="slice_slots must be at least 2"):
        presets.HardwarePreset("x", 2, 2, 1.0, 8, 8, 1.0, 1, 8.0, 1, slice_slots=1, expert_slots=2, source="")


def test_router_buffers_cover_the_credit_round_trip_at_paper_scale():
    from hw.config import SystemConfig, credit_depth

    # 8-cycle links at 45/64 flits per cycle: 19 cycles of round trip need 14 credits.
    assert credit_depth(8, (45, 64)) == 14
    assert credit_depth(2, (45, 64)) == 5      # the rtl presets keep 4 (see hw.config)
    assert SystemConfig.from_preset(presets.get_hardware("paper-2x2")).buffer_depth == 14
    rtl = SystemConfig.from_preset(presets.get_hardware("rtl-2x2"))
    assert rtl.buffer_depth == 4 and not rtl.name.endswith("_b4")
