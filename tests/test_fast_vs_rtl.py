"""The fast model against the RTL: on every point of the cross-validation grid
(``sim.fast.validate``) the cycles agree within the published tolerance
(``validate.CYCLE_TOLERANCE``, the figure the README and docs/fast_model.md give), every
chiplet's slot high-water mark, MACs, DRAM flits and link flits are equal, and the RTL
is bit-exact.

One test per hardware configuration (preset and weight budget): one Verilator build and
one simulator launch each, so the configurations build in parallel.  ``-m slow`` runs the
full grid (more token counts, the 3x3 paper-timing preset).
``benchmarks/bench_fast.py`` prints the same table.
"""

import pathlib

import pytest

from sim.fast import validate


def _name(config):
    preset, sram = config[0], config[1]
    groups = f"-groups{config[5]}".replace(";", "|") if len(config) > 5 else ""
    return preset + (f"-{sram // 1024}KiB" if sram else "") + groups


def _check(config, full):
    rows, skipped = validate.cross_validate(validate.grid(full=full, configs=[config]))
    assert rows, f"no point of {_name(config)} fits its hardware"
    report = validate.table(rows)
    bad = [r for r in rows if not r.ok]
    assert not bad, "fast model off the RTL:\n" + report
    # a budget below a strategy's need leaves it out, and only those
    for point, reason in skipped:
        assert " does not fit: " in reason, reason


def test_the_readme_publishes_the_asserted_tolerance_and_grid():
    readme = " ".join((pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text().split())
    assert f"agrees with the RTL within {validate.CYCLE_TOLERANCE:.0%} of cycles" in readme
    full, default = validate.grid(full=True), [c for c in validate.CONFIGS if c[3]]
    assert "cross-validation grid (267 points, 102 of them in the default tests;" in readme
    assert len(full) == 276 and len(validate.grid(full=False, configs=default)) == 102   # 9 and 0 do not fit


@pytest.mark.cocotb
@pytest.mark.parametrize("config", [c for c in validate.CONFIGS if c[3]], ids=_name)
def test_fast_model_matches_rtl(config):
    _check(config, full=False)


@pytest.mark.cocotb
@pytest.mark.slow
@pytest.mark.parametrize("config", validate.CONFIGS, ids=_name)
def test_fast_model_matches_rtl_full_grid(config):
    _check(config, full=True)


@pytest.mark.cocotb
@pytest.mark.parametrize("config", [c for c in validate.GROUP_CONFIGS if c[3]], ids=_name)
def test_fast_model_matches_rtl_in_chiplet_groups(config):
    _check(config, full=False)


@pytest.mark.cocotb
@pytest.mark.slow
@pytest.mark.parametrize("config", validate.GROUP_CONFIGS, ids=_name)
def test_fast_model_matches_rtl_in_chiplet_groups_full_grid(config):
    _check(config, full=True)
