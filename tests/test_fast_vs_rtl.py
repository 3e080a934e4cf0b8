"""The fast model against the RTL: cycles within 2% and the slot high-water mark (peak
on-chip bytes) exactly equal on every point of a grid of small configurations.

One Verilator build and one simulator launch per hardware preset (rtl-2x2, rtl-3x3).
The default grid (4 strategies x 2 presets x 4 model/routing pairs x L in {4, 16}) takes
about a minute once both builds are cached; ``-m slow`` runs L in {1, 4, 16, 64}.
``benchmarks/bench_fast.py`` prints the same table.
"""

import pytest

from sim.fast import validate


def _check(rows):
    report = validate.table(rows)
    bad = [r for r in rows if not r.ok]
    assert not bad, "fast model off the RTL:\n" + report


@pytest.mark.cocotb
def test_fast_model_matches_rtl():
    _check(validate.cross_validate(validate.grid(full=False)))


@pytest.mark.cocotb
@pytest.mark.slow
def test_fast_model_matches_rtl_full_grid():
    _check(validate.cross_validate(validate.grid(full=True)))
