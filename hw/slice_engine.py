"""SliceEngine: applies expert micro-slices to the local tokens routed to their expert."""

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .mac_array import mac_input_layout, mac_output_layout
from .slice_layout import Projection, down_word_base
from .sram import accumulator_add_layout, check_positive, check_pow2, index_bits, read_port_signature
from .vector_unit import vector_input_layout, vector_output_layout

__all__ = ["SliceEngine", "COUNTER_BITS"]

COUNTER_BITS = 32


class SliceEngine(wiring.Component):
    """Sequencer of the tile datapath: a *job* applies the micro-slice in one weight slot
    to a list of local tokens, accumulating each token's int32 partial outputs.

    **Job format.**  A job is ``{slot, base, count}``: the weight slot that holds the slice
    (in the :mod:`hw.slice_layout` layout) and a range ``base .. base + count - 1`` of the
    engine's *token list*, a small memory of ``{token, gate_q}`` entries (token slot in the
    token/accumulator buffers, uint8 Q0.8 gate weight) written through ``list_wr``.  The
    list is meant to be the per-expert table of the controller (the ISA's ``EXPERT`` /
    ``ENTRY``): after routing, each expert's local tokens are written once, contiguously,
    and every slice of that expert, in whichever slot it lands, is a job pointing at the
    same range.

    **Job stream and done stream.**  Jobs are accepted as soon as the previous job's tokens
    have all started, so consecutive jobs overlap in the pipeline exactly like consecutive
    tokens of one job.  ``done`` returns a job's slot once all of its accumulator updates
    are written, so the slot can be released (rule R5), through a small FIFO; jobs with
    tokens complete in order.  A job with ``count = 0`` (an expert with no local token)
    does no work and completes at once: its ``done`` is valid the cycle after it is
    accepted (two cycles in all on an idle engine), possibly before the ``done`` of an
    earlier job that is still computing.

    **Runtime configuration.**  ``d`` (hidden size) and ``fs`` (slice columns; ``fs = f``
    for a whole expert) must be multiples of ``mac_rows`` and ``mac_cols`` (checked by
    :func:`hw.slice_layout.check_shape`) and held stable while busy.  Where a slot starts
    is the weight buffer's business (``slot * slot_words``).

    **Counters.**  ``busy_cycles`` counts cycles with a job in progress (accepted, ``done``
    not yet taken), ``mac_cycles`` the cycles the MAC array is fed;
    ``macs = mac_cycles * mac_rows * mac_cols``.  They wrap; ``counters_clear`` zeroes them.

    Parameters
    ----------
    mac_rows, mac_cols : int
        MAC array shape (powers of two).
    max_slots, weight_depth : int
        Address fields of the weight buffer (see :class:`hw.sram.WeightBuffer`).
    token_slots, d_max : int
        Token/accumulator buffer shape.
    fs_max : int
        Largest ``fs``; a multiple of ``max(mac_rows, mac_cols)`` (the hidden buffer).
    list_depth : int
        Entries of the token list.

    Members
    -------
    job : In(stream.Signature(job_layout))
        ``{slot, base, count}``.
    done : Out(stream.Signature(done_layout))
        ``{slot}`` of a finished job.
    list_wr : In(stream.Signature(list_write_layout))
        ``{index, token, gate_q}``: write a token-list entry; always ready.  Entries of a
        job must not change until the job's last token has started.
    d : In(range(d_max + 1))
    fs : In(range(fs_max + 1))
    busy : Out(1)
    busy_cycles, mac_cycles : Out(32)
    macs : Out(32 + log2(mac_rows * mac_cols))
    counters_clear : In(1)
    weight_rd : Out(read_port_signature(...))
        To :attr:`hw.sram.WeightBuffer.rd`.
    token_rd : Out(read_port_signature(...))
        To :attr:`hw.sram.TokenBuffer.rd`.
    mac_i : Out(stream.Signature(mac_input_layout(...), always_ready=True))
    mac_o : In(stream.Signature(mac_output_layout(...), always_ready=True))
        To and from :class:`hw.mac_array.MacArray` (tagged with ``mac_tag_layout``).
    vec_i : Out(stream.Signature(vector_input_layout(...)))
    vec_o : In(stream.Signature(vector_output_layout(...)))
        To and from :class:`hw.vector_unit.VectorUnit` (tagged with ``vec_tag_layout``).
    acc_add : Out(stream.Signature(accumulator_add_layout(...), always_ready=True))
        To :attr:`hw.sram.AccumulatorBuffer.add`.
    """

    DRAIN_CYCLES = 2  # last issue -> MAC result -> accumulator write
    DONE_DEPTH = 4    # jobs in flight plus finished jobs whose `done` is not yet taken

    def __init__(self, *, mac_rows=8, mac_cols=8, max_slots=16, weight_depth=512, token_slots=64,
                 d_max=128, fs_max=128, list_depth=128):
        check_pow2("MAC array row count", mac_rows)
        check_pow2("MAC array column count", mac_cols)
        for what, value in (("Slot count", max_slots), ("Weight buffer depth", weight_depth),
                            ("Token slot count", token_slots), ("Maximum hidden size", d_max),
                            ("Maximum slice columns", fs_max), ("Token list depth", list_depth)):
            check_positive(what, value)
        hidden_word = max(mac_rows, mac_cols)
        if d_max % hidden_word:
            raise ValueError(f"Maximum hidden size {d_max} must be a multiple of {hidden_word}")
        if fs_max % hidden_word:
            raise ValueError(f"Maximum slice columns {fs_max} must be a multiple of {hidden_word}")
        self.mac_rows, self.mac_cols = mac_rows, mac_cols
        self.max_slots, self.weight_depth = max_slots, weight_depth
        self.token_slots, self.d_max, self.fs_max, self.list_depth = token_slots, d_max, fs_max, list_depth

        slot_bits, list_bits, token_bits = index_bits(max_slots), index_bits(list_depth), index_bits(token_slots)
        block_bits = index_bits(max(d_max, fs_max) // min(mac_rows, mac_cols))
        self.job_layout = data.StructLayout({
            "slot": unsigned(slot_bits), "base": unsigned(list_bits), "count": range(list_depth + 1)})
        self.done_layout = data.StructLayout({"slot": unsigned(slot_bits)})
        self.list_entry_layout = data.StructLayout({"token": unsigned(token_bits), "gate_q": unsigned(8)})
        self.list_write_layout = data.StructLayout({
            "index": unsigned(list_bits), "token": unsigned(token_bits), "gate_q": unsigned(8)})
        # A token on its way through the engine: list entry, the job's slot, last of its job.
        self.token_layout = data.StructLayout({
            "entry": self.list_entry_layout, "slot": unsigned(slot_bits), "last": 1})
        self.mac_tag_layout = data.StructLayout({
            "proj": Projection, "block": unsigned(block_bits), "last_block": 1, "hbuf": 1,
            "gate_q": unsigned(8), "token": unsigned(token_bits)})
        self.vec_tag_layout = data.StructLayout({"block": unsigned(block_bits), "last_block": 1, "hbuf": 1})
        self.token_list = Memory(shape=self.list_entry_layout, depth=list_depth, init=[])
        # Hidden activations of two tokens (double buffer), words of max(R, C) bytes.
        self.hidden_word = hidden_word
        self.hidden_word_bits = index_bits(fs_max // hidden_word)
        self.hidden = Memory(shape=unsigned(8 * hidden_word), depth=2 << self.hidden_word_bits, init=[])
        super().__init__({
            "job": In(stream.Signature(self.job_layout)),
            "done": Out(stream.Signature(self.done_layout)),
            "list_wr": In(stream.Signature(self.list_write_layout)),
            "d": In(range(d_max + 1)),
            "fs": In(range(fs_max + 1)),
            "busy": Out(1),
            "busy_cycles": Out(COUNTER_BITS),
            "mac_cycles": Out(COUNTER_BITS),
            "macs": Out(COUNTER_BITS + (mac_rows * mac_cols - 1).bit_length()),
            "counters_clear": In(1),
            "weight_rd": Out(read_port_signature(slot_bits=slot_bits, word_bits=index_bits(weight_depth),
                                                 data_shape=unsigned(8 * mac_rows * mac_cols))),
            "token_rd": Out(read_port_signature(slot_bits=token_bits, word_bits=index_bits(d_max // mac_rows),
                                                data_shape=unsigned(8 * mac_rows))),
            "mac_i": Out(stream.Signature(mac_input_layout(mac_rows, mac_cols, self.mac_tag_layout),
                                          always_ready=True)),
            "mac_o": In(stream.Signature(mac_output_layout(mac_cols, self.mac_tag_layout), always_ready=True)),
            "vec_i": Out(stream.Signature(vector_input_layout(mac_cols, self.vec_tag_layout))),
            "vec_o": In(stream.Signature(vector_output_layout(mac_cols, self.vec_tag_layout))),
            "acc_add": Out(stream.Signature(accumulator_add_layout(
                mac_cols=mac_cols, slot_bits=token_bits, word_bits=index_bits(d_max // mac_cols)),
                always_ready=True)),
        })

    def elaborate(self, platform):
        # Dataflow.  For each token the engine streams the slice's gate/up words (per
        # output column block, a pass over the d/R row blocks of the token for gate, then
        # one for up) and then its down words (per output column block, a pass over the
        # fs/R row blocks of the token's hidden vector), one MAC-array block per cycle.
        # The vector unit turns each (gate, up) column block into hidden int8s, written to
        # one half of a double-buffered hidden memory.  The down projection (D) of a token
        # needs all of its hidden vector, which trails its gate/up phase (GU) by the MAC
        # and vector-unit latency, so the engine interleaves tokens, of one job or of
        # consecutive jobs alike:
        #
        #     GU(0) GU(1) D(0) GU(2) D(1) ... GU(n-1) D(n-2) D(n-1)
        #
        # A two-entry queue holds the tokens between their GU and their D (one per half of
        # the hidden buffer).  After each phase the scheduler starts, in this order of
        # preference: the GU of the next token if one is ready and the queue has room; the
        # D of the oldest queued token once its hidden vector is complete (unless the next
        # token is one cycle away and the queue has room: then it waits for that token).
        # The array idles only before a D whose hidden vector is still in flight, when no
        # other token can fill the gap (the last token before the engine runs dry, or
        # slices so small that a GU is shorter than the latency).
        #
        # Tokens come from the token list: the read port always points at the next entry
        # of the current job, so the entry is readable the cycle after the previous one was
        # taken.  Issue happens in cycle k (addresses to the SRAMs); data and control reach
        # the MAC array in k + 1 (stage s1); a pass's sums leave it in the cycle after its
        # last beat and go, by tag, to a holding register (gate), the vector unit (up, with
        # the held gate sums) or the accumulator buffer (down).  A job's last D enters a
        # DRAIN_CYCLES delay line, then the done FIFO.
        m = Module()
        R, C = self.mac_rows, self.mac_cols
        lr, lc = (R - 1).bit_length(), (C - 1).bit_length()
        m.submodules.token_list = self.token_list
        m.submodules.hidden = self.hidden
        list_wp = self.token_list.write_port()
        list_rp = self.token_list.read_port()
        hid_wp = self.hidden.write_port(granularity=8 * C)
        hid_rp = self.hidden.read_port()
        m.submodules.done_fifo = done_fifo = SyncFIFO(width=self.done_layout.size, depth=self.DONE_DEPTH)

        # Token list writes.
        lw = self.list_wr.payload
        m.d.comb += [
            self.list_wr.ready.eq(1),
            list_wp.addr.eq(lw.index),
            list_wp.data.eq(Cat(lw.token, lw.gate_q)),
            list_wp.en.eq(self.list_wr.valid),
        ]

        # Loop bounds from the runtime shape.
        rows_d = Signal.like(self.d, name="rows_d")      # d / R: row blocks of gate/up passes
        cols_f = Signal.like(self.fs, name="cols_f")     # fs / C: gate/up column blocks
        rows_f = Signal.like(self.fs, name="rows_f")     # fs / R: row blocks of down passes
        cols_d = Signal.like(self.d, name="cols_d")      # d / C: down column blocks
        down_base = Signal(self.weight_rd.word.shape(), name="down_base")
        m.d.comb += [rows_d.eq(self.d >> lr), cols_f.eq(self.fs >> lc),
                     rows_f.eq(self.fs >> lr), cols_d.eq(self.d >> lc)]
        m.d.sync += down_base.eq(down_word_base(rows_d, cols_f))  # the shape is stable while busy
        empty_shape = (rows_d == 0) | (cols_f == 0) | (rows_f == 0) | (cols_d == 0)

        # --- Jobs in, tokens out -------------------------------------------------------
        j = self.job.payload
        accept = Signal(name="job_accept")
        accept_empty = Signal(name="job_accept_empty")
        job_slot = Signal.like(j.slot, name="job_slot")
        list_base = Signal.like(j.base, name="list_base")
        fetch = Signal(range(self.list_depth + 1), name="list_fetch")
        to_fetch = Signal(range(self.list_depth + 1), name="tokens_to_fetch")
        stable = Signal(name="list_data_stable")      # the read port shows entry `fetch`
        take = Signal(name="token_take")              # the scheduler takes the next token
        inflight = Signal(range(self.DONE_DEPTH + 1), name="jobs_in_flight")
        zero_done = Signal(name="zero_done_pending")  # an empty job's done waits for the FIFO
        zero_slot = Signal.like(j.slot, name="zero_done_slot")
        head = Signal(self.token_layout, name="next_token")
        head_valid = Signal(name="next_token_valid")

        room = (inflight + done_fifo.level + zero_done) < self.DONE_DEPTH
        m.d.comb += [
            self.job.ready.eq((to_fetch == 0) & ~zero_done & room),
            accept.eq(self.job.valid & self.job.ready),
            accept_empty.eq(accept & ((j.count == 0) | empty_shape)),
            list_rp.addr.eq(Mux(accept, j.base, list_base + fetch)),
            list_rp.en.eq(1),
            head.entry.eq(list_rp.data),
            head.slot.eq(job_slot),
            head.last.eq(to_fetch == 1),
            head_valid.eq((to_fetch != 0) & stable),
        ]
        with m.If(accept):
            m.d.sync += [job_slot.eq(j.slot), list_base.eq(j.base), fetch.eq(0), stable.eq(1),
                         to_fetch.eq(Mux(accept_empty, 0, j.count))]
        with m.Elif(take):
            m.d.sync += [fetch.eq(fetch + 1), to_fetch.eq(to_fetch - 1), stable.eq(0)]
        with m.Else():
            m.d.sync += stable.eq(1)
        token_coming = (to_fetch != 0) | (accept & ~accept_empty)

        # --- Scheduler -----------------------------------------------------------------
        cur = Signal(self.token_layout, name="gu_token")
        cur_hbuf = Signal(init=1, name="gu_hbuf")   # toggled before use: the first token gets half 0
        queue = [Signal(self.token_layout, name=f"d_queue_{i}") for i in range(2)]
        queued = Signal(range(3), name="d_queued")
        d_tok = queue[0]
        d_hbuf = Signal(name="d_hbuf")
        h_ready = Signal(range(3), name="hidden_ready")
        h_done = Signal(name="hidden_done")
        h_take = Signal(name="hidden_take")
        h_avail = (h_ready != 0) | h_done
        m.d.sync += h_ready.eq(h_ready + h_done - h_take)

        rb = Signal(range(self.d_max // R + 1), name="gu_row_block")
        proj = Signal(name="gu_proj")
        cb = Signal(range(self.fs_max // C + 1), name="gu_col_block")
        jb = Signal(range(self.fs_max // R + 1), name="d_row_block")
        kb = Signal(range(self.d_max // C + 1), name="d_col_block")
        w_off = Signal(self.weight_rd.word.shape(), name="weight_offset")

        issue = Signal(name="issue")
        s1 = Signal(data.StructLayout({
            "valid": 1, "hidden": 1, "chunk": range(max(2, self.hidden_word // R)), "first": 1, "last": 1,
            "tag": self.mac_tag_layout}), name="s1")
        s1_next = Signal.like(s1, name="s1_next")
        m.d.sync += s1.eq(s1_next)
        drain = [Signal(data.StructLayout({"valid": 1, "slot": j.slot.shape()}), name=f"drain_{i}")
                 for i in range(self.DRAIN_CYCLES)]
        drain_in = Signal.like(drain[0], name="drain_in")
        m.d.sync += [drain[0].eq(drain_in)] + [drain[i].eq(drain[i - 1]) for i in range(1, self.DRAIN_CYCLES)]

        gu_last = (cb == cols_f - 1) & proj & (rb == rows_d - 1)
        d_last = (kb == cols_d - 1) & (jb == rows_f - 1)

        def schedule(queued_after):
            """Start the next phase after this cycle (see the dataflow notes above)."""
            with m.If(head_valid & (queued_after < 2)):
                m.d.comb += take.eq(1)
                m.d.sync += [cur.eq(head), cur_hbuf.eq(~cur_hbuf),
                             rb.eq(0), proj.eq(0), cb.eq(0), w_off.eq(0)]
                m.next = "GU"
            with m.Elif((queued_after != 0) & ~(token_coming & (queued_after < 2)) & h_avail):
                m.d.comb += h_take.eq(1)
                m.d.sync += [jb.eq(0), kb.eq(0), w_off.eq(down_base)]
                m.next = "D"
            with m.Else():
                m.next = "WAIT"

        with m.FSM(name="engine"):
            with m.State("WAIT"):
                schedule(queued)
            with m.State("GU"):
                m.d.comb += [
                    issue.eq(1),
                    self.weight_rd.slot.eq(cur.slot), self.weight_rd.word.eq(w_off), self.weight_rd.en.eq(1),
                    self.token_rd.slot.eq(cur.entry.token), self.token_rd.word.eq(rb), self.token_rd.en.eq(1),
                    s1_next.valid.eq(1), s1_next.first.eq(rb == 0), s1_next.last.eq(rb == rows_d - 1),
                    s1_next.tag.proj.eq(Mux(proj, Projection.UP, Projection.GATE)),
                    s1_next.tag.block.eq(cb), s1_next.tag.last_block.eq(cb == cols_f - 1),
                    s1_next.tag.hbuf.eq(cur_hbuf), s1_next.tag.gate_q.eq(cur.entry.gate_q),
                ]
                m.d.sync += w_off.eq(w_off + 1)
                with m.If(rb == rows_d - 1):
                    m.d.sync += [rb.eq(0), proj.eq(~proj)]
                    with m.If(proj):
                        m.d.sync += cb.eq(cb + 1)
                with m.Else():
                    m.d.sync += rb.eq(rb + 1)
                with m.If(gu_last):
                    m.d.sync += [queue[0].eq(Mux(queued == 0, cur, queue[0])), queue[1].eq(cur),
                                 queued.eq(queued + 1)]
                    schedule(queued + 1)
            with m.State("D"):
                per_word = self.hidden_word // R
                word_shift = (per_word - 1).bit_length()
                m.d.comb += [
                    issue.eq(1),
                    self.weight_rd.slot.eq(d_tok.slot), self.weight_rd.word.eq(w_off), self.weight_rd.en.eq(1),
                    hid_rp.addr.eq(Cat((jb >> word_shift)[:self.hidden_word_bits], d_hbuf)),
                    s1_next.valid.eq(1), s1_next.hidden.eq(1),
                    s1_next.chunk.eq(jb[:word_shift] if word_shift else 0),
                    s1_next.first.eq(jb == 0), s1_next.last.eq(jb == rows_f - 1),
                    s1_next.tag.proj.eq(Projection.DOWN), s1_next.tag.block.eq(kb),
                    s1_next.tag.token.eq(d_tok.entry.token),
                ]
                m.d.sync += w_off.eq(w_off + 1)
                with m.If(jb == rows_f - 1):
                    m.d.sync += [jb.eq(0), kb.eq(kb + 1)]
                with m.Else():
                    m.d.sync += jb.eq(jb + 1)
                with m.If(d_last):
                    m.d.sync += [queue[0].eq(queue[1]), queued.eq(queued - 1), d_hbuf.eq(~d_hbuf)]
                    m.d.comb += [drain_in.valid.eq(d_tok.last), drain_in.slot.eq(d_tok.slot)]
                    schedule(queued - 1)
        m.d.comb += hid_rp.en.eq(1)

        # --- Done ----------------------------------------------------------------------
        # A job with tokens is done DRAIN_CYCLES after its last issue; an empty job at once
        # (or, if a drained job takes the FIFO's write port that cycle, one cycle later).
        drained = drain[-1]
        m.d.comb += [
            done_fifo.w_en.eq(drained.valid | zero_done | accept_empty),
            done_fifo.w_data.eq(Mux(drained.valid, drained.slot, Mux(zero_done, zero_slot, j.slot))),
            self.done.valid.eq(done_fifo.r_rdy),
            self.done.payload.eq(done_fifo.r_data),
            done_fifo.r_en.eq(self.done.ready),
        ]
        with m.If(drained.valid):
            with m.If(accept_empty):
                m.d.sync += [zero_done.eq(1), zero_slot.eq(j.slot)]
        with m.Else():
            m.d.sync += zero_done.eq(0)
        m.d.sync += inflight.eq(inflight + (accept & ~accept_empty) - drained.valid)
        m.d.comb += self.busy.eq((inflight != 0) | zero_done | done_fifo.r_rdy)

        # --- Stage s1: SRAM data meets its control in the MAC array ---------------------
        hidden_chunk = hid_rp.data.word_select(s1.chunk, 8 * R) if self.hidden_word > R else hid_rp.data
        m.d.comb += [
            self.mac_i.valid.eq(s1.valid),
            self.mac_i.payload.first.eq(s1.first),
            self.mac_i.payload.last.eq(s1.last),
            self.mac_i.payload.act.eq(Mux(s1.hidden, hidden_chunk, self.token_rd.data)),
            self.mac_i.payload.weights.eq(self.weight_rd.data),
            self.mac_i.payload.tag.eq(s1.tag),
        ]

        # --- Results -------------------------------------------------------------------
        # Gate sums wait for the up sums of the same columns; down sums go to the
        # accumulators.  The vector unit never stalls (its output is always taken), so
        # `vec_i` is valid for exactly one cycle per column block.
        r = self.mac_o.payload
        gate_sums = Signal(data.ArrayLayout(signed(32), C), name="gate_sums")
        with m.If(self.mac_o.valid & (r.tag.proj == Projection.GATE)):
            m.d.sync += gate_sums.eq(r.sums)
        m.d.comb += [
            self.vec_i.valid.eq(self.mac_o.valid & (r.tag.proj == Projection.UP)),
            self.vec_i.payload.gate.eq(gate_sums),
            self.vec_i.payload.up.eq(r.sums),
            self.vec_i.payload.gate_q.eq(r.tag.gate_q),
            self.vec_i.payload.tag.block.eq(r.tag.block),
            self.vec_i.payload.tag.last_block.eq(r.tag.last_block),
            self.vec_i.payload.tag.hbuf.eq(r.tag.hbuf),
            self.acc_add.valid.eq(self.mac_o.valid & (r.tag.proj == Projection.DOWN)),
            self.acc_add.payload.slot.eq(r.tag.token),
            self.acc_add.payload.word.eq(r.tag.block),
            self.acc_add.payload.data.eq(r.sums),
        ]

        # Hidden vectors: column block `block` of the token in half `hbuf`.
        v = self.vec_o.payload
        col_lanes = self.hidden_word // C
        lane_bits = (col_lanes - 1).bit_length()
        m.d.comb += [
            self.vec_o.ready.eq(1),
            hid_wp.addr.eq(Cat((v.tag.block >> lane_bits)[:self.hidden_word_bits], v.tag.hbuf)),
            hid_wp.data.eq(v.hidden.as_value().replicate(col_lanes)),
            hid_wp.en.eq(Mux(self.vec_o.valid, 1 << (v.tag.block[:lane_bits] if lane_bits else 0), 0)),
            h_done.eq(self.vec_o.valid & v.tag.last_block),
        ]

        # Counters.
        with m.If(self.counters_clear):
            m.d.sync += [self.busy_cycles.eq(0), self.mac_cycles.eq(0)]
        with m.Else():
            m.d.sync += [self.busy_cycles.eq(self.busy_cycles + self.busy),
                         self.mac_cycles.eq(self.mac_cycles + issue)]
        m.d.comb += self.macs.eq(self.mac_cycles << (R * C - 1).bit_length())
        return m
