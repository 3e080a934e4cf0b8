"""One DRAM channel: weight memory, program sequencer and a bandwidth/latency model.

A DRAM channel is attached to one chiplet and feeds that chiplet's router through its
``dram`` port (:class:`hw.router.Router`).  It runs a *DRAM channel program*
(``hw.isa``: ``SET CHIPLET_ID``, ``SET SLOT_WORDS``, ``STREAM``..., ``END``, encoded by
``scheduler.program.encode_plan``) over a weight image (``scheduler.program.dram_images``)
and turns every ``STREAM`` into one SLICE or WEIGHT packet (a RELAY is a WEIGHT packet with
the ``RELAY`` flag).  How long that takes is the
point of the model: payload beats leave at the channel's bandwidth after an access
latency, and the router's back-pressure (slot allocation, R6) stalls them.
"""

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .errors import DramError
from .isa import INSTRUCTION_BITS, Instruction, Opcode, Reg, StreamKind
from .packets import HEADER_BITS, Flag, Header, PacketKind, check_link_bytes, flit_layout

__all__ = ["DramChannel", "DramError", "stats_signature", "request_layout", "JITTER_LFSR_TAPS", "MAX_JITTER",
           "lfsr_advance", "jitter_draw", "jitter_draws", "channel_seed"]

#: The latency-jitter LFSR: 32-bit Galois, polynomial x^32 + x^22 + x^2 + x + 1 (shifting
#: right; these are the bits XORed in when a 1 leaves bit 0).  Its all-zero state never
#: changes, so seed 0 draws no jitter.
JITTER_LFSR_TAPS = 0x80200003
#: LFSR steps per request: each draw sees 16 fresh bits.
JITTER_LFSR_STEPS = 16
#: Largest ``jitter`` (a draw scales 16 random bits to 0..jitter).
MAX_JITTER = (1 << 16) - 1


def lfsr_advance(state, steps: int = JITTER_LFSR_STEPS, m=None):
    """The jitter LFSR ``steps`` steps on from ``state``: an ``int``, or an Amaranth value
    with the module ``m`` to add the logic to (then a 32-bit signal: each step is its own
    signal, as an expression would use the previous step twice and double per step)."""
    for k in range(steps):
        if isinstance(state, int):
            state = (state >> 1) ^ (JITTER_LFSR_TAPS if state & 1 else 0)
        else:
            nxt = Signal(32, name=f"jitter_lfsr_step{k + 1}")
            m.d.comb += nxt.eq((state >> 1) ^ Mux(state[0], JITTER_LFSR_TAPS, 0))
            state = nxt
    return state


def jitter_draw(state, jitter: int):
    """The jitter of a request drawn in LFSR ``state``: ``(state[0:16] * (jitter + 1)) >> 16``,
    in 0..jitter (an ``int``, or an Amaranth expression)."""
    if isinstance(state, int):
        return ((state & 0xFFFF) * (jitter + 1)) >> 16
    return (state[:16] * (jitter + 1)) >> 16


def channel_seed(seed, channel: int, m=None):
    """The LFSR seed of DRAM channel ``channel`` of a system whose jitter seed is ``seed``:
    ``seed`` times an odd constant of the channel, then MurmurHash3's 32-bit finalizer
    (both bijections of 32 bits that keep 0 at 0), so seed 0 draws no jitter on any
    channel and neighbouring seeds and channels draw unrelated jitters (an LFSR alone
    maps nearby states to nearby draws).  ``seed``: an ``int``, or a 32-bit Amaranth value
    with the module ``m`` to add the logic to (then a 32-bit signal)."""
    factor = (0x9E3779B1 + 2 * channel) & 0xFFFFFFFF
    steps = [lambda h: h * factor, lambda h: h ^ (h >> 16), lambda h: h * 0x85EBCA6B, lambda h: h ^ (h >> 13),
             lambda h: h * 0xC2B2AE35, lambda h: h ^ (h >> 16)]
    h = seed
    for k, step in enumerate(steps):
        if isinstance(h, int):
            h = step(h) & 0xFFFFFFFF
        else:
            nxt = Signal(32, name=f"jitter_seed{channel}_mix{k}")
            m.d.comb += nxt.eq(step(h)[:32])
            h = nxt
    return h


def jitter_draws(seed: int, jitter: int, n: int) -> list[int]:
    """The jitters of a channel's first ``n`` requests after ``start`` with LFSR seed
    ``seed`` (software mirror of the HDL)."""
    state, out = seed & 0xFFFFFFFF, []
    for _ in range(n):
        out.append(jitter_draw(state, jitter))
        state = lfsr_advance(state)
    return out


def _check_int(what: str, value, low: int, high: int | None = None) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        kind = "a positive integer" if low == 1 else f"an integer of at least {low}"
        raise TypeError(f"{what} must be {kind}, not {value!r}")
    if high is not None and value > high:
        raise ValueError(f"{what} must be at most {high}, not {value!r}")
    return value


def request_layout(dram_words: int) -> data.StructLayout:
    """One issued ``STREAM``: the packet's header fields, its first word and its payload
    flit count (registers ``CHIPLET_ID`` and ``SLOT_WORDS`` are captured at issue, so a
    later ``SET`` does not change a request already queued)."""
    return data.StructLayout({
        "kind": PacketKind, "flags": unsigned(4), "src": unsigned(8), "dst": unsigned(8), "expert": unsigned(8),
        "slice": unsigned(8), "addr": range(dram_words), "length": unsigned(16),
    })


def stats_signature(counter_bits: int = 32) -> wiring.Signature:
    """Counters of one run (cleared by ``start``), all outputs.

    Every cycle between ``start`` and ``done`` (``busy``) falls into exactly one of the
    other six counters, so ``busy == packets + flits + stalled + wait_latency +
    wait_bandwidth + wait_program``.

    Members
    -------
    flits : counter_bits
        Payload flits accepted by the router (payload bytes = ``flits * link_bytes``).
    packets : counter_bits
        Header flits accepted (packets started).
    busy : counter_bits
        Cycles from the cycle after ``start`` to the cycle ``done`` rises, exclusive.
    stalled : counter_bits
        Cycles a flit was offered and the router did not take it (back-pressure).
    wait_latency : counter_bits
        Cycles a packet's header had gone and its next payload flit waited for the
        access latency of its request.
    wait_bandwidth : counter_bits
        Cycles a payload flit waited for a bandwidth token.
    wait_program : counter_bits
        Cycles with no packet issued to send (instructions executing, or the
        sequencer waiting to start).
    """
    return wiring.Signature({name: Out(counter_bits) for name in (
        "flits", "packets", "busy", "stalled", "wait_latency", "wait_bandwidth", "wait_program")})


class DramChannel(wiring.Component):
    """A DRAM channel model: weight memory, program sequencer, latency and bandwidth.

    Use
    ---
    Load the weight image through ``weight_wr`` and the program through ``program_wr``
    (both only accepted while the channel is not running), then pulse ``start`` with
    ``program_words`` set to the program's length.  The channel executes the program
    and sends one packet on ``out`` per ``STREAM``; ``done`` rises (sticky until the next
    ``start``) in the cycle after the last flit of the last packet is accepted, or,
    after an error, once the packets issued before the error have been accepted.
    ``error`` tells which (:class:`DramError`).

    Program
    -------
    ``SET CHIPLET_ID, v`` (``v < 256``) and ``SET SLOT_WORDS, v`` (``1 <= v <=
    max_slot_words = min(dram_words, 65535 // lanes)``, so that ``length`` fits the
    header) write the two registers (both 0 after ``start``); ``STREAM`` sends a
    packet; ``END`` stops.  Any other opcode, a SET of another register or out of
    range, a STREAM with ``SLOT_WORDS`` 0 or ``addr + SLOT_WORDS > dram_words``, and
    reaching word ``program_words`` without an END are errors that stop the program.

    Packets
    -------
    ``STREAM kind, expert, slice, dst, addr`` sends a header flit with the fields of
    ``hw.packets.Header``: ``kind`` SLICE or WEIGHT (from :class:`hw.isa.StreamKind`;
    RELAY sends WEIGHT with ``flags`` = ``Flag.RELAY``), ``src`` = ``CHIPLET_ID``, ``dst``,
    ``expert``, ``slice``, ``length`` = ``SLOT_WORDS * word_bytes / link_bytes`` and every
    other field zero (``hops`` 0, ``flags`` 0 otherwise: the router sets ``SOLE`` itself; ``slot`` 0: the router allocates the local slot, or
    stamps the granted remote slot and ``src`` into a remote WEIGHT header).  Then
    ``length`` payload flits: words ``addr .. addr + SLOT_WORDS - 1`` of the weight
    memory, each cut into ``word_bytes / link_bytes`` link-width lanes sent lane 0 (the
    low bytes) first, so flit ``k`` is lane ``k % lanes`` of word ``addr + k // lanes``
    (``hw.slice_layout.slice_flits``); ``last`` marks the final flit.

    Timing model
    ------------
    A request is one ``STREAM``'s whole read; the model has no DRAM banks, pages or
    refresh, only an access latency per request and a channel bandwidth.

    * Sequencer: ``start`` in cycle *s* executes instruction *k* in cycle *s + 1 + k*
      (one instruction per cycle).  A ``STREAM`` *issues* its request (enters the
      request queue) in the cycle after it executes.  The queue holds ``requests``
      requests, the one whose packet is being sent included; a ``STREAM`` that finds it
      full waits and issues in the cycle after the head packet's last flit is accepted.
      With the default of 2 the next request's access overlaps the current packet
      (prefetch); with 1 every packet pays its latency after the previous one.
    * Header: offered from the cycle its request reaches the head of the queue (its
      issue cycle, or the cycle after the previous packet's last flit was accepted).
      It waits for neither latency nor bandwidth, so the router can allocate a slot, or
      send a RESERVE, while the data is on its way, and it costs no bandwidth tokens.
    * Latency: the first payload flit of a request may leave ``latency`` cycles after
      its issue cycle, and at the earliest in the cycle after its header was accepted
      (so a request whose header goes at once has its first payload flit
      ``max(latency, 1)`` cycles after issue).  With ``jitter`` J > 0 each request's
      latency is ``latency + j``, ``j`` in 0..J drawn at issue from an LFSR
      (:func:`jitter_draws`; seeded by ``jitter_seed`` at ``start``; seed 0 draws 0).
    * Order: packets leave in program order, whatever their latencies: only the head
      request is ever sent, so a request whose (shorter) latency has passed waits for
      the ones before it.
    * Bandwidth: a token accumulator ``A`` gates the payload flits.  While the head
      request has passed its latency, ``A`` gains ``num`` per cycle, a payload flit may
      be offered when ``A >= den`` and costs ``den`` when accepted, and ``A`` saturates
      at ``cap = bucket_beats * den + num - 1``.  While the queue is empty or its head
      has not passed its latency, ``A`` is held at ``den``: a fresh access starts with
      exactly one flit's worth, so its first flit leaves at once and the next ones at
      the rate.
    * Hence back-to-back requests whose latency has passed (prefetched) stream at
      ``num / den`` flits per cycle across packet boundaries: with ``bucket_beats >= 2``
      the header cycle between packets costs no bandwidth (at ``num == den`` the link
      is the limit and each header takes one cycle).  Over any *T* cycles in which the
      head request stays past its latency, at most ``(cap + T * num) // den`` payload
      flits leave: at most ``bucket_beats`` flits above the rate, stalls or not.
    * Back-pressure: a flit offered and not accepted stays offered with the same data
      (nothing is lost) and ``A`` keeps filling up to ``cap``; a stall of at most
      ``(bucket_beats - 1) * den / num`` cycles therefore costs no bandwidth at all,
      and a longer one loses only the tokens above ``cap``.  The bucket stands for the
      return buffer of a real channel, data read ahead while the consumer stalls.  A
      header waiting for the router (R6, or a remote grant) fills it too, once its
      request has passed the latency.

    Parameters
    ----------
    word_bytes : int
        Bytes per weight word (``mac_rows * mac_cols``; the weight memory width).
    link_bytes : int
        Flit width in bytes; divides ``word_bytes`` and holds a header.
    dram_words : int
        Weight memory capacity in words (2 .. 2**24: STREAM addresses are 24 bits).
    rate : (int, int)
        Payload flits per cycle as ``(num, den)``, ``0 < num <= den``.
    latency : int
        Cycles from a request's issue to its first payload flit (at least 0).
    program_words : int
        Program memory capacity in 64-bit instructions (at least 2).
    bucket_beats : int
        Payload flits the bandwidth bucket can bank (at least 1).
    requests : int
        Requests in flight, the packet being sent included (1: no prefetch).
    counter_bits : int
        Width of the counters.
    jitter : int
        Random extra latency per request, 0..``jitter`` cycles (0, the default: none,
        and no jitter logic or port at all).
    faults : bool
        Test only (default False, which adds nothing): a ``fault_opcode`` input; while it
        is high the instruction being executed reads as an unknown opcode
        (:attr:`hw.faults.Fault.DRAM_OPCODE`).

    Members
    -------
    weight_wr : In(stream.Signature({addr, data}))
        Host port: write word ``addr`` (``data`` little-endian: byte ``b`` of the word is
        bits ``8b .. 8b + 7``).  Ready while not running.
    program_wr : In(stream.Signature({addr, data}))
        Host port: write instruction word ``addr``.  Ready while not running.
    start : In(1)
        Start the program (ignored while running; clears ``done``, ``error`` and the
        counters, and resets ``CHIPLET_ID`` and ``SLOT_WORDS`` to 0).
    program_words : In(range(program_words + 1))
        Program length, sampled with ``start``; running past it without an END is an
        error.
    stop : In(1)
        Issue nothing more: no request enters the queue and no flit is offered (the
        system stops every channel at the first error anywhere, or when its watchdog
        fires).
    busy : Out(1)
        From the cycle after ``start`` until ``done`` rises.
    done : Out(1)
        Sticky: the program stopped (END or error) and every issued packet was accepted.
    error : Out(4)
        Sticky :class:`hw.errors.DramError` bits.
    out : Out(stream.Signature({data, last}))
        Packets for the router's ``dram`` port.
    stats : Out(stats_signature(counter_bits))
        Counters of the current or last run.
    jitter_seed : In(32)
        Only with ``jitter`` > 0: the LFSR's seed, sampled with ``start`` (0: no jitter).

    Attributes
    ----------
    weights, program : amaranth.lib.memory.Memory
        The weight and program memories (a simulation may load them directly through
        ``ctx.set(dut.weights.data[i], word)``).
    lanes : int
        Flits per weight word.
    max_slot_words : int
        Largest ``SET SLOT_WORDS`` value.
    bucket_cap : int
        Saturation value of the bandwidth accumulator.
    """

    def __init__(self, *, word_bytes: int = 64, link_bytes: int = 16, dram_words: int = 2048,
                 rate=(1, 16), latency: int = 16, program_words: int = 1024, bucket_beats: int = 2,
                 requests: int = 2, counter_bits: int = 32, jitter: int = 0, faults: bool = False):
        check_link_bytes(link_bytes)
        _check_int("Word size in bytes", word_bytes, 1)
        if word_bytes % link_bytes:
            raise ValueError(f"Link width {link_bytes} bytes must divide the word ({word_bytes} bytes)")
        _check_int("DRAM capacity in words", dram_words, 2, 1 << 24)
        if (not isinstance(rate, tuple) or len(rate) != 2
                or any(not isinstance(v, int) or isinstance(v, bool) for v in rate)
                or not 0 < rate[0] <= rate[1]):
            raise ValueError(f"Rate must be a tuple (num, den) of integers with 0 < num <= den, "
                             f"not {rate!r}")
        _check_int("Latency", latency, 0)
        _check_int("Program capacity in words", program_words, 2)
        _check_int("Bucket depth in beats", bucket_beats, 1)
        _check_int("Requests in flight", requests, 1)
        _check_int("Counter width", counter_bits, 8, 64)
        _check_int("Latency jitter", jitter, 0, MAX_JITTER)
        if not isinstance(faults, bool):
            raise TypeError(f"Fault injection must be True or False, not {faults!r}")
        self.faults = faults
        self.word_bytes, self.link_bytes, self.dram_words = word_bytes, link_bytes, dram_words
        self.rate, self.latency, self.program_depth = rate, latency, program_words
        self.bucket_beats, self.requests, self.counter_bits = bucket_beats, requests, counter_bits
        self.jitter = jitter
        self.lanes = word_bytes // link_bytes
        #: Largest ``SET SLOT_WORDS`` value: the memory, and a 16-bit header ``length``.
        self.max_slot_words = min(dram_words, ((1 << 16) - 1) // self.lanes)
        self.bucket_cap = bucket_beats * rate[1] + rate[0] - 1
        self.request_layout = request_layout(dram_words)
        self.weights = Memory(shape=unsigned(8 * word_bytes), depth=dram_words, init=[])
        self.program = Memory(shape=unsigned(INSTRUCTION_BITS), depth=program_words, init=[])
        members = {
            "weight_wr": In(stream.Signature(data.StructLayout({
                "addr": range(dram_words), "data": unsigned(8 * word_bytes)}))),
            "program_wr": In(stream.Signature(data.StructLayout({
                "addr": range(program_words), "data": unsigned(INSTRUCTION_BITS)}))),
            "start": In(1),
            "stop": In(1),
            "program_words": In(range(program_words + 1)),
            "busy": Out(1),
            "done": Out(1),
            "error": Out(len(DramError)),
            "out": Out(stream.Signature(flit_layout(link_bytes))),
            "stats": Out(stats_signature(counter_bits)),
        }
        if jitter:
            members["jitter_seed"] = In(32)
        if faults:
            members["fault_opcode"] = In(1)
        super().__init__(members)

    @classmethod
    def from_config(cls, system, **overrides) -> "DramChannel":
        """A channel with the widths, capacity, rate and latency of a
        :class:`hw.config.SystemConfig`; keyword arguments override any parameter."""
        params = dict(word_bytes=system.tile.word_bytes, link_bytes=system.tile.link_bytes,
                      dram_words=system.dram_words, rate=tuple(system.dram_rate),
                      latency=system.dram_latency, program_words=system.dram_program_words,
                      jitter=system.dram_jitter)
        params.update(overrides)
        return cls(**params)

    def elaborate(self, platform):
        """Three parts share the request queue.

        The *sequencer* reads the program memory (synchronous read port, always
        enabled, addressed with the next ``pc`` so that one instruction executes per
        cycle), executes ``SET`` into its two registers and turns ``STREAM`` into a
        queue entry, waiting while the queue is full.  The *request queue* is a small
        circular buffer; each entry has a down-counter loaded with ``latency`` at issue,
        so the latency of a prefetched request runs while earlier packets drain.  The
        *packetizer* sends the head entry: the header flit (while it waits, the weight
        memory's read port reads the entry's first word), then the payload, one lane of
        the read port's output word per flit; when a flit takes the last lane the read
        port fetches the next word, so a new word is ready one cycle later and full rate
        has no bubbles.  The read port is enabled only then, so its output holds while a
        flit is stalled.  The bandwidth accumulator gates the payload flits.
        """
        m = Module()
        m.submodules.weights = self.weights
        m.submodules.program = self.program
        num, den = self.rate
        lanes, W = self.lanes, 8 * self.link_bytes
        R = self.requests

        running = Signal()
        clear = Signal()                 # start accepted: clear counters and status
        m.d.comb += self.busy.eq(running)

        # ---- host load ports -------------------------------------------------------------
        wwp = self.weights.write_port()
        pwp = self.program.write_port()
        for port, wp in ((self.weight_wr, wwp), (self.program_wr, pwp)):
            m.d.comb += [port.ready.eq(~running), wp.addr.eq(port.payload.addr),
                         wp.data.eq(port.payload.data), wp.en.eq(port.valid & ~running)]

        # ---- request queue ---------------------------------------------------------------
        layout = self.request_layout
        entries = [Signal(layout, name=f"req{i}") for i in range(R)]
        waits = [Signal(range(max(self.latency + self.jitter, 1) + 1), name=f"req{i}_wait") for i in range(R)]
        rd_ptr = Signal(range(max(R, 2)), name="req_rd")
        wr_ptr = Signal(range(max(R, 2)), name="req_wr")
        count = Signal(range(R + 1), name="req_count")
        push, pop = Signal(name="req_push"), Signal(name="req_pop")
        new = Signal(layout, name="req_new")
        head = Signal(layout, name="head")
        head_wait = Signal.like(waits[0], name="head_wait")
        latency = self.latency
        if self.jitter:
            # One draw per request, at issue; the LFSR moves on only when one is issued.
            lfsr = Signal(32, name="jitter_lfsr")
            draw = Signal(range(self.jitter + 1), name="jitter")
            m.d.comb += draw.eq(jitter_draw(lfsr, self.jitter))
            with m.If(self.start & ~running):
                m.d.sync += lfsr.eq(self.jitter_seed)
            with m.Elif(push):
                m.d.sync += lfsr.eq(lfsr_advance(lfsr, m=m))
            latency = self.latency + draw
        for i in range(R):
            with m.If(rd_ptr == i):
                m.d.comb += [head.eq(entries[i]), head_wait.eq(waits[i])]
            with m.If(push & (wr_ptr == i)):
                m.d.sync += [entries[i].eq(new), waits[i].eq(latency)]
            with m.Elif(waits[i] != 0):
                m.d.sync += waits[i].eq(waits[i] - 1)
        m.d.sync += count.eq(count + push - pop)
        with m.If(push):
            m.d.sync += wr_ptr.eq(Mux(wr_ptr == R - 1, 0, wr_ptr + 1))
        with m.If(pop):
            m.d.sync += rd_ptr.eq(Mux(rd_ptr == R - 1, 0, rd_ptr + 1))
        has_head = Signal(name="has_head")
        elapsed = Signal(name="head_elapsed")    # the head request has passed its latency
        m.d.comb += [has_head.eq(count != 0), elapsed.eq(has_head & (head_wait == 0))]
        drained = Signal(name="drained")         # nothing left after this cycle
        m.d.comb += drained.eq((count == 0) | ((count == 1) & pop))

        # ---- sequencer -------------------------------------------------------------------
        prp = self.program.read_port()
        pc = Signal(range(self.program_depth + 1), name="pc")
        prog_len = Signal(range(self.program_depth + 1), name="program_len")
        chiplet_id = Signal(8, name="chiplet_id")
        slot_words = Signal(range(self.max_slot_words + 1), name="slot_words")
        advance = Signal(name="advance")
        halt = Signal(name="halt")
        err = Signal(len(DramError), name="error_now")
        stopping = Signal(name="stopping")       # halted, waiting for the queue to drain
        instr = Instruction(prp.data)
        op = instr.operands
        m.d.comb += [prp.addr.eq(Mux(advance, pc + 1, pc)), prp.en.eq(1)]

        set_value = op.set.value
        st = op.stream
        end_word = Signal(range(self.dram_words + self.max_slot_words + 1), name="stream_end")
        m.d.comb += end_word.eq(st.addr + slot_words)
        m.d.comb += [
            new.src.eq(chiplet_id), new.dst.eq(st.dst), new.expert.eq(st.expert),
            new.slice.eq(st.slice), new.addr.eq(st.addr), new.length.eq(slot_words * lanes),
        ]
        with m.If(st.kind == StreamKind.WEIGHT):
            m.d.comb += new.kind.eq(PacketKind.WEIGHT)
        with m.Elif(st.kind == StreamKind.RELAY):
            m.d.comb += [new.kind.eq(PacketKind.WEIGHT), new.flags.eq(Flag.RELAY)]
        with m.Else():
            m.d.comb += new.kind.eq(PacketKind.SLICE)

        with m.If(~running):
            m.d.comb += prp.addr.eq(0)
            with m.If(self.start):
                m.d.comb += clear.eq(1)
                m.d.sync += [running.eq(1), stopping.eq(0), self.done.eq(0), self.error.eq(0),
                             pc.eq(0), prog_len.eq(self.program_words),
                             chiplet_id.eq(0), slot_words.eq(0)]
        with m.Elif(~stopping):
            with m.If(pc == prog_len):
                m.d.comb += [err.eq(DramError.MISSING_END), halt.eq(1)]
            if self.faults:
                with m.Elif(self.fault_opcode):
                    m.d.comb += [err.eq(DramError.OPCODE), halt.eq(1)]
            with m.Elif(instr.opcode == Opcode.END):
                m.d.comb += halt.eq(1)
            with m.Elif(instr.opcode == Opcode.SET):
                with m.If((op.set.reg == Reg.CHIPLET_ID) & (set_value < 256)):
                    m.d.sync += chiplet_id.eq(set_value)
                    m.d.comb += advance.eq(1)
                with m.Elif((op.set.reg == Reg.SLOT_WORDS) & (set_value != 0)
                            & (set_value <= self.max_slot_words)):
                    m.d.sync += slot_words.eq(set_value)
                    m.d.comb += advance.eq(1)
                with m.Else():
                    m.d.comb += [err.eq(DramError.SET), halt.eq(1)]
            with m.Elif(instr.opcode == Opcode.STREAM):
                with m.If((slot_words == 0) | (end_word > self.dram_words)):
                    m.d.comb += [err.eq(DramError.RANGE), halt.eq(1)]
                with m.Elif(((count < R) | pop) & ~self.stop):
                    m.d.comb += [push.eq(1), advance.eq(1)]
            with m.Else():
                m.d.comb += [err.eq(DramError.OPCODE), halt.eq(1)]
        with m.If(advance):
            m.d.sync += pc.eq(pc + 1)
        with m.If(err != 0):
            m.d.sync += self.error.eq(self.error | err)
        with m.If(running & (halt | stopping)):
            with m.If(drained):
                m.d.sync += [running.eq(0), stopping.eq(0), self.done.eq(1)]
            with m.Else():
                m.d.sync += stopping.eq(1)

        # ---- bandwidth accumulator ------------------------------------------------------
        credit = Signal(range(self.bucket_cap + 1), init=den, name="credit")
        credit_next = Signal(range(self.bucket_cap + num + 1), name="credit_next")
        taken = Signal(name="beat_taken")
        m.d.comb += credit_next.eq(credit + num - Mux(taken, den, 0))
        with m.If(elapsed):
            m.d.sync += credit.eq(Mux(credit_next > self.bucket_cap, self.bucket_cap, credit_next))
        with m.Else():
            m.d.sync += credit.eq(den)

        # ---- packetizer ------------------------------------------------------------------
        wrp = self.weights.read_port()
        in_payload = Signal(name="in_payload")
        beats_left = Signal(16, name="beats_left")
        lane = Signal(range(max(lanes, 2)), name="lane")
        word = Signal(range(self.dram_words), name="word")
        header = Signal(Header, name="header")
        m.d.comb += [header.kind.eq(head.kind), header.flags.eq(head.flags), header.src.eq(head.src),
                     header.dst.eq(head.dst),
                     header.length.eq(head.length), header.expert.eq(head.expert),
                     header.slice.eq(head.slice)]
        assert HEADER_BITS <= W
        accept = Signal(name="accept")
        m.d.comb += [accept.eq(self.out.valid & self.out.ready), wrp.en.eq(0)]
        lane_data = wrp.data.word_select(lane, W) if lanes > 1 else wrp.data
        last_lane = (lane == lanes - 1) if lanes > 1 else 1
        is_last = Signal(name="is_last")
        m.d.comb += is_last.eq(beats_left == 1)
        with m.If(has_head & ~in_payload):
            m.d.comb += [self.out.valid.eq(~self.stop), self.out.payload.data.eq(header),
                         self.out.payload.last.eq(0),   # SLOT_WORDS >= 1: a payload follows
                         wrp.addr.eq(head.addr), wrp.en.eq(1)]
            with m.If(accept):
                m.d.sync += [in_payload.eq(1), beats_left.eq(head.length), word.eq(head.addr), lane.eq(0)]
        with m.Elif(has_head):
            m.d.comb += [self.out.valid.eq(elapsed & (credit >= den) & ~self.stop),
                         self.out.payload.data.eq(lane_data), self.out.payload.last.eq(is_last),
                         taken.eq(accept), wrp.addr.eq(word + 1)]
            with m.If(accept):
                m.d.sync += beats_left.eq(beats_left - 1)
                with m.If(last_lane):
                    m.d.sync += [lane.eq(0), word.eq(word + 1)]
                    m.d.comb += wrp.en.eq(~is_last)
                with m.Else():
                    m.d.sync += lane.eq(lane + 1)
                with m.If(is_last):
                    m.d.sync += in_payload.eq(0)
                    m.d.comb += pop.eq(1)

        # ---- counters --------------------------------------------------------------------
        s = self.stats
        offered_none = running & has_head & in_payload & ~self.out.valid
        for counter, inc in ((s.flits, in_payload & accept), (s.packets, ~in_payload & accept),
                             (s.busy, running), (s.stalled, self.out.valid & ~self.out.ready),
                             (s.wait_latency, offered_none & ~elapsed),
                             (s.wait_bandwidth, offered_none & elapsed),
                             (s.wait_program, running & ~has_head)):
            with m.If(clear):
                m.d.sync += counter.eq(0)
            with m.Elif(inc):
                m.d.sync += counter.eq(counter + 1)
        return m
