"""The DRAM channel model in the Amaranth simulator: packets of an encoded plan, the
bandwidth and latency model, back-pressure, errors, latency jitter, and Verilog
conversion.

Cycle numbers in these tests count from the cycle ``start`` is high (cycle 0); a flit
"at cycle c" was accepted in cycle c.
"""

import dataclasses
import random
from dataclasses import dataclass, field

import numpy as np
import pytest
from amaranth.hdl import Elaboratable, Module
from amaranth.lib import stream, wiring

from hw.config import SystemConfig
from hw.dram import DramChannel, DramError, channel_seed, jitter_draws
from hw.packets import HEADER_BITS, Agent, Flag, PacketKind, flit_layout, parse_packet
from hw.slice_layout import slice_flits
from scheduler import golden, presets, program, routing
from scheduler.strategies import build_plan
from sim.rtl.amaranth_sim import assert_rejects, run_testbench, stream_put
from sim.rtl.router_harness import Recorder, TileModel, configure, simulate
from sim.rtl.toolchain import to_verilog

HW = presets.get_hardware("rtl-2x2")
SYSTEM = SystemConfig.from_preset(HW)
TINY = presets.get_model("tiny-8x2")
LINK = SYSTEM.tile.link_bytes
WORD = SYSTEM.tile.word_bytes
LANES = WORD // LINK
STATS = ("flits", "packets", "busy", "stalled", "wait_latency", "wait_bandwidth", "wait_program")


# --- bench ------------------------------------------------------------------------------

@dataclass
class Run:
    """What one program run did, seen from the ``out`` port."""

    flits: list = field(default_factory=list)      # (cycle, data, last, is_header) accepted
    stalled: int = 0                               # cycles valid & ~ready seen by the consumer
    done_cycle: int = -1
    error: int = 0
    stats: dict = field(default_factory=dict)

    def packets(self) -> list[list[int]]:
        out, cur = [], []
        for _, data, last, _ in self.flits:
            cur.append(data)
            if last:
                out.append(cur)
                cur = []
        assert not cur, "a packet without its last flit"
        return out

    def payload_cycles(self) -> list[int]:
        return [c for c, _, _, h in self.flits if not h]

    def header_cycles(self) -> list[int]:
        return [c for c, _, _, h in self.flits if h]


def image_words(image) -> list[int]:
    """A ``(words, word_bytes)`` uint8 image as little-endian word integers."""
    return [int.from_bytes(np.asarray(row, np.uint8).tobytes(), "little") for row in image]


def run_program(dut, words, image=(), *, ready=None, limit=100_000, length=None, after=None, seed=None) -> Run:
    """Load ``image`` (word integers) and ``words`` through the host ports, start, and
    consume ``out`` until ``done`` (``ready(cycle) -> bool``, default always ready).

    ``after(ctx, run)``, if given, runs once ``done`` is seen (for a second phase).
    ``seed``: the ``jitter_seed`` of a channel with latency jitter."""
    run = Run()
    ready = ready or (lambda c: True)

    async def tb(ctx):
        for addr, w in enumerate(image):
            await stream_put(ctx, dut.weight_wr, {"addr": addr, "data": w})
        for addr, w in enumerate(words):
            await stream_put(ctx, dut.program_wr, {"addr": addr, "data": w})
        ctx.set(dut.program_words, len(words) if length is None else length)
        if seed is not None:
            ctx.set(dut.jitter_seed, seed)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        header_next = True
        for cycle in range(1, limit):
            ctx.set(dut.out.ready, ready(cycle))
            _, _, valid, rdy, payload, done = await ctx.tick().sample(
                dut.out.valid, dut.out.ready, dut.out.payload, dut.done)
            if done:
                run.done_cycle = cycle
                break
            if valid and rdy:
                run.flits.append((cycle, payload.data, payload.last, header_next))
                header_next = bool(payload.last)
            elif valid:
                run.stalled += 1
        else:
            raise AssertionError(f"done not reached within {limit} cycles")
        run.error = ctx.get(dut.error)
        run.stats = {name: ctx.get(getattr(dut.stats, name)) for name in STATS}
        if after is not None:
            await after(ctx, run)

    run_testbench(dut, tb)
    s = run.stats
    # Every busy cycle is counted exactly once, and the counters agree with the consumer.
    assert s["busy"] == sum(s[n] for n in STATS if n != "busy"), s
    assert s["busy"] == run.done_cycle - 1
    assert s["stalled"] == run.stalled
    assert s["flits"] == len(run.payload_cycles()) and s["packets"] == len(run.header_cycles())
    return run


def stream_program(streams, *, slot_words, chiplet=0, end=True) -> list[int]:
    """A DRAM program: ``streams`` are ``(kind, expert, slice, dst, addr)``."""
    text = [f"SET CHIPLET_ID, {chiplet}", f"SET SLOT_WORDS, {slot_words}"]
    text += [f"STREAM kind={k}, expert={e}, slice={s}, dst={d}, addr={a}" for k, e, s, d, a in streams]
    if end:
        text.append("END")
    return program.assemble("\n".join(text))


def random_image(words, seed=0) -> list[int]:
    rng = np.random.default_rng(seed)
    return image_words(rng.integers(0, 256, (words, WORD), dtype=np.uint8))


def channel(**overrides) -> DramChannel:
    overrides.setdefault("dram_words", 256)
    overrides.setdefault("program_words", 64)
    return DramChannel.from_config(SYSTEM, **overrides)


def expected_flits(image, addr, slot_words):
    rows = [w.to_bytes(WORD, "little") for w in image[addr:addr + slot_words]]
    return slice_flits(np.frombuffer(b"".join(rows), np.uint8), LINK)


def assert_rate(cycles, num, den):
    """Payload flit ``j`` leaves within one flit of the ideal line ``t0 + j * den / num``."""
    t0 = cycles[0]
    for j, t in enumerate(cycles):
        assert abs(j - (t - t0) * num / den) < 1, (j, t - t0, num, den)


# --- packets of an encoded plan ------------------------------------------------------------

@pytest.mark.parametrize("strategy, tokens, channels", [("fse-dp", 6, [0, 1, 2, 3]), ("ep", 3, [1, 2]),
                                                       ("ep-whole", 3, [0, 1])])
def test_packets_of_an_encoded_plan_carry_the_dram_image(strategy, tokens, channels):
    trace = routing.uniform(tokens, TINY.num_experts, TINY.top_k, seed=3)
    plan = build_plan(strategy, TINY, HW, trace)
    layer = golden.random_layer(TINY.num_experts, TINY.d_model, TINY.d_ff, seed=3)
    progs = program.encode_plan(plan, layer, SYSTEM.tile)
    images = program.dram_images(plan, layer, SYSTEM.tile)
    slot_words = plan.slot_bytes // WORD
    for ch in channels:
        transfers = plan.streams[ch]
        assert transfers, "the plan gives this channel nothing to stream"
        dut = DramChannel.from_config(SYSTEM, program_words=64)
        run = run_program(dut, progs.drams[ch].words, image_words(images[ch]))
        assert run.error == 0
        packets = [parse_packet(p, LINK) for p in run.packets()]
        streams = [ops for op, ops in map(program.decode, progs.drams[ch].words) if op.name == "STREAM"]
        assert len(packets) == len(transfers) == len(streams)
        for t, ops, pkt in zip(transfers, streams, packets):
            relay = plan.stream_kind(ch, t) == "RELAY"
            assert relay == (strategy == "ep" and t.dst != HW.dram_chiplets[ch])
            assert pkt.header == {
                "kind": PacketKind.SLICE if strategy == "fse-dp" else PacketKind.WEIGHT,
                "flags": Flag.RELAY if relay else 0, "src": HW.dram_chiplets[ch], "dst": t.dst,
                "length": slot_words * LANES,
                "expert": t.expert, "slice": t.slice, "hops": 0, "slot": 0, "token": 0,
                "agent": Agent(0)}
            a = ops["addr"]
            want = slice_flits(images[ch][a:a + slot_words], LINK)
            assert pkt.payload == b"".join(f.to_bytes(LINK, "little") for f in want)
        # Header flits: zero above the header bits.
        assert all(f[1] >> HEADER_BITS == 0 for f in run.flits if f[3])
        # Default timing: back-to-back prefetched streams at the preset's rate, headers free.
        num, den = SYSTEM.dram_rate
        assert_rate(run.payload_cycles(), num, den)
        assert run.stats["wait_latency"] == SYSTEM.dram_latency - 1


# --- timing model ------------------------------------------------------------------------

@pytest.mark.parametrize("rate", [(1, 16), (3, 7), (5, 8), (1, 2)])
def test_back_to_back_streams_deliver_the_rate(rate):
    num, den = rate
    dut = channel(rate=rate, latency=9)
    image = random_image(64, seed=num)
    streams = [("SLICE", i, i, 0, 5 * i) for i in range(6)]      # 6 x 5 words = 120 flits
    run = run_program(dut, stream_program(streams, slot_words=5), image)
    cycles = run.payload_cycles()
    assert len(cycles) == 6 * 5 * LANES
    assert_rate(cycles, num, den)
    # ... and the run takes exactly as long as the flits need at that rate.
    assert cycles[-1] - cycles[0] == -(-(len(cycles) - 1) * den // num)


def test_full_rate_has_no_bubbles_and_a_header_costs_one_cycle():
    dut = channel(rate=(1, 1), latency=3)
    image = random_image(16)
    run = run_program(dut, stream_program([("SLICE", 0, 0, 0, 0), ("SLICE", 0, 1, 0, 7)], slot_words=7),
                      image)
    cycles = [c for c, *_ in run.flits]
    n = 7 * LANES
    assert cycles[1:n + 1] == list(range(cycles[1], cycles[1] + n))          # packet 0's payload
    assert cycles[n + 1:] == list(range(cycles[n] + 1, cycles[n] + n + 2)) # header, payload
    assert run.packets()[1][1:] == expected_flits(image, 7, 7)


@pytest.mark.parametrize("word_bytes, link_bytes", [(16, 16), (32, 16), (64, 32), (128, 16)])
def test_every_word_and_link_width_serializes_in_lane_order(word_bytes, link_bytes):
    lanes = word_bytes // link_bytes
    dut = DramChannel(word_bytes=word_bytes, link_bytes=link_bytes, dram_words=16, program_words=8,
                      rate=(1, 1), latency=2)
    rng = np.random.default_rng(word_bytes + link_bytes)
    image = rng.integers(0, 256, (16, word_bytes), dtype=np.uint8)
    run = run_program(dut, stream_program([("SLICE", 1, 2, 0, 3)], slot_words=5),
                      [int.from_bytes(row.tobytes(), "little") for row in image])
    (pkt,) = [parse_packet(p, link_bytes) for p in run.packets()]
    assert pkt.header["length"] == 5 * lanes
    assert pkt.payload == b"".join(f.to_bytes(link_bytes, "little") for f in slice_flits(image[3:8], link_bytes))
    cycles = run.payload_cycles()
    assert cycles == list(range(cycles[0], cycles[0] + 5 * lanes))


@pytest.mark.parametrize("latency", [0, 1, 7, 16, 40])
def test_first_payload_flit_waits_for_the_latency(latency):
    """STREAM is instruction 2: it executes in cycle 3 and issues in cycle 4, when its
    header leaves; the first payload flit leaves at cycle 4 + max(latency, 1)."""
    dut = channel(latency=latency, rate=(1, 4))
    run = run_program(dut, stream_program([("WEIGHT", 1, 0, 2, 3)], slot_words=2), random_image(8))
    assert run.header_cycles() == [4]
    assert run.payload_cycles()[0] == 4 + max(latency, 1)
    assert run.stats["wait_latency"] == max(latency, 1) - 1
    assert run.stats["wait_program"] == 3


def test_prefetch_hides_the_latency_of_the_next_stream():
    """Latency 40, and each packet drains for 64 cycles: with two requests in flight the
    second stream's data follows the first at the rate; with one, it waits the latency."""
    streams = [("SLICE", 0, 0, 0, 0), ("SLICE", 0, 1, 0, 8)]
    gaps = {}
    for requests in (1, 2):
        dut = channel(latency=40, rate=(1, 2), requests=requests)
        run = run_program(dut, stream_program(streams, slot_words=8), random_image(16))
        cycles = run.payload_cycles()
        gaps[requests] = cycles[32] - cycles[31]
        assert run.packets()[1][1:] == expected_flits(random_image(16), 8, 8)
    assert gaps[2] == 2                 # the rate: one flit per two cycles
    assert gaps[1] == 1 + 40            # header in the cycle after the last flit, then the latency


@pytest.mark.parametrize("stall, delay", [(3, 0), (8, 0), (100, 92)])
def test_a_stall_within_the_bucket_costs_no_bandwidth(stall, delay):
    """Rate 1/8 with a bucket of two beats: the router refusing a payload flit for up to
    (2 - 1) * 8 cycles delays nothing; a longer stall loses the tokens beyond the bucket,
    and then exactly two flits leave back to back."""
    streams = [("SLICE", 0, 0, 0, 0)]
    words = stream_program(streams, slot_words=4)
    image = random_image(8)
    base = run_program(channel(rate=(1, 8), latency=2), words, image)
    t = base.payload_cycles()[5]
    run = run_program(channel(rate=(1, 8), latency=2), words, image,
                      ready=lambda c: not t <= c < t + stall)
    cycles = run.payload_cycles()
    assert run.stalled == stall
    assert cycles[5] == t + stall
    assert cycles[-1] - base.payload_cycles()[-1] == delay
    assert run.packets() == base.packets()
    if stall > 8:
        assert cycles[6] == cycles[5] + 1 and cycles[7] > cycles[6] + 1


@pytest.mark.parametrize("seed", [1, 2])
def test_random_back_pressure_loses_nothing_and_never_bursts_past_the_bucket(seed):
    rng = random.Random(seed)
    num, den, bucket = (1, 4, 3) if seed == 1 else (2, 3, 2)
    dut = channel(rate=(num, den), latency=6, bucket_beats=bucket)
    image = random_image(40, seed=seed)
    streams = [("SLICE" if i % 2 else "WEIGHT", i, 7 - i, i % 4, 4 * i) for i in range(8)]
    # Runs of ready and of stall, some longer than the bucket covers.
    pattern = []
    while len(pattern) < 5000:
        pattern += [rng.random() < 0.6] * rng.choice([1, 1, 2, 3, 5, 20, 60])
    run = run_program(dut, stream_program(streams, slot_words=4, chiplet=2), image,
                      ready=lambda c: pattern[c % len(pattern)])
    assert run.stalled > 100
    packets = [parse_packet(p, LINK) for p in run.packets()]
    assert len(packets) == 8
    for (kind, e, s, d, a), pkt in zip(streams, packets):
        assert pkt.kind == PacketKind[kind] and pkt.header["src"] == 2 and pkt.header["dst"] == d
        assert (pkt.header["expert"], pkt.header["slice"], pkt.header["length"]) == (e, s, 4 * LANES)
        assert pkt.payload == b"".join(f.to_bytes(LINK, "little") for f in expected_flits(image, a, 4))
    # Bandwidth bound: any window of T cycles carries at most (cap + T * num) / den flits.
    cap = bucket * den + num - 1
    cycles = run.payload_cycles()
    for i in range(len(cycles)):
        for j in range(i, min(len(cycles), i + 40)):
            assert j - i + 1 <= (cap + (cycles[j] - cycles[i] + 1) * num) // den


# --- program control and errors ----------------------------------------------------------

def test_done_rises_after_the_last_flit_and_start_runs_again():
    dut = channel(latency=2, rate=(1, 2))
    words = stream_program([("SLICE", 4, 5, 0, 1)], slot_words=3, chiplet=1)
    second = Run()

    async def again(ctx, first):
        assert ctx.get(dut.done) and not ctx.get(dut.busy)
        assert ctx.get(dut.weight_wr.ready) and ctx.get(dut.program_wr.ready)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        assert not ctx.get(dut.done) and ctx.get(dut.busy)
        assert not ctx.get(dut.weight_wr.ready) and not ctx.get(dut.program_wr.ready)
        assert ctx.get(dut.stats.flits) == 0
        while not ctx.get(dut.done):
            _, _, v, p = await ctx.tick().sample(dut.out.valid, dut.out.payload)
            if v:
                second.flits.append((0, p.data, p.last, False))
        second.stats = {name: ctx.get(getattr(dut.stats, name)) for name in STATS}

    run = run_program(dut, words, random_image(8), after=again)
    assert run.done_cycle == run.flits[-1][0] + 1
    assert run.flits[-1][2] == 1 and sum(f[2] for f in run.flits) == 1
    assert [f[1] for f in second.flits] == [f[1] for f in run.flits]
    assert second.stats == run.stats


def test_set_changes_apply_to_later_streams_only():
    text = """SET CHIPLET_ID, 3
              SET SLOT_WORDS, 2
              STREAM kind=SLICE, expert=1, slice=0, dst=3, addr=0
              SET SLOT_WORDS, 1
              SET CHIPLET_ID, 0
              STREAM kind=WEIGHT, expert=2, slice=0, dst=1, addr=5
              END"""
    image = random_image(8)
    run = run_program(channel(rate=(1, 1), latency=30), program.assemble(text), image)
    a, b = (parse_packet(p, LINK) for p in run.packets())
    assert (a.header["src"], a.header["length"], b.header["src"], b.header["length"]) == (3, 2 * LANES, 0, LANES)
    assert b.payload == b"".join(f.to_bytes(LINK, "little") for f in expected_flits(image, 5, 1))


def _error_run(text_or_words, *, dram_words=32, length=None):
    words = program.assemble(text_or_words) if isinstance(text_or_words, str) else text_or_words
    dut = channel(dram_words=dram_words, rate=(1, 2), latency=4)
    run = run_program(dut, words, random_image(dram_words), length=length)
    return run, [parse_packet(p, LINK) for p in run.packets()]


GOOD = "SET SLOT_WORDS, 4\nSTREAM kind=SLICE, expert=1, slice=0, dst=0, addr=0\n"


@pytest.mark.parametrize("bad", [program.assemble("LUT 0, 1, 2, 3, 4")[0], 0x7F, 0x11])
def test_unknown_opcode_stops_after_the_packets_before_it(bad):
    words = program.assemble(GOOD) + [bad] + program.assemble(GOOD + "END")
    run, packets = _error_run(words)
    assert run.error == DramError.OPCODE
    assert len(packets) == 1 and len(packets[0].payload) == 4 * WORD


def test_stream_past_the_end_of_dram_is_an_error_and_is_not_sent():
    fits = "SET SLOT_WORDS, 4\nSTREAM kind=SLICE, expert=1, slice=0, dst=0, addr=28\n"
    run, packets = _error_run(fits + "END")
    assert run.error == 0 and len(packets) == 1                        # 28 + 4 == dram_words
    run, packets = _error_run(fits + "STREAM kind=SLICE, expert=1, slice=1, dst=0, addr=29\nEND")
    assert run.error == DramError.RANGE and len(packets) == 1
    run, packets = _error_run("STREAM kind=SLICE, expert=1, slice=0, dst=0, addr=0\nEND")
    assert run.error == DramError.RANGE and packets == []              # SLOT_WORDS never set


def test_missing_end_is_an_error():
    run, packets = _error_run(GOOD)
    assert run.error == DramError.MISSING_END and len(packets) == 1
    run, packets = _error_run(GOOD + "END", length=0)
    assert run.error == DramError.MISSING_END and packets == []


@pytest.mark.parametrize("text", ["SET SLOTS, 12", "SET SLOT_WORDS, 0", "SET SLOT_WORDS, 33",
                                  "SET CHIPLET_ID, 256"])
def test_bad_set_is_an_error(text):
    run, packets = _error_run(GOOD + text + "\n" + GOOD + "END")
    assert run.error == DramError.SET and len(packets) == 1


def test_stop_issues_nothing_more():
    """``stop`` (the system's, at an error anywhere): from that cycle the channel offers no
    flit and queues no request; it resumes nothing and never reports done."""
    words = program.assemble("SET SLOT_WORDS, 4\n" + "".join(
        f"STREAM kind=SLICE, expert=1, slice={i}, dst=0, addr={4 * i}\n" for i in range(6)) + "END")
    dut = channel(dram_words=32, rate=(1, 2), latency=4)
    seen = {"before": 0, "after": 0}

    async def tb(ctx):
        for addr, w in enumerate(random_image(32)):
            await stream_put(ctx, dut.weight_wr, {"addr": addr, "data": w})
        for addr, w in enumerate(words):
            await stream_put(ctx, dut.program_wr, {"addr": addr, "data": w})
        ctx.set(dut.program_words, len(words))
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        ctx.set(dut.out.ready, 1)
        for cycle in range(200):
            ctx.set(dut.stop, cycle >= 20)
            _, _, valid, done = await ctx.tick().sample(dut.out.valid, dut.done)
            seen["before" if cycle < 20 else "after"] += valid
            assert not done
        assert ctx.get(dut.stats.packets) < 6 and ctx.get(dut.error) == 0

    run_testbench(dut, tb)
    assert seen["before"] > 0 and seen["after"] == 0


def test_constructor_rejects_bad_parameters():
    assert_rejects(lambda: DramChannel(rate=(3, 2)), ValueError,
                   "Rate must be a tuple (num, den) of integers with 0 < num <= den, not (3, 2)")
    assert_rejects(lambda: DramChannel(latency=-1), TypeError,
                   "Latency must be an integer of at least 0, not -1")
    assert_rejects(lambda: DramChannel(word_bytes=64, link_bytes=24), ValueError,
                   "Link width 24 bytes must divide the word (64 bytes)")
    assert_rejects(lambda: DramChannel(program_words=1), TypeError,
                   "Program capacity in words must be an integer of at least 2, not 1")
    assert_rejects(lambda: DramChannel(bucket_beats=0), TypeError,
                   "Bucket depth in beats must be a positive integer, not 0")
    assert_rejects(lambda: DramChannel(link_bytes=8, word_bytes=64), ValueError,
                   "Link width must be at least 12 bytes to carry a header flit, not 8")
    assert_rejects(lambda: DramChannel(jitter=-1), TypeError,
                   "Latency jitter must be an integer of at least 0, not -1")
    assert_rejects(lambda: DramChannel(jitter=1 << 16), ValueError,
                   "Latency jitter must be at most 65535, not 65536")


# --- latency jitter ------------------------------------------------------------------------

def _streams(n, slot_words):
    return [("SLICE" if k % 2 else "WEIGHT", k, k, 1, (k * slot_words) % 200) for k in range(n)]


def _latencies(run):
    """Cycles from each packet's header to its first payload flit."""
    heads, firsts, after_header = [], [], False
    for cycle, _, _, is_header in run.flits:
        if is_header:
            heads.append(cycle)
        elif after_header:
            firsts.append(cycle)
        after_header = is_header
    return [f - h for h, f in zip(heads, firsts)]


@pytest.mark.parametrize("seed", [1, 0xC0FFEE])
def test_jitter_adds_each_request_its_lfsr_draw(seed):
    """One request in flight: every packet's first payload flit waits ``latency + j``
    after its header, ``j`` the request's draw from the LFSR (its software mirror), and
    the draws vary."""
    n, jitter = 12, 7
    dut = channel(latency=16, rate=(1, 4), requests=1, jitter=jitter)
    run = run_program(dut, stream_program(_streams(n, 2), slot_words=2), random_image(256), seed=seed)
    draws = jitter_draws(seed, jitter, n)
    assert _latencies(run) == [16 + j for j in draws]
    assert len(set(draws)) > 3 and max(draws) <= jitter


def test_jitter_seed_zero_draws_none():
    """Seed 0 (the LFSR's fixed point): every flit at the cycle of a channel without jitter."""
    words, image = stream_program(_streams(8, 3), slot_words=3), random_image(256)
    plain = run_program(channel(latency=16, rate=(1, 4)), words, image)
    zero = run_program(channel(latency=16, rate=(1, 4), jitter=40), words, image, seed=0)
    assert zero.flits == plain.flits and zero.done_cycle == plain.done_cycle


@pytest.mark.parametrize("seed", [3, 4])
def test_jitter_keeps_program_order_under_back_pressure(seed):
    """Three requests in flight, jitter up to 60 cycles on a 4-cycle latency (a later
    request often passes its latency first) and random back-pressure: every packet
    arrives in program order with its own words, and the channel is slower than without
    jitter."""
    rng = random.Random(seed)
    n, slot_words = 16, 3
    streams, image = _streams(n, slot_words), random_image(256, seed)
    words = stream_program(streams, slot_words=slot_words)
    ready = [rng.random() < 0.7 for _ in range(20_000)]
    runs = {j: run_program(channel(latency=4, rate=(1, 2), requests=3, jitter=j), words, image,
                           ready=lambda c: ready[c], seed=seed if j else None) for j in (0, 60)}
    for run in runs.values():
        packets = [parse_packet(p, LINK) for p in run.packets()]
        assert [(p.header["expert"], p.header["slice"]) for p in packets] == [(k, k) for k in range(n)]
        for p, (_, _, _, _, addr) in zip(packets, streams):
            flits = expected_flits(image, addr, slot_words)
            assert p.payload == b"".join(f.to_bytes(LINK, "little") for f in flits)
    assert runs[60].done_cycle > runs[0].done_cycle
    assert runs[60].stats["wait_latency"] > runs[0].stats["wait_latency"]


def test_channel_seeds_differ_per_channel_and_keep_zero():
    """``channel_seed`` in HDL equals its integer form; channels get different seeds whose
    first draws are unrelated, and seed 0 stays 0 (no jitter) on every channel."""
    from amaranth.hdl import Signal
    from amaranth.sim import Simulator

    seeds = [0, 1, 2, 0xDEADBEEF, 0xFFFFFFFF]
    m = Module()
    sig = Signal(32)
    outs = [Signal(32, name=f"seed{k}") for k in range(4)]
    m.d.comb += [o.eq(channel_seed(sig, k, m)) for k, o in enumerate(outs)]
    got = []

    async def tb(ctx):
        for s in seeds:
            ctx.set(sig, s)
            got.append([ctx.get(o) for o in outs])

    sim = Simulator(m)
    sim.add_testbench(tb)
    sim.run()
    assert got == [[channel_seed(s, k) for k in range(4)] for s in seeds]
    assert got[0] == [0] * 4 and all(len(set(row)) == 4 for row in got[1:])
    firsts = [jitter_draws(channel_seed(1, k), 2000, 1)[0] for k in range(4)]
    assert max(firsts) - min(firsts) > 500, firsts


# --- with the router -----------------------------------------------------------------------

class ChannelAndRouter(Elaboratable):
    """A :class:`hw.router.Router` with a DramChannel on its ``dram`` port."""

    def __init__(self, **channel_args):
        from hw.router import Router
        self.router = Router(max_slots=4, max_chiplets=4)
        self.dram = DramChannel(**channel_args)

    def elaborate(self, platform):
        m = Module()
        m.submodules.router, m.submodules.dram = self.router, self.dram
        wiring.connect(m, self.dram.out, self.router.dram)
        return m


def test_router_fills_slots_from_the_channel_and_r6_back_pressure_holds_it():
    """Two slots and a 150-cycle compute: each SLICE waits (stalled) until the previous
    one is computed, since injection needs two free slots (R6); a local WEIGHT needs one
    and goes in while the last slice computes.  Every slot receives the image words."""
    top = ChannelAndRouter(dram_words=32, program_words=16, rate=(1, 2), latency=5)
    rec = Recorder()
    filled = []
    tile = TileModel(top.router.tile, stream.Signature(flit_layout(LINK)).create(), 0, rec,
                     compute_delay=lambda ev: filled.append((ev, tile.slot_payload(ev["slot"], ev["length"])))
                     or 150)
    image = random_image(32, seed=5)
    words = stream_program([("SLICE", i, i + 1, 0, 2 * i) for i in range(4)] + [("WEIGHT", 4, 0, 0, 8)],
                           slot_words=2)
    headers, status = [], {}

    async def monitor(ctx):
        cycle, header_next = 0, True
        while True:
            _, _, v, r, last = await ctx.tick().sample(top.dram.out.valid, top.dram.out.ready,
                                                       top.dram.out.payload.last)
            if v and r:
                if header_next:
                    headers.append(cycle)
                header_next = bool(last)
            cycle += 1

    async def scenario(ctx):
        configure(ctx, top.router.cfg, chiplet_id=0, rows=1, cols=1, slot_count=2)
        for addr, w in enumerate(image):
            await stream_put(ctx, top.dram.weight_wr, {"addr": addr, "data": w})
        for addr, w in enumerate(words):
            await stream_put(ctx, top.dram.program_wr, {"addr": addr, "data": w})
        ctx.set(top.dram.program_words, len(words))
        ctx.set(top.dram.start, 1)
        await ctx.tick()
        ctx.set(top.dram.start, 0)
        await ctx.tick().until(top.dram.done)
        for _ in range(2 * 150):     # let the tile finish computing
            await ctx.tick()
        status.update(error=ctx.get(top.dram.error), router_error=ctx.get(top.router.stats.error),
                      stalled=ctx.get(top.dram.stats.stalled), dram_flits=ctx.get(top.router.stats.dram_flits))

    simulate(top, [tile.run, monitor], scenario)
    assert status["error"] == 0 and status["router_error"] == 0
    assert status["dram_flits"] == 5 * (1 + 2 * LANES)
    assert [(ev["kind"], ev["expert"], ev["slice"], ev["hops"], ev["length"]) for ev, _ in filled] == \
        [(PacketKind.SLICE, i, i + 1, 0, 2 * LANES) for i in range(4)] + [(PacketKind.WEIGHT, 4, 0, 0, 2 * LANES)]
    for (ev, payload), addr in zip(filled, (0, 2, 4, 6, 8)):
        assert payload == expected_flits(image, addr, 2)
    done = [e[0] for e in rec.of("compute_done")]
    assert len(headers) == 5 and len(done) == 5
    for k in range(1, 4):
        assert headers[k] > done[k - 1], "a SLICE was injected with fewer than two free slots"
    assert headers[4] < done[3], "the WEIGHT load should not wait for a second free slot"
    assert status["stalled"] > 3 * 100


# --- Verilog -------------------------------------------------------------------------------

def test_converts_to_verilog():
    text = to_verilog(DramChannel.from_config(SYSTEM), "dram_channel")
    assert "module dram_channel" in text
    for port in ("out__valid", "out__ready", "out__payload", "weight_wr__payload", "program_wr__payload",
                 "start", "done", "error", "stats__flits", "stats__stalled"):
        assert port in text
    assert "jitter" not in text          # no jitter logic unless asked for
    text = to_verilog(DramChannel.from_config(dataclasses.replace(SYSTEM, dram_jitter=9)), "dram_channel")
    assert "input [31:0] jitter_seed" in text and "jitter_lfsr" in text
