"""The tile controller executing short programs in the Amaranth simulator, against a stub
router (a testbench) and the real tile datapath; accumulators bit-exact against
``scheduler.golden``."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from hw import isa
from hw.config import TileConfig
from hw.controller import (Controller, ControllerError, HostOp, acc_row_from_beats, host_acc_read,
                           host_acc_zero, host_token_read)
from hw.packets import PacketKind, result_packet, token_packet
from hw.slice_layout import pack_slice, slice_flits, token_words
from scheduler import golden
from scheduler.program import assemble
from sim.rtl.amaranth_sim import assert_rejects, stream_get, stream_put
from sim.rtl.tile_harness import (ControllerTop, PacketMonitor, load_program, load_tokens, prologue, pulse, put_packet,
                              read_accumulators)

TILE = TileConfig(mac_rows=8, mac_cols=8, link_bytes=16, weight_words=96, token_rows=8, d_max=32,
                  table_entries=16, max_experts=8, program_words=128)
D, F = 16, 32          # layer shape of the tests
SLOT_WORDS = 12        # 3 * d * fs / 64 for fs = 16


class Bench:
    """A controller + datapath, a stub router and the bookkeeping of one test."""

    def __init__(self, *, slices=2, experts=8, seed=0, tokens=4):
        self.top = ControllerTop(TILE, max_slots=4)
        self.ctrl, self.dp = self.top.controller, self.top.datapath
        self.layer = golden.random_layer(experts, D, F, seed)
        self.slices, self.fs = slices, F // slices
        self.x = golden.random_tokens(tokens, D, seed)
        self.cycle = 0
        self.free = [0, 1, 2, 3]
        self.done_slots, self.done_cycles = [], []
        self.job_cycles, self.jobs = [], []
        self.arrival_cycles = []
        self.injected = PacketMonitor(self.ctrl.inject, TILE.link_bytes)
        self.sim = Simulator(self.top)
        self.sim.add_clock(1e-8)
        self.sim.add_testbench(self._monitor, background=True)
        self.sim.add_testbench(self.injected.run, background=True)

    def program(self, body, **kwargs):
        kwargs.setdefault("token_rows", len(self.x))
        return assemble(prologue(quant=self.layer.quant, d=D, fs=self.fs, slot_words=SLOT_WORDS, **kwargs) + body)

    async def _monitor(self, ctx):
        c = self.ctrl
        ctx.set(c.compute_done.ready, 1)
        async for _, _, cd_valid, cd_slot, j_valid, j_ready, j_payload in ctx.tick().sample(
                c.compute_done.valid, c.compute_done.payload, c.dp_job.valid, c.dp_job.ready, c.dp_job.payload):
            self.cycle += 1
            if cd_valid:
                self.done_slots.append(cd_slot)
                self.done_cycles.append(self.cycle)
                self.free.append(cd_slot)
            if j_valid and j_ready:
                self.jobs.append((j_payload.slot, j_payload.base, j_payload.count))
                self.job_cycles.append(self.cycle)

    async def start(self, ctx, words, load_tokens_=True):
        await load_program(ctx, self.ctrl.host, words)
        if load_tokens_:
            await load_tokens(ctx, self.ctrl.host, self.x, TILE.mac_rows)
        await pulse(ctx, self.ctrl.start)

    async def load(self, ctx, expert, index):
        """Write slice ``index`` of ``expert`` into a free slot (like the router: only once
        the program has configured the slots)."""
        while not self.free or ctx.get(self.ctrl.net_cfg.slot_count) <= self.free[0]:
            await ctx.tick()
        slot = self.free.pop(0)
        cols = golden.slice_columns(F, self.slices, index)
        words = pack_slice(self.layer.w_gate[expert][:, cols], self.layer.w_up[expert][:, cols],
                           self.layer.w_down[expert][cols, :], TILE.mac_rows, TILE.mac_cols)
        for k, flit in enumerate(slice_flits(words, TILE.link_bytes)):
            await stream_put(ctx, self.dp.wb_wr, {"slot": slot, "flit": k, "data": flit})
        return slot

    async def announce(self, ctx, slot, expert, index):
        self.arrival_cycles.append(self.cycle)
        await stream_put(ctx, self.ctrl.arrival, {"slot": slot, "kind": PacketKind.SLICE, "expert": expert,
                                                  "slice": index, "hops": 0, "length": 0})

    async def arrive(self, ctx, expert, index):
        slot = await self.load(ctx, expert, index)
        await self.announce(ctx, slot, expert, index)
        return slot

    def completion_order(self):
        """Index (in job order) of the job each compute_done belongs to: the oldest
        outstanding job on that slot."""
        outstanding, order = list(enumerate(self.jobs)), []
        for slot in self.done_slots:
            k = next(i for i, (j, job) in enumerate(outstanding) if job[0] == slot)
            order.append(outstanding.pop(k)[0])
        return order

    def expected(self, rows, experts_slices, gates):
        """int32 rows after applying (expert, slice) to each of ``rows`` listed for it."""
        acc = np.zeros((len(self.x), D), dtype=np.int64)
        for e, s in experts_slices:
            cols = golden.slice_columns(F, self.slices, s)
            rs = rows[e]
            if rs:
                acc[rs] += golden.apply_slice(self.layer, e, cols, self.x[rs], np.array(gates[e]))
        return golden.wrap_int32(acc)

    def run(self, *testbenches):
        async def check(ctx):
            for tb in testbenches:
                await tb(ctx)
            assert not ctx.get(self.dp.wb_wr_error), "a weight write fell outside the configured slots"
        self.sim.add_testbench(check)
        self.sim.run()


async def wait_until(ctx, signal, limit=5000):
    await wait_for(ctx, lambda: ctx.get(signal), limit, f"{signal.name} set")


async def wait_for(ctx, condition, limit=5000, what="condition"):
    for _ in range(limit):
        if condition():
            return
        await ctx.tick()
    raise AssertionError(f"{what}: not within {limit} cycles")


def expert_table(lists):
    """EXPERT and ENTRY lines for ``{expert: [(row, gate), ...]}``."""
    lines, entries = [], []
    for e, job in lists.items():
        lines.append(f"EXPERT expert={e}, first={len(entries)}, count={len(job)}")
        entries += job
    lines += [f"ENTRY row={r}, gate={g}" for r, g in entries]
    return "\n".join(lines) + "\n"


# --- configuration and tables -----------------------------------------------------------

def test_set_drives_the_datapath_and_router_configuration():
    b = Bench()
    words = b.program("END\n", chiplet=5, successor=6, ring_len=4, slots=3, arrivals=0, token_rows=4)
    seen = {}

    async def tb(ctx):
        await b.start(ctx, words, load_tokens_=False)
        assert ctx.get(b.ctrl.net_cfg.slot_count) == 0     # no slot before END
        await wait_until(ctx, b.ctrl.done)
        c, q = b.ctrl, b.layer.quant
        seen.update(cfg={n: ctx.get(getattr(c.dp_cfg, n)) for n in (
            "slot_words", "slot_count", "d", "fs", "gate_mult", "gate_shift", "up_mult", "up_shift",
            "hidden_mult", "hidden_shift")},
            net={n: ctx.get(getattr(c.net_cfg, n)) for n in ("chiplet_id", "successor", "ring_len", "slot_count")},
            silu=[ctx.get(b.dp.vector_unit.silu.data[i]) for i in range(256)],
            error=ctx.get(c.error), cycles=ctx.get(c.counters.cycles), running=ctx.get(c.running))

    b.run(tb)
    q = b.layer.quant
    assert seen["cfg"] == dict(slot_words=SLOT_WORDS, slot_count=3, d=D, fs=b.fs, gate_mult=q.gate_mult,
                               gate_shift=q.gate_shift, up_mult=q.up_mult, up_shift=q.up_shift,
                               hidden_mult=q.hidden_mult, hidden_shift=q.hidden_shift)
    assert seen["net"] == dict(chiplet_id=5, successor=6, ring_len=4, slot_count=3)
    assert seen["silu"] == [int(v) for v in q.silu]
    assert seen["error"] == 0 and not seen["running"]
    # 17 SETs and END at two cycles each, 64 LUTs at five, one cycle in RUN.
    assert seen["cycles"] == 2 * 18 + 5 * 64 + 1


def test_expert_entry_and_remote_tables():
    b = Bench()
    body = expert_table({3: [(1, 200), (0, 7)], 6: [], 2: [(3, 255)]})
    body += "REMOTE row=3, uses=2, home=9, home_row=300\nEND\n"
    words = b.program(body, arrivals=0)
    seen = {}

    async def tb(ctx):
        await b.start(ctx, words, load_tokens_=False)
        for _ in range(600):
            await ctx.tick()
        c = b.ctrl
        # Row 3's result has not gone home (no job used it): running, not done.
        seen["state"] = (ctx.get(c.running), ctx.get(c.done), ctx.get(c.error))
        seen["experts"] = {e: (ctx.get(c.experts.data[e]).first, ctx.get(c.experts.data[e]).count)
                           for e in (3, 6, 2)}
        lst = b.dp.engine.token_list.data
        seen["list"] = [(ctx.get(lst[i]).token, ctx.get(lst[i]).gate_q) for i in range(3)]
        r = ctx.get(c.remotes.data[3])
        seen["remote"] = (r.uses, r.home, r.home_row)

    b.run(tb)
    assert seen["experts"] == {3: (0, 2), 6: (2, 0), 2: (2, 1)}
    assert seen["list"] == [(1, 200), (0, 7), (3, 255)]
    assert seen["remote"] == (2, 9, 300)
    assert seen["state"] == (1, 0, 0)


# --- FSE-DP: arrivals become jobs ---------------------------------------------------------

def test_arrivals_run_as_overlapping_jobs_in_order_and_match_golden():
    b = Bench(slices=2)
    lists = {0: [(0, 200), (3, 17)], 1: [], 2: [(1, 128), (2, 255), (3, 90)]}
    arrivals = [(0, 0), (1, 0), (2, 1), (0, 1), (2, 0), (1, 1)]
    words = b.program(expert_table(lists) + "END\n", arrivals=len(arrivals))
    out = {}

    async def router(ctx):
        await b.start(ctx, words)
        # Four slices wait in their slots before they are announced back to back.
        slots = [await b.load(ctx, e, s) for e, s in arrivals[:4]]
        for slot, (e, s) in zip(slots, arrivals[:4]):
            await b.announce(ctx, slot, e, s)
        for e, s in arrivals[4:]:
            await b.arrive(ctx, e, s)
        await wait_until(ctx, b.ctrl.done)
        out["acc"] = await read_accumulators(ctx, b.ctrl.host, b.ctrl.host_resp, range(4), D)
        out["jobs"] = ctx.get(b.ctrl.counters.jobs)
        out["error"] = ctx.get(b.ctrl.error)

    b.run(router)
    rows = {e: [r for r, _ in v] for e, v in lists.items()}
    gates = {e: [g for _, g in v] for e, v in lists.items()}
    np.testing.assert_array_equal(out["acc"], b.expected(rows, arrivals, gates))
    assert out["error"] == 0 and out["jobs"] == len(arrivals)
    # Each job is {slot, base = first, count} of its expert.
    firsts = {0: 0, 1: 2, 2: 2}
    assert [(base, count) for _, base, count in b.jobs] == [(firsts[e], len(lists[e])) for e, _ in arrivals]
    # Every job completes once; jobs with tokens in arrival order, the zero-token ones
    # (expert 1) possibly earlier.
    order = b.completion_order()
    assert sorted(order) == list(range(len(arrivals)))
    with_tokens = [k for k in order if b.jobs[k][2]]
    assert with_tokens == sorted(with_tokens)
    assert order != sorted(order)     # the empty job of arrival 1 overtook job 0
    # Pipelining: the second job is accepted before the first is done.
    assert b.job_cycles[1] < b.done_cycles[order.index(0)]
    assert b.job_cycles[2] < b.done_cycles[order.index(0)]


def test_expert_without_local_tokens_is_a_two_cycle_job():
    b = Bench(slices=2)
    words = b.program(expert_table({4: []}) + "END\n", arrivals=2)

    async def router(ctx):
        await b.start(ctx, words)
        for s in range(2):
            await b.arrive(ctx, 4, s)
        await wait_until(ctx, b.ctrl.done)
        assert ctx.get(b.ctrl.error) == 0
        assert ctx.get(b.dp.mac_cycles) == 0

    b.run(router)
    assert [count for _, _, count in b.jobs] == [0, 0]
    assert all(d - j <= 3 for j, d in zip(b.job_cycles, b.done_cycles))


def test_done_waits_for_the_last_arrival():
    b = Bench(slices=2)
    words = b.program(expert_table({0: [(0, 100)]}) + "END\n", arrivals=2)

    async def router(ctx):
        await b.start(ctx, words)
        await b.arrive(ctx, 0, 0)
        for _ in range(200):
            await ctx.tick()
        assert len(b.done_slots) == 1 and not ctx.get(b.ctrl.done)
        await b.arrive(ctx, 0, 1)
        await wait_until(ctx, b.ctrl.done)

    b.run(router)


# --- EP: tokens out, tokens in, results out and in ----------------------------------------

def test_ep_dispatch_barrier_results_and_done():
    b = Bench(slices=1, tokens=4)     # whole experts (fs = f = 32: 24 words per slot)
    # Resident rows 0, 1; rows 2, 3 hold tokens of chiplets 0 and 2.
    lists = {5: [(0, 60), (2, 250), (3, 128)], 6: [(1, 77), (3, 31)]}
    body = expert_table(lists)
    body += "REMOTE row=2, uses=1, home=0, home_row=4\nREMOTE row=3, uses=2, home=2, home_row=1\n"
    body += "SEND row=1, dst=3, dst_row=6\nEND\n"
    words = assemble(prologue(quant=b.layer.quant, d=D, fs=F, slot_words=24, slots=2, token_rows=4,
                              arrivals=2, results=1, tokens=2, chiplet=1) + body)
    incoming = np.random.default_rng(5).integers(-2**31, 2**31, D)
    L = TILE.link_bytes
    out = {}

    async def router(ctx):
        # Only the resident rows are loaded (before start: the host port is closed while
        # the controller runs); the remote rows come as TOKEN packets.
        await load_program(ctx, b.ctrl.host, words)
        await load_tokens_rows(ctx, b, [0, 1])
        await pulse(ctx, b.ctrl.start)
        await b.arrive(ctx, 5, 0)
        for _ in range(100):
            await ctx.tick()
        out["jobs_before_tokens"] = ctx.get(b.ctrl.counters.jobs)
        for row, home in ((2, 0), (3, 2)):
            await put_packet(ctx, b.ctrl.eject, token_packet(L, src=home, dst=1, token=row, vector=b.x[row]))
        await b.arrive(ctx, 6, 0)
        await wait_for(ctx, lambda: len(b.injected.packets) == 3, what="three packets injected")
        for _ in range(50):
            await ctx.tick()
        out["done_before_result"] = ctx.get(b.ctrl.done)
        await put_packet(ctx, b.ctrl.eject, result_packet(L, src=3, dst=1, token=0, vector=incoming))
        await wait_until(ctx, b.ctrl.done)
        out["acc"] = await read_accumulators(ctx, b.ctrl.host, b.ctrl.host_resp, range(4), D)
        out["counters"] = {n: ctx.get(getattr(b.ctrl.counters, n)) for n in (
            "tokens_sent", "results_sent", "tokens_received", "results_received", "jobs")}
        out["error"] = ctx.get(b.ctrl.error)

    async def load_tokens_rows(ctx, b, rows):
        from hw.controller import host_token_row
        for r in rows:
            for cmd in host_token_row(r, b.x[r], TILE.mac_rows):
                await stream_put(ctx, b.ctrl.host, cmd)

    b.run(router)
    assert out["error"] == 0
    assert out["jobs_before_tokens"] == 0          # the barrier held the job
    assert not out["done_before_result"]
    assert out["counters"] == dict(tokens_sent=1, results_sent=2, tokens_received=2, results_received=1, jobs=2)
    # The TOKEN packet: row 1 to chiplet 3, row 6 there.
    tok = b.injected.packets[0]
    assert (tok.kind, tok.header["dst"], tok.header["token"], tok.header["length"]) == (PacketKind.TOKEN, 3, 6, 1)
    assert tok.payload[:D] == b.x[1].tobytes() and tok.payload[D:] == bytes(L - D)
    # Results: row 2 after expert 5 (home 0, row 4), row 3 after both experts (home 2, row 1).
    rows = {e: [r for r, _ in v] for e, v in lists.items()}
    gates = {e: [g for _, g in v] for e, v in lists.items()}
    acc = b.expected(rows, [(5, 0), (6, 0)], gates).astype(np.int64)
    acc[0] += incoming
    acc = golden.wrap_int32(acc)
    np.testing.assert_array_equal(out["acc"], acc)
    res = [(p.header["dst"], p.header["token"], np.frombuffer(p.payload, "<i4").tolist())
           for p in b.injected.packets[1:]]
    assert res == [(0, 4, acc[2].tolist()), (2, 1, acc[3].tolist())]
    assert all(p.kind == PacketKind.RESULT and p.header["length"] == 4 for p in b.injected.packets[1:])


# --- host port -----------------------------------------------------------------------------

def test_host_port_writes_and_reads_tokens_and_accumulators():
    b = Bench(tokens=4)
    rng = np.random.default_rng(3)
    vec = rng.integers(-2**31, 2**31, D)
    L = TILE.link_bytes
    words = b.program("END\n", results=1, token_rows=4)
    out = {}

    async def tb(ctx):
        await b.start(ctx, words)
        await put_packet(ctx, b.ctrl.eject, result_packet(L, src=2, dst=0, token=3, vector=vec))
        await wait_until(ctx, b.ctrl.done)
        host, resp = b.ctrl.host, b.ctrl.host_resp
        out["tokens"] = []
        for w in range(D // TILE.mac_rows):
            await stream_put(ctx, host, host_token_read(2, w))
            out["tokens"].append(await stream_get(ctx, resp))
        out["acc3"] = (await read_accumulators(ctx, host, resp, [3], D))[0]
        await stream_put(ctx, host, host_acc_read(3, 5))    # an odd lane count: 3 beats
        out["acc3_5"] = acc_row_from_beats([await stream_get(ctx, resp) for _ in range(3)], 5)
        await stream_put(ctx, host, host_acc_zero(3))
        out["acc3_zero"] = (await read_accumulators(ctx, host, resp, [3], D))[0]

    b.run(tb)
    assert out["tokens"] == token_words(b.x[2], TILE.mac_rows)
    np.testing.assert_array_equal(out["acc3"], vec.astype(np.int32))
    assert out["acc3_5"] == vec[:5].tolist()
    assert not np.any(out["acc3_zero"])


# --- errors ----------------------------------------------------------------------------------

def _error_case(name):
    """(program body, kwargs of the prologue, stimulus) of each error scenario."""
    L = TILE.link_bytes

    async def arrive(b, ctx, *pairs):
        for e, s in pairs:
            await b.arrive(ctx, e, s)

    x = np.zeros(D, np.int8)
    cases = {
        ControllerError.UNKNOWN_OPCODE: ("", {}, None),
        ControllerError.UNKNOWN_EXPERT: (expert_table({0: [(0, 1)]}) + "END\n", dict(arrivals=1),
                                         lambda b, ctx: arrive(b, ctx, (3, 0))),
        ControllerError.EXTRA_ARRIVAL: (expert_table({0: [(0, 1)]}) + "END\n", dict(arrivals=1),
                                        lambda b, ctx: arrive(b, ctx, (0, 0), (0, 1))),
        ControllerError.ROW_RANGE: (expert_table({0: [(4, 1)]}) + "END\n", dict(token_rows=4), None),
        ControllerError.TABLE_OVERFLOW: ("EXPERT expert=2, first=10, count=7\nEND\n", {}, None),
        ControllerError.BAD_OPERAND: ("SET D_MODEL, 12\nEND\n", {}, None),
        ControllerError.PACKET_ROW: ("END\n", dict(tokens=1, token_rows=4),
                                     lambda b, ctx: put_packet(ctx, b.ctrl.eject, token_packet(
                                         L, src=1, dst=0, token=4, vector=x))),
        ControllerError.BAD_PACKET: ("END\n", dict(tokens=1),
                                     lambda b, ctx: put_packet(ctx, b.ctrl.eject, result_packet(
                                         L, src=1, dst=0, token=0, vector=[0] * D))),
    }
    return cases[name]


@pytest.mark.parametrize("flag", [
    ControllerError.UNKNOWN_OPCODE, ControllerError.UNKNOWN_EXPERT, ControllerError.EXTRA_ARRIVAL,
    ControllerError.ROW_RANGE, ControllerError.TABLE_OVERFLOW, ControllerError.BAD_OPERAND,
    ControllerError.PACKET_ROW, ControllerError.BAD_PACKET], ids=lambda f: f.name.lower())
def test_error_flag_stops_the_controller(flag):
    body, kwargs, stimulus = _error_case(flag)
    b = Bench()
    words = b.program(body, lut=False, **kwargs)
    if flag is ControllerError.UNKNOWN_OPCODE:
        # An undefined opcode after the configuration, then a SET that must not execute.
        words = words + [0x7F] + assemble("SET CHIPLET_ID, 99\nEND\n")
    out = {}

    async def tb(ctx):
        await b.start(ctx, words)
        if stimulus:
            await stimulus(b, ctx)
        await wait_until(ctx, b.ctrl.error)
        for _ in range(100):
            await ctx.tick()
        out.update(error=ctx.get(b.ctrl.error), done=ctx.get(b.ctrl.done), running=ctx.get(b.ctrl.running),
                   jobs=ctx.get(b.ctrl.counters.jobs), chiplet=ctx.get(b.ctrl.net_cfg.chiplet_id))

    b.run(tb)
    assert out["error"] == flag
    assert not out["done"] and not out["running"]
    if flag is ControllerError.UNKNOWN_EXPERT:
        assert out["jobs"] == 0 and not b.done_slots
    if flag is ControllerError.EXTRA_ARRIVAL:
        assert out["jobs"] == 1
    if flag is ControllerError.UNKNOWN_OPCODE:
        assert out["chiplet"] == 0


def test_stop_halts_the_controller_without_an_error_bit():
    """``stop`` (the system's, at an error elsewhere) stops the controller like an error of
    its own: an arrival that comes after it starts no job, and it never reports done."""
    b = Bench()
    words = b.program(expert_table({0: [(0, 1)]}) + "END\n", lut=False, arrivals=2)
    out = {}

    async def tb(ctx):
        await b.start(ctx, words)
        await b.arrive(ctx, 0, 0)
        await wait_until(ctx, b.ctrl.counters.jobs)
        ctx.set(b.ctrl.stop, 1)
        await ctx.tick()
        slot = await b.load(ctx, 0, 1)
        ctx.set(b.ctrl.arrival.payload, {"slot": slot, "kind": PacketKind.SLICE, "expert": 0, "slice": 1,
                                         "hops": 0, "length": 0})
        ctx.set(b.ctrl.arrival.valid, 1)
        taken = 0
        for _ in range(100):
            taken += ctx.get(b.ctrl.arrival.ready)
            await ctx.tick()
        out.update(error=ctx.get(b.ctrl.error), done=ctx.get(b.ctrl.done), running=ctx.get(b.ctrl.running),
                   jobs=ctx.get(b.ctrl.counters.jobs), taken=taken)

    b.run(tb)
    assert out == {"error": 0, "done": 0, "running": 0, "jobs": 1, "taken": 0}


def test_running_off_the_program_memory_is_an_error():
    b = Bench()
    words = assemble("SET CHIPLET_ID, 1\n" * TILE.program_words)
    out = {}

    async def tb(ctx):
        await b.start(ctx, words, load_tokens_=False)
        await wait_until(ctx, b.ctrl.error)
        out["error"], out["cycles"] = ctx.get(b.ctrl.error), ctx.get(b.ctrl.counters.cycles)

    b.run(tb)
    assert out["error"] == ControllerError.NO_END
    assert out["cycles"] == 2 * TILE.program_words + 1


def test_start_after_an_error_runs_a_new_program():
    b = Bench()
    bad = assemble("SET D_MODEL, 13\nEND\n")
    good = b.program("END\n", lut=False)
    out = {}

    async def tb(ctx):
        await b.start(ctx, bad, load_tokens_=False)
        await wait_until(ctx, b.ctrl.error)
        await b.start(ctx, good, load_tokens_=False)
        await wait_until(ctx, b.ctrl.done)
        out["error"] = ctx.get(b.ctrl.error)

    b.run(tb)
    assert out["error"] == 0


def test_controller_rejects_bad_parameters():
    assert_rejects(lambda: Controller(mac_cols=1), ValueError,
                   "MAC array column count must be at least 2 (host beats hold two accumulators), not 1")
    assert_rejects(lambda: Controller(link_bytes=24), ValueError, "Link width in bytes must be a power of two, not 24")
    assert_rejects(lambda: Controller.from_config("rtl-2x2"), TypeError,
                   "Tile configuration must be a hw.config.TileConfig, not 'rtl-2x2'")
