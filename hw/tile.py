"""One chiplet: the D2D router, the compute datapath and the tile controller.

:class:`Tile` is the unit the system top instantiates once per chiplet (its Verilog is
generated once, as module ``tile``; every chiplet-specific value comes from its program).
"""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .config import TileConfig
from .controller import Controller, counters_signature
from .errors import ControllerError, RouterError, TileError, Unit, bit
from .faults import Fault, unit_fault_layout
from .link import Link, check_rate, link_signature
from .packets import flit_layout
from .router import DIRS, Router, stats_signature
from .slot_table import check_count
from .tile_datapath import TileDatapath
from .watchdog import Wait, link_checks, tile_watch_layout

__all__ = ["Tile", "connect_controller", "ERROR_FIELDS", "ROUTER_ERROR_SHIFT", "WEIGHT_ERROR_BIT",
           "WRONG_CHIPLET_BIT", "TILE_ERROR_BITS"]

#: ``Tile.error``, low bits first: ``(unit, its error flags, first bit)``: the controller's
#: :class:`~hw.errors.ControllerError`, the router's :class:`~hw.errors.RouterError`, then
#: the tile's own :class:`~hw.errors.TileError` (the weight buffer's write error; a program
#: whose ``CHIPLET_ID`` differs from the tile's strapped ``chiplet_id``).
ERROR_FIELDS = ((Unit.CONTROLLER, ControllerError, 0),
                (Unit.ROUTER, RouterError, len(ControllerError)),
                (Unit.TILE, TileError, len(ControllerError) + len(RouterError)))
ROUTER_ERROR_SHIFT = ERROR_FIELDS[1][2]
WEIGHT_ERROR_BIT = ERROR_FIELDS[2][2] + bit(TileError.WEIGHT_WRITE)
WRONG_CHIPLET_BIT = ERROR_FIELDS[2][2] + bit(TileError.WRONG_CHIPLET)
TILE_ERROR_BITS = ERROR_FIELDS[2][2] + len(TileError)


def connect_controller(m, controller: Controller, datapath: TileDatapath) -> None:
    """Wire a controller's ``dp_*`` ports to the datapath ports of the same names."""
    for name in ("cfg", "silu_wr", "list_wr", "job", "tb_wr", "tb_rd", "acc_cmd"):
        wiring.connect(m, getattr(controller, f"dp_{name}"), getattr(datapath, name))
    for name in ("done", "acc_resp"):
        wiring.connect(m, getattr(datapath, name), getattr(controller, f"dp_{name}"))


class Tile(wiring.Component):
    """Router + :class:`~hw.tile_datapath.TileDatapath` + :class:`~hw.controller.Controller`
    of one chiplet, with the outgoing D2D links.

    Glue: the router's slot writes (``wr``) and forward reads (``rd_req``/``rd_data``) go
    to the weight buffer; its ``arrival``/``compute_done`` and its tile packet streams
    (``inject``/``eject``, TOKEN and RESULT packets) to the controller, which also owns the
    router's ``successor``, ``ring_len`` and ``slot_count`` (set by the program); the
    router's ``chiplet_id`` is strapped (a tile input, valid from reset, so that packets
    are routed correctly before any program runs); ``rows`` and ``cols`` are build
    parameters, ``age_limit`` a tile input.

    Parameters
    ----------
    tile : hw.config.TileConfig
        Capacities of the chiplet.
    rows, cols : int
        Mesh size (the same build serves every chiplet of the mesh).
    link_latency : int
        Cycles of each outgoing link (0: the router's output ports directly).
    link_rate : (int, int)
        Flits per cycle of each outgoing link, ``num / den``.
    buffer_depth, counter_bits, injection_headroom : int
        Router and datapath build parameters (the slot table has ``tile.max_slots``
        entries; ``injection_headroom``: R6's free slots, :class:`hw.router.Router`).
    faults : bool
        Test only (default False, which adds nothing): a ``fault`` input
        (:func:`hw.faults.unit_fault_layout`, the code ``NONE`` while no fault acts on this
        chiplet) for the router's faults and :attr:`~hw.faults.Fault.STUCK_LINK`,
        :attr:`~hw.faults.Fault.LOST_CREDIT` and :attr:`~hw.faults.Fault.UNKNOWN_EXPERT`.

    Members
    -------
    in_n, in_e, in_s, in_w : In(hw.link.link_signature(link_bytes))
        Incoming links (connect to the neighbour's ``out_s``, ``out_w``, ``out_n``,
        ``out_e``; at the mesh edge drive ``valid`` 0).
    out_n, out_e, out_s, out_w : Out(hw.link.link_signature(link_bytes))
        Outgoing links, after the link pipeline (at the edge drive ``credit`` 0).
    chiplet_id : In(8)
        This chiplet's mesh position ``row * cols + col`` (tie to a constant).  A program
        whose ``SET CHIPLET_ID`` differs raises error bit :data:`WRONG_CHIPLET_BIT`.
    dram : In(stream.Signature(flit_layout(link_bytes)))
        A DRAM channel's SLICE / WEIGHT packets (``valid`` 0 where there is none).
    host : In(stream.Signature(host_command_layout))
        ``{op, addr, data}`` commands (:class:`hw.controller.HostOp`), taken while the
        controller is not running.
    host_resp : Out(stream.Signature(host_bits))
    start : In(1)
        Run the loaded program (a pulse; start every chiplet in the same cycle).
    running, done : Out(1)
    error : Out(TILE_ERROR_BITS)
        Controller, router and tile error bits (:data:`ERROR_FIELDS`).
    stop : In(1)
        Stops the controller (as an error does; the system raises it at the first error
        anywhere and when its watchdog fires).
    progress : Out(1)
        The router, the controller or the slice engine made progress this cycle.
    watch : Out(hw.watchdog.tile_watch_layout())
        The watchdog reports of the router (``hw.router.stats_signature``'s ``watch``),
        the controller (``since``: cycles since its last progress while running; ``wait``:
        ``Controller.wait``) and the slice engine (``since``: cycles it has held a finished
        job the controller does not take, ``wait`` DONE); ``age`` is ``since`` for both;
        and the link checks (``links``, :func:`hw.watchdog.link_checks` with this tile's
        link latency and rate).
    age_limit : In(32)
        Router starvation check (0: off).
    clear : In(1)
        Clears the router and datapath counters.
    stats : Out(hw.router.stats_signature(max_slots, counter_bits, rows * cols))
    counters : Out(hw.controller.counters_signature(counter_bits))
    busy_cycles, mac_cycles, macs : Out
        Datapath counters.
    sram : Out(hw.tile_datapath.sram_counters_layout())
        SRAM access counters of the datapath's buffers, zeroed at ``start``
        (:data:`hw.tile_datapath.SRAM_COUNTERS`).
    """

    def __init__(self, *, tile: TileConfig = TileConfig(), rows: int = 1, cols: int = 1, link_latency: int = 1,
                 link_rate=(1, 1), buffer_depth: int = 4, counter_bits: int = 32, faults: bool = False,
                 injection_headroom: int = 2):
        if not isinstance(tile, TileConfig):
            raise TypeError(f"Tile configuration must be a hw.config.TileConfig, not {tile!r}")
        check_count("Mesh rows", rows, 1, 16)
        check_count("Mesh columns", cols, 1, 16)
        check_count("Link latency", link_latency, 0, 64)
        check_rate(link_rate)
        if not isinstance(faults, bool):
            raise TypeError(f"Fault injection must be True or False, not {faults!r}")
        self.config, self.rows, self.cols, self.faults = tile, rows, cols, faults
        self.link_latency, self.link_rate = link_latency, link_rate
        max_slots = tile.max_slots
        self.datapath = TileDatapath.from_config(tile)
        self.controller = Controller.from_config(tile, counter_bits=counter_bits)
        self.router = Router(link_bytes=tile.link_bytes, max_slots=max_slots, max_chiplets=rows * cols,
                             buffer_depth=buffer_depth, flit_bits=self.datapath.weights.flit_bits,
                             counter_bits=counter_bits, faults=faults, injection_headroom=injection_headroom)
        self.links = ([Link(link_bytes=tile.link_bytes, latency=link_latency, rate=link_rate) for _ in DIRS]
                      if link_latency else None)
        L = tile.link_bytes
        members = {}
        for d in DIRS:
            members[f"in_{d}"] = In(link_signature(L))
        for d in DIRS:
            members[f"out_{d}"] = Out(link_signature(L))
        ctrl = self.controller
        members.update({
            "chiplet_id": In(8),
            "dram": In(stream.Signature(flit_layout(L))),
            "host": In(stream.Signature(ctrl.host_layout)),
            "host_resp": Out(stream.Signature(ctrl.host_bits)),
            "start": In(1),
            "running": Out(1),
            "done": Out(1),
            "error": Out(TILE_ERROR_BITS),
            "stop": In(1),
            "progress": Out(1),
            "watch": Out(tile_watch_layout()),
            "age_limit": In(32),
            "clear": In(1),
            "stats": Out(stats_signature(max_slots, counter_bits, max_chiplets=rows * cols)),
            "counters": Out(counters_signature(counter_bits)),
            "busy_cycles": Out(self.datapath.busy_cycles.shape()),
            "mac_cycles": Out(self.datapath.mac_cycles.shape()),
            "macs": Out(self.datapath.macs.shape()),
            "sram": Out(self.datapath.sram.shape()),
        })
        if faults:
            members["fault"] = In(unit_fault_layout())
        super().__init__(members)

    @property
    def host_bits(self) -> int:
        return self.controller.host_bits

    def elaborate(self, platform):
        m = Module()
        m.submodules.router = r = self.router
        m.submodules.datapath = dp = self.datapath
        m.submodules.controller = ctrl = self.controller
        connect_controller(m, ctrl, dp)

        # Router <-> weight buffer (same layouts: the router's flit offset is sized to it).
        t = r.tile
        wiring.connect(m, t.wr, dp.wb_wr)
        wiring.connect(m, t.rd_req, dp.wb_fwd_req)
        wiring.connect(m, dp.wb_fwd_data, t.rd_data)
        # Router <-> controller.
        if self.faults:
            # UNKNOWN_EXPERT: the next arrival reaches the controller with expert 255.
            m.d.comb += r.fault.eq(self.fault)
            wrong_expert, expert_used = Signal(name="fault_unknown_expert"), Signal(name="fault_expert_used")
            m.d.comb += wrong_expert.eq((self.fault.code == Fault.UNKNOWN_EXPERT) & ~expert_used)
            with m.If(self.fault.code == Fault.NONE):
                m.d.sync += expert_used.eq(0)
            with m.Elif(wrong_expert & t.arrival.valid & ctrl.arrival.ready):
                m.d.sync += expert_used.eq(1)
            m.d.comb += [ctrl.arrival.valid.eq(t.arrival.valid), ctrl.arrival.payload.eq(t.arrival.payload),
                         t.arrival.ready.eq(ctrl.arrival.ready)]
            with m.If(wrong_expert):
                m.d.comb += ctrl.arrival.payload.expert.eq(255)
        else:
            wiring.connect(m, t.arrival, ctrl.arrival)
        wiring.connect(m, ctrl.compute_done, t.compute_done)
        wiring.connect(m, ctrl.inject, t.inject)
        wiring.connect(m, t.eject, ctrl.eject)
        nc = ctrl.net_cfg
        m.d.comb += [
            r.cfg.chiplet_id.eq(self.chiplet_id), r.cfg.successor.eq(nc.successor),
            r.cfg.ring_len.eq(nc.ring_len), r.cfg.slot_count.eq(nc.slot_count),
            r.cfg.rows.eq(self.rows), r.cfg.cols.eq(self.cols), r.cfg.age_limit.eq(self.age_limit),
            # The datapath's counters start at ``start``: the host's loads before it
            # (tokens, zeroed accumulators) are not part of the layer.
            r.clear.eq(self.clear), dp.counters_clear.eq(self.clear | self.start),
        ]
        wiring.connect(m, wiring.flipped(self.dram), r.dram)
        # Links.
        for i, d in enumerate(DIRS):
            wiring.connect(m, wiring.flipped(getattr(self, f"in_{d}")), r.inputs[i])
            if self.links is None:
                sink = wiring.flipped(getattr(self, f"out_{d}"))
            else:
                m.submodules[f"link_{d}"] = link = self.links[i]
                sink = link.i
                wiring.connect(m, link.o, wiring.flipped(getattr(self, f"out_{d}")))
            if not self.faults:
                wiring.connect(m, r.outputs[i], sink)
                continue
            # STUCK_LINK: the link takes no more flits; LOST_CREDIT: its credits for one VC
            # never come back.
            port = r.outputs[i]
            stuck = (self.fault.code == Fault.STUCK_LINK) & (self.fault.arg == i)
            lost = Cat(*[(self.fault.code == Fault.LOST_CREDIT) & (self.fault.arg == 2 * i + v)
                         for v in range(len(port.credit))])
            m.d.comb += [sink.valid.eq(port.valid & ~stuck), sink.payload.eq(port.payload),
                         port.ready.eq(sink.ready & ~stuck), port.credit.eq(sink.credit & ~lost)]
        # A program for another chiplet (checked once the configuration is complete).
        wrong_chiplet = Signal(name="wrong_chiplet")
        with m.If(self.start):
            m.d.sync += wrong_chiplet.eq(0)
        with m.Elif((nc.slot_count != 0) & (nc.chiplet_id != self.chiplet_id)):
            m.d.sync += wrong_chiplet.eq(1)
        # Host, control, status.
        wiring.connect(m, wiring.flipped(self.host), ctrl.host)
        wiring.connect(m, ctrl.host_resp, wiring.flipped(self.host_resp))
        m.d.comb += [ctrl.prog_wr.valid.eq(0), ctrl.start.eq(self.start), ctrl.stop.eq(self.stop),
                     self.running.eq(ctrl.running), self.done.eq(ctrl.done),
                     self.error.eq(Cat(ctrl.error, r.stats.error, dp.wb_wr_error, wrong_chiplet))]
        assert len(ctrl.error) == len(ControllerError) and len(r.stats.error) == len(RouterError)
        # Watchdog: the router's report, the controller's and the slice engine's.
        w = self.watch
        ctrl_since, engine_since = Signal(32, name="controller_since"), Signal(32, name="engine_since")
        engine_held = dp.done.valid & ~dp.done.ready            # a finished job not taken
        engine_progress = (dp.busy & ~engine_held) | (dp.job.valid & dp.job.ready)
        for since, idle, moved in ((ctrl_since, ~ctrl.running, ctrl.progress),
                                   (engine_since, ~engine_held, engine_progress)):
            with m.If(idle | moved):
                m.d.sync += since.eq(0)
            with m.Elif(since != (1 << len(since)) - 1):
                m.d.sync += since.eq(since + 1)
        m.d.comb += [
            w.router.eq(r.stats.watch),
            w.controller.since.eq(ctrl_since), w.controller.age.eq(ctrl_since),
            w.controller.wait.eq(Mux(ctrl.running, ctrl.wait, Wait.NONE)),
            w.engine.since.eq(engine_since), w.engine.age.eq(engine_since),
            w.engine.wait.eq(Mux(engine_held, Wait.DONE, Wait.NONE)),
            self.progress.eq(r.stats.progress | ctrl.progress | engine_progress),
        ]
        # Link checks: an outgoing link that does not take an offered flit; per VC, no flit
        # sent for a while (and not every credit back), and an input buffer empty for a while.
        checks = link_checks(self.link_latency, self.link_rate)

        def lasting(cond, cycles, name):
            """``cond`` has held for ``cycles`` cycles in a row."""
            n = Signal(range(cycles + 1), name=name)
            with m.If(~cond):
                m.d.sync += n.eq(0)
            with m.Elif(n != cycles):
                m.d.sync += n.eq(n + 1)
            return n == cycles

        stuck, idle, empty = [], [], []
        for i, d in enumerate(DIRS):
            port = r.outputs[i]
            stuck.append(lasting(port.valid & ~port.ready, checks.stuck_after, f"link_{d}_refused"))
            for v in range(len(port.credit)):
                sent = port.valid & port.ready & (port.payload.vc == v)
                idle.append(lasting(~sent, checks.send_quiet, f"link_{d}{v}_quiet")
                            & ~r.stats.credits_full[2 * i + v])
                empty.append(lasting(r.stats.inputs_empty[2 * i + v], checks.empty_quiet, f"input_{d}{v}_empty"))
        m.d.comb += [w.links.stuck.eq(Cat(*stuck)), w.links.credit_idle.eq(Cat(*idle)),
                     w.links.empty.eq(Cat(*empty))]
        wiring.connect(m, r.stats, wiring.flipped(self.stats))
        wiring.connect(m, ctrl.counters, wiring.flipped(self.counters))
        m.d.comb += [self.busy_cycles.eq(dp.busy_cycles), self.mac_cycles.eq(dp.mac_cycles),
                     self.macs.eq(dp.macs), self.sram.eq(dp.sram)]
        return m
