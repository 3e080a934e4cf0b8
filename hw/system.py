"""The R x C system: chiplet tiles on a mesh of D2D links, with DRAM channels.

The tile is generated once as its own Verilog module (``tile``) and instantiated per
chiplet with :class:`~amaranth.hdl.Instance`, so conversion and the Verilator C++ build
handle one tile's logic once, not once per chiplet.  Everything that varies between
workloads (programs, tokens, weights) is loaded at run time through the per-chiplet host
ports and per-channel load ports, which the top brings out unchanged.
"""

from __future__ import annotations

from amaranth._unused import MustUse
from amaranth.hdl import ClockSignal, Const, Instance, Module, ResetSignal, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .config import SystemConfig
from .dram import DramChannel, channel_seed
from .router import DIRS, Dir
from .tile import Tile

__all__ = ["System", "make_tile", "port_name", "mark_used", "TILE_MODULE"]

TILE_MODULE = "tile"
_FANNED_IN = ("dram", "start", "clear", "age_limit", "chiplet_id")
_DRAM_MEMBERS = ("weight_wr", "program_wr", "program_words", "done", "error", "stats", "busy")
_OPPOSITE = {Dir.N: Dir.S, Dir.S: Dir.N, Dir.E: Dir.W, Dir.W: Dir.E}


def make_tile(config: SystemConfig) -> Tile:
    """The tile of every chiplet of ``config``."""
    return Tile(tile=config.tile, rows=config.rows, cols=config.cols, link_latency=config.link_latency,
                link_rate=config.link_rate, buffer_depth=config.buffer_depth)


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
    start : In(1)
        Starts every tile and channel.
    age_limit : In(32)
        Router starvation check (0: off).
    clear : In(1)
        Clears the counters.
    dram_jitter_seed : In(32)
        Only with ``config.dram_jitter`` > 0: the seed of the channels' latency jitter,
        sampled at ``start`` (channel ``k`` gets :func:`hw.dram.channel_seed`; 0: none).
    done : Out(1)
        Every tile and channel is done.
    cycles : Out(32)
        Cycles from ``start`` until ``done``.
    """

    def __init__(self, config: SystemConfig):
        if not isinstance(config, SystemConfig):
            raise TypeError(f"System configuration must be a hw.config.SystemConfig, not {config!r}")
        self.config = config
        self.tile = make_tile(config)
        mark_used(self.tile)
        self.drams = [DramChannel.from_config(config) for _ in config.dram_chiplets]
        members = {"start": In(1), "age_limit": In(32), "clear": In(1), "done": Out(1), "cycles": Out(32)}
        if config.dram_jitter:
            members["dram_jitter_seed"] = In(32)
        #: Tile members brought out per chiplet as ``t{i}_{name}``.
        self.tile_members = [name for name in self.tile.signature.members
                             if not name.startswith(("in_", "out_")) and name not in _FANNED_IN]
        for i in range(config.num_chiplets):
            for name in self.tile_members:
                members[f"t{i}_{name}"] = self.tile.signature.members[name]
        for k, dram in enumerate(self.drams):
            for name in _DRAM_MEMBERS:
                members[f"d{k}_{name}"] = dram.signature.members[name]
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

        # Done and the cycle counter.
        all_done = Const(1)
        for i, ports in enumerate(tiles):
            all_done = all_done & ports.done
        for dram in self.drams:
            all_done = all_done & dram.done
        running = Signal()
        with m.If(self.start):
            m.d.sync += [running.eq(1), self.cycles.eq(0)]
        with m.Elif(running & ~all_done):
            m.d.sync += self.cycles.eq(self.cycles + 1)
        m.d.comb += self.done.eq(running & all_done)
        return m
