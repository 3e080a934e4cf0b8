"""The tile controller: runs one chiplet's controller program (``hw.isa``) and serves the
router's slice arrivals with datapath jobs; sends and receives TOKEN and RESULT packets.

See :class:`Controller` for the ports and the protocol, :class:`ControllerError` for the
error bits and :class:`HostOp` for the host port's commands (with software encoders
below, used by testbenches and the system loader alike).
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from . import isa
from .config import TileConfig
from .errors import ControllerError
from .gearbox import Gearbox
from .packets import HEADER_BITS, Header, PacketKind, check_link_bytes, flit_layout
from .requant import MULT_BITS, SHIFT_BITS
from .sram import AccOp, check_positive, check_pow2, index_bits, read_port_signature
from .tile_datapath import fs_max_for
from .watchdog import WAIT_BITS, Wait

__all__ = ["Controller", "ControllerError", "HostOp", "HOST_BEAT_BITS", "host_command_layout",
           "counters_signature", "network_config_signature",
           "host_program", "host_token_row", "host_acc_read", "host_acc_zero", "host_token_read",
           "acc_row_from_beats"]

#: Bits of one ``ACC_READ`` response beat (two int32 accumulators).
HOST_BEAT_BITS = 64


#: Width of :attr:`Controller.error` (the bits are :class:`hw.errors.ControllerError`).
ERROR_BITS = len(ControllerError)


class HostOp(enum.Enum, shape=3):
    """Commands of the host port (``addr``: ``row << 16 | index`` unless said otherwise).

    ``PROG``: program word ``addr`` (the whole field) := ``data[:64]``.
    ``TOKEN_WRITE``: token-buffer word ``index`` of ``row`` := ``data[:8 * mac_rows]``.
    ``TOKEN_READ``: one response, token-buffer word ``index`` of ``row``.
    ``ACC_READ``: accumulator ``row``, ``index`` int32 lanes from lane 0 (0: ``d_max``):
    ``ceil(index / 2)`` responses, beat ``k`` = lanes ``2k`` (bits 0..31) and ``2k + 1``.
    ``ACC_ZERO``: every accumulator of ``row`` := 0.
    """

    PROG = 0
    TOKEN_WRITE = 1
    TOKEN_READ = 2
    ACC_READ = 3
    ACC_ZERO = 4


def host_command_layout(data_bits: int) -> data.StructLayout:
    return data.StructLayout({"op": HostOp, "addr": unsigned(32), "data": unsigned(data_bits)})


def counters_signature(counter_bits: int = 32) -> wiring.Signature:
    """Controller counters (all outputs, zeroed by ``start``).

    Members
    -------
    cycles : cycles from ``start`` to ``done`` (or to an error)
    arrivals, jobs : arrivals taken, datapath jobs started
    tokens_sent, results_sent : TOKEN / RESULT packets injected (last flit accepted)
    tokens_received, results_received : TOKEN / RESULT packets written into the buffers
    """
    return wiring.Signature({name: Out(counter_bits) for name in (
        "cycles", "arrivals", "jobs", "tokens_sent", "results_sent", "tokens_received", "results_received")})


def network_config_signature(max_slots: int) -> wiring.Signature:
    """The router configuration the program sets (``rows``, ``cols`` and ``age_limit``
    come from the tile).  ``slot_count`` stays 0 until the program reaches ``END``, so no
    slice lands in a slot before the datapath's slot layout is configured."""
    return wiring.Signature({"chiplet_id": Out(8), "successor": Out(8), "ring_len": Out(8),
                             "slot_count": Out(range(max_slots + 1))})


# --- software encoders of host commands ---------------------------------------------------

def _cmd(op, addr, value=0):
    return {"op": op, "addr": addr, "data": value}


def host_program(words) -> list[dict]:
    """Host commands that load a controller program from address 0."""
    return [_cmd(HostOp.PROG, i, int(w)) for i, w in enumerate(words)]


def host_token_row(row: int, x, mac_rows: int) -> list[dict]:
    """Host commands that write int8 token ``x`` into token-buffer ``row``."""
    from .slice_layout import token_words
    return [_cmd(HostOp.TOKEN_WRITE, row << 16 | w, word) for w, word in enumerate(token_words(x, mac_rows))]


def host_token_read(row: int, word: int) -> dict:
    return _cmd(HostOp.TOKEN_READ, row << 16 | word)


def host_acc_read(row: int, lanes: int) -> dict:
    """One command; ``ceil(lanes / 2)`` responses (see :func:`acc_row_from_beats`)."""
    return _cmd(HostOp.ACC_READ, row << 16 | lanes)


def host_acc_zero(row: int) -> dict:
    return _cmd(HostOp.ACC_ZERO, row << 16)


def acc_row_from_beats(beats, lanes: int) -> list[int]:
    """int32 accumulators from the responses of :func:`host_acc_read`."""
    out = []
    for b in beats:
        for half in (b & 0xFFFF_FFFF, (b >> 32) & 0xFFFF_FFFF):
            out.append(half - (1 << 32) if half >> 31 else half)
    return out[:lanes]


class Controller(wiring.Component):
    """Tile controller of one chiplet.

    **Program.**  A program memory of ``program_words`` 64-bit words is loaded through
    ``prog_wr`` (or the host port's ``PROG``) while the controller is not running.  A
    ``start`` pulse (remembered until the controller, its packet sender and the host port
    are idle) clears the error bits, ``done``, the counters and the tables, and executes
    the program from address 0, one instruction per two cycles (``LUT`` takes five):

    - ``SET reg, value``: configuration registers (:class:`hw.isa.Reg`), driving the
      datapath's ``dp_cfg`` and the router's ``net_cfg``;
    - ``LUT index, b0..b3``: four SiLU entries through ``dp_silu_wr``;
    - ``EXPERT e, first, count``: expert table entry (valid until the next start);
    - ``ENTRY row, gate``: token-list entry ``n`` (a running index) through
      ``dp_list_wr``, with a controller copy of ``row``;
    - ``REMOTE row, uses, home, home_row``: the row holds a token of chiplet ``home``;
    - ``SEND row, dst, dst_row``: inject a TOKEN packet (waits for the packet sender);
    - ``END``: if any REMOTE was given, mark each expert whose token list holds a remote
      row (two cycles per list entry of a valid expert); then RUN.

    **Run.**  Arrivals (``arrival``) are taken in order; each starts the datapath job
    ``{slot, base = first, count}`` of its expert (``dp_job``), as soon as the engine takes
    it, so consecutive jobs overlap in the engine.  A job of an expert with a remote row
    waits until all ``TOKENS`` tokens have been received (EP dispatch barrier).  Each
    ``dp_done`` is answered with ``compute_done`` to the router; a job with remote rows is
    then walked (about four cycles per list entry): each remote row's ``uses`` is
    decremented, and when it reaches 0 the row's int32 accumulators go home in a RESULT
    packet.  ``done`` (sticky) rises once ``ARRIVALS`` jobs are done, ``TOKENS`` tokens
    and ``RESULTS`` results were received, every SEND and every remote row's result was
    injected.

    **Packets.**  TOKEN: header ``{kind, dst, length, token = dst_row}``, payload the
    ``D_MODEL`` int8 bytes of the row; RESULT: ``{kind, dst = home, length, token =
    home_row}``, payload ``4 * D_MODEL`` bytes, int32 little-endian (``hw.packets``).
    Received (``eject``, drained from the first instruction after the program's leading
    ``SET`` run, so that TOKENS, RESULTS and TOKEN_ROWS are set before any packet is
    checked against them, and a start never waits on other chiplets): TOKEN ->
    token-buffer row ``token``; RESULT -> added into accumulator row ``token``.  The
    expected payload length follows ``D_MODEL``; anything else is dropped and flagged.

    Parameters
    ----------
    The names follow :class:`hw.config.TileConfig` (:meth:`from_config`); ``max_slots``
    and ``fs_max`` as in :class:`hw.tile_datapath.TileDatapath`; ``counter_bits`` is the
    width of the counters and of the ARRIVALS/RESULTS/TOKENS registers.

    Members
    -------
    prog_wr : In(stream.Signature({addr, data}))
        Program memory write; ready while not running.
    host : In(stream.Signature(host_command_layout(host_bits)))
        ``{op, addr, data}`` (:class:`HostOp`); taken while not running.
    host_resp : Out(stream.Signature(host_bits))
        Responses of ``TOKEN_READ`` and ``ACC_READ``, in order.
    start : In(1)
    running, done : Out(1)
    stop : In(1)
        Stop issuing work, as an error does (the system stops every controller at the
        first error anywhere, or when its watchdog fires); sets no error bit.
    error : Out(len(ControllerError))
        Sticky :class:`hw.errors.ControllerError` bits.
    progress : Out(1)
        The controller made progress this cycle: an instruction or table-scan step, an
        arrival, job or finished job taken, a flit injected or ejected, an accumulator or
        token-buffer access, a step of the remote-row walk.
    wait : Out(hw.watchdog.WAIT_BITS)
        While running, what it waits for (:class:`hw.watchdog.Wait`): its router to take a
        packet (``SEND``), the slice engine (``ENGINE``), tokens (``TOKEN``), arrivals
        (``ARRIVAL``), results (``RESULT``), first that applies.
    counters : Out(counters_signature(counter_bits))
    net_cfg : Out(network_config_signature(max_slots))
    arrival : In(stream.Signature(...))
        ``hw.router.tile_signature``'s ``arrival``.
    compute_done : Out(stream.Signature(slot))
    inject : Out(stream.Signature(flit_layout(link_bytes)))
    eject : In(stream.Signature(flit_layout(link_bytes)))
    dp_cfg, dp_silu_wr, dp_list_wr, dp_job, dp_done, dp_tb_wr, dp_tb_rd, dp_acc_cmd, dp_acc_resp
        To :class:`hw.tile_datapath.TileDatapath`'s ports of the same names without ``dp_``.
    """

    def __init__(self, *, mac_rows=8, mac_cols=8, link_bytes=16, weight_words=192, max_slots=16,
                 token_rows=512, d_max=32, fs_max=512, table_entries=2048, max_experts=256,
                 program_words=4096, counter_bits=32):
        check_pow2("MAC array row count", mac_rows)
        check_pow2("MAC array column count", mac_cols)
        check_link_bytes(link_bytes)
        check_pow2("Link width in bytes", link_bytes)
        for what, value in (("Weight buffer depth", weight_words), ("Slot count", max_slots),
                            ("Token row count", token_rows), ("Maximum hidden size", d_max),
                            ("Maximum slice columns", fs_max), ("Token table size", table_entries),
                            ("Expert table size", max_experts), ("Program memory size", program_words),
                            ("Counter width", counter_bits)):
            check_positive(what, value)
        if mac_cols < 2:
            raise ValueError(f"MAC array column count must be at least 2 (host beats hold two "
                             f"accumulators), not {mac_cols}")
        if d_max % mac_rows or d_max % mac_cols:
            raise ValueError(f"Maximum hidden size {d_max} must be a multiple of the MAC array dimensions")
        if max_experts > 256:
            raise ValueError(f"Expert table size must be at most 256 (8-bit expert ids), not {max_experts}")
        if table_entries > 1 << 16 or token_rows > 1 << 16:
            raise ValueError("Token table size and token row count must be at most 65536 (16-bit operands)")
        self.mac_rows, self.mac_cols, self.link_bytes = mac_rows, mac_cols, link_bytes
        self.weight_words, self.max_slots, self.token_rows, self.d_max = weight_words, max_slots, token_rows, d_max
        self.fs_max, self.table_entries, self.max_experts = fs_max, table_entries, max_experts
        self.program_words, self.counter_bits = program_words, counter_bits
        self.host_bits = max(HOST_BEAT_BITS, 8 * mac_rows)

        slot_bits, list_bits, token_bits = index_bits(max_slots), index_bits(table_entries), index_bits(token_rows)
        self.slot_bits, self.list_bits, self.token_bits = slot_bits, list_bits, token_bits
        self.tb_word_bits = index_bits(d_max // mac_rows)
        self.acc_word_bits = index_bits(d_max // mac_cols)
        # Datapath port layouts (identical to TileDatapath's; wiring.connect checks it).
        self.dp_config_signature = wiring.Signature({
            "slot_words": Out(range(weight_words + 1)), "slot_count": Out(range(max_slots + 1)),
            "d": Out(range(d_max + 1)), "fs": Out(range(fs_max + 1)),
            "gate_mult": Out(MULT_BITS), "gate_shift": Out(SHIFT_BITS),
            "up_mult": Out(MULT_BITS), "up_shift": Out(SHIFT_BITS),
            "hidden_mult": Out(MULT_BITS), "hidden_shift": Out(SHIFT_BITS),
        })
        self.silu_layout = data.StructLayout({"index": unsigned(8), "value": signed(8)})
        self.list_write_layout = data.StructLayout({
            "index": unsigned(list_bits), "token": unsigned(token_bits), "gate_q": unsigned(8)})
        self.job_layout = data.StructLayout({
            "slot": unsigned(slot_bits), "base": unsigned(list_bits), "count": range(table_entries + 1)})
        self.done_layout = data.StructLayout({"slot": unsigned(slot_bits)})
        self.token_write_layout = data.StructLayout({
            "slot": unsigned(token_bits), "word": unsigned(self.tb_word_bits), "data": unsigned(8 * mac_rows)})
        self.acc_word_layout = data.ArrayLayout(signed(32), mac_cols)
        self.acc_command_layout = data.StructLayout({
            "op": AccOp, "slot": unsigned(token_bits), "word": unsigned(self.acc_word_bits),
            "data": self.acc_word_layout})
        self.arrival_layout = data.StructLayout({
            "slot": unsigned(slot_bits), "kind": PacketKind, "expert": unsigned(8), "slice": unsigned(8),
            "hops": unsigned(8), "length": unsigned(16)})
        self.host_layout = host_command_layout(self.host_bits)
        self.prog_write_layout = data.StructLayout({"addr": range(program_words), "data": unsigned(64)})

        # Tables (memories are created here so testbenches can inspect them).
        self.expert_layout = data.StructLayout({"first": unsigned(list_bits), "count": range(table_entries + 1)})
        self.remote_layout = data.StructLayout({
            "uses": dict(isa.RemoteOperands.as_shape())["uses"].shape, "home": unsigned(8),
            "home_row": unsigned(16)})
        self.program = Memory(shape=unsigned(64), depth=program_words, init=[])
        self.experts = Memory(shape=self.expert_layout, depth=max_experts, init=[])
        self.entries = Memory(shape=unsigned(token_bits), depth=table_entries, init=[])
        self.remotes = Memory(shape=self.remote_layout, depth=token_rows, init=[])

        super().__init__({
            "prog_wr": In(stream.Signature(self.prog_write_layout)),
            "host": In(stream.Signature(self.host_layout)),
            "host_resp": Out(stream.Signature(unsigned(self.host_bits))),
            "start": In(1),
            "running": Out(1),
            "done": Out(1),
            "stop": In(1),
            "error": Out(ERROR_BITS),
            "progress": Out(1),
            "wait": Out(WAIT_BITS),
            "counters": Out(counters_signature(counter_bits)),
            "net_cfg": Out(network_config_signature(max_slots)),
            "arrival": In(stream.Signature(self.arrival_layout)),
            "compute_done": Out(stream.Signature(unsigned(slot_bits))),
            "inject": Out(stream.Signature(flit_layout(link_bytes))),
            "eject": In(stream.Signature(flit_layout(link_bytes))),
            "dp_cfg": Out(self.dp_config_signature),
            "dp_silu_wr": Out(stream.Signature(self.silu_layout)),
            "dp_list_wr": Out(stream.Signature(self.list_write_layout)),
            "dp_job": Out(stream.Signature(self.job_layout)),
            "dp_done": In(stream.Signature(self.done_layout)),
            "dp_tb_wr": Out(stream.Signature(self.token_write_layout)),
            "dp_tb_rd": Out(read_port_signature(slot_bits=token_bits, word_bits=self.tb_word_bits,
                                                data_shape=unsigned(8 * mac_rows))),
            "dp_acc_cmd": Out(stream.Signature(self.acc_command_layout)),
            "dp_acc_resp": In(stream.Signature(self.acc_word_layout)),
        })

    @staticmethod
    def parameters_for(tile: TileConfig, *, max_slots: int | None = None, counter_bits: int = 32) -> dict:
        return dict(mac_rows=tile.mac_rows, mac_cols=tile.mac_cols, link_bytes=tile.link_bytes,
                    weight_words=tile.weight_words, max_slots=max_slots or tile.max_slots, token_rows=tile.token_rows,
                    d_max=tile.d_max, fs_max=fs_max_for(tile), table_entries=tile.table_entries,
                    max_experts=tile.max_experts, program_words=tile.program_words, counter_bits=counter_bits)

    @classmethod
    def from_config(cls, tile: TileConfig, **overrides) -> "Controller":
        if not isinstance(tile, TileConfig):
            raise TypeError(f"Tile configuration must be a hw.config.TileConfig, not {tile!r}")
        return cls(**(cls.parameters_for(tile) | overrides))

    def elaborate(self, platform):
        # Five engines share the tables and the datapath ports:
        #
        # - the *decoder* (FSM "control"): FETCH/EXEC per instruction, SCAN after END, then
        #   RUN until done (DONE) or an error (HALT);
        # - the *dispatcher*: a two-stage pipe arrival -> expert-table read -> job;
        # - the *walker*: after each job with remote rows, decrements their uses and
        #   requests RESULT packets;
        # - the *sender*: one packet at a time from a one-entry request register (SEND
        #   from the decoder, RESULT from the walker): header flit, then payload words read
        #   from the token buffer (port dp_tb_rd) or the accumulators (READ commands) and
        #   packed into flits by a gearbox;
        # - the *receiver*: checks each ejected header, then unpacks the payload flits into
        #   token-buffer writes or accumulator ADD commands.
        #
        # The host engine uses the same ports, only while the controller is not running
        # and the sender is idle.  Accumulator commands are arbitrated receiver > sender >
        # host; READ responses go to the sender while it owns the port, else to the host.
        m = Module()
        R, C, L = self.mac_rows, self.mac_cols, self.link_bytes
        log_r, log_c, log_l = (R - 1).bit_length(), (C - 1).bit_length(), (L - 1).bit_length()
        cb = self.counter_bits

        m.submodules.program = self.program
        m.submodules.experts = self.experts
        m.submodules.entries = self.entries
        m.submodules.remotes = self.remotes
        prog_w, prog_r = self.program.write_port(), self.program.read_port()
        exp_w, exp_r = self.experts.write_port(), self.experts.read_port()
        ent_w, ent_r = self.entries.write_port(), self.entries.read_port()
        rem_w, rem_r = self.remotes.write_port(), self.remotes.read_port()
        # A read port's `en` is 1 unless driven; the engines below raise it when they read,
        # and rely on the data being held otherwise.
        m.d.comb += [port.en.eq(0) for port in (prog_r, exp_r, ent_r, rem_r)]

        err = Signal(ERROR_BITS, name="error_now")
        halted = Signal(name="halted")
        m.d.comb += halted.eq((self.error != 0) | self.stop)
        m.d.sync += self.error.eq(self.error | err)
        with m.If(err.any()):
            m.d.sync += self.done.eq(0)

        def flag(bit):
            m.d.comb += err[ControllerError(bit).bit_length() - 1].eq(1)

        # ---- configuration registers ---------------------------------------------------
        cfg = {
            isa.Reg.CHIPLET_ID: Signal(8, name="reg_chiplet_id"),
            isa.Reg.SUCCESSOR: Signal(8, name="reg_successor"),
            isa.Reg.RING_LEN: Signal(8, name="reg_ring_len"),
            isa.Reg.SLOTS: Signal(range(self.max_slots + 1), name="reg_slots"),
            isa.Reg.SLOT_WORDS: Signal(range(self.weight_words + 1), name="reg_slot_words"),
            isa.Reg.D_MODEL: Signal(range(self.d_max + 1), name="reg_d_model"),
            isa.Reg.SLICE_COLS: Signal(range(self.fs_max + 1), name="reg_slice_cols"),
            isa.Reg.TOKEN_ROWS: Signal(range(self.token_rows + 1), name="reg_token_rows"),
            isa.Reg.ARRIVALS: Signal(cb, name="reg_arrivals"),
            isa.Reg.RESULTS: Signal(cb, name="reg_results"),
            isa.Reg.TOKENS: Signal(cb, name="reg_tokens"),
            isa.Reg.GATE_MULT: Signal(MULT_BITS, name="reg_gate_mult"),
            isa.Reg.GATE_SHIFT: Signal(SHIFT_BITS, name="reg_gate_shift"),
            isa.Reg.UP_MULT: Signal(MULT_BITS, name="reg_up_mult"),
            isa.Reg.UP_SHIFT: Signal(SHIFT_BITS, name="reg_up_shift"),
            isa.Reg.HIDDEN_MULT: Signal(MULT_BITS, name="reg_hidden_mult"),
            isa.Reg.HIDDEN_SHIFT: Signal(SHIFT_BITS, name="reg_hidden_shift"),
        }
        d, rows = cfg[isa.Reg.D_MODEL], cfg[isa.Reg.TOKEN_ROWS]
        n_arrivals, n_results, n_tokens = cfg[isa.Reg.ARRIVALS], cfg[isa.Reg.RESULTS], cfg[isa.Reg.TOKENS]
        configured = Signal(name="configured")
        dc = self.dp_cfg
        m.d.comb += [
            dc.slot_words.eq(cfg[isa.Reg.SLOT_WORDS]), dc.slot_count.eq(cfg[isa.Reg.SLOTS]),
            dc.d.eq(d), dc.fs.eq(cfg[isa.Reg.SLICE_COLS]),
            dc.gate_mult.eq(cfg[isa.Reg.GATE_MULT]), dc.gate_shift.eq(cfg[isa.Reg.GATE_SHIFT]),
            dc.up_mult.eq(cfg[isa.Reg.UP_MULT]), dc.up_shift.eq(cfg[isa.Reg.UP_SHIFT]),
            dc.hidden_mult.eq(cfg[isa.Reg.HIDDEN_MULT]), dc.hidden_shift.eq(cfg[isa.Reg.HIDDEN_SHIFT]),
            self.net_cfg.chiplet_id.eq(cfg[isa.Reg.CHIPLET_ID]),
            self.net_cfg.successor.eq(cfg[isa.Reg.SUCCESSOR]),
            self.net_cfg.ring_len.eq(cfg[isa.Reg.RING_LEN]),
            self.net_cfg.slot_count.eq(Mux(configured, cfg[isa.Reg.SLOTS], 0)),
        ]
        # Largest legal value (and extra condition) of each register.
        shape_ok = lambda v: (v[:log_r] == 0 if log_r else 1) & (v[:log_c] == 0 if log_c else 1)
        limits = {isa.Reg.CHIPLET_ID: (255, 1), isa.Reg.SUCCESSOR: (255, 1), isa.Reg.RING_LEN: (255, 1),
                  isa.Reg.SLOTS: (self.max_slots, 1), isa.Reg.SLOT_WORDS: (self.weight_words, 1),
                  isa.Reg.D_MODEL: (self.d_max, None), isa.Reg.SLICE_COLS: (self.fs_max, None),
                  isa.Reg.TOKEN_ROWS: (self.token_rows, 1),
                  isa.Reg.ARRIVALS: ((1 << cb) - 1, 1), isa.Reg.RESULTS: ((1 << cb) - 1, 1),
                  isa.Reg.TOKENS: ((1 << cb) - 1, 1)}
        for r in (isa.Reg.GATE_MULT, isa.Reg.UP_MULT, isa.Reg.HIDDEN_MULT):
            limits[r] = ((1 << MULT_BITS) - 1, 1)
        for r in (isa.Reg.GATE_SHIFT, isa.Reg.UP_SHIFT, isa.Reg.HIDDEN_SHIFT):
            limits[r] = ((1 << SHIFT_BITS) - 1, 1)
        assert set(limits) == set(isa.Reg)

        # ---- state shared by the engines ----------------------------------------------------
        cnt = self.counters
        expert_valid = Signal(self.max_experts, name="expert_valid")
        expert_remote = Signal(self.max_experts, name="expert_remote")
        row_remote = Signal(self.token_rows, name="row_remote")
        n_entries = Signal(range(self.table_entries + 1), name="entries_written")
        n_remote = Signal(range(self.token_rows + 1), name="remote_rows")
        n_sends = Signal(cb, name="sends")
        jobs_done = Signal(cb, name="jobs_done")
        go = Signal(name="go")
        rx_open = Signal(name="rx_open")   # the leading SETs are done: the receiver may take packets
        start_pending = Signal(name="start_pending")

        # Sender request register (SEND from the decoder, RESULT from the walker).
        req_valid = Signal(name="tx_req_valid")
        req_result = Signal(name="tx_req_result")
        req_row = Signal(self.token_bits, name="tx_req_row")
        req_dst = Signal(8, name="tx_req_dst")
        req_token = Signal(16, name="tx_req_token")
        dec_req = Signal(name="dec_send_req")
        walk_req = Signal(name="walk_result_req")
        walk_row = Signal(self.token_bits, name="walk_row")
        rem = rem_r.data
        instr = isa.Instruction(prog_r.data)
        ops = instr.operands
        with m.If(~req_valid):
            with m.If(dec_req):
                m.d.sync += [req_valid.eq(1), req_result.eq(0), req_row.eq(ops.send.row),
                             req_dst.eq(ops.send.dst), req_token.eq(ops.send.dst_row)]
            with m.Elif(walk_req):
                m.d.sync += [req_valid.eq(1), req_result.eq(1), req_row.eq(walk_row),
                             req_dst.eq(rem.home), req_token.eq(rem.home_row)]
        tx_idle = Signal(name="tx_idle")
        host_idle = Signal(name="host_idle")

        # ---- decoder ----------------------------------------------------------------------
        pc = Signal(range(self.program_words + 1), name="pc")
        lut_k = Signal(2, name="lut_step")
        scan_e = Signal(range(self.max_experts + 1), name="scan_expert")
        scan_i = Signal(self.list_bits, name="scan_entry")
        scan_left = Signal(range(self.table_entries + 1), name="scan_left")
        m.d.comb += prog_r.addr.eq(pc)
        in_scan = Signal(name="in_scan")
        run = Signal(name="in_run")
        stopped = Signal(name="stopped")   # IDLE, DONE or HALT
        all_done = Signal(name="all_done")
        walk_idle = Signal(name="walk_idle")
        b_valid = Signal(name="disp_valid")
        tokens_in = cnt.tokens_received
        m.d.comb += go.eq(start_pending & stopped & tx_idle & host_idle)
        with m.If(self.start):
            m.d.sync += start_pending.eq(1)
        with m.Elif(go):
            m.d.sync += start_pending.eq(0)

        with m.FSM(name="control") as fsm:
            with m.State("IDLE"):
                m.d.comb += stopped.eq(1)
                with m.If(go):
                    m.next = "FETCH"
            with m.State("FETCH"):
                with m.If(halted):
                    m.next = "HALT"
                with m.Elif(pc == self.program_words):
                    flag(ControllerError.NO_END)
                    m.next = "HALT"
                with m.Else():
                    m.d.comb += prog_r.en.eq(1)
                    m.next = "EXEC"
            with m.State("EXEC"):
                advance = Signal(name="advance")
                with m.If(instr.opcode != isa.Opcode.SET):
                    m.d.sync += rx_open.eq(1)
                with m.If(advance):
                    m.d.sync += pc.eq(pc + 1)
                    m.next = "FETCH"
                with m.Switch(instr.opcode):
                    with m.Case(isa.Opcode.END):
                        total = cfg[isa.Reg.SLOTS] * cfg[isa.Reg.SLOT_WORDS]
                        with m.If(total > self.weight_words):
                            flag(ControllerError.BAD_OPERAND)
                            m.next = "HALT"
                        with m.Else():
                            m.d.sync += [configured.eq(1), scan_e.eq(0)]
                            with m.If(n_remote != 0):
                                m.next = "SCAN"
                            with m.Else():
                                m.next = "RUN"
                    with m.Case(isa.Opcode.SET):
                        ok = Signal(name="set_ok")
                        value = ops.set.value
                        with m.Switch(ops.set.reg):
                            for reg, sig in cfg.items():
                                limit, extra = limits[reg]
                                with m.Case(reg):
                                    cond = (value <= limit) & (shape_ok(value) if extra is None else 1)
                                    m.d.comb += ok.eq(cond)
                                    with m.If(cond):
                                        m.d.sync += sig.eq(value)
                        with m.If(ok):
                            m.d.comb += advance.eq(1)
                        with m.Else():
                            flag(ControllerError.BAD_OPERAND)
                            m.next = "HALT"
                    with m.Case(isa.Opcode.LUT):
                        lut = ops.lut
                        with m.If(lut.index[:2] != 0):
                            flag(ControllerError.BAD_OPERAND)
                            m.next = "HALT"
                        with m.Else():
                            m.d.comb += [self.dp_silu_wr.valid.eq(1),
                                         self.dp_silu_wr.payload.index.eq(lut.index | lut_k),
                                         self.dp_silu_wr.payload.value.eq(lut.values[lut_k])]
                            with m.If(self.dp_silu_wr.ready):
                                m.d.sync += lut_k.eq(lut_k + 1)
                                with m.If(lut_k == 3):
                                    m.d.comb += advance.eq(1)
                    with m.Case(isa.Opcode.EXPERT):
                        e = ops.expert
                        with m.If((e.expert >= self.max_experts) | (e.first + e.count > self.table_entries)):
                            flag(ControllerError.TABLE_OVERFLOW)
                            m.next = "HALT"
                        with m.Else():
                            m.d.comb += [exp_w.en.eq(1), exp_w.addr.eq(e.expert),
                                         exp_w.data.first.eq(e.first), exp_w.data.count.eq(e.count), advance.eq(1)]
                            m.d.sync += expert_valid.bit_select(e.expert, 1).eq(1)
                    with m.Case(isa.Opcode.ENTRY):
                        en = ops.entry
                        with m.If(n_entries >= self.table_entries):
                            flag(ControllerError.TABLE_OVERFLOW)
                            m.next = "HALT"
                        with m.Elif(en.row >= rows):
                            flag(ControllerError.ROW_RANGE)
                            m.next = "HALT"
                        with m.Else():
                            lw = self.dp_list_wr
                            m.d.comb += [lw.valid.eq(1), lw.payload.index.eq(n_entries),
                                         lw.payload.token.eq(en.row), lw.payload.gate_q.eq(en.gate),
                                         ent_w.addr.eq(n_entries), ent_w.data.eq(en.row)]
                            with m.If(lw.ready):
                                m.d.comb += [ent_w.en.eq(1), advance.eq(1)]
                                m.d.sync += n_entries.eq(n_entries + 1)
                    with m.Case(isa.Opcode.REMOTE):
                        rm = ops.remote
                        with m.If(rm.row >= rows):
                            flag(ControllerError.ROW_RANGE)
                            m.next = "HALT"
                        with m.Elif((rm.uses == 0) | row_remote.bit_select(rm.row[:self.token_bits], 1)):
                            flag(ControllerError.BAD_OPERAND)
                            m.next = "HALT"
                        with m.Else():
                            m.d.comb += [rem_w.en.eq(1), rem_w.addr.eq(rm.row),
                                         rem_w.data.uses.eq(rm.uses), rem_w.data.home.eq(rm.home),
                                         rem_w.data.home_row.eq(rm.home_row), advance.eq(1)]
                            m.d.sync += [row_remote.bit_select(rm.row[:self.token_bits], 1).eq(1),
                                         n_remote.eq(n_remote + 1)]
                    with m.Case(isa.Opcode.SEND):
                        with m.If(ops.send.row >= rows):
                            flag(ControllerError.ROW_RANGE)
                            m.next = "HALT"
                        with m.Elif(~req_valid):
                            m.d.comb += [dec_req.eq(1), advance.eq(1)]
                            m.d.sync += n_sends.eq(n_sends + 1)
                    with m.Default():
                        flag(ControllerError.UNKNOWN_OPCODE)
                        m.next = "HALT"
            # Mark the experts whose token list holds a remote row (EP dispatch barrier).
            with m.State("SCAN"):
                m.d.comb += in_scan.eq(1)
                with m.If(halted):
                    m.next = "HALT"
                with m.Elif(scan_e == self.max_experts):
                    m.next = "RUN"
                with m.Elif(expert_valid.bit_select(scan_e, 1)):
                    m.d.comb += [exp_r.en.eq(1)]
                    m.next = "SCAN_LOAD"
                with m.Else():
                    m.d.sync += scan_e.eq(scan_e + 1)
            with m.State("SCAN_LOAD"):
                m.d.comb += in_scan.eq(1)
                with m.If(exp_r.data.count == 0):
                    m.d.sync += scan_e.eq(scan_e + 1)
                    m.next = "SCAN"
                with m.Else():
                    m.d.sync += [scan_i.eq(exp_r.data.first), scan_left.eq(exp_r.data.count)]
                    m.next = "SCAN_ENTRY"
            with m.State("SCAN_ENTRY"):
                m.d.comb += [in_scan.eq(1), ent_r.en.eq(1)]
                m.next = "SCAN_CHECK"
            with m.State("SCAN_CHECK"):
                m.d.comb += in_scan.eq(1)
                with m.If(row_remote.bit_select(ent_r.data, 1)):
                    m.d.sync += expert_remote.bit_select(scan_e, 1).eq(1)
                m.d.sync += [scan_i.eq(scan_i + 1), scan_left.eq(scan_left - 1)]
                with m.If(scan_left == 1):
                    m.d.sync += scan_e.eq(scan_e + 1)
                    m.next = "SCAN"
                with m.Else():
                    m.next = "SCAN_ENTRY"
            with m.State("RUN"):
                m.d.comb += run.eq(1)
                with m.If(all_done):
                    m.d.sync += self.done.eq(1)
                    m.next = "DONE"
                with m.Elif(halted):
                    m.next = "HALT"
            with m.State("DONE"):
                m.d.comb += stopped.eq(1)
                with m.If(go):
                    m.next = "FETCH"
            with m.State("HALT"):
                m.d.comb += stopped.eq(1)
                with m.If(go):
                    m.next = "FETCH"
        m.d.comb += self.running.eq(~stopped)

        # ---- dispatcher: arrival -> expert table -> job --------------------------------------
        b_slot = Signal(self.slot_bits, name="disp_slot")
        b_expert = Signal(8, name="disp_expert")
        b_remote = Signal(name="disp_remote")
        exp = exp_r.data
        job, arr = self.dp_job, self.arrival
        job_fire = Signal(name="job_fire")
        arr_fire = Signal(name="arrival_fire")
        m.d.comb += [
            b_remote.eq(expert_remote.bit_select(b_expert, 1)),
            job.valid.eq(b_valid & ~halted & (~b_remote | (tokens_in == n_tokens))),
            job.payload.slot.eq(b_slot), job.payload.base.eq(exp.first), job.payload.count.eq(exp.count),
            job_fire.eq(job.valid & job.ready),
            # In DONE an arrival is still taken, so that a surplus one is flagged, not held.
            arr.ready.eq((run | fsm.ongoing("DONE")) & ~halted & (~b_valid | job_fire)),
            arr_fire.eq(arr.valid & arr.ready),
            exp_r.addr.eq(Mux(in_scan, scan_e, arr.payload.expert)),
        ]
        info_base = Array(Signal(self.list_bits, name=f"job{s}_base") for s in range(self.max_slots))
        info_count = Array(Signal(range(self.table_entries + 1), name=f"job{s}_count") for s in range(self.max_slots))
        info_remote = Array(Signal(name=f"job{s}_remote") for s in range(self.max_slots))
        with m.If(job_fire):
            m.d.sync += [b_valid.eq(0), info_base[b_slot].eq(exp.first), info_count[b_slot].eq(exp.count),
                         info_remote[b_slot].eq(b_remote), cnt.jobs.eq(cnt.jobs + 1)]
        with m.If(arr_fire):
            m.d.sync += cnt.arrivals.eq(cnt.arrivals + 1)
            with m.If(cnt.arrivals == n_arrivals):
                flag(ControllerError.EXTRA_ARRIVAL)
            with m.Elif(~expert_valid.bit_select(arr.payload.expert, 1)):
                flag(ControllerError.UNKNOWN_EXPERT)
            with m.Else():
                m.d.comb += exp_r.en.eq(1)
                m.d.sync += [b_valid.eq(1), b_slot.eq(arr.payload.slot), b_expert.eq(arr.payload.expert)]

        # ---- job completion: compute_done, then walk remote rows -----------------------------
        m.submodules.walks = walks = SyncFIFO(width=self.list_bits + len(info_count[0]), depth=4)
        ds = self.dp_done.payload.slot
        needs_walk = Signal(name="needs_walk")
        room = Signal(name="walk_room")
        m.d.comb += [
            needs_walk.eq(info_remote[ds] & (info_count[ds] != 0)),
            room.eq(~needs_walk | walks.w_rdy),
            self.compute_done.valid.eq(self.dp_done.valid & room),
            self.compute_done.payload.eq(ds),
            self.dp_done.ready.eq(self.compute_done.ready & room),
            walks.w_en.eq(self.dp_done.valid & self.dp_done.ready & needs_walk),
            walks.w_data.eq(Cat(info_base[ds], info_count[ds])),
        ]
        with m.If(self.dp_done.valid & self.dp_done.ready):
            m.d.sync += jobs_done.eq(jobs_done + 1)

        w_entry = Signal(self.list_bits, name="walk_entry")
        w_left = Signal(range(self.table_entries + 1), name="walk_left")
        m.d.comb += ent_r.addr.eq(Mux(in_scan, scan_i, w_entry))
        with m.FSM(name="walk") as walk_fsm:
            with m.State("IDLE"):
                m.d.comb += [walk_idle.eq(1), walks.r_en.eq(1)]
                with m.If(walks.r_rdy):
                    m.d.sync += [w_entry.eq(walks.r_data[:self.list_bits]),
                                 w_left.eq(walks.r_data[self.list_bits:])]
                    m.next = "LIST"
            with m.State("LIST"):
                m.d.comb += ent_r.en.eq(1)
                m.next = "ROW"
            with m.State("ROW"):
                m.d.sync += walk_row.eq(ent_r.data)
                with m.If(row_remote.bit_select(ent_r.data, 1)):
                    m.d.comb += [rem_r.en.eq(1), rem_r.addr.eq(ent_r.data)]
                    m.next = "UPDATE"
                with m.Else():
                    m.next = "NEXT"
            with m.State("UPDATE"):
                with m.If(rem.uses == 0):
                    flag(ControllerError.USES_UNDERFLOW)
                    m.next = "NEXT"
                with m.Else():
                    m.d.comb += [rem_w.en.eq(1), rem_w.addr.eq(walk_row), rem_w.data.eq(rem),
                                 rem_w.data.uses.eq(rem.uses - 1)]
                    with m.If(rem.uses == 1):
                        m.next = "SEND"
                    with m.Else():
                        m.next = "NEXT"
            with m.State("SEND"):
                # The read port still shows the row's entry (home, home_row).
                m.d.comb += walk_req.eq(~halted)
                with m.If(~req_valid & ~dec_req & ~halted):
                    m.next = "NEXT"
            with m.State("NEXT"):
                m.d.sync += [w_entry.eq(w_entry + 1), w_left.eq(w_left - 1)]
                with m.If(w_left == 1):
                    m.next = "IDLE"
                with m.Else():
                    m.next = "LIST"

        # ---- accumulator port arbitration ----------------------------------------------------
        class _AccUser:
            def __init__(self, name):
                self.valid = Signal(name=f"{name}_acc_valid")
                self.payload = Signal(self_.acc_command_layout, name=f"{name}_acc_cmd")
                self.grant = Signal(name=f"{name}_acc_grant")
        self_ = self
        rx_acc, tx_acc, host_acc = _AccUser("rx"), _AccUser("tx"), _AccUser("host")
        ac = self.dp_acc_cmd
        with m.If(rx_acc.valid):
            m.d.comb += [ac.valid.eq(1), ac.payload.eq(rx_acc.payload), rx_acc.grant.eq(ac.ready)]
        with m.Elif(tx_acc.valid):
            m.d.comb += [ac.valid.eq(1), ac.payload.eq(tx_acc.payload), tx_acc.grant.eq(ac.ready)]
        with m.Elif(host_acc.valid):
            m.d.comb += [ac.valid.eq(1), ac.payload.eq(host_acc.payload), host_acc.grant.eq(ac.ready)]
        host_mode = Signal(name="host_mode")
        m.d.comb += host_mode.eq(stopped & tx_idle & ~start_pending)

        # ---- sender ------------------------------------------------------------------------
        tok_len = Signal(16, name="token_flits")
        res_len = Signal(16, name="result_flits")
        m.d.comb += [tok_len.eq((d + L - 1) >> log_l), res_len.eq(((d << 2) + L - 1) >> log_l)]
        row_words_max = self.d_max // R
        acc_words_max = self.d_max // C
        tx_tok = Gearbox(in_bits=8 * R, out_bits=8 * L,
                         max_count=max(row_words_max, (self.d_max + L - 1) // L))
        tx_res = Gearbox(in_bits=32 * C, out_bits=8 * L,
                         max_count=max(acc_words_max, (4 * self.d_max + L - 1) // L))
        m.submodules.tx_token_gearbox, m.submodules.tx_result_gearbox = tx_tok, tx_res
        tx_start = Signal(name="tx_start")
        tx_result = Signal(name="tx_result")
        tx_row = Signal(self.token_bits, name="tx_row")
        tx_len = Signal(16, name="tx_length")
        tx_left = Signal(16, name="tx_flits_left")
        hdr = Signal(Header, name="tx_header")
        tb_rd = self.dp_tb_rd
        tr_next = Signal(self.tb_word_bits + 1, name="tx_tb_next")
        tr_left = Signal(range(row_words_max + 1), name="tx_tb_left")
        tr_valid = Signal(name="tx_tb_valid")
        ar_next = Signal(self.acc_word_bits + 1, name="tx_acc_next")
        ar_left = Signal(range(acc_words_max + 1), name="tx_acc_left")
        tok_words = d >> log_r
        acc_words = d >> log_c
        m.d.comb += [
            tx_tok.count.eq(tok_words if R <= L else tok_len),
            tx_res.count.eq(acc_words if 4 * C <= L else res_len),
            tx_tok.start.eq(tx_start & ~req_result),
            tx_res.start.eq(tx_start & req_result),
        ]
        # Token rows: one read in flight, the next issued as the word is consumed.
        tr_take = Signal(name="tx_tb_take")
        m.d.comb += [tx_tok.i.valid.eq(tr_valid), tx_tok.i.payload.eq(tb_rd.data),
                     tr_take.eq(tr_valid & tx_tok.i.ready)]
        tx_tb_en = Signal(name="tx_tb_en")
        tx_tb_slot = Signal(self.token_bits, name="tx_tb_slot")
        tx_tb_word = Signal(self.tb_word_bits, name="tx_tb_word")
        with m.If(tx_start & ~req_result):
            with m.If(tok_words != 0):
                m.d.comb += [tx_tb_en.eq(1), tx_tb_slot.eq(req_row), tx_tb_word.eq(0)]
                m.d.sync += [tr_valid.eq(1), tr_next.eq(1), tr_left.eq(tok_words - 1)]
            with m.Else():
                m.d.sync += [tr_valid.eq(0), tr_left.eq(0)]
        with m.Elif(tr_take):
            with m.If(tr_left != 0):
                m.d.comb += [tx_tb_en.eq(1), tx_tb_slot.eq(tx_row), tx_tb_word.eq(tr_next)]
                m.d.sync += [tr_next.eq(tr_next + 1), tr_left.eq(tr_left - 1)]
            with m.Else():
                m.d.sync += tr_valid.eq(0)
        # Accumulator rows: READ commands as fast as the buffer takes them.
        m.d.comb += [tx_acc.valid.eq(ar_left != 0), tx_acc.payload.op.eq(AccOp.READ),
                     tx_acc.payload.slot.eq(tx_row), tx_acc.payload.word.eq(ar_next)]
        with m.If(tx_start & req_result):
            m.d.sync += [ar_next.eq(0), ar_left.eq(acc_words)]
        with m.Elif(tx_acc.grant):
            m.d.sync += [ar_next.eq(ar_next + 1), ar_left.eq(ar_left - 1)]
        # Header and payload flits.
        inj = self.inject
        tx_dst = Signal(8, name="tx_dst")
        tx_token = Signal(16, name="tx_token")
        m.d.comb += [hdr.dst.eq(tx_dst), hdr.length.eq(tx_len), hdr.token.eq(tx_token)]
        with m.If(tx_result):
            m.d.comb += hdr.kind.eq(PacketKind.RESULT)
        with m.Else():
            m.d.comb += hdr.kind.eq(PacketKind.TOKEN)
        tx_done = Signal(name="tx_packet_done")
        with m.FSM(name="sender"):
            with m.State("IDLE"):
                m.d.comb += tx_idle.eq(1)
                with m.If(req_valid & ~halted):
                    length = Mux(req_result, res_len, tok_len)
                    m.d.comb += tx_start.eq(1)
                    m.d.sync += [req_valid.eq(0), tx_result.eq(req_result), tx_row.eq(req_row),
                                 tx_dst.eq(req_dst), tx_token.eq(req_token), tx_len.eq(length),
                                 tx_left.eq(length)]
                    m.next = "HEADER"
            with m.State("HEADER"):
                m.d.comb += [inj.valid.eq(1), inj.payload.data.eq(hdr.as_value()),
                             inj.payload.last.eq(tx_len == 0)]
                with m.If(inj.ready):
                    with m.If(tx_len == 0):
                        m.d.comb += tx_done.eq(1)
                        m.next = "IDLE"
                    with m.Else():
                        m.next = "PAYLOAD"
            with m.State("PAYLOAD"):
                src = Mux(tx_result, tx_res.o.payload, tx_tok.o.payload)
                m.d.comb += [inj.valid.eq(Mux(tx_result, tx_res.o.valid, tx_tok.o.valid)),
                             inj.payload.data.eq(src), inj.payload.last.eq(tx_left == 1),
                             tx_res.o.ready.eq(tx_result & inj.ready), tx_tok.o.ready.eq(~tx_result & inj.ready)]
                with m.If(inj.valid & inj.ready):
                    m.d.sync += tx_left.eq(tx_left - 1)
                    with m.If(tx_left == 1):
                        m.d.comb += tx_done.eq(1)
                        m.next = "IDLE"
        with m.If(tx_done):
            with m.If(tx_result):
                m.d.sync += cnt.results_sent.eq(cnt.results_sent + 1)
            with m.Else():
                m.d.sync += cnt.tokens_sent.eq(cnt.tokens_sent + 1)

        # ---- receiver -------------------------------------------------------------------------
        ej = self.eject
        rx_tok = Gearbox(in_bits=8 * L, out_bits=8 * R,
                         max_count=max(row_words_max, (self.d_max + L - 1) // L))
        rx_res = Gearbox(in_bits=8 * L, out_bits=32 * C,
                         max_count=max(acc_words_max, (4 * self.d_max + L - 1) // L))
        m.submodules.rx_token_gearbox, m.submodules.rx_result_gearbox = rx_tok, rx_res
        rh = Header(ej.payload.data[:HEADER_BITS])
        rx_result = Signal(name="rx_result")
        rx_row = Signal(self.token_bits, name="rx_row")
        rx_word = Signal(max(self.tb_word_bits, self.acc_word_bits) + 1, name="rx_word")
        rx_left = Signal(range(max(row_words_max, acc_words_max) + 1), name="rx_words_left")
        rx_start = Signal(name="rx_start")
        rx_enabled = Signal(name="rx_enabled")
        m.d.comb += [
            rx_tok.count.eq(tok_words if L >= R else tok_len),
            rx_res.count.eq(acc_words if L >= 4 * C else res_len),
            rx_tok.start.eq(rx_start & (rh.kind == PacketKind.TOKEN)),
            rx_res.start.eq(rx_start & (rh.kind == PacketKind.RESULT)),
        ]
        rx_tb = Signal.like(self.dp_tb_wr.payload, name="rx_tb")
        rx_tb_valid = Signal(name="rx_tb_valid")
        rx_tb_ready = Signal(name="rx_tb_ready")
        rx_write = Signal(name="rx_write")   # a payload word is written this cycle
        with m.FSM(name="receiver") as rx_fsm:
            with m.State("HEAD"):
                m.d.comb += ej.ready.eq(rx_enabled)
                with m.If(ej.valid & ej.ready):
                    is_tok = rh.kind == PacketKind.TOKEN
                    is_res = rh.kind == PacketKind.RESULT
                    expect = Mux(is_tok, tok_len, res_len)
                    room_ = Mux(is_tok, tokens_in < n_tokens, cnt.results_received < n_results)
                    words = Mux(is_tok, tok_words, acc_words)
                    with m.If(~(is_tok | is_res) | ~room_ | (rh.length != expect)):
                        flag(ControllerError.BAD_PACKET)
                        with m.If(~ej.payload.last):
                            m.next = "DROP"
                    with m.Elif(rh.token >= rows):
                        flag(ControllerError.PACKET_ROW)
                        with m.If(~ej.payload.last):
                            m.next = "DROP"
                    with m.Elif(words == 0):
                        with m.If(is_tok):
                            m.d.sync += tokens_in.eq(tokens_in + 1)
                        with m.Else():
                            m.d.sync += cnt.results_received.eq(cnt.results_received + 1)
                        with m.If(~ej.payload.last):
                            m.next = "DROP"
                    with m.Else():
                        m.d.comb += rx_start.eq(1)
                        m.d.sync += [rx_result.eq(is_res), rx_row.eq(rh.token), rx_word.eq(0), rx_left.eq(words)]
                        m.next = "BODY"
            with m.State("BODY"):
                m.d.comb += [
                    rx_tok.i.valid.eq(ej.valid & ~rx_result), rx_res.i.valid.eq(ej.valid & rx_result),
                    rx_tok.i.payload.eq(ej.payload.data), rx_res.i.payload.eq(ej.payload.data),
                    ej.ready.eq(Mux(rx_result, rx_res.i.ready, rx_tok.i.ready)),
                    # token rows
                    rx_tb_valid.eq(rx_tok.o.valid & ~rx_result),
                    rx_tb.slot.eq(rx_row), rx_tb.word.eq(rx_word), rx_tb.data.eq(rx_tok.o.payload),
                    rx_tok.o.ready.eq(rx_tb_ready & ~rx_result),
                    # accumulator rows
                    rx_acc.valid.eq(rx_res.o.valid & rx_result), rx_acc.payload.op.eq(AccOp.ADD),
                    rx_acc.payload.slot.eq(rx_row), rx_acc.payload.word.eq(rx_word),
                    rx_acc.payload.data.eq(rx_res.o.payload),
                    rx_res.o.ready.eq(rx_acc.grant & rx_result),
                    rx_write.eq(Mux(rx_result, rx_acc.grant, rx_tb_valid & rx_tb_ready)),
                ]
                with m.If(rx_write):
                    m.d.sync += [rx_word.eq(rx_word + 1), rx_left.eq(rx_left - 1)]
                    with m.If(rx_left == 1):
                        with m.If(rx_result):
                            m.d.sync += cnt.results_received.eq(cnt.results_received + 1)
                        with m.Else():
                            m.d.sync += tokens_in.eq(tokens_in + 1)
                        m.next = "HEAD"
            with m.State("DROP"):
                m.d.comb += ej.ready.eq(1)
                with m.If(ej.valid & ej.payload.last):
                    m.next = "HEAD"

        # ---- host engine ------------------------------------------------------------------------
        hc = self.host
        h_op = Signal(HostOp, name="host_op")
        h_addr = Signal(32, name="host_addr")
        h_data = Signal(self.host_bits, name="host_data")
        h_row = h_addr[16:]
        h_index = h_addr[:16]
        h_count = Signal(range(acc_words_max + 1), name="host_words")
        h_word = Signal(self.acc_word_bits + 1, name="host_word")
        host_gb = Gearbox(in_bits=32 * C, out_bits=HOST_BEAT_BITS, max_count=(self.d_max + 1) // 2)
        m.submodules.host_gearbox = host_gb
        host_tb_valid = Signal(name="host_tb_valid")
        host_tb_en = Signal(name="host_tb_en")
        pw = self.prog_wr
        m.d.comb += pw.ready.eq(stopped)
        with m.If(pw.valid & pw.ready):
            m.d.comb += [prog_w.en.eq(1), prog_w.addr.eq(pw.payload.addr), prog_w.data.eq(pw.payload.data)]
        lanes = Signal(range(self.d_max + 1), name="host_lanes")
        with m.FSM(name="host"):
            with m.State("IDLE"):
                m.d.comb += [host_idle.eq(1), hc.ready.eq(host_mode)]
                with m.If(hc.valid & hc.ready):
                    m.d.sync += [h_op.eq(hc.payload.op), h_addr.eq(hc.payload.addr), h_data.eq(hc.payload.data),
                                 h_word.eq(0)]
                    m.next = "EXEC"
            with m.State("EXEC"):
                with m.Switch(h_op):
                    with m.Case(HostOp.PROG):
                        with m.If(~pw.valid):
                            with m.If(h_addr < self.program_words):
                                m.d.comb += [prog_w.en.eq(1), prog_w.addr.eq(h_addr), prog_w.data.eq(h_data)]
                            m.next = "IDLE"
                    with m.Case(HostOp.TOKEN_WRITE):
                        m.d.comb += host_tb_valid.eq(1)
                        with m.If(~rx_tb_valid & self.dp_tb_wr.ready):
                            m.next = "IDLE"
                    with m.Case(HostOp.TOKEN_READ):
                        m.d.comb += host_tb_en.eq(1)
                        m.next = "TOKEN_RESP"
                    with m.Case(HostOp.ACC_ZERO):
                        m.d.comb += [host_acc.valid.eq(1), host_acc.payload.op.eq(AccOp.WRITE),
                                     host_acc.payload.slot.eq(h_row), host_acc.payload.word.eq(h_word)]
                        with m.If(host_acc.grant):
                            m.d.sync += h_word.eq(h_word + 1)
                            with m.If(h_word == acc_words_max - 1):
                                m.next = "IDLE"
                    with m.Case(HostOp.ACC_READ):
                        n = Mux((h_index == 0) | (h_index > self.d_max), self.d_max, h_index)
                        m.d.comb += [lanes.eq(n), host_gb.start.eq(1), host_gb.count.eq((lanes + 1) >> 1)]
                        m.d.sync += [h_word.eq(0), h_count.eq((lanes + C - 1) >> log_c)]
                        m.next = "ACC_READ"
                    with m.Default():
                        m.next = "IDLE"
            with m.State("TOKEN_RESP"):
                m.d.comb += [self.host_resp.valid.eq(1), self.host_resp.payload.eq(tb_rd.data)]
                with m.If(self.host_resp.ready):
                    m.next = "IDLE"
            with m.State("ACC_READ"):
                m.d.comb += [host_acc.valid.eq(h_count != 0), host_acc.payload.op.eq(AccOp.READ),
                             host_acc.payload.slot.eq(h_row), host_acc.payload.word.eq(h_word),
                             self.host_resp.valid.eq(host_gb.o.valid),
                             self.host_resp.payload.eq(host_gb.o.payload),
                             host_gb.o.ready.eq(self.host_resp.ready)]
                with m.If(host_acc.grant):
                    m.d.sync += [h_word.eq(h_word + 1), h_count.eq(h_count - 1)]
                with m.If(host_gb.idle & (h_count == 0)):
                    m.next = "IDLE"

        # Token-buffer ports: the receiver writes first; reads belong to the host in host mode.
        tw = self.dp_tb_wr
        m.d.comb += rx_tb_ready.eq(tw.ready)
        with m.If(rx_tb_valid):
            m.d.comb += [tw.valid.eq(1), tw.payload.eq(rx_tb)]
        with m.Elif(host_tb_valid):
            m.d.comb += [tw.valid.eq(1), tw.payload.slot.eq(h_row), tw.payload.word.eq(h_index),
                         tw.payload.data.eq(h_data)]
        with m.If(host_mode):
            m.d.comb += [tb_rd.en.eq(host_tb_en), tb_rd.slot.eq(h_row), tb_rd.word.eq(h_index)]
        with m.Else():
            m.d.comb += [tb_rd.en.eq(tx_tb_en), tb_rd.slot.eq(tx_tb_slot), tb_rd.word.eq(tx_tb_word)]
        # Accumulator READ data: the sender's while it is active, else the host's.
        resp = self.dp_acc_resp
        with m.If(host_mode):
            m.d.comb += [host_gb.i.valid.eq(resp.valid), host_gb.i.payload.eq(resp.payload),
                         resp.ready.eq(host_gb.i.ready)]
        with m.Else():
            m.d.comb += [tx_res.i.valid.eq(resp.valid), tx_res.i.payload.eq(resp.payload),
                         resp.ready.eq(tx_res.i.ready)]

        # ---- done, counters, start ---------------------------------------------------------
        m.d.comb += [
            rx_enabled.eq(rx_open & ~fsm.ongoing("IDLE")),
            all_done.eq(~halted & ~err.any()
                        & (cnt.arrivals == n_arrivals) & (jobs_done == n_arrivals) & ~b_valid
                        & (tokens_in == n_tokens) & (cnt.results_received == n_results)
                        & (cnt.tokens_sent == n_sends) & (cnt.results_sent == n_remote)
                        & walk_idle & ~walks.r_rdy & ~req_valid & tx_idle),
        ]
        with m.If(~stopped):
            m.d.sync += cnt.cycles.eq(cnt.cycles + 1)
        with m.If(go):
            m.d.sync += [
                pc.eq(0), lut_k.eq(0), self.error.eq(0), self.done.eq(0), configured.eq(0),
                expert_valid.eq(0), expert_remote.eq(0), row_remote.eq(0), rx_open.eq(0),
                n_entries.eq(0), n_remote.eq(0), n_sends.eq(0), jobs_done.eq(0), b_valid.eq(0),
                req_valid.eq(0),
            ]
            m.d.sync += [getattr(cnt, name).eq(0) for name, _ in counters_signature(cb).members.items()]

        # ---- watchdog: progress and what the controller waits for ---------------------------
        fire = lambda s_: s_.valid & s_.ready  # noqa: E731
        # The walk moves every cycle except while its RESULT request waits for the sender.
        walk_step = ((~walk_fsm.ongoing("IDLE") & ~(walk_fsm.ongoing("SEND") & (req_valid | dec_req | halted)))
                     | (walks.r_en & walks.r_rdy))
        m.d.comb += self.progress.eq(
            fsm.ongoing("FETCH") | advance | in_scan | fire(self.dp_silu_wr) | arr_fire | job_fire
            | fire(self.dp_done) | fire(inj) | fire(ej) | fire(ac) | fire(tw) | walk_step | tx_start | tr_take)
        with m.If(~tx_idle | req_valid):
            m.d.comb += self.wait.eq(Wait.SEND)
        with m.Elif(b_valid & b_remote & (tokens_in != n_tokens)):
            m.d.comb += self.wait.eq(Wait.TOKEN)
        with m.Elif(b_valid | (jobs_done != cnt.jobs)):
            m.d.comb += self.wait.eq(Wait.ENGINE)
        with m.Elif(cnt.arrivals != n_arrivals):
            m.d.comb += self.wait.eq(Wait.ARRIVAL)
        with m.Elif(tokens_in != n_tokens):
            m.d.comb += self.wait.eq(Wait.TOKEN)
        with m.Elif(cnt.results_received != n_results):
            m.d.comb += self.wait.eq(Wait.RESULT)
        return m
