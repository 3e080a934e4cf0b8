"""DRAM latency jitter on the whole system (Verilator), and where it is refused.

Every strategy of the default workload (``fsedp compare``'s defaults: ``tiny-8x2``, 16
tokens, its ``mixtral:c4`` routing, ``rtl-2x2``) runs on a build whose DRAM channels add
0..J random cycles to every request (one extra build; J = 2000), with three jitter seeds and seed 0
(no jitter) in one simulator launch: every output is bit-exact, every seed's cycles
differ from the unjittered ones, and seed 0 gives exactly the cycles of the default
build.  The fast model does not model jitter and says so.
"""

import dataclasses

import pytest

from scheduler.plan import STRATEGIES
from sim import fast, rtl
from sim.cli import DEFAULTS, default_routing, main
from sim.workload import prepare

# Cycles, on the rtl-2x2 channels' 16-cycle latency.  It must be large to show: this
# workload hides a request's latency while its header waits for the routers to start
# (about 400 cycles) and, prefetched, while the packet before it drains (768 cycles for a
# slice of FSE-DP, 6144 for an expert of ep-whole); a jitter of 100 changes no cycle.
JITTER = 2000
SEEDS = (1, 2, 3)


def _default_workloads(**options):
    from scheduler import presets

    routing = default_routing(presets.get_model(DEFAULTS["model"]))
    return [prepare(preset=DEFAULTS["preset"], model=DEFAULTS["model"], tokens=DEFAULTS["tokens"],
                    routing_spec=routing, strategy=s, seed=DEFAULTS["seed"], **options) for s in STRATEGIES]


@pytest.mark.cocotb
def test_every_default_strategy_bit_exact_under_dram_jitter():
    base = _default_workloads(dram_jitter=JITTER)
    assert {w.system.dram_jitter for w in base} == {JITTER}
    works = [dataclasses.replace(w, dram_jitter_seed=seed, spec=w.spec | {"dram_jitter_seed": seed})
             for seed in (0,) + SEEDS for w in base]
    cycles = {}
    for w, r in zip(works, rtl.run(works), strict=True):
        j = r.to_json()
        what = f"{w.strategy}, jitter seed {w.dram_jitter_seed}"
        assert j["bit_exact"] is True, f"{what}: outputs differ: {j['mismatches']}"
        assert j["errors"] == [0] * w.plan.num_chiplets, f"{what}: error bits {j['errors']}"
        assert j["slots_in_use_at_end"] == [0] * w.plan.num_chiplets, f"{what}: slots leaked"
        assert sum(j["macs"]) == w.plan.macs(), what
        cycles[w.dram_jitter_seed, w.strategy] = j["cycles"]
    print("\ncycles (seed 0: no jitter): " + "; ".join(
        f"{s} " + "/".join(str(cycles[seed, s]) for seed in (0,) + SEEDS) for s in STRATEGIES))
    for s in STRATEGIES:
        for seed in SEEDS:
            assert cycles[seed, s] != cycles[0, s], (s, seed)     # the jitter is real
    assert len({cycles[seed, s] for seed in SEEDS for s in STRATEGIES}) > len(STRATEGIES)
    # Seed 0 (an LFSR's fixed point) is no jitter: exactly the default build's cycles.
    plain = rtl.run(_default_workloads())
    assert [r.cycles for r in plain] == [cycles[0, s] for s in STRATEGIES]


def test_the_fast_model_refuses_jitter():
    w = prepare(preset=DEFAULTS["preset"], model=DEFAULTS["model"], tokens=DEFAULTS["tokens"], routing_spec="uniform",
                strategy="fse-dp", dram_jitter=JITTER, with_data=False)
    with pytest.raises(ValueError, match="the fast model does not model DRAM latency jitter"):
        fast.run([w])


@pytest.mark.parametrize("argv, message", [
    (["compare", "--engine", "fast", "--dram-jitter", "8"],
     "fsedp: error: --dram-jitter needs the RTL engine (--engine rtl): the fast model does not model DRAM "
     "latency jitter\n"),
    (["run", "--engine", "fast", "--dram-jitter", "8", "--jitter-seed", "3"],
     "fsedp: error: --dram-jitter needs the RTL engine (--engine rtl): the fast model does not model DRAM "
     "latency jitter\n"),
    (["run", "--jitter-seed", "3"],
     "fsedp: error: --jitter-seed seeds the jitter of --dram-jitter J; give --dram-jitter too\n"),
])
def test_cli_jitter_errors_are_one_line(capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert capsys.readouterr().err == message
