"""Errors that stop the system, and the hardware watchdog, on whole-system runs.

Each fault of ``hw.faults`` is injected into a small FSE-DP run on the rtl-2x2 build with
fault injection (one Verilator build; the fault, its chiplet, argument and cycle are
chosen at run time): every error ends the run with the one line naming the chiplet, the
unit, the error and the cycle, soon after the injection and with the system stopped
there; the watchdog names a stuck link and lost credits at once (its link checks), and a
receiver that stops freeing its input when nothing moves any more or, with a small
``age_limit``, by the starvation check.  The default build has none of the injection
logic.
"""

import dataclasses
import re

import pytest

from hw.faults import Fault
from hw.router import Dir
from hw.watchdog import limits as watchdog_limits
from hw.watchdog import link_checks
from sim import rtl
from sim.workload import prepare

pytestmark = pytest.mark.cocotb

#: The cycle each fault becomes active: mid-run (the run takes about 11,400 cycles).
AT = 2000


@pytest.fixture(scope="module")
def work():
    return prepare(preset="rtl-2x2", model="tiny-8x2", tokens=8, routing_spec="mixtral:c4", strategy="fse-dp",
                   seed=0)


@pytest.fixture(scope="module")
def built(work):
    return rtl.build(work.system, faults=True)


def _within(work):
    """Cycles within which a fault acting on the next slot fill, forward or arrival has
    acted: two slices' time from DRAM (each chiplet's channel streams one slice after
    another), plus the access latency."""
    num, den = work.system.dram_rate
    return 2 * (work.plan.slot_bytes // work.system.tile.link_bytes) * den // num + work.system.dram_latency


def _direction(work, src, dst):
    """The link direction from chiplet ``src`` to its neighbour ``dst``."""
    cols = work.system.cols
    (r0, c0), (r1, c1) = divmod(src, cols), divmod(dst, cols)
    return {(0, 1): Dir.E, (0, -1): Dir.W, (1, 0): Dir.S, (-1, 0): Dir.N}[(r1 - r0, c1 - c0)]


def _inject(work, built, code, chiplet, arg=0, at=AT, exc=rtl.HardwareError, limits=None):
    with pytest.raises(exc) as info:
        rtl.run([work], built=built, fault={"code": code, "chiplet": chiplet, "arg": arg, "cycle": at},
                limits=limits)
    return info.value


def _error_line(exc, pattern, at, within):
    """The message is the one line ``pattern`` (with the cycle as a group), the cycle comes
    within ``within`` cycles of the injection and the system stopped there."""
    message = str(exc)
    assert "\n" not in message
    match = re.fullmatch(pattern, message)
    assert match, message
    cycle = int(match.group(1))
    assert cycle == exc.status["cycle"] and at <= cycle <= at + within, message
    assert exc.cycles == cycle, f"the system ran on after the error: cycles {exc.cycles}, error at {cycle}"
    _stopped(exc)
    return cycle


def _stopped(exc):
    """A while after it stopped, every controller has halted and nothing was issued."""
    now, later = exc.details, exc.details["settled"]
    assert later["cycles"] == now["cycles"]
    assert not any(t["running"] for t in later["tiles"]), "a controller still runs"
    for name in ("ctrl_jobs", "ctrl_arrivals"):
        assert [t[name] for t in later["tiles"]] == [t[name] for t in now["tiles"]], name
    for name in ("packets", "flits"):
        assert [d[name] for d in later["drams"]] == [d[name] for d in now["drams"]], f"DRAM {name}"


def test_a_flit_without_a_credit_stops_the_system(work, built):
    """CREDIT_OVERFLOW: the successor of chiplet 0 hands out credits it does not have on
    its ring input; the flit that finds the buffer full is BUFFER_OVERFLOW there."""
    s = work.plan.successor[0]
    channel = 2 * _direction(work, s, 0) + 1          # s's input from chiplet 0, VC 1
    exc = _inject(work, built, Fault.CREDIT_OVERFLOW, s, channel)
    _error_line(exc, rf"chiplet {s} router: BUFFER_OVERFLOW at cycle (\d+) \(a flit arrived without a credit\)",
                AT, _within(work))


def test_an_unreserved_fill_is_blocked_and_stops_the_system(work, built):
    """UNRESERVED_FILL: chiplet 3 writes a DRAM fill into a slot it did not reserve (a live
    one): the write is blocked and FILL_NOT_RESERVED stops the system at its first flit."""
    exc = _inject(work, built, Fault.UNRESERVED_FILL, 3)
    _error_line(exc, r"chiplet 3 router: FILL_NOT_RESERVED at cycle (\d+) \(a fill for a slot that was not "
                     r"reserved \(the write was blocked\)\)", AT, _within(work))


def test_a_corrupt_header_length_stops_the_system(work, built):
    """LENGTH: chiplet 1's next forward claims one flit more than it sends; its successor
    sees LENGTH_MISMATCH at the packet's last flit."""
    s = work.plan.successor[1]
    exc = _inject(work, built, Fault.LENGTH, 1)
    _error_line(exc, rf"chiplet {s} router: LENGTH_MISMATCH at cycle (\d+) \(payload flits differ from the "
                     rf"header's length\)", AT, _within(work))


def test_a_controller_error_stops_the_system(work, built):
    exc = _inject(work, built, Fault.UNKNOWN_EXPERT, 2)
    _error_line(exc, r"chiplet 2 controller: UNKNOWN_EXPERT at cycle (\d+) \(an arrival for an expert without "
                     r"a valid EXPERT entry\)", AT, _within(work))


def test_a_dram_channel_error_stops_the_system_at_once(work, built):
    """DRAM_OPCODE: the channel of chiplet 1 (channel 1) reads the STREAM it waits on as
    an unknown opcode; one cycle later (the error bit is a register) the system stops."""
    exc = _inject(work, built, Fault.DRAM_OPCODE, 1, at=500)
    _error_line(exc, r"chiplet 1 DRAM channel 1: OPCODE at cycle (\d+) \(an opcode other than SET, STREAM, "
                     r"END\)", 500, 1)


def _watchdog_line(exc, chiplet, text, at):
    """The one line names the router of ``chiplet`` and what it waits for (``text``, a
    regular expression) since a cycle after the injection; returns (why it fired, since,
    the cycle it fired)."""
    message = str(exc)
    assert "\n" not in message
    match = re.match(rf"watchdog: chiplet {chiplet} router: {text} since cycle (\d+); stopped at cycle (\d+): "
                     rf"(.*?); not done: ", message)
    assert match, message
    since, detected = int(match.group(1)), int(match.group(2))
    assert at <= since <= detected, message
    assert exc.status["cycle"] == detected and exc.cycles >= detected
    _stopped(exc)
    return match.group(3), since, detected


def test_a_stuck_link_is_named_at_once(work, built):
    """STUCK_LINK: chiplet 1's link to its successor takes no more flits; the first flit
    offered to it is named as soon as it has waited longer than the link's shaper ever
    makes a flit wait (``hw.watchdog.link_checks``), while the rest of the system runs."""
    s = work.plan.successor[1]
    d = _direction(work, 1, s)
    checks = link_checks(work.system.link_latency, work.system.link_rate)
    exc = _inject(work, built, Fault.STUCK_LINK, 1, int(d), exc=rtl.SimulationStalled)
    why, since, detected = _watchdog_line(exc, 1, rf"link {d.name} \(to chiplet {s}\) takes no flit", AT)
    assert why.startswith(f"a flit offered to a link was not taken for {checks.stuck_after} cycles"), why
    assert detected == since + checks.stuck_after and detected - AT < 200, str(exc)


def test_lost_credits_are_named_at_once(work, built):
    """LOST_CREDIT: the credits of chiplet 2's ring link stop coming back; named as soon
    as nothing is in flight and the receiving buffer is empty while the sender is short
    of credits."""
    s = work.plan.successor[2]
    d = _direction(work, 2, s)
    checks = link_checks(work.system.link_latency, work.system.link_rate)
    exc = _inject(work, built, Fault.LOST_CREDIT, 2, 2 * int(d) + 1, exc=rtl.SimulationStalled)
    why, since, detected = _watchdog_line(exc, 2, rf"link {d.name} VC 1 \(to chiplet {s}\) lost credits", AT)
    assert why.startswith(f"a link VC's sender held fewer than the receiver's {work.system.buffer_depth} credits "
                          f"with nothing sent for {checks.send_quiet} cycles"), why
    assert detected == since + checks.send_quiet and detected - AT < 200, str(exc)


def test_a_stuck_receiver_is_named_when_nothing_moves(work, built):
    """STUCK_INPUT: chiplet 1's successor stops freeing its ring input, so chiplet 1 runs
    out of credits (the link checks see nothing wrong: the receiving buffer is full).  The
    rest of the system runs on until nothing anywhere moves; the watchdog then names the
    unit that has waited longest in the most basic way: chiplet 1's router, for a credit."""
    s = work.plan.successor[1]
    d = _direction(work, 1, s)
    limits = watchdog_limits(work.system)
    exc = _inject(work, built, Fault.STUCK_INPUT, s, 2 * int(_direction(work, s, 1)) + 1,
                  exc=rtl.SimulationStalled)
    why, since, detected = _watchdog_line(
        exc, 1, rf"the flit at input (?:forward|control) waits for a credit on link {d.name} VC 1 \(to chiplet {s}\)",
        AT)
    assert why == f"no unit made progress for {limits.stall_limit} cycles"
    # bounded by the starvation check, whatever else runs
    assert detected - since <= limits.age_limit and detected >= since + limits.stall_limit, str(exc)


def test_the_starvation_check_names_a_stuck_receiver_while_the_rest_runs(work, built):
    """The same fault with a small ``age_limit`` and the no-progress limit off: the
    router's starvation check alone fires, ``age_limit`` cycles after the flit began to
    wait, while the other chiplets still compute."""
    s = work.plan.successor[1]
    d = _direction(work, 1, s)
    limits = dataclasses.replace(watchdog_limits(work.system), stall_limit=0, age_limit=400)
    exc = _inject(work, built, Fault.STUCK_INPUT, s, 2 * int(_direction(work, s, 1)) + 1,
                  exc=rtl.SimulationStalled, limits=limits)
    why, since, detected = _watchdog_line(
        exc, 1, rf"the flit at input (?:forward|control) waits for a credit on link {d.name} VC 1 \(to chiplet {s}\)",
        AT)
    assert why == "a flit waited 400 cycles at a router input (the starvation check)"
    assert 400 <= detected - since <= 400 + 4 and since - AT < 200, str(exc)


def test_the_default_build_has_no_fault_injection(work, built):
    """The test-only parameter adds logic only where it is on: the default build's
    Verilog names no fault, the fault build's does."""
    plain = rtl.build(work.system)
    for name in ("tile.v", "system.v"):
        assert not re.search(r"\bfault", (plain.directory / name).read_text()), name
        assert re.search(r"\bfault", (built.directory / name).read_text()), name
