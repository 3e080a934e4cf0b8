"""An R x C mesh of routers joined by links: the D2D network of the system, with each
chiplet's tile, DRAM, configuration and counter ports brought out."""

from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .link import Link, check_rate
from .packets import flit_layout
from .router import Dir, Router, config_signature, stats_signature, tile_signature
from .slot_table import check_count

__all__ = ["RouterMesh", "neighbour"]


def neighbour(chiplet: int, direction: Dir, rows: int, cols: int):
    """The chiplet next to ``chiplet`` in ``direction``, or ``None`` at the mesh edge."""
    r, c = divmod(chiplet, cols)
    dr, dc = {Dir.N: (-1, 0), Dir.E: (0, 1), Dir.S: (1, 0), Dir.W: (0, -1)}[Dir(direction)]
    r, c = r + dr, c + dc
    if 0 <= r < rows and 0 <= c < cols:
        return r * cols + c
    return None


class RouterMesh(wiring.Component):
    """``rows x cols`` routers; every pair of neighbours joined by two :class:`Link`\\ s.

    Parameters
    ----------
    rows, cols : int
        Physical mesh (the routers' ``cfg.rows`` / ``cfg.cols`` should match).
    link_latency : int
        Cycles per link (0: routers wired directly, no link pipeline or shaper).
    link_rate : (int, int)
        Flits per cycle of every link as ``num / den``.
    **router_args
        Passed to every :class:`Router` (``link_bytes``, ``max_slots`` ...).

    Members
    -------
    tile{i}, dram{i}, cfg{i}, stats{i} :
        Chiplet ``i``'s router ports (see :class:`Router`).
    clear : In(1)
        Clears every router's counters.
    """

    def __init__(self, *, rows: int, cols: int, link_latency: int = 1, link_rate=(1, 1), **router_args):
        check_count("Mesh rows", rows, 1, 16)
        check_count("Mesh columns", cols, 1, 16)
        check_count("Link latency", link_latency, 0, 64)
        check_rate(link_rate)
        self.rows, self.cols = rows, cols
        self.link_latency, self.link_rate = link_latency, link_rate
        router_args.setdefault("max_chiplets", rows * cols)
        self.routers = [Router(**router_args) for _ in range(rows * cols)]
        r0 = self.routers[0]
        members = {"clear": In(1)}
        for i in range(rows * cols):
            members[f"tile{i}"] = Out(tile_signature(link_bytes=r0.link_bytes, slot_shape=r0.slot_shape,
                                                     flit_bits=r0.flit_bits))
            members[f"dram{i}"] = In(stream.Signature(flit_layout(r0.link_bytes)))
            members[f"cfg{i}"] = In(config_signature(r0.max_slots))
            members[f"stats{i}"] = Out(stats_signature(r0.max_slots, r0.counter_bits, r0.max_chiplets))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        rows, cols = self.rows, self.cols
        for i, r in enumerate(self.routers):
            m.submodules[f"router{i}"] = r
            wiring.connect(m, wiring.flipped(getattr(self, f"tile{i}")), r.tile)
            wiring.connect(m, wiring.flipped(getattr(self, f"dram{i}")), r.dram)
            wiring.connect(m, wiring.flipped(getattr(self, f"cfg{i}")), r.cfg)
            wiring.connect(m, wiring.flipped(getattr(self, f"stats{i}")), r.stats)
            m.d.comb += r.clear.eq(self.clear)
        opposite = {Dir.N: Dir.S, Dir.S: Dir.N, Dir.E: Dir.W, Dir.W: Dir.E}
        for i, r in enumerate(self.routers):
            for d in Dir:
                j = neighbour(i, d, rows, cols)
                out = r.outputs[d]
                if j is None:
                    m.d.comb += [out.ready.eq(0), out.credit.eq(0)]
                    inp = r.inputs[d]
                    m.d.comb += inp.valid.eq(0)
                    continue
                dst = self.routers[j].inputs[opposite[d]]
                if self.link_latency == 0:
                    wiring.connect(m, out, dst)
                else:
                    link = Link(link_bytes=r.link_bytes, latency=self.link_latency, rate=self.link_rate)
                    m.submodules[f"link{i}_{'nesw'[d]}"] = link
                    wiring.connect(m, out, link.i)
                    wiring.connect(m, link.o, dst)
        return m
