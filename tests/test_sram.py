"""Weight, token and accumulator buffers in the Amaranth simulator."""

import numpy as np
import pytest

from hw import slice_layout
from hw.sram import AccOp, AccumulatorBuffer, TokenBuffer, WeightBuffer
from sim.rtl.amaranth_sim import assert_rejects, run_testbench, stream_get, stream_put


async def read_word(ctx, port, slot, word):
    """One access of a synchronous ``(slot, word)`` read port."""
    ctx.set(port.slot, slot)
    ctx.set(port.word, word)
    ctx.set(port.en, 1)
    await ctx.tick()
    ctx.set(port.en, 0)
    return ctx.get(port.data)


def random_words(rng, count, nbytes):
    return rng.integers(0, 256, (count, nbytes), dtype=np.uint8)


def word_value(row) -> int:
    return int.from_bytes(np.asarray(row, np.uint8).tobytes(), "little")


# --- WeightBuffer -------------------------------------------------------------------------

def test_slice_written_at_link_width_reads_back_on_both_ports():
    dut = WeightBuffer(mac_rows=4, mac_cols=4, link_bytes=4, depth=32, max_slots=4)
    rng = np.random.default_rng(1)
    slices = {1: random_words(rng, 6, 16), 2: random_words(rng, 6, 16)}
    forwarded = []

    async def writer_and_mac_reader(ctx):
        ctx.set(dut.slot_words, 8)
        ctx.set(dut.slot_count, 3)
        for slot, words in slices.items():
            for k, flit in enumerate(slice_layout.slice_flits(words, 4)):
                await stream_put(ctx, dut.wr, {"slot": slot, "flit": k, "data": flit})
        for slot, words in slices.items():
            for w, row in enumerate(words):
                assert await read_word(ctx, dut.rd, slot, w) == word_value(row)
        # Forward slot 2 with gaps between requests; the consumer below stalls at random.
        for k in range(6 * 4):
            await stream_put(ctx, dut.fwd_req, {"slot": 2, "flit": k})
            for _ in range(int(rng.integers(0, 2))):
                await ctx.tick()

    async def forward_consumer(ctx):
        while len(forwarded) < 6 * 4:
            for _ in range(int(rng.integers(0, 3))):
                await ctx.tick()
            forwarded.append(await stream_get(ctx, dut.fwd_data))

    run_testbench(dut, writer_and_mac_reader, forward_consumer)
    assert forwarded == slice_layout.slice_flits(slices[2], 4)
    assert not dut.wr_error.init


def test_slot_geometry_is_set_at_run_time():
    dut = WeightBuffer(mac_rows=2, mac_cols=2, link_bytes=4, depth=32, max_slots=4)

    async def tb(ctx):
        ctx.set(dut.slot_count, 4)
        for slot_words in (5, 7):
            ctx.set(dut.slot_words, slot_words)
            await stream_put(ctx, dut.wr, {"slot": 1, "flit": 2, "data": 0xA0B0C0D0 + slot_words})
            assert ctx.get(dut.mem.data[slot_words + 2]) == 0xA0B0C0D0 + slot_words
        assert not ctx.get(dut.wr_error)

    run_testbench(dut, tb)


def test_writes_outside_the_configured_slots_are_dropped_and_flagged():
    dut = WeightBuffer(mac_rows=2, mac_cols=2, link_bytes=2, depth=16, max_slots=4)

    async def tb(ctx):
        ctx.set(dut.slot_words, 4)
        ctx.set(dut.slot_count, 2)
        await stream_put(ctx, dut.wr, {"slot": 1, "flit": 7, "data": 0x1234})   # last flit of slot 1
        assert ctx.get(dut.mem.data[7]) == 0x12340000 and not ctx.get(dut.wr_error)
        await stream_put(ctx, dut.wr, {"slot": 2, "flit": 0, "data": 0xFFFF})   # slot 2 is not in use
        await stream_put(ctx, dut.wr, {"slot": 0, "flit": 8, "data": 0xFFFF})   # past the slot's end
        assert ctx.get(dut.wr_error)
        assert [ctx.get(dut.mem.data[i]) for i in range(16)] == [0] * 7 + [0x12340000] + [0] * 8

    run_testbench(dut, tb)


@pytest.mark.parametrize("kwargs,exc,message", [
    (dict(max_slots=0), TypeError, "Slot count must be a positive integer, not 0"),
    (dict(depth="64"), TypeError, "Weight buffer depth must be a positive integer, not '64'"),
    (dict(mac_rows=6), ValueError, "MAC array row count must be a power of two, not 6"),
    (dict(link_bytes=48), ValueError, "Link width 48 bytes must divide the weight word (64 bytes)"),
])
def test_weight_buffer_rejects_bad_parameters(kwargs, exc, message):
    assert_rejects(lambda: WeightBuffer(**kwargs), exc, message)


# --- TokenBuffer --------------------------------------------------------------------------

def test_token_rows_read_back_at_mac_width():
    dut = TokenBuffer(mac_rows=4, token_slots=3, d_max=12)
    rng = np.random.default_rng(2)
    x = rng.integers(-128, 128, (3, 12), dtype=np.int8)

    async def tb(ctx):
        for slot in (2, 0, 1):
            for w, word in enumerate(slice_layout.token_words(x[slot], 4)):
                await stream_put(ctx, dut.wr, {"slot": slot, "word": w, "data": word})
        for slot in range(3):
            for w, word in enumerate(slice_layout.token_words(x[slot], 4)):
                assert await read_word(ctx, dut.rd, slot, w) == word

    run_testbench(dut, tb)


def test_token_buffer_rejects_a_row_that_is_not_whole_words():
    assert_rejects(lambda: TokenBuffer(mac_rows=4, token_slots=2, d_max=10), ValueError,
                   "Maximum hidden size 10 must be a multiple of mac_rows 4")


# --- AccumulatorBuffer --------------------------------------------------------------------

def wrap(v):
    return (v + (1 << 31)) % (1 << 32) - (1 << 31)


async def acc_read(ctx, dut, slot, word):
    await stream_put(ctx, dut.cmd, {"op": AccOp.READ, "slot": slot, "word": word, "data": [0] * dut.mac_cols})
    return list(await stream_get(ctx, dut.resp))


def test_write_add_read_with_int32_wrap():
    dut = AccumulatorBuffer(mac_cols=4, token_slots=2, d_max=8)
    big = (1 << 31) - 1

    async def tb(ctx):
        await stream_put(ctx, dut.cmd, {"op": AccOp.WRITE, "slot": 1, "word": 1, "data": [big, -5, 7, -(1 << 31)]})
        await stream_put(ctx, dut.cmd, {"op": AccOp.ADD, "slot": 1, "word": 1, "data": [1, 5, -8, -1]})
        assert await acc_read(ctx, dut, 1, 1) == [-(1 << 31), 0, -1, big]
        assert await acc_read(ctx, dut, 1, 0) == [0, 0, 0, 0]

    run_testbench(dut, tb)


def test_datapath_adds_to_one_word_every_cycle_lose_nothing():
    dut = AccumulatorBuffer(mac_cols=2, token_slots=2, d_max=4)
    rng = np.random.default_rng(3)
    adds = [(int(rng.integers(0, 2)), [int(v) for v in rng.integers(-(1 << 31), 1 << 31, 2)]) for _ in range(40)]

    async def tb(ctx):
        for word, data in adds:          # back to back, often to the word written the cycle before
            ctx.set(dut.add.payload, {"slot": 1, "word": word, "data": data})
            ctx.set(dut.add.valid, 1)
            await ctx.tick()
        ctx.set(dut.add.valid, 0)
        for word in range(2):
            want = [wrap(sum(d[lane] for w, d in adds if w == word)) for lane in range(2)]
            assert await acc_read(ctx, dut, 1, word) == want

    run_testbench(dut, tb)


def test_commands_wait_while_the_datapath_adds():
    dut = AccumulatorBuffer(mac_cols=2, token_slots=1, d_max=2)

    async def tb(ctx):
        ctx.set(dut.add.payload, {"slot": 0, "word": 0, "data": [1, 2]})
        ctx.set(dut.add.valid, 1)
        ctx.set(dut.cmd.payload, {"op": AccOp.ADD, "slot": 0, "word": 0, "data": [10, 20]})
        ctx.set(dut.cmd.valid, 1)
        for _ in range(3):
            assert not ctx.get(dut.cmd.ready)
            await ctx.tick()
        ctx.set(dut.add.valid, 0)
        await ctx.tick().until(dut.cmd.ready)
        ctx.set(dut.cmd.valid, 0)
        assert await acc_read(ctx, dut, 0, 0) == [3 * 1 + 10, 3 * 2 + 20]

    run_testbench(dut, tb)


def write_random_rows(dut, rng):
    return {(s, w): [int(v) for v in rng.integers(-(1 << 31), 1 << 31, dut.mac_cols)]
            for s in range(dut.token_slots) for w in range(dut.row_words)}


async def acc_write_all(ctx, dut, values):
    for (s, w), data in values.items():
        await stream_put(ctx, dut.cmd, {"op": AccOp.WRITE, "slot": s, "word": w, "data": data})


def test_reads_come_back_in_order_under_back_pressure():
    dut = AccumulatorBuffer(mac_cols=2, token_slots=4, d_max=4)
    rng = np.random.default_rng(4)
    values = write_random_rows(dut, rng)
    order = [key for key in values for _ in range(2)]
    got = []

    async def commander(ctx):
        await acc_write_all(ctx, dut, values)
        for s, w in order:
            await stream_put(ctx, dut.cmd, {"op": AccOp.READ, "slot": s, "word": w, "data": [0, 0]})

    async def consumer(ctx):
        while len(got) < len(order):
            for _ in range(int(rng.integers(0, 4))):
                await ctx.tick()
            got.append(list(await stream_get(ctx, dut.resp)))

    run_testbench(dut, commander, consumer)
    assert got == [values[key] for key in order]


def test_reads_run_at_one_word_per_cycle_when_the_consumer_keeps_up():
    dut = AccumulatorBuffer(mac_cols=2, token_slots=4, d_max=4)
    values = write_random_rows(dut, np.random.default_rng(5))
    order = list(values)
    got, cycles = [], []

    async def tb(ctx):
        await acc_write_all(ctx, dut, values)
        ctx.set(dut.resp.ready, 1)
        ctx.set(dut.cmd.valid, 1)
        issued = 0
        while len(got) < len(order):
            if issued < len(order):
                s, w = order[issued]
                ctx.set(dut.cmd.payload, {"op": AccOp.READ, "slot": s, "word": w, "data": [0, 0]})
            else:
                ctx.set(dut.cmd.valid, 0)
            _, _, ready, valid, payload = await ctx.tick().sample(dut.cmd.ready, dut.resp.valid, dut.resp.payload)
            issued += bool(ready and issued < len(order))
            if valid:
                got.append(list(payload))
            cycles.append(1)

    run_testbench(dut, tb)
    assert got == [values[key] for key in order]
    assert len(cycles) <= len(order) + 2
