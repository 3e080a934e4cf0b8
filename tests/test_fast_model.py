"""The fast model (``sim.fast``) on cases whose answer is known without the RTL.

The cycle-level agreement with the RTL is ``tests/test_fast_vs_rtl.py``; here: the
physical bounds, expected serialisation, the closed forms against flit-by-flit timing,
the model's own bookkeeping (every counter, no leaked slot), and the timeline.
"""

import bisect
import itertools
import json
import math
import re
from collections import defaultdict

import pytest

from scheduler import program
from scheduler.plan import STRATEGIES
from sim import fast
from sim.fast import dram as fast_dram
from sim.fast import network
from sim.fast.chrome import chrome_trace
from sim.fast.params import params_for
from sim.fast.system import controller_program
from sim.workload import prepare


def _work(strategy, preset="rtl-2x2", model="tiny-8x2", tokens=16, routing="mixtral:c4", **kw):
    return prepare(preset=preset, model=model, tokens=tokens, routing_spec=routing, strategy=strategy,
                   with_data=False, **kw)


def _trace(tmp_path, name, rows):
    path = tmp_path / f"{name}.jsonl"
    path.write_text("".join(json.dumps({"token": t, "experts": e, "weights": [0.5] * len(e)}) + "\n"
                            for t, e in enumerate(rows)))
    return str(path)


# --- contract -------------------------------------------------------------------------------

@pytest.mark.parametrize("strategy", STRATEGIES)
def test_result_contract(strategy):
    w = _work(strategy)
    r = fast.run([w])[0]
    assert r.engine == "fast" and r.bit_exact is None
    j = r.to_json()
    plan = w.plan
    assert j["cycles"] == r.cycles > 0
    assert j["slots_in_use_at_end"] == [0] * plan.num_chiplets          # no leaked slot
    assert sum(j["macs"]) == plan.macs()                                  # every MAC of the layer, once
    assert j["dram_bytes"] == plan.weight_bytes_streamed()
    assert all(0 < c.done_cycle <= r.cycles for c in r.chiplets)
    assert all(1 <= h <= plan.slots for h in j["slot_high_water"])
    for c in r.chiplets:
        assert c.mac_cycles * 64 == c.macs and c.busy_cycles >= c.mac_cycles
        assert len(c.link_flits) == len(c.link_busy) == len(c.link_stalled) == 4
        assert all(b >= f for b, f in zip(c.link_busy, c.link_flits))
    if strategy.startswith("fse-dp"):
        # every slice is forwarded N - 1 times; each forward is a header and its payload
        # plus control packets, so the D2D bytes at least cover the payloads
        hops = plan.num_chiplets - 1
        assert j["d2d_bytes"] >= hops * plan.weight_bytes_streamed()


def test_data_and_plan_only_workloads_agree():
    """``prepare(with_data=False)`` (no system) and a full workload give the same run."""
    a = fast.run([_work("hydra")])[0]
    b = fast.run([prepare(preset="rtl-2x2", model="tiny-8x2", tokens=16, routing_spec="mixtral:c4",
                          strategy="hydra")])[0]
    assert a.cycles == b.cycles and a.to_json()["slot_high_water"] == b.to_json()["slot_high_water"]


def test_paper_scale_parameters():
    w = _work("fse-dp-paired", preset="paper-2x2", model="mixtral-8x7b", tokens=16, routing="mixtral:c4")
    p = params_for(w.plan)
    # a flit carries one cycle of the fastest port; the ratios of the rtl presets remain
    assert p.link_bytes == 512 and p.link_rate == (45, 64) and p.dram_rate == (1, 16)
    assert p.mac_rows * p.mac_cols == 2048
    r = fast.run([w])[0]
    assert r.to_json()["slots_in_use_at_end"] == [0] * 4


# --- physics ---------------------------------------------------------------------------------

def test_fse_dp_dram_bound_takes_weight_bytes_over_bandwidth():
    """FSE-DP streams every used expert once over all channels; at 64 tokens compute is
    a small fraction, so the layer takes about unique weight bytes / total DRAM
    bandwidth, plus the program and the last slice's trip round the ring."""
    w = _work("fse-dp-paired", tokens=64)
    hw = w.plan.hardware
    bound = w.plan.weight_bytes_streamed() / (hw.dram_bytes_per_cycle * hw.dram_channels)
    r = fast.run([w])[0]
    assert bound < r.cycles < 1.1 * bound


def test_whole_expert_ep_serialises_a_hot_expert_on_one_chiplet(tmp_path):
    """Every token routed to experts 0 and 1: whole-expert EP computes them on their two
    chiplets one token at a time, FSE-DP spreads the same work over all four, and tiled EP
    splits each expert's FFN columns over two chiplets."""
    L = 256
    spec = _trace(tmp_path, "hot", [[0, 1]] * L)
    whole = fast.run([_work("ep-whole", tokens=L, routing=spec)])[0]
    fse = fast.run([_work("fse-dp", tokens=L, routing=spec)])[0]
    tiled_work = _work("ep", tokens=L, routing=spec)
    tiled = fast.run([tiled_work])[0]
    plan = _work("ep-whole", tokens=L, routing=spec).plan
    hot = [plan.placement[0][0], plan.placement[1][0]]
    per_token = 3 * 32 * 64 // 64                        # MAC cycles of one token on one expert
    for c, counters in enumerate(whole.chiplets):
        assert counters.macs == (L * 3 * 32 * 64 if c in hot else 0)
        if c in hot:
            assert counters.mac_cycles == L * per_token
    assert whole.cycles > L * per_token                  # the hot chiplet's compute alone
    assert all(c.macs == 2 * (L // 4) * 3 * 32 * 64 for c in fse.chiplets)
    assert tiled_work.plan.placement == {0: (0, 1), 1: (2, 3)}
    assert all(c.macs == L * 3 * 32 * 64 // 2 for c in tiled.chiplets)
    assert fse.cycles < whole.cycles and tiled.cycles < whole.cycles


def test_slice_engine_pipeline_fills_the_mac_array():
    """Many tokens per job: after the first hidden vector the array issues a beat every
    cycle (GU and D phases interleaved), so busy cycles are MAC cycles plus a few per
    job."""
    w = _work("fse-dp", tokens=64, routing="uniform")
    r = fast.run([w])[0]
    jobs = sum(len(s) for s in w.plan.streams)
    for c in r.chiplets:
        assert c.busy_cycles - c.mac_cycles < 12 * jobs


# --- parts against their definitions ---------------------------------------------------------

def _bucket_reference(num, den, cap, A0, n, start):
    """The RTL's DRAM bandwidth accumulator, cycle by cycle, no back-pressure."""
    A, t, out = A0, start, []
    while len(out) < n:
        take = A >= den
        if take:
            out.append(t)
        A = min(cap, A + num - (den if take else 0))
        t += 1
    return out


@pytest.mark.parametrize("rate,A0", [((1, 16), 16), ((1, 16), 33), ((3, 32), 4), ((3, 32), 66), ((1, 8), 9),
                                     ((45, 64), 100)])
def test_dram_closed_form_matches_accumulator(rate, A0):
    num, den = rate
    cap = 2 * den + num - 1
    A0 = min(A0, cap)
    ref = _bucket_reference(num, den, cap, A0, 40, 100)
    for j, t in enumerate(ref):
        assert 100 + max(j, -(-(den * (j + 1) - A0) // num)) == t


def test_write_port_round_robin():
    """A network flit and a DRAM flit asking for the slot write port in the same cycle:
    the one that did not have the last write wins; the loser writes the next cycle."""
    ch = fast_dram.DramChannel.__new__(fast_dram.DramChannel)
    ch.num, ch.den = 1, 4
    ch.local = [(0, 4, 0, 12, 4)]           # s0, A(s0), first, last, flits: at 0, 4, 8, 12
    ch.wp_delayed = set()
    assert [t for t in range(14) if ch.writes_at(t)] == [0, 4, 8, 12]
    assert not ch.port_winner(5, last_net=3)        # no DRAM flit in 5
    assert ch.port_winner(4, last_net=3)            # the network wrote last (3 > 0): DRAM wins
    assert not ch.port_winner(8, last_net=2)        # DRAM wrote last (4 > 2): the network wins...
    assert ch.port_winner(9, last_net=8)            # ...and the DRAM flit goes in the next cycle
    assert ch.port_winner(12, last_net=11)          # its write in 9 is older than the network's


def test_program_shape_matches_encoder():
    """The fast model times the controller program the encoder writes."""
    for strategy in STRATEGIES:
        w = prepare(preset="rtl-2x2", model="tiny-8x2", tokens=16, routing_spec="zipf:1.2", strategy=strategy)
        for c in range(w.plan.num_chiplets):
            ops = [program.decode(x)[0].name for x in w.programs.controllers[c].words]
            assert ops == [op for op, _ in controller_program(w.plan, c)]


@pytest.mark.parametrize("preset,model,strategy,tokens", [
    ("paper-2x2", "deepseek-moe-16b", "fse-dp-paired", 64),
    ("paper-3x3", "deepseek-moe-16b", "ep", 64),
])
def test_closed_forms_equal_flit_by_flit(monkeypatch, preset, model, strategy, tokens):
    """Long payloads jump ahead in closed form (periodic forwards, DRAM-rate weight loads,
    memoised streams); timing every flit instead gives the same run."""
    w = prepare(preset=preset, model=model, tokens=tokens, routing_spec="zipf:1.0", strategy=strategy,
                with_data=False)
    a = fast.run([w])[0]

    def every_flit(self):
        k = min(self.nk) + 1
        while k <= self.n:
            for i in range(self.h + 1):
                if self.nk[i] < k and not self._flit(i):
                    self._pause()
                    self._drain_upstream()
                    return
            k += 1

    monkeypatch.setattr(network._Stream, "_lockstep", every_flit)
    b = fast.run([w])[0]
    ja, jb = a.to_json(), b.to_json()
    assert a.cycles == b.cycles
    for key in ("slot_high_water", "done_cycle", "busy_cycles", "macs", "dram_bytes", "d2d_bytes"):
        assert ja[key] == jb[key], key


# --- timeline --------------------------------------------------------------------------------

def test_timeline(tmp_path):
    w = _work("fse-dp-paired", tokens=16)
    path = tmp_path / "trace.json"
    fast.write_timeline(w, path)
    doc = json.loads(path.read_text())
    ev = doc["traceEvents"]
    assert doc["otherData"]["cycles"] == fast.run([w])[0].cycles
    cats = {e.get("cat") for e in ev}
    assert {"dram", "slot", "forward", "compute", "trajectory"} <= cats
    for e in ev:
        assert {"ph", "pid"} <= e.keys()
        if e["ph"] == "X":
            assert e["dur"] > 0 and e["ts"] >= 0 and math.isfinite(e["ts"])
    starts = sorted(e["id"] for e in ev if e["ph"] == "s")
    assert starts == sorted(e["id"] for e in ev if e["ph"] == "f")      # every trajectory arrow lands
    # each slice leaves its DRAM channel once and is forwarded N - 1 times
    slices = sum(len(s) for s in w.plan.streams)
    assert len(starts) == slices * w.plan.num_chiplets
    ep = fast.timeline(_work("ep", tokens=16))
    assert any(e.get("cat") == "packet" for e in ep["traceEvents"])      # tokens and results


def test_timeline_lanes_nest():
    # At paper scale a unit's work overlaps: the slice engine starts a job while the last
    # drains, and the forward engine's queue waits run under the transfer ahead.  Perfetto
    # draws complete events on one track only if they nest or are disjoint, so each unit
    # is split into lanes ("forward engine #0", "#1", ...); nothing may move or vanish.
    w = _work("fse-dp-paired", preset="paper-2x2", model="mixtral-8x7b", tokens=64)
    system = fast.simulate(w, tracing=True)
    ev = json.loads(json.dumps(chrome_trace(system)))["traceEvents"]
    ns = lambda us: math.floor(us * 1000 + 0.5)          # how Perfetto reads a time
    names = {(e["pid"], e["tid"]): e["args"]["name"] for e in ev if e["ph"] == "M" and e["name"] == "thread_name"}
    unit_of = lambda key: re.sub(r" #\d+$", "", names[key])
    tracks, units = defaultdict(list), defaultdict(list)
    for e in ev:
        if e["ph"] == "X":
            tracks[e["pid"], e["tid"]].append((ns(e["ts"]), ns(e["ts"]) + ns(e["dur"])))
            units[e["pid"], unit_of((e["pid"], e["tid"]))].append(e)
    for key, spans in tracks.items():
        spans.sort(key=lambda s: (s[0], -s[1]))
        open_ = []                                       # ends of the events enclosing this one
        for first, end in spans:
            while open_ and open_[-1] <= first:
                open_.pop()
            assert not open_ or end <= open_[-1], (names[key], first, end, open_[-1])   # nested, not crossing
            open_.append(end)
    # each unit has as many lanes as it has events in progress at once, no more
    lanes = defaultdict(list)
    for key in names:
        lanes[key[0], unit_of(key)].append(names[key])
    for (pid, unit), spans in units.items():
        edges = sorted(x for e in spans for x in ((e["args"]["first_cycle"], 1), (e["args"]["first_cycle"] + max(
            e["args"]["last_cycle"] - e["args"]["first_cycle"] + 1, 1), -1)))
        depth = max(itertools.accumulate(d for _, d in edges))
        assert sorted(lanes[pid, unit]) == ([unit] if depth == 1 else [f"{unit} #{k}" for k in range(depth)])
    assert {(e["pid"], e["tid"]) for e in ev if e["ph"] == "M" and e["name"] == "thread_sort_index"} == set(names)
    for unit in ("slice engine (jobs)", "forward engine"):                # this point needs lanes
        assert max(len(lanes[c, unit]) for c in range(len(system.chiplets))) > 1, unit
    # the same jobs and transfers, at the same cycles, as the model recorded
    for c, chip in enumerate(system.chiplets):
        cycles = lambda unit, cat: sorted((e["args"]["first_cycle"], e["args"]["last_cycle"]) for e in units[c, unit]
                                          if e["cat"] == cat)
        assert cycles("slice engine (jobs)", "compute") == sorted(
            (j.first_issue, j.last_issue) for j in chip.all_jobs if j.count and j.first_issue is not None)
        assert cycles("forward engine", "forward") == sorted(
            (d[0], t) for kind, who, t, d in system.events if kind == "forward" and who == c)
    # every flow arrow still starts and lands inside an event of its own track
    starts = {key: [first for first, _ in spans] for key, spans in tracks.items()}
    reach = {key: list(itertools.accumulate((end for _, end in spans), max)) for key, spans in tracks.items()}
    for e in ev:
        if e["ph"] in "sf":
            key, t = (e["pid"], e["tid"]), ns(e["ts"])
            i = bisect.bisect_right(starts[key], t)
            assert i and reach[key][i - 1] > t, e
