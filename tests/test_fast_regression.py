"""The fast model reproduces its pinned results on paper-scale points.

``tests/data/fast_pin.json`` holds, per point, the cycles and every chiplet's counters
as the implementation that wrote it measured them (``benchmarks/pin_fast.py``, which
also regenerates and checks the file).  A change to ``sim/fast`` that only makes it
faster must leave every number equal; the cross-validation against the RTL is
``tests/test_fast_vs_rtl.py``.  The default run checks the points marked ``default``
(every strategy, paper-2x2 and paper-4x4, L = 64 and 1024, two budgets); ``-m slow``
checks the whole file.
"""

import importlib.util
import json
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PINNED = json.loads((ROOT / "tests" / "data" / "fast_pin.json").read_text())["points"]


def _pin_module():
    spec = importlib.util.spec_from_file_location("pin_fast", ROOT / "benchmarks" / "pin_fast.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


pin = _pin_module()


def _check(keys, tmp_path):
    got = {k: {"point": PINNED[k]["point"], **pin.measure(PINNED[k]["point"], str(tmp_path))} for k in keys}
    problems = pin.diff({k: PINNED[k] for k in keys}, got)
    assert not problems, "\n".join(problems[:40])


def test_pinned_points_are_the_benchmark_set():
    """The file holds exactly the points the script defines (regenerate it if they change)."""
    assert sorted(PINNED) == sorted(pin.key(p) for p in pin.points())
    assert {k for k, v in PINNED.items() if v["point"]["default"]} == {pin.key(p) for p in pin.points(wide=False)}


def test_fast_model_reproduces_pinned_points(tmp_path):
    _check([k for k, v in PINNED.items() if v["point"]["default"]], tmp_path)


@pytest.mark.slow
def test_fast_model_reproduces_all_pinned_points(tmp_path):
    _check(list(PINNED), tmp_path)
