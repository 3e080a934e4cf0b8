"""``fsedp area``: the synthesis flow's parsed numbers, the density models against their
formulas, the command line and its one-line errors.  The whole tile and the router with
and without the FSE-DP rules are ``slow`` (minutes of Yosys)."""

import csv
import json
import math
import pathlib
import re
import subprocess
import sys

import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hw.config import SystemConfig
from hw.vector_unit import VectorUnit
from scheduler import presets
from sim.eval import area, die_area

LIB = area.LIBERTY


def lib_areas_from_sizes():
    """Each cell's area recomputed from the ``SIZE w BY h`` comment in front of it (the
    LEF footprint the file cites), independently of the ``area`` attributes."""
    text = LIB.read_text()
    out = {}
    for m in re.finditer(r"/\* SIZE ([0-9.]+) BY ([0-9.]+) \*/\s*cell \((\S+)\)", text):
        out[m.group(3)] = float(m.group(1)) * float(m.group(2))
    return out


def test_liberty_areas_are_the_cited_footprints():
    areas = area.liberty_areas()
    assert len(areas) == 16 and "sky130_fd_sc_hd__dfxtp_1" in areas
    sizes = lib_areas_from_sizes()
    assert sizes.keys() == areas.keys()
    for cell, a in areas.items():
        assert a == pytest.approx(sizes[cell], abs=1e-4), cell
    assert areas["sky130_fd_sc_hd__nand2_1"] == pytest.approx(1.38 * 2.72)
    head = LIB.read_text()[:1500]
    assert "estimate" in head.lower() and "ac7fb61f06e6" in head and "16 cells" in head


def test_sram_model_is_llmcompass_formula():
    c = area.CONSTANTS
    bitcell, eff = c["sram_bitcell_mm2_per_bit_7nm"].value, c["sram_array_efficiency"].value
    # 12 KiB, 2 read ports (the rtl-2x2 weight buffer): two copies, 24 KiB -> efficiency of 32 KiB.
    um2, model = area.sram_area_um2(512, 192, read_ports=2, write_ports=1)
    assert um2 == pytest.approx(2 * 12288 * 8 * bitcell / eff[3] * 1e6)
    assert "2 copies" in model
    # 2 MiB, 1 read port: four 512 KiB units at efficiency 0.602.
    um2, _ = area.sram_area_um2(64, 2 ** 18, 1, 1)
    assert um2 == pytest.approx(4 * 2 ** 19 * 8 * bitcell / eff[7] * 1e6)
    # Below 4 KiB: priced as 4 KiB (LLMCompass's floor); 8 read ports are 8 copies of 256 bytes = 2 KiB.
    um2, model = area.sram_area_um2(8, 256, read_ports=8, write_ports=1)
    assert um2 == pytest.approx(4096 * 8 * bitcell / eff[0] * 1e6) and "8 copies" in model
    for key, const in c.items():
        assert const.source and const.unit and const.node, key


def test_phy_from_bandwidth_per_mm():
    p = area.phy(9.0, links=4)
    assert p["gbytes_per_s"] == 72.0
    assert p["edge_mm_2d"] == pytest.approx(72 / 224) and p["edge_mm_25d"] == pytest.approx(72 / 1300)
    assert p["area_um2_25d"] == pytest.approx(72 / 1350 * 1e6)


class _Small(wiring.Component):
    """A counter, a 2048 x 16 synchronous-read memory (4 KiB: an SRAM macro), a 64 x 8
    one (under 4 KiB: a register file of flip-flops) and a 4-deep FIFO (asynchronous
    read: flip-flops)."""

    addr: In(11)
    wdata: In(16)
    we: In(1)
    rdata: Out(16)
    fifo_out: Out(8)
    count: Out(12)

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = Memory(shape=16, depth=2048, init=[])
        m.submodules.small = small = Memory(shape=8, depth=64, init=[])
        m.submodules.fifo = fifo = SyncFIFO(width=8, depth=4)
        wp, rp = mem.write_port(), mem.read_port()
        swp, srp = small.write_port(), small.read_port()
        m.d.comb += [wp.addr.eq(self.addr), wp.data.eq(self.wdata), wp.en.eq(self.we),
                     swp.addr.eq(self.addr), swp.data.eq(self.wdata[8:]), swp.en.eq(self.we),
                     srp.addr.eq(self.addr), rp.addr.eq(self.addr), self.rdata.eq(rp.data + self.count + srp.data),
                     fifo.w_data.eq(self.wdata[:8]), fifo.w_en.eq(self.we), fifo.r_en.eq(~self.we),
                     self.fifo_out.eq(fifo.r_data)]
        m.d.sync += self.count.eq(self.count + rp.data[:12])
        return m


def check_consistent(syn: area.Synthesis):
    areas = lib_areas_from_sizes()
    assert syn.cells > 0 and syn.depth > 0 and syn.transistors > 0 and syn.ffs > 0
    assert set(syn.cell_counts) <= set(areas)
    assert syn.cells == sum(syn.cell_counts.values())
    assert syn.ffs == syn.cell_counts["sky130_fd_sc_hd__dfxtp_1"]
    assert syn.logic_um2 == pytest.approx(sum(n * areas[c] for c, n in syn.cell_counts.items()), rel=1e-6)


def test_small_design_counts_macros_as_bits_and_register_files_as_flops(tmp_path):
    syn = area.synthesize(_Small(), "small", tmp_path)
    check_consistent(syn)
    kinds = sorted((m.kind, m.width, m.depth) for m in syn.memories)
    assert kinds == [("flops", 8, 4), ("flops", 8, 64), ("sram", 16, 2048)]
    # The macro's 32768 bits are not flip-flops; the small memory, the FIFO and the counter are.
    assert 8 * 64 + 8 * 4 + 12 <= syn.ffs < 8 * 64 + 8 * 4 + 200
    row = area.block_row(area.Block("small", "test", "tile"), syn)
    assert row["sram_bits"] == 32768 and row["flop_memory_bits"] == 8 * 64 + 8 * 4
    again = area.synthesize(_Small(), "small", tmp_path)
    assert again.cached and again.cells == syn.cells and again.logic_um2 == syn.logic_um2


def test_vector_unit_of_one_lane(tmp_path):
    """A real block: the vector unit with one lane (multipliers, requantisers and the
    256-entry SiLU table, a register file)."""
    syn = area.synthesize(VectorUnit(lanes=1), "vector_unit", tmp_path)
    check_consistent(syn)
    assert [(m.kind, m.width, m.depth) for m in syn.memories] == [("flops", 8, 256)]
    assert syn.ffs >= 2048, "the 256-byte SiLU table is a register file"
    row = area.block_row(area.Block("vector_unit", "vu", "tile"), syn)
    assert row["sram_bits"] == 0 and row["flop_memory_bits"] == 2048
    assert row["logic_um2_7nm"] == pytest.approx(syn.logic_um2 * 0.92 / 96.3)


def run_cli(*args, env=None):
    import os

    return subprocess.run([sys.executable, "-m", "sim.cli", "area", *args], capture_output=True, text=True,
                          env=None if env is None else os.environ | env)


@pytest.mark.parametrize("args, message", [
    (["--preset", "no-such-preset"], "no-such-preset"),
    (["--top", "chip"], "invalid choice: 'chip'"),
    (["--blocks", "router,fpu"], "unknown block 'fpu'"),
    (["--preset", "rtl-3x3", "--hardware", "x.toml"], "not both"),
])
def test_bad_input_is_one_line_error(args, message):
    out = run_cli(*args)
    assert out.returncode == 2, out.stderr
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("fsedp: error: "), out.stderr
    assert message in out.stderr


def test_output_path_checked_before_synthesis(tmp_path):
    out = run_cli("--blocks", "links", "--json", str(tmp_path), env={"FSEDP_BUILD_DIR": str(tmp_path / "b")})
    assert out.returncode == 2 and out.stderr.startswith("fsedp: error: ") and "--json" in out.stderr
    assert not (tmp_path / "b").exists(), "nothing was synthesised"


def test_links_through_the_command_line(tmp_path):
    j, c = tmp_path / "area.json", tmp_path / "area.csv"
    out = run_cli("--blocks", "links", "--json", str(j), "--csv", str(c), env={"FSEDP_BUILD_DIR": str(tmp_path / "b")})
    assert out.returncode == 0, out.stderr
    assert "links: converting and synthesising" in out.stderr and re.search(r"links: synthesised in [0-9.]+ s", out.stderr)
    assert "links (x4)" in out.stdout and "transistors*" in out.stdout
    report = json.loads(j.read_text())
    (row,) = report["blocks"]
    assert row["copies"] == 4 and row["cells"] % 4 == 0 and row["ffs"] > 0 and row["depth"] > 0
    assert report["constants"]["ucie_2d_gbytes_per_s_per_mm"]["source"]
    hw = presets.get_hardware("rtl-2x2")
    assert report["phy"]["gbytes_per_s"] == pytest.approx(8 * hw.link_bytes_per_cycle * hw.clock_ghz)
    rows = list(csv.DictReader(c.open()))
    assert rows[0]["block"] == "links" and int(rows[0]["cells"]) == row["cells"]
    again = run_cli("--blocks", "links", env={"FSEDP_BUILD_DIR": str(tmp_path / "b")})
    assert "links: cached" in again.stderr


@pytest.mark.slow
def test_router_with_and_without_rules():
    config = SystemConfig.from_preset(presets.get_hardware("rtl-2x2"))
    report = area.run_area(config, preset_name="rtl-2x2", names=["router", "router_plain"],
                           link_gbytes_per_s=9.0)
    by = {r["block"]: r for r in report["blocks"]}
    r, p = by["router"], by["router_plain"]
    assert r["cells"] > p["cells"] > 0 and r["ffs"] > p["ffs"] and r["logic_um2"] > p["logic_um2"]
    rules = report["rules"]
    assert rules["logic_um2"] == pytest.approx(r["logic_um2"] - p["logic_um2"])
    assert 0 < rules["share_of_router_logic"] < 1


@pytest.mark.slow
def test_whole_tile():
    """The tile as one design has the memories of its blocks, and about their logic."""
    config = SystemConfig.from_preset(presets.get_hardware("rtl-2x2"))
    report = area.run_area(config, preset_name="rtl-2x2", top="tile", link_gbytes_per_s=9.0)
    tile, blocks = report["totals"]["tile"], report["totals"]["tile_blocks"]
    assert tile["sram_bits"] == blocks["sram_bits"] > 0
    assert math.isclose(tile["logic_um2"], blocks["logic_um2"], rel_tol=0.15)
    assert report["rules"]["share_of_tile_logic"] > 0
    # The report shipped for the iso-area view and the README is what synthesis measures.
    shipped = {b["block"]: b for b in json.loads(die_area.DEFAULT_AREA.read_text())["blocks"]}
    for b in report["blocks"]:
        assert {k: b.get(k) for k in ("cells", "ffs", "transistors", "depth", "sram_bits")} == \
            {k: shipped[b["block"]].get(k) for k in ("cells", "ffs", "transistors", "depth", "sram_bits")}


def test_classify_register_files_macros_and_dram():
    mem = lambda name, w, d, sync: area.Memory(name, w, d, 1, 1, sync)
    assert area.classify(mem("fifo.storage", 129, 3, 0)) == "flops"          # asynchronous read
    assert area.classify(mem("in_n_vc0.storage", 129, 3, 1)) == "flops"      # 387 bits
    assert area.classify(mem("silu", 8, 512, 1)) == "flops"                  # 4096 bits: at the limit
    assert area.classify(mem("experts", 23, 256, 1)) == "sram"               # 5888 bits
    assert area.classify(mem("weights", 512, 2048, 1), ("weights",)) == "dram"
    assert area.CONSTANTS["register_file_max_bits"].value == area.REGISTER_FILE_MAX_BITS == 4096


def test_die_model_reproduces_the_synthesised_tile():
    """The iso-area view's die of rtl-2x2 at its own weight buffer is the tile the shipped
    ``fsedp area --top tile`` report measured: its SRAM macros priced one by one, its logic
    scaled to 7 nm and the PHY, summed by a different path (``run_area``)."""
    shipped = json.loads(die_area.DEFAULT_AREA.read_text())
    hw = presets.get_hardware("rtl-2x2")
    d = die_area.load_model().breakdown(hw, hw.weight_sram_bytes)
    assert d["total"] * 1e6 == pytest.approx(shipped["tile_7nm"]["total_um2"], rel=1e-9)
    blocks = {b["block"]: b for b in shipped["blocks"]}
    assert d["weight_sram"] * 1e6 == pytest.approx(blocks["weight_buffer"]["sram_um2_7nm"])
    # paper scale: logic scaled by the MAC count, the same other macros
    big = presets.get_hardware("paper-2x2")
    paper = die_area.load_model().breakdown(big, 8 * presets.MiB)
    macs = big.mac_rows * big.mac_cols / (hw.mac_rows * hw.mac_cols)
    assert macs > 1 and paper["logic"] == pytest.approx(d["logic"] * macs) and paper["other_sram"] == d["other_sram"]


def test_die_model_rejects_a_report_without_the_whole_tile(tmp_path):
    f = tmp_path / "blocks.json"
    f.write_text(json.dumps({"preset": "rtl-2x2", "totals": {}, "blocks": []}))
    with pytest.raises(die_area.DieAreaError, match="not an `fsedp area --top tile --json` report"):
        die_area.load_model(f)


def test_readme_quotes_the_shipped_area_report():
    """The README's area figures, recomputed from the shipped `fsedp area --top tile` report."""
    readme = " ".join((pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text().split())
    report = json.loads(die_area.DEFAULT_AREA.read_text())
    tile, rules = report["tile_7nm"], report["rules"]
    depth = {b["block"]: b["depth"] for b in report["blocks"]}
    assert max(depth, key=lambda b: depth[b] if b not in ("tile", "router_plain") else -1) == "vector_unit"
    assert (f"The rtl-2x2 tile is about {tile['total_um2'] / 1e6:.3f} mm^2 at 7 nm, "
            f"{100 * tile['sram_um2'] / tile['total_um2']:.0f}% of it SRAM") in readme
    assert (f"{100 * rules['share_of_router_logic']:.1f}% of the router and {100 * rules['share_of_tile_logic']:.1f}% "
            f"of the tile's logic, {100 * rules['share_of_tile_7nm']:.2f}% of the tile") in readme
    assert f"({depth['vector_unit']} cell levels; the router {depth['router']})" in readme


def test_depth_verdict_names_the_blocks_over_the_budget():
    budget = area.LOGIC_LEVEL_BUDGET
    report = {"blocks": [{"block": "mac_array", "depth": budget}, {"block": "vector_unit", "depth": budget + 27},
                         {"block": "links", "absent": True}]}
    assert area.over_budget(report) == [("vector_unit", budget + 27)]
    assert area.depth_verdict(report).endswith(f"over it: vector_unit ({budget + 27})")
    report["blocks"].pop(1)
    assert area.depth_verdict(report).endswith("every block within it")
