"""End-to-end proof of the toolchain: Amaranth -> Verilog -> cocotb under the simulator."""

import pytest

from hw.requant import Requantizer
from sim.rtl.toolchain import build, build_dir_for, to_verilog, write_if_changed


@pytest.mark.cocotb
def test_requantizer_cocotb_matches_golden(hdl_sim, tmp_path):
    bdir = build_dir_for(hdl_sim, "requantizer")
    src = bdir / "requantizer.v"
    write_if_changed(src, to_verilog(Requantizer(width=32), "requantizer"))
    runner = build([src], "requantizer", bdir, sim=hdl_sim)
    runner.test(hdl_toplevel="requantizer", test_module="sim.rtl.benches.requant_bench", build_dir=str(bdir),
                test_dir=str(tmp_path), extra_env={"FSEDP_BENCH_SEED": "1"})


def test_verilog_has_no_time0_initializer_on_always_kick():
    text = to_verilog(Requantizer(width=16), "rq")
    assert "module rq" in text
    assert "dump_module$" not in text or "initial" in text
