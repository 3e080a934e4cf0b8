"""Assemble the fast model of one workload (chiplets, DRAM channels, network), run it,
and turn its own event counts into a :class:`sim.results.RunResult`."""

from __future__ import annotations

import time

from sim.results import ChipletCounters, RunResult, sram_traffic

from .chiplet import Chiplet
from .dram import DramChannel
from .kernel import Kernel
from .network import Network
from .params import params_for
from scheduler.program import SET_COUNT, controller_words

__all__ = ["FastSystem", "controller_program", "start_delays"]

def controller_program(plan, c: int) -> list:
    """The shape of chiplet ``c``'s controller program, as ``encode_plan`` lays it out:
    ``(opcode, argument)`` per instruction (only what affects timing)."""
    from hw.vector_unit import SILU_ENTRIES

    lut = _lut_values()
    prog = [("SET", None)] * SET_COUNT + [("LUT", None)] * (SILU_ENTRIES // lut)
    prog += [("EXPERT", None)] * len(plan.jobs[c])
    prog += [("ENTRY", None)] * sum(len(j) for j in plan.jobs[c].values())
    if plan.remote_rows:
        prog += [("REMOTE", None)] * len(plan.remote_rows[c])
    for s in plan.token_sends:
        if s.src == c:
            prog.append(("SEND", (s.dst, (plan.token_row[s.token], plan.remote_rows[s.dst][(s.src, s.token)]))))
    prog.append(("END", None))
    assert len(prog) == controller_words(plan, c)
    return prog


def _lut_values():
    from hw.isa import OPERANDS, Opcode
    return dict(OPERANDS[Opcode.LUT].as_shape())["values"].shape.length


def start_delays(plan, params, programs) -> list:
    """Per chiplet, cycles its controller starts after the DRAM channels.

    The system bench loads every chiplet's host port (program words, token rows, an
    accumulator zeroing per row) and every DRAM channel's program and weights in
    parallel, then pulses ``start`` once the last command is accepted.  A host command
    takes one cycle to accept plus its execution (one cycle, ``d_max / mac_cols`` for an
    accumulator zeroing); a controller starts only once its host engine is idle, so the
    chiplet whose stream is longest starts the execution time of its last command late.
    """
    d = plan.model.d_model
    tok_words = d // params.mac_rows
    acc_zero = params.d_max // params.mac_cols
    ends, last_accept = [], 0
    for c in range(plan.num_chiplets):
        rows = plan.token_rows(c)
        execs = [1] * len(programs[c]) + [1] * (rows * tok_words) + [acc_zero] * rows
        a = 1 + sum(e + 1 for e in execs[:-1])
        last_accept = max(last_accept, a)
        ends.append(a + execs[-1])
    slot_words = plan.slot_bytes // params.word_bytes
    for stream in plan.streams:
        last_accept = max(last_accept, 3 + len(stream), len(stream) * slot_words)
    return [max(0, e - (last_accept + 1)) for e in ends]


class FastSystem:
    def __init__(self, workload, *, tracing=False):
        plan = workload.plan
        self.workload = workload
        self.plan = plan
        self.p = params_for(plan, workload.system)
        self.tracing = tracing
        self.events = [] if tracing else None
        if not tracing:
            self.record = _no_record
        self.kernel = Kernel()
        self.d = plan.model.d_model
        self.fs = plan.model.d_ff // plan.slices
        self.slot_flits = -(-plan.slot_bytes // self.p.link_bytes)
        self.chiplets = []
        self.net = Network(self.kernel, self.p, self.chiplets)
        n = plan.num_chiplets
        programs = [controller_program(plan, c) for c in range(n)]
        delays = start_delays(plan, self.p, programs)
        for c in range(n):
            jobs = {}
            remote = set(plan.remote_rows[c].values()) if plan.remote_rows else set()
            remote_experts = set()
            for e, entries in plan.jobs[c].items():
                rows = tuple(r for r, _ in entries)
                jobs[e] = (len(rows), rows)
                if any(r in remote for r in rows):
                    remote_experts.add(e)
            uses = plan.remote_uses(c)
            remote_rows = {r: [uses[r], src, plan.token_row[t]] for (src, t), r in
                           (plan.remote_rows[c].items() if plan.remote_rows else ())}
            n_tokens = plan.tokens_in(c)
            n_sends = sum(1 for s in plan.token_sends if s.src == c)
            self.chiplets.append(Chiplet(c, self, programs[c], jobs, remote_experts, plan.arrivals(c), n_tokens,
                                         plan.results_in(c), n_sends, remote_rows, delays[c]))
        self.drams = []
        for k, stream in enumerate(plan.streams):
            ch = DramChannel(k, self.p.dram_chiplets[k], list(stream), [plan.stream_kind(k, t) for t in stream],
                             self.slot_flits, self.p,
                             self.kernel, self)
            self.chiplets[ch.chiplet].dram = ch
            self.drams.append(ch)
        self.cycles = None

    # callbacks from the parts
    def dram_header(self, ch, t):
        self.chiplets[ch.chiplet].dram_header(ch, t)

    def dram_done(self, ch):
        pass

    def chiplet_done(self, chip):
        pass

    def record(self, kind, who, t, data):
        self.events.append((kind, who, t, data))

    # run
    def run(self) -> RunResult:
        t0 = time.perf_counter()
        for ch in self.drams:
            ch.start()
        for chip in self.chiplets:
            chip.start()
        plan, hw = self.plan, self.plan.hardware
        stream = max(len(s) for s in plan.streams) * plan.slot_bytes / hw.dram_bytes_per_cycle
        compute = plan.macs() / hw.macs_per_chiplet
        limit = int(50 * (stream + compute)) + 1_000_000       # far beyond any legal run
        try:
            self.kernel.run(limit)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc} ({self._stuck()})") from None
        undone = [c.id for c in self.chiplets if c.done_at is None]
        if undone or any(ch.done_at is None for ch in self.drams):
            raise RuntimeError(f"fast model: chiplets {undone} never finished "
                               f"({self._stuck()})")
        self.cycles = max([c.done_at for c in self.chiplets] + [ch.done_at for ch in self.drams])
        return self._result(time.perf_counter() - t0)

    def _stuck(self):
        parts = []
        for c in self.chiplets:
            if c.done_at is None:
                parts.append(f"chiplet {c.id}: arrivals {c.arrivals_taken}/{c.n_arrivals}, jobs done "
                             f"{c.jobs_done}, tokens in {len(c.tokens_in_times)}/{c.n_tokens}, results in "
                             f"{c.results_in}/{c.n_results}, sent {c.tokens_sent}/{c.n_sends} tokens "
                             f"{c.results_sent}/{len(c.remote_uses)} results")
        for ch in self.drams:
            if ch.done_at is None:
                parts.append(f"DRAM {ch.index}: head {ch.head}/{len(ch.transfers)}")
        return "; ".join(parts)

    def _sram_counts(self, c) -> dict:
        """The datapath's SRAM access counters (hw.tile_datapath.SRAM_COUNTERS) of chiplet
        ``c``, as the RTL counts them: per token of a job, one weight and one token word
        per gate/up beat, one weight word per down beat and one accumulator add per down
        column block; per TOKEN received d / R token words written, per token sent d / R
        read; per RESULT received d / C accumulator adds, per result sent d / C reads."""
        p, d = self.p, self.d
        R, C = p.mac_rows, p.mac_cols
        tokens = sum(j.count for j in c.all_jobs)
        gu = c.engine.G
        received = len(c.tokens_in_times)
        return {"weight_write_flits": c.weight_write_flits, "weight_read_words": c.engine.mac_cycles,
                "weight_forward_flits": c.weight_forward_flits,
                "token_write_words": received * -(-d // R), "token_read_words": tokens * gu,
                "token_ext_read_words": c.tokens_sent * -(-d // R),
                "acc_read_words": (tokens + c.results_in + c.results_sent) * -(-d // C),
                "acc_write_words": (tokens + c.results_in) * -(-d // C)}

    def _result(self, wall) -> RunResult:
        plan, p = self.plan, self.p
        attached = {ch.chiplet: ch for ch in self.drams}
        counters = []
        for c in self.chiplets:
            occ = _occupancy(c.occupancy)
            links = [self.net.links.get((c.id, d)) for d in range(4)]
            eng = c.engine
            busy = _union([(j.accepted + 1, j.popped) for j in c.all_jobs if j.accepted is not None])
            ch = attached.get(c.id)
            counters.append(ChipletCounters(
                busy_cycles=busy, mac_cycles=eng.mac_cycles, macs=eng.mac_cycles * p.mac_rows * p.mac_cols,
                slot_high_water=occ[0], slot_occupancy_end=occ[1],
                link_flits=[lk.flits if lk else 0 for lk in links],
                link_busy=[_union(lk.busy) if lk else 0 for lk in links],
                link_stalled=[lk.stalled if lk else 0 for lk in links],
                link_header_flits=[lk.headers if lk else 0 for lk in links], router_flits=self.net.switched[c.id],
                dram_flits=ch.flits_out if ch is not None else 0,
                done_cycle=c.all_done_at - c.g, error=0, **sram_traffic(self._sram_counts(c), self.workload.system.tile)))
        spec = dict(self.workload.spec)
        return RunResult.of_plan(plan, spec=spec, engine="fast", cycles=self.cycles, bit_exact=None,
                                 chiplets=counters, link_bytes=p.link_bytes,
                                 config={"system": p.config_name, "fast_model_events": self.kernel.events},
                                 wall_seconds=wall)


def _no_record(kind, who, t, data):
    pass


def _occupancy(deltas):
    """(high-water mark, final value) of a slot occupancy given ``(period, +-1)`` changes."""
    cur = high = 0
    by = {}
    for t, dv in deltas:
        by[t] = by.get(t, 0) + dv
    for t in sorted(by):
        cur += by[t]
        high = max(high, cur)
    return high, cur


def _union(intervals):
    """Cycles covered by inclusive ``(first, last)`` intervals."""
    total, end = 0, None
    for a, b in sorted(intervals):
        if b < a:
            continue
        if end is None or a > end:
            total += b - a + 1
            end = b
        elif b > end:
            total += b - end
            end = b
    return total
