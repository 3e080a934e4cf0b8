"""The R x C system: chiplet tiles on a mesh of D2D links, with DRAM channels.

The tile is generated once as its own Verilog module (``tile``) and instantiated per
chiplet with :class:`~amaranth.hdl.Instance`, so conversion and the Verilator C++ build
handle one tile's logic once, not once per chiplet.  Everything that varies between
workloads (programs, tokens, weights) is loaded at run time through the per-chiplet host
ports and per-channel load ports, which the top brings out unchanged.
"""

from __future__ import annotations

from amaranth._unused import MustUse
from amaranth.hdl import Array, Cat, ClockSignal, Const, Instance, Module, Mux, ResetSignal, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .config import SystemConfig
from .dram import DramChannel, channel_seed
from .errors import Unit, error_status_layout
from .faults import Fault, fault_layout
from .packets import NUM_VCS
from .router import DIRS, Dir
from .tile import ERROR_FIELDS, Tile
from .watchdog import Stall, Wait, link_checks, progress_layout, stall_status_layout, wait_arg

__all__ = ["System", "make_tile", "port_name", "mark_used", "TILE_MODULE"]

TILE_MODULE = "tile"
_FANNED_IN = ("dram", "start", "clear", "age_limit", "chiplet_id", "stop", "fault")
_DRAM_MEMBERS = ("weight_wr", "program_wr", "program_words", "done", "error", "stats", "busy")
_OPPOSITE = {Dir.N: Dir.S, Dir.S: Dir.N, Dir.E: Dir.W, Dir.W: Dir.E}


def make_tile(config: SystemConfig, faults: bool = False) -> Tile:
    """The tile of every chiplet of ``config`` (``faults``: the test-only build with fault
    injection, :mod:`hw.faults`)."""
    return Tile(tile=config.tile, rows=config.rows, cols=config.cols, link_latency=config.link_latency,
                link_rate=config.link_rate, buffer_depth=config.buffer_depth, faults=faults,
                injection_headroom=config.injection_headroom)


def mark_used(obj, seen=None) -> None:
    """Mark ``obj`` and every elaboratable it holds as used: the system keeps a tile
    object for its signature only (the tile is converted separately), and Amaranth would
    otherwise warn, at collection time, about each of its never-elaborated parts."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, MustUse):
        obj._MustUse__used = True
    if isinstance(obj, (list, tuple)):
        for v in obj:
            mark_used(v, seen)
    elif isinstance(obj, dict):
        for v in obj.values():
            mark_used(v, seen)
    elif isinstance(obj, MustUse):
        for v in vars(obj).values():
            mark_used(v, seen)


def port_name(path) -> str:
    """Verilog port name of a flattened signature member path (Amaranth's convention)."""
    return "__".join(str(p) for p in path)


def _neighbour(chiplet, direction, rows, cols):
    r, c = divmod(chiplet, cols)
    dr, dc = {Dir.N: (-1, 0), Dir.E: (0, 1), Dir.S: (1, 0), Dir.W: (0, -1)}[direction]
    r, c = r + dr, c + dc
    return r * cols + c if 0 <= r < rows and 0 <= c < cols else None


def _at(obj, path):
    for p in path:
        obj = obj[p] if isinstance(p, int) else getattr(obj, p)
    return obj


def _bind(m, inner, outer, tile_flow):
    """Wire a member of a flipped tile view (``inner``) to the top-level member of the same
    shape (``outer``): what we drive into the tile comes from the top-level input, what
    the tile drives goes to the top-level output.  ``tile_flow`` is the member's flow in
    the tile's own signature."""
    if not hasattr(inner, "signature"):            # a plain port
        m.d.comb += inner.eq(outer) if tile_flow == In else outer.eq(inner)
        return
    for path, member, value in inner.signature.flatten(inner):
        other = _at(outer, path)
        m.d.comb += value.eq(other) if member.flow == Out else other.eq(value)


def _join(m, a, b):
    """Join two instance ports seen through flipped views: each signal the one instance
    drives (flow ``In`` in its view) drives the matching signal into the other."""
    for (path, member, value), (_, _, other) in zip(a.signature.flatten(a), b.signature.flatten(b)):
        m.d.comb += other.eq(value) if member.flow == In else value.eq(other)


class System(wiring.Component):
    """``rows x cols`` tiles, neighbours joined by both link directions, a
    :class:`~hw.dram.DramChannel` on every chiplet of ``config.dram_chiplets``.

    Members
    -------
    t{i}_host, t{i}_host_resp :
        Chiplet ``i``'s host port (program, tokens, accumulator readback; see
        :class:`hw.tile.Tile`).
    t{i}_done, t{i}_error, t{i}_stats, t{i}_counters, t{i}_busy_cycles, t{i}_macs, ... :
        Chiplet ``i``'s status and counters.
    d{k}_weight_wr, d{k}_program_wr, d{k}_program_words, d{k}_done, d{k}_error, d{k}_stats :
        DRAM channel ``k`` (attached to chiplet ``config.dram_chiplets[k]``).
    d{k}_watch : Out(hw.watchdog.progress_layout())
        DRAM channel ``k``'s watchdog report: ``since`` = ``age`` cycles its offered flit
        has waited for the router (``wait`` ROUTER); a channel waiting for its own access
        latency or bandwidth, or executing its program, is making progress.
    start : In(1)
        Starts every tile and channel (and clears the error and watchdog status).
    age_limit : In(32)
        Router starvation check: a flit waiting this many cycles at a router input fires
        the watchdog (0: off; ``hw.watchdog.limits``).
    stall_limit : In(32)
        No progress in any unit for this many cycles fires the watchdog (0: off).
    clear : In(1)
        Clears the counters.
    dram_jitter_seed : In(32)
        Only with ``config.dram_jitter`` > 0: the seed of the channels' latency jitter,
        sampled at ``start`` (channel ``k`` gets :func:`hw.dram.channel_seed`; 0: none).
    done : Out(1)
        Every tile and channel is done.
    cycles : Out(32)
        Cycles from ``start`` until ``done`` (or until the system stopped at an error or
        at the watchdog).
    error : Out(1)
        Sticky: an error bit of a router, controller, tile or DRAM channel was set.  The
        system stops at once: every controller halts and every DRAM channel stops issuing.
    error_status : Out(hw.errors.error_status_layout())
        The first error: chiplet, unit, its error bits, the cycle (the lowest chiplet, and
        in it the router, the DRAM channel, the controller, the tile, if several at once).
    stalled : Out(1)
        Sticky: the watchdog fired (the system stops as at an error).
    stall_status : Out(hw.watchdog.stall_status_layout())
        Why, which unit it names, what that unit waits for and since when, the cycle.
    quiet_high_water : Out(32)
        The longest stretch of cycles in which no unit made progress (what
        ``stall_limit`` must stay above in a correct run).
    fault : In(hw.faults.fault_layout())
        Only in a build with ``faults=True`` (test only): the fault to inject.
    """

    def __init__(self, config: SystemConfig, faults: bool = False):
        if not isinstance(config, SystemConfig):
            raise TypeError(f"System configuration must be a hw.config.SystemConfig, not {config!r}")
        self.config, self.faults = config, faults
        self.tile = make_tile(config, faults)
        mark_used(self.tile)
        self.drams = [DramChannel.from_config(config, faults=faults) for _ in config.dram_chiplets]
        members = {"start": In(1), "age_limit": In(32), "stall_limit": In(32), "clear": In(1), "done": Out(1),
                   "cycles": Out(32), "error": Out(1), "error_status": Out(error_status_layout()),
                   "stalled": Out(1), "stall_status": Out(stall_status_layout()), "quiet_high_water": Out(32)}
        if config.dram_jitter:
            members["dram_jitter_seed"] = In(32)
        if faults:
            members["fault"] = In(fault_layout())
        #: Tile members brought out per chiplet as ``t{i}_{name}``.
        self.tile_members = [name for name in self.tile.signature.members
                             if not name.startswith(("in_", "out_")) and name not in _FANNED_IN]
        for i in range(config.num_chiplets):
            for name in self.tile_members:
                members[f"t{i}_{name}"] = self.tile.signature.members[name]
        for k, dram in enumerate(self.drams):
            for name in _DRAM_MEMBERS:
                members[f"d{k}_{name}"] = dram.signature.members[name]
            members[f"d{k}_watch"] = Out(progress_layout())
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        n = cfg.num_chiplets
        # One set of signals per tile, named like its ports; the Instance binds them.
        tiles = [self.tile.signature.flip().create(path=(f"tile{i}",)) for i in range(n)]
        for i, ports in enumerate(tiles):
            kwargs = {"i_clk": ClockSignal(), "i_rst": ResetSignal()}
            for path, member, value in ports.signature.flatten(ports):
                # ``ports`` is the flipped view: what we drive (Out) is a tile input.
                kwargs[f"{'i' if member.flow == Out else 'o'}_{port_name(path)}"] = value
            m.submodules[f"tile{i}"] = Instance(TILE_MODULE, **kwargs)

        # Mesh links: out_<d> of a tile feeds in_<opposite d> of its neighbour; edge links
        # are tied off (no traffic leaves the mesh, and no credit is ever returned there).
        for i, ports in enumerate(tiles):
            for d in Dir:
                j = _neighbour(i, d, cfg.rows, cfg.cols)
                out = getattr(ports, f"out_{DIRS[d]}")
                if j is None:
                    for edge in (out, getattr(ports, f"in_{DIRS[d]}")):
                        for path, member, value in edge.signature.flatten(edge):
                            if member.flow == Out:   # into the tile: idle, no credits
                                m.d.comb += value.eq(0)
                    continue
                _join(m, out, getattr(tiles[j], f"in_{DIRS[_OPPOSITE[d]]}"))

        # DRAM channels on their chiplets; other chiplets' DRAM ports idle.
        attached = dict(zip(cfg.dram_chiplets, range(len(self.drams))))
        for i, ports in enumerate(tiles):
            if i in attached:
                k = attached[i]
                m.submodules[f"dram{k}"] = dram = self.drams[k]
                _bind(m, ports.dram, dram.out, In)
                for name in ("weight_wr", "program_wr"):
                    wiring.connect(m, wiring.flipped(getattr(self, f"d{k}_{name}")), getattr(dram, name))
                if cfg.dram_jitter:
                    m.d.comb += dram.jitter_seed.eq(channel_seed(self.dram_jitter_seed, k, m))
                m.d.comb += [dram.program_words.eq(getattr(self, f"d{k}_program_words")),
                             dram.start.eq(self.start),
                             getattr(self, f"d{k}_done").eq(dram.done),
                             getattr(self, f"d{k}_error").eq(dram.error),
                             getattr(self, f"d{k}_busy").eq(dram.busy)]
                wiring.connect(m, dram.stats, wiring.flipped(getattr(self, f"d{k}_stats")))
            else:
                m.d.comb += ports.dram.valid.eq(0)

        # Per-tile ports brought out; control fanned in.
        for i, ports in enumerate(tiles):
            m.d.comb += [ports.start.eq(self.start), ports.clear.eq(self.clear),
                         ports.age_limit.eq(self.age_limit), ports.chiplet_id.eq(i)]
            for top in self.tile_members:
                _bind(m, getattr(ports, top), getattr(self, f"t{i}_{top}"),
                      self.tile.signature.members[top].flow)

        # Done and the cycle counter; the run stops at an error or when the watchdog fires.
        all_done = Const(1)
        for i, ports in enumerate(tiles):
            all_done = all_done & ports.done
        for dram in self.drams:
            all_done = all_done & dram.done
        running = Signal()
        stop = Signal(name="stop")
        with m.If(self.start):
            m.d.sync += [running.eq(1), self.cycles.eq(0)]
        with m.Elif(running & ~all_done & ~stop):
            m.d.sync += self.cycles.eq(self.cycles + 1)
        m.d.comb += self.done.eq(running & all_done)
        for ports in tiles:
            m.d.comb += ports.stop.eq(stop)
        for dram in self.drams:
            m.d.comb += dram.stop.eq(stop)

        # Errors: the first one is latched (lowest chiplet; router, DRAM channel, controller,
        # tile), and stops the system in the cycle it is seen.
        errors = []
        for i, ports in enumerate(tiles):
            field = {unit: ports.error[first:first + len(flags)] for unit, flags, first in ERROR_FIELDS}
            if i in attached:
                field[Unit.DRAM] = self.drams[attached[i]].error
            errors += [(i, unit, field[unit]) for unit in (Unit.ROUTER, Unit.DRAM, Unit.CONTROLLER, Unit.TILE)
                       if unit in field]
        error_now = Signal(name="error_now")
        m.d.comb += error_now.eq(running & Cat(*[bits.any() for _, _, bits in errors]).any())
        es = self.error_status
        with m.If(self.start):
            m.d.sync += [self.error.eq(0), es.eq(0)]
        with m.Elif(error_now & ~self.error):
            m.d.sync += self.error.eq(1)
            for i, unit, bits in reversed(errors):
                with m.If(bits.any()):
                    m.d.sync += [es.chiplet.eq(i), es.unit.eq(unit), es.bits.eq(bits), es.cycle.eq(self.cycles)]
        m.d.comb += stop.eq(running & (error_now | self.error | self.stalled))
        self._watchdog(m, tiles, running, all_done, stop)
        if self.faults:
            self._faults(m, tiles, running)
        return m

    def _watchdog(self, m, tiles, running, all_done, stop):
        """The DRAM channels' reports, the no-progress counter, and the scan that names a
        unit when the watchdog fires (``hw.watchdog``)."""
        cfg = self.config
        saturated = (1 << 32) - 1
        progress = [ports.progress for ports in tiles]
        candidates = []       # (chiplet, unit, report)
        for i, ports in enumerate(tiles):
            candidates += [(i, Unit.ROUTER, ports.watch.router), (i, Unit.CONTROLLER, ports.watch.controller),
                           (i, Unit.ENGINE, ports.watch.engine)]
        for k, dram in enumerate(self.drams):
            w = getattr(self, f"d{k}_watch")
            held = dram.out.valid & ~dram.out.ready
            progress.append(dram.busy & ~held)
            with m.If(~held):
                m.d.sync += w.since.eq(0)
            with m.Elif(w.since != saturated):
                m.d.sync += w.since.eq(w.since + 1)
            m.d.comb += [w.age.eq(w.since), w.wait.eq(Mux(held, Wait.ROUTER, Wait.NONE))]
            candidates.append((cfg.dram_chiplets[k], Unit.DRAM, w))

        # Cycles in which no unit anywhere made progress.
        quiet = Signal(32, name="quiet")
        live = running & ~all_done & ~stop
        with m.If(self.start | ~live | Cat(*progress).any()):
            m.d.sync += quiet.eq(0)
        with m.Elif(quiet != saturated):
            m.d.sync += quiet.eq(quiet + 1)
        with m.If(self.start):
            m.d.sync += self.quiet_high_water.eq(0)
        with m.Elif(quiet > self.quiet_high_water):
            m.d.sync += self.quiet_high_water.eq(quiet)
        starved = Cat(*[ports.stats.starved for ports in tiles])
        scanning = Signal(name="watch_scanning")
        fire = Signal(name="watch_fire")
        m.d.comb += fire.eq(live & ~scanning & (((self.stall_limit != 0) & (quiet >= self.stall_limit))
                                                | starved.any()))

        # Each candidate's rank: its wait's group, then the cycle its wait began.
        def group(code, name):
            g = Signal(3, name=f"{name}_group")
            m.d.comb += g.eq(Wait.NONE.group)
            with m.Switch(code):
                for w in Wait:
                    with m.Case(w):
                        m.d.comb += g.eq(w.group)
            return g

        groups, begins = [], []
        for i, unit, report in candidates:
            name = f"watch_c{i}_{unit.name.lower()}"
            groups.append(group(report.wait, name))
            begin = Signal(32, name=f"{name}_since")
            m.d.comb += begin.eq(self.cycles - report.age)
            begins.append(begin)
        n = len(candidates)
        pick = lambda values: Array(values)[idx]  # noqa: E731
        idx = Signal(range(n + 1), name="watch_index")
        best = {"group": Signal(3, name="watch_best_group"), "since": Signal(32, name="watch_best_since"),
                "chiplet": Signal(8, name="watch_best_chiplet"), "unit": Signal(3, name="watch_best_unit"),
                "wait": Signal.like(candidates[0][2].wait, name="watch_best_wait"),
                "arg": Signal(8, name="watch_best_arg")}
        here = {"group": pick(groups), "since": pick(begins),
                "chiplet": pick([Const(i, 8) for i, _, _ in candidates]),
                "unit": pick([Const(unit, 3) for _, unit, _ in candidates]),
                "wait": pick([r.wait for _, _, r in candidates]), "arg": pick([r.arg for _, _, r in candidates])}
        # The link checks: a stuck link; a link VC that lost credits (nothing in flight, the
        # receiving buffer empty, and its sender short of credits).
        checks = link_checks(cfg.link_latency, cfg.link_rate)
        stuck, lost = [], []          # (chiplet, output channel, condition)
        for i, ports in enumerate(tiles):
            links = ports.watch.links
            for d in Dir:
                j = _neighbour(i, d, cfg.rows, cfg.cols)
                if j is None:
                    continue
                stuck.append((i, 2 * d, links.stuck[d]))
                back = tiles[j].watch.links.empty
                lost += [(i, 2 * d + v, links.credit_idle[2 * d + v] & back[2 * _OPPOSITE[d] + v])
                         for v in range(NUM_VCS)]
        broken = Signal(name="watch_link_broken")
        m.d.comb += broken.eq(live & ~scanning & Cat(*[c for _, _, c in stuck + lost]).any())

        ss = self.stall_status
        with m.If(self.start):
            m.d.sync += [self.stalled.eq(0), scanning.eq(0), ss.eq(0)]
        with m.Elif(broken):
            # Name the first (lowest chiplet, a stuck link before lost credits).
            m.d.sync += [self.stalled.eq(1), ss.cycle.eq(self.cycles), ss.unit.eq(Unit.ROUTER)]
            for (i, o, cond), cause, wait, before in (
                    [(x, Stall.CREDIT_LOST, Wait.CREDIT, checks.send_quiet) for x in reversed(lost)]
                    + [(x, Stall.LINK_STUCK, Wait.LINK, checks.stuck_after) for x in reversed(stuck)]):
                with m.If(cond):
                    m.d.sync += [ss.cause.eq(cause), ss.chiplet.eq(i), ss.wait.eq(wait), ss.arg.eq(wait_arg(o, 0)),
                                 ss.since.eq(self.cycles - before)]
        with m.Elif(fire & starved.any()):
            # The router's starvation check: name the first starved router.
            m.d.sync += [self.stalled.eq(1), ss.cause.eq(Stall.STARVED), ss.cycle.eq(self.cycles),
                         ss.unit.eq(Unit.ROUTER)]
            for i in reversed(range(len(tiles))):
                r = tiles[i].watch.router
                with m.If(starved[i]):
                    m.d.sync += [ss.chiplet.eq(i), ss.wait.eq(r.wait), ss.arg.eq(r.arg),
                                 ss.since.eq(self.cycles - r.age)]
        with m.Elif(fire):
            # No progress anywhere: scan every unit's report, one per cycle (everything
            # waits, so nothing changes meanwhile), keeping the best.
            m.d.sync += [scanning.eq(1), idx.eq(0), best["group"].eq(Wait.NONE.group), best["since"].eq(saturated),
                         ss.cause.eq(Stall.NO_PROGRESS), ss.cycle.eq(self.cycles)]
        with m.Elif(scanning & (idx == n)):
            m.d.sync += [scanning.eq(0), self.stalled.eq(1), ss.chiplet.eq(best["chiplet"]), ss.unit.eq(best["unit"]),
                         ss.wait.eq(best["wait"]), ss.arg.eq(best["arg"]), ss.since.eq(best["since"])]
        with m.Elif(scanning):
            m.d.sync += idx.eq(idx + 1)
            better = (here["group"] < best["group"]) | ((here["group"] == best["group"])
                                                        & (here["since"] < best["since"]))
            with m.If(better | (idx == 0)):
                m.d.sync += [best[k].eq(v) for k, v in here.items()]

    def _faults(self, m, tiles, running):
        """Test only: the ``fault`` input, active from its cycle on, to its chiplet's tile
        or DRAM channel."""
        f = self.fault
        active = running & (f.code != Fault.NONE) & (self.cycles >= f.cycle)
        for i, ports in enumerate(tiles):
            m.d.comb += [ports.fault.code.eq(Mux(active & (f.chiplet == i) & (f.code != Fault.DRAM_OPCODE), f.code,
                                                 Fault.NONE)),
                         ports.fault.arg.eq(f.arg)]
        for k, dram in enumerate(self.drams):
            m.d.comb += dram.fault_opcode.eq(active & (f.chiplet == self.config.dram_chiplets[k])
                                             & (f.code == Fault.DRAM_OPCODE))
