"""End-to-end runs of whole R x C systems under Verilator (``sim.rtl``): every strategy,
several routings and token counts, every output checked bit for bit against the golden
model, every chiplet done, no slot leaked, no error bit; the hardware watchdog on a
stalled run and an error that stops the system (tests/test_system_errors.py injects the
others).

Each configuration is built once (cached) and all its workloads run in one simulator
launch.  The 2x2 default and 3x3 are in the default run; 4x4 and the larger grids are
``-m slow``.
"""

import dataclasses

import pytest

from hw.watchdog import limits
from scheduler import program
from scheduler.plan import STRATEGIES
from sim import rtl
from sim.workload import prepare

pytestmark = pytest.mark.cocotb


def _workloads(preset, cases, strategies=STRATEGIES, **options):
    return [prepare(preset=preset, model=model, tokens=tokens, routing_spec=routing, strategy=s, seed=seed, **options)
            for model, tokens, routing, seed in cases for s in strategies]


SLICED = ("fse-dp", "fse-dp-paired", "ep", "hydra")


def _check(workloads, results):
    assert len(results) == len(workloads)
    for w, r in zip(workloads, results):
        j = r.to_json()
        what = f"{w.spec}"
        assert j["bit_exact"] is True, f"{what}: outputs differ: {j['mismatches']}"
        assert j["errors"] == [0] * w.plan.num_chiplets, f"{what}: error bits {j['errors']}"
        assert j["slots_in_use_at_end"] == [0] * w.plan.num_chiplets, f"{what}: slots leaked"
        assert 0 < max(j["done_cycle"]) <= j["cycles"], what
        # Every chiplet's MAC count is what the plan asks of it (measured, not assumed).
        assert sum(j["macs"]) == w.plan.macs(), what
        assert j["dram_bytes"] > 0 and max(j["slot_high_water"]) >= 1, what
        # The watchdog's limits hold with room to spare: the longest stretch without progress
        # anywhere stays within the gap they are derived from, every input wait below the
        # starvation limit.
        lim = limits(w.system)
        assert r.watchdog["quiet_high_water"] <= lim.quiet_gap, f"{what}: {r.watchdog}"
        assert max(r.watchdog["age_high_water"]) < lim.age_limit, f"{what}: {r.watchdog}"


CASES_2X2 = [
    ("tiny-8x2", 16, "mixtral:c4", 0),     # the default workload
    ("tiny-8x2", 1, "uniform", 1),         # one token: six of eight experts have none
    ("tiny-8x2", 24, "zipf:1.5", 2),       # skewed: a hot expert
    ("tiny-64x8", 8, "olmoe:c4", 3),       # OLMoE's shape and statistics
    ("tiny-8x2", 4, "mixtral:c4", 0),      # regression: Hydra's first WEIGHT injected before the
                                           # router knew its chiplet id (UNEXPECTED_GRANT, leaked slot)
]


def test_2x2_every_strategy_bit_exact():
    workloads = _workloads("rtl-2x2", CASES_2X2)
    assert any(w.plan.macs() == 0 or any(not rows for rows in w.plan.jobs[0].values()) for w in workloads)
    _check(workloads, rtl.run(workloads))


def test_2x2_other_tile_counts_and_a_smaller_budget_bit_exact():
    """S = 4 and 2 tiles per expert (the default is 8) on the default build, and a 6 KiB
    weight buffer (a build of its own: 8 slots of S = 8; ep-paper, which needs two whole
    experts, does not fit it)."""
    cases = [("tiny-8x2", 16, "mixtral:c4", 0), ("tiny-8x2", 24, "zipf:1.5", 2)]
    workloads = [w for s in (4, 2) for w in _workloads("rtl-2x2", cases, SLICED, slices=s)]
    _check(workloads, rtl.run(workloads))
    small = _workloads("rtl-2x2", cases, [s for s in STRATEGIES if s != "ep-paper"], sram=6144)
    assert {w.plan.slots for w in small if w.plan.slices == 8} == {8}
    _check(small, rtl.run(small))


def test_3x3_every_strategy_bit_exact():
    workloads = _workloads("rtl-3x3", [("tiny-8x2", 9, "mixtral:book", 4), ("tiny-8x2", 1, "zipf:2", 5),
                                       ("tiny-8x2", 16, "mixtral:c4", 1)])   # regression: EP stalled
    workloads += _workloads("rtl-3x3", [("tiny-8x2", 16, "mixtral:c4", 1)], ("ep", "hydra"), slices=4)
    _check(workloads, rtl.run(workloads))


@pytest.mark.slow
def test_4x4_every_strategy_bit_exact():
    workloads = _workloads("rtl-4x4", [("tiny-8x2", 16, "mixtral:wikipedia", 6), ("tiny-64x8", 4, "olmoe:book", 7),
                                       ("tiny-8x2", 1, "uniform", 8)])
    _check(workloads, rtl.run(workloads))


@pytest.mark.slow
def test_2x2_larger_grid():
    cases = [(m, L, r, 10 + i) for i, (m, L, r) in enumerate(
        [("tiny-8x2", L, r) for L in (2, 4, 32) for r in ("uniform", "zipf:1.2", "mixtral:wikipedia")]
        + [("tiny-64x8", L, "olmoe:wikipedia") for L in (1, 16)])]
    workloads = _workloads("rtl-2x2", cases)
    _check(workloads, rtl.run(workloads))


def test_a_stalled_run_ends_with_the_hardware_watchdog_naming_the_chiplet():
    """Chiplet 2's program waits for one more slice arrival than any DRAM channel sends:
    the system's watchdog stops the run as soon as nothing has moved anywhere for its
    limit (not at the bench's 20,000-cycle backstop poll) and names chiplet 2's controller."""
    from sim import fast

    w = prepare(preset="rtl-2x2", model="tiny-8x2", tokens=4, routing_spec="uniform", strategy="fse-dp", seed=0)
    ctrl = w.programs.controllers[2]
    text = program.disassemble(ctrl.words)
    arrivals = None
    lines = []
    for line in text.splitlines():
        if line.startswith("SET reg=ARRIVALS"):
            n = int(line.split("value=")[1])
            arrivals = n
            line = f"SET reg=ARRIVALS, value={n + 1}"
        lines.append(line)
    assert arrivals is not None
    w.programs.controllers[2] = dataclasses.replace(ctrl, words=program.assemble("\n".join(lines)))
    with pytest.raises(rtl.SimulationStalled) as info:
        rtl.run([w])
    message, status = str(info.value), info.value.status
    stall = limits(w.system).stall_limit
    assert message.startswith(f"watchdog: chiplet 2 controller: waits for a slice arrival ({arrivals} arrived, "
                              f"{arrivals} jobs) since cycle {status['since']}; stopped at cycle {status['cycle']}: "
                              f"no unit made progress for {stall} cycles; not done: chiplet 2: arrivals {arrivals},")
    assert "chiplet 0:" not in message and "chiplet 1:" not in message and "\n" not in message
    # the run ends right after the others finished (the fast model's cycles of the plan)
    assert status["cycle"] - status["since"] >= stall
    assert status["cycle"] <= 1.01 * fast.run([w])[0].cycles + stall + 64


def test_a_program_for_another_chiplet_stops_the_system_with_the_wrong_chiplet_error():
    w = prepare(preset="rtl-2x2", model="tiny-8x2", tokens=4, routing_spec="uniform", strategy="fse-dp", seed=0)
    ctrl = w.programs.controllers[1]
    text = program.disassemble(ctrl.words).replace("SET reg=CHIPLET_ID, value=1", "SET reg=CHIPLET_ID, value=2")
    w.programs.controllers[1] = dataclasses.replace(ctrl, words=program.assemble(text))
    with pytest.raises(rtl.HardwareError) as info:
        rtl.run([w])
    cycle = info.value.status["cycle"]
    assert str(info.value) == (f"chiplet 1 tile: WRONG_CHIPLET at cycle {cycle} (the program's CHIPLET_ID "
                               f"differs from the chiplet's position)")
    # seen when its program reaches END (an instruction takes two cycles, a LUT five)
    assert 0 < cycle <= 5 * len(ctrl.words) and info.value.cycles == cycle
