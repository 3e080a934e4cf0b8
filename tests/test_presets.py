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
    assert (p.slot_target, p.max_slots) == (12, 16)
    # provisioned SRAM per chiplet: 8 MiB of weights + 1024 rows x 4096 x (int8 + int32)
    assert p.weight_sram_bytes == 8 << 20 and p.token_sram_bytes == 1024 * 4096 * 5
    assert p.provisioned_sram_bytes == p.weight_sram_bytes + p.token_sram_bytes
    assert "SRAM per chiplet" in p.source
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
    with pytest.raises(PresetError, match="max_slots must be at least 2"):
        presets.HardwarePreset("x", 2, 2, 1.0, 8, 8, 1.0, 1, 8.0, 1, weight_sram_bytes=4096, token_rows=8,
                               d_max=8, max_slots=1, source="")
    with pytest.raises(PresetError, match="weight_sram_bytes 1000 is not a whole number of 64-byte"):
        presets.HardwarePreset("x", 2, 2, 1.0, 8, 8, 1.0, 1, 8.0, 1, weight_sram_bytes=1000, token_rows=8,
                               d_max=8, source="")


def test_rtl_builds_take_their_capacities_from_the_preset():
    from hw.config import SystemConfig

    for name, p in presets.HARDWARE_PRESETS.items():
        c = SystemConfig.from_preset(p)
        t = c.tile
        assert t.weight_words * t.word_bytes == p.weight_sram_bytes, name
        assert (t.token_rows, t.d_max, t.max_slots, t.table_entries, t.program_words) == \
            (p.token_rows, p.d_max, p.max_slots, p.table_entries, p.program_words), name
        assert c.dram_words * t.word_bytes == p.dram_channel_bytes, name
    small = SystemConfig.from_preset(presets.get_hardware("rtl-2x2").with_weight_sram(6144))
    assert small.tile.weight_words == 96 and "_w96_" in small.name


@pytest.mark.parametrize("n", [2, 3])
def test_long_rtl_presets_have_the_paper_timing(n):
    from hw.config import SystemConfig

    paper, long = presets.get_hardware(f"paper-{n}x{n}"), presets.get_hardware(f"rtl-{n}x{n}-long")
    assert long.rtl and long.ratios() == pytest.approx(paper.ratios())
    assert (long.link_latency, long.dram_latency) == (paper.link_latency, paper.dram_latency)
    assert SystemConfig.from_preset(long).buffer_depth == SystemConfig.from_preset(paper).buffer_depth == 14
    assert long.d_max >= 64
    # the default slices of small-8x2 are 384 flits: the fast model's long-packet paths
    from scheduler.sizing import size_plan
    s = size_plan("fse-dp", presets.get_model("small-8x2"), long)
    assert s.slot_bytes // SystemConfig.from_preset(long).tile.link_bytes >= 256


def test_router_buffers_cover_the_credit_round_trip_at_paper_scale():
    from hw.config import SystemConfig, credit_depth

    # 8-cycle links at 45/64 flits per cycle: 19 cycles of round trip need 14 credits.
    assert credit_depth(8, (45, 64)) == 14
    assert credit_depth(2, (45, 64)) == 5      # the rtl presets keep 4 (see hw.config)
    assert SystemConfig.from_preset(presets.get_hardware("paper-2x2")).buffer_depth == 14
    rtl = SystemConfig.from_preset(presets.get_hardware("rtl-2x2"))
    assert rtl.buffer_depth == 4 and not rtl.name.endswith("_b4")
