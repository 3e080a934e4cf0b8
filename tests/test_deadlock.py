"""Deadlock freedom: the resource-dependency check (``scheduler.deadlock``) and what the
RTL does where it says a plan can deadlock.

``pytest -k deadlock`` runs all of it: the check on plans with the rules and without
R6 (``SystemConfig.injection_headroom``), the RTL deadlocking with R6 off exactly where
the check predicted a ring of slot waits, the hardware watchdog naming where, a weight
buffer with fewer slots than the headroom never starting, and, with the rules on,
random rings, group rings and plans running clean on both engines.
"""

import dataclasses
import random

import pytest

from hw.config import SystemConfig
from scheduler import presets
from scheduler.deadlock import R6_HEADROOM, DeadlockError, check_plan, slot_cycles, slot_waits
from scheduler.plan import STRATEGIES
from sim import fast
from sim.cli import default_routing, main
from sim.workload import prepare

PRESET, MODEL, TOKENS = "rtl-2x2", "tiny-8x2", 16
# A 2 KiB weight buffer: two slots of an eighth of an expert per chiplet, 64 slices.
TIGHT = 2048


def _routing():
    return default_routing(presets.get_model(MODEL))


def _hw(preset=PRESET, headroom=R6_HEADROOM, sram=None):
    """``preset`` with injection headroom ``headroom`` (``SystemConfig.injection_headroom``;
    R6: 2) and, if given, a weight buffer of ``sram`` bytes."""
    hw = dataclasses.replace(presets.get_hardware(preset), injection_headroom=headroom)
    return hw if sram is None else dataclasses.replace(hw, weight_sram_bytes=sram)


def _system(headroom=R6_HEADROOM, preset=PRESET):
    return SystemConfig.from_preset(_hw(preset, headroom))


def _work(strategy="fse-dp", *, headroom=R6_HEADROOM, sram=None, slices=None, check=True, data=False,
          preset=PRESET, tokens=TOKENS):
    return prepare(preset=_hw(preset, headroom, sram), model=MODEL, tokens=tokens, routing_spec=_routing(),
                   strategy=strategy, slices=slices, with_data=data, check_deadlock=check)


# ------------------------------------------------------------------------ the model

def test_deadlock_model_of_the_default_plans():
    for s in STRATEGIES:
        w = _work(s)
        check_plan(w.plan, w.system)                       # the rules on: nothing can deadlock
        cycles = slot_cycles(w.plan)
        if w.plan.successor is None:
            assert cycles == [], s                          # EP family: no ring of slot waits
            continue
        (ring,) = cycles
        assert sorted(ring.ring) == [0, 1, 2, 3] and ring.slots == 4 * w.plan.slots, s
        assert ring.holders == sum(len(x) for x in w.plan.streams) and ring.injectors == (0, 1, 2, 3)
        assert not ring.can_fill(R6_HEADROOM) and ring.can_fill(1)


def test_deadlock_wait_graph_edges():
    w = _work("fse-dp")
    graph = slot_waits(w.plan)
    for c, s in enumerate(w.plan.successor):
        assert graph[("slots", c)] == {("slots", s)}        # R7
    for k, chiplet in enumerate(w.plan.hardware.dram_chiplets):
        assert graph[("dram", k)] == {("slots", chiplet)}   # R6: injection at its own chiplet
    ep = _work("ep")
    graph = slot_waits(ep.plan)
    assert all(not graph[("slots", c)] or ep.plan.relay for c in range(4))
    for k, stream in enumerate(ep.plan.streams):
        assert graph[("dram", k)] == {("slots", ep.plan.hardware.dram_chiplets[k])} | {
            ("slots", t.dst) for t in stream if ep.plan.stream_kind(k, t) == "WEIGHT"}


def test_deadlock_predicted_without_r6():
    w = _work("fse-dp", headroom=1, sram=TIGHT, check=False)
    (ring,) = slot_cycles(w.plan)
    assert (ring.slots, ring.holders) == (8, 64)
    with pytest.raises(DeadlockError) as exc:
        check_plan(w.plan, w.system)
    msg = str(exc.value)
    assert "\n" not in msg
    assert msg.startswith("deadlock: slot waits close the ring 0 -> 1 -> 3 -> 2 -> 0: its 8 slots can all hold "
                          "slices waiting for a slot at their successor (R7), 64 slices injected by the DRAM "
                          "channels at chiplets 0, 1, 2, 3"), msg
    assert "injection headroom 1 (R6 asks for 2)" in msg
    with pytest.raises(DeadlockError):                     # prepare checks every run
        _work("fse-dp", headroom=1, sram=TIGHT)


def test_no_deadlock_without_r6_when_the_slices_cannot_fill_the_ring():
    # 4 tokens: 48 slices for the ring's 64 slots; even without R6 the ring never fills,
    # and the fast model (which follows the headroom too) runs the plan to its end.
    w = _work("fse-dp", headroom=1, tokens=4)
    (ring,) = slot_cycles(w.plan)
    assert (ring.holders, ring.slots) == (48, 64)
    check_plan(w.plan, w.system)
    assert fast.run([w])[0].cycles > 0
    for s in ("ep", "hydra", "ep-whole", "ep-paper"):      # no cycle that can fill
        check_plan(_work(s, headroom=1).plan, _system(1))


def test_deadlock_fast_model_stalls_where_the_check_predicted():
    w = _work("fse-dp", headroom=1, sram=TIGHT, check=False)
    with pytest.raises(RuntimeError, match="never finished"):
        fast.run([w])
    fast.run([_work("fse-dp", sram=TIGHT)])              # R6 on: the same plan runs


def test_deadlock_relay_cycle_without_r6():
    # EP at the tight buffer stages more tiles per chiplet than it has slots: a cycle of
    # staged tiles, each waiting for a slot at its destination, can fill without R6.
    w = _work("ep", headroom=1, sram=TIGHT, check=False)
    assert w.plan.relay and w.plan.slots == 2
    cycles = slot_cycles(w.plan)
    assert cycles and all(c.kind == "relay" and c.holders >= c.slots for c in cycles)
    with pytest.raises(DeadlockError, match=r"^deadlock: slot waits close the cycle .* tiles staged for the next"):
        check_plan(w.plan, w.system)
    check_plan(_work("ep", sram=TIGHT).plan, _system())


def test_deadlock_slots_below_the_injection_headroom():
    w = _work("fse-dp", headroom=3, sram=TIGHT, check=False)
    assert w.plan.slots == 2
    with pytest.raises(DeadlockError, match=r"^deadlock: the DRAM channel at chiplet 0 can never inject a slice: "
                                            r"it needs 3 free slots \(injection headroom\) and the chiplet has 2$"):
        check_plan(w.plan, w.system)


def _random_rings(rng, n, groups):
    """A successor table of ``groups`` random rings over ``n`` chiplets."""
    chiplets = list(range(n))
    rng.shuffle(chiplets)
    cuts = sorted(rng.sample(range(1, n), groups - 1)) if groups > 1 else []
    succ = [None] * n
    for part in (chiplets[a:b] for a, b in zip([0] + cuts, cuts + [n])):
        for i, c in enumerate(part):
            succ[c] = part[(i + 1) % len(part)]
    return tuple(succ)


@pytest.mark.parametrize("preset", ["rtl-2x2", "rtl-3x3", "rtl-4x4"])
def test_deadlock_free_with_the_rules_on_random_rings_and_groups(preset):
    rng = random.Random(7)
    hw = presets.get_hardware(preset)
    system = _system(preset=preset)
    base = {s: _work(s, preset=preset) for s in ("fse-dp", "fse-dp-paired")}
    for trial in range(200):
        groups = rng.randint(1, min(4, hw.num_chiplets))
        succ = _random_rings(rng, hw.num_chiplets, groups)
        for s, w in base.items():
            plan = dataclasses.replace(w.plan, successor=succ)
            check_plan(plan, system)
            cycles = slot_cycles(plan)
            assert sorted(c for cy in cycles for c in cy.ring) == sorted(
                c for c in range(hw.num_chiplets) if succ[c] != c), (trial, succ)
            # Without R6 a ring with an injector and enough slices is reported.
            fills = [cy for cy in cycles if cy.holders >= cy.slots and cy.holders]
            if fills:
                with pytest.raises(DeadlockError):
                    check_plan(plan, dataclasses.replace(system, injection_headroom=1))


def test_deadlock_cli_error_is_one_line(tmp_path, capsys):
    from scheduler import description

    desc = tmp_path / "no-r6.toml"
    desc.write_text(description.dump_hardware(dataclasses.replace(
        presets.get_hardware(PRESET), name="no-r6", injection_headroom=1, weight_sram_bytes=TIGHT)))
    with pytest.raises(SystemExit) as exc:
        main(["run", "--engine", "fast", "--preset", str(desc), "--strategy", "fse-dp"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("fsedp: error: deadlock: slot waits close the ring"), err


# ------------------------------------------------------------------------ the RTL

@pytest.mark.cocotb
def test_deadlock_rtl_without_r6_stalls_where_the_check_predicted():
    """R6 off (headroom 1): the plan the check refuses deadlocks in the RTL; the hardware
    watchdog stops it and names a router of the predicted ring waiting for a slot at its
    successor.  The same plan with R6 on (the default build) runs bit-exact."""
    from sim import rtl

    w = _work("fse-dp", headroom=1, sram=TIGHT, check=False, data=True)
    with pytest.raises(DeadlockError) as predicted:
        check_plan(w.plan, w.system)
    ring = slot_cycles(w.plan)[0].ring
    assert "0 -> 1 -> 3 -> 2 -> 0" in str(predicted.value)
    with pytest.raises(rtl.SimulationStalled) as stalled:
        rtl.run([w])
    msg = str(stalled.value)
    print("\n" + msg)
    assert "\n" not in msg and msg.startswith("watchdog: chiplet "), msg
    assert int(msg.split()[2]) in ring
    assert "no unit made progress" in msg
    assert "GRANT" in msg or "slot" in msg, msg
    ok = rtl.run([_work("fse-dp", sram=TIGHT, data=True)])[0]
    assert ok.to_json()["bit_exact"] is True


@pytest.mark.cocotb
def test_deadlock_rtl_slots_below_the_headroom_never_start():
    """Headroom 3 on a two-slot plan: no DRAM channel can ever inject; the watchdog names
    a router whose DRAM channel waits for slots (R6), as the check said."""
    from sim import rtl

    w = _work("fse-dp", headroom=3, sram=TIGHT, check=False, data=True)
    with pytest.raises(DeadlockError, match="can never inject"):
        check_plan(w.plan, w.system)
    with pytest.raises(rtl.SimulationStalled) as stalled:
        rtl.run([w])
    msg = str(stalled.value)
    print("\n" + msg)
    assert "\n" not in msg and "DRAM" in msg and "R6" in msg, msg


def _ring_lists(succ):
    """The rings of a successor table, each in visiting order."""
    seen, rings = set(), []
    for start in range(len(succ)):
        if start not in seen:
            ring, c = [], start
            while c not in seen:
                seen.add(c)
                ring.append(c)
                c = succ[c]
            rings.append(tuple(ring))
    return rings


@pytest.mark.cocotb
def test_deadlock_free_rtl_random_rings_and_groups_rules_on():
    """With the rules on, FSE-DP on random rings and random group rings of rtl-2x2 at the
    tight buffer (two slots, where R6 matters) passes the check and runs bit-exact in the
    RTL, with every slot free at the end (the build of the R6-on test above)."""
    from sim import rtl

    rng = random.Random(3)
    works = []
    hw = _hw(sram=TIGHT)
    for trial in range(4):
        rings = _ring_lists(_random_rings(rng, 4, 1 + trial % 2))
        if any(len(r) > 1 and not any(c in hw.dram_chiplets for c in r) for r in rings):
            continue
        for s in ("fse-dp", "fse-dp-paired"):
            works.append(prepare(preset=hw, model=MODEL, tokens=TOKENS, routing_spec=_routing(), strategy=s,
                                 groups=rings))
    assert len(works) >= 6
    for w, r in zip(works, rtl.run(works), strict=True):
        j = r.to_json()
        assert j["bit_exact"] is True, (w.plan.groups, j["mismatches"])
        assert j["slots_in_use_at_end"] == [0] * 4, w.plan.groups
