"""Stream control programs: encode a plan, assemble and disassemble text, read and write
program files.  The bit layouts come from ``hw.isa`` and nowhere else.

Text form, one instruction per line (``;`` starts a comment; operands by position or as
``name=value``; numbers in decimal or ``0x`` hex; registers, opcodes and stream kinds by
name)::

    SET SLOTS, 12
    LUT index=0, b0=0, b1=0, b2=0, b3=0
    EXPERT expert=3, first=0, count=2
    ENTRY row=0, gate=128
    REMOTE row=5, uses=1, home=2, home_row=0
    SEND row=0, dst=2, dst_row=5
    STREAM kind=SLICE, expert=3, slice=1, dst=0, addr=0x18
    END

Program file (``.fsedp``): the magic ``FSEDPPRG``, a little-endian u32 version and a u32
section count, then per section a u32 kind (0 controller, 1 DRAM channel), a u32 index
(chiplet or channel) and a u32 word count, followed by that many little-endian u64
instruction words.
"""

from __future__ import annotations

import re
import struct

import numpy as np
from dataclasses import dataclass

from amaranth.hdl import Shape
from amaranth.lib import data

from hw import isa
from hw.config import TileConfig

__all__ = ["ProgramError", "Program", "LayerPrograms", "encode_plan", "assemble", "disassemble",
           "decode", "dram_images", "assemble_programs", "disassemble_programs", "write_programs", "read_programs", "CONTROLLER", "DRAM"]

CONTROLLER, DRAM = 0, 1
_SECTION_NAMES = {CONTROLLER: "controller", DRAM: "dram"}
_MAGIC = b"FSEDPPRG"
_VERSION = 1


class ProgramError(ValueError):
    """A program that the hardware cannot run: malformed, or exceeding a capacity."""


# ----------------------------------------------------------------------------------------
# Instruction words

def _fields(layout) -> list[str]:
    return [name for name, _ in layout.as_shape() if not name.startswith("_")]


def _field_shape(layout, name):
    return dict(layout.as_shape())[name].shape


def _encode(opcode: isa.Opcode, **operands) -> int:
    layout = isa.OPERANDS[opcode]
    values = {}
    for name in _fields(layout):
        if name not in operands:
            raise ProgramError(f"{opcode.name}: missing operand {name!r}")
        values[name] = operands.pop(name)
    if operands:
        raise ProgramError(f"{opcode.name}: unknown operand(s) {', '.join(operands)}; "
                           f"allowed: {', '.join(_fields(layout))}")
    for name, v in values.items():
        shape = _field_shape(layout, name)
        if isinstance(shape, type) and issubclass(shape, isa.enum.Enum):
            if not isinstance(v, shape):
                raise ProgramError(f"{opcode.name}: {name} must be one of "
                                   f"{', '.join(m.name for m in shape)}, not {v!r}")
            continue
        if isinstance(shape, data.ArrayLayout):
            if len(v) != shape.length or any(not isinstance(b, int) or not 0 <= b < 256 for b in v):
                raise ProgramError(f"{opcode.name}: {name} must be {shape.length} values 0..255")
            continue
        width = Shape.cast(shape).width
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < (1 << width):
            raise ProgramError(f"{opcode.name}: {name} = {v!r} does not fit {width} bits (0..{(1 << width) - 1})")
    operand_bits = layout.const(values).as_value().value
    return int(opcode.value) | (operand_bits << 8)


def decode(word: int) -> tuple[isa.Opcode, dict]:
    """Opcode and named operands of one instruction word."""
    try:
        opcode = isa.Opcode(word & 0xFF)
    except ValueError:
        raise ProgramError(f"unknown opcode 0x{word & 0xFF:02x}") from None
    view = isa.OPERANDS[opcode].from_bits(word >> 8)
    ops = {}
    for name in _fields(isa.OPERANDS[opcode]):
        try:
            v = view[name]
        except ValueError:
            raise ProgramError(f"{opcode.name}: invalid value in operand {name!r}") from None
        ops[name] = v if isinstance(v, isa.enum.Enum) else (
            [int(b) for b in v] if hasattr(v, "__len__") else int(v))
    return opcode, ops


def _format(word: int) -> str:
    opcode, ops = decode(word)
    parts = []
    for name, v in ops.items():
        if isinstance(v, list):
            parts += [f"b{i}={b}" for i, b in enumerate(v)]
        elif isinstance(v, isa.enum.Enum):
            parts.append(f"{name}={v.name}")
        else:
            parts.append(f"{name}={v:#x}" if name == "addr" else f"{name}={v}")
    return opcode.name + (" " + ", ".join(parts) if parts else "")


def _parse_value(text: str, shape, where: str):
    if isinstance(shape, type) and issubclass(shape, isa.enum.Enum):
        try:
            return shape[text.upper()]
        except KeyError:
            raise ProgramError(f"{where}: {text!r} is not one of {', '.join(m.name for m in shape)}") from None
    try:
        return int(text, 0)
    except ValueError:
        raise ProgramError(f"{where}: {text!r} is not a number") from None


def assemble(text: str, name: str = "<text>") -> list[int]:
    """Assemble the text form into instruction words; errors name the line."""
    words = []
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.split(";", 1)[0].strip()
        if not line:
            continue
        where = f"{name}:{lineno}"
        mnemonic, _, rest = line.partition(" ")
        try:
            opcode = isa.Opcode[mnemonic.upper()]
        except KeyError:
            raise ProgramError(f"{where}: unknown instruction {mnemonic!r}; allowed: "
                               f"{', '.join(o.name for o in isa.Opcode)}") from None
        layout = isa.OPERANDS[opcode]
        names = _fields(layout)
        flat = [n for n in names if n != "values"] if opcode is not isa.Opcode.LUT else \
            ["index", "b0", "b1", "b2", "b3"]
        args = [a.strip() for a in rest.split(",")] if rest.strip() else []
        if len(args) != len(flat):
            raise ProgramError(f"{where}: {opcode.name} takes {len(flat)} operands ({', '.join(flat)}), "
                               f"got {len(args)}")
        got = {}
        for i, arg in enumerate(args):
            key, eq, val = arg.partition("=")
            key, val = (key.strip(), val.strip()) if eq else (flat[i], arg)
            if key not in flat or key in got:
                raise ProgramError(f"{where}: unexpected operand {key!r} for {opcode.name}")
            got[key] = val
        if opcode is isa.Opcode.LUT:
            ops = {"index": _parse_value(got["index"], None, where),
                   "values": [_parse_value(got[f"b{i}"], None, where) for i in range(4)]}
        else:
            ops = {k: _parse_value(v, _field_shape(layout, k), where) for k, v in got.items()}
        try:
            words.append(_encode(opcode, **ops))
        except ProgramError as exc:
            raise ProgramError(f"{where}: {exc}") from None
    return words


def disassemble(words) -> str:
    """Text form of instruction words (assembles back to the same words)."""
    lines = []
    for i, w in enumerate(words):
        try:
            lines.append(_format(w))
        except ProgramError as exc:
            raise ProgramError(f"word {i}: {exc}") from None
    return "\n".join(lines) + ("\n" if lines else "")


# ----------------------------------------------------------------------------------------
# Programs of one layer

@dataclass
class Program:
    kind: int          # CONTROLLER or DRAM
    index: int         # chiplet or channel
    words: list

    @property
    def title(self) -> str:
        return f"{_SECTION_NAMES[self.kind]} {self.index}"


@dataclass
class LayerPrograms:
    controllers: list  # Program per chiplet
    drams: list        # Program per DRAM channel

    def sections(self):
        return list(self.controllers) + list(self.drams)


def assemble_programs(text: str, name: str = "<text>") -> LayerPrograms:
    """Assemble a whole program file's text: sections open with a directive line
    ``.controller N`` or ``.dram N`` (the form :func:`disassemble_programs` prints)."""
    progs = LayerPrograms([], [])
    current, body, start = None, [], 0

    def close():
        if current is not None:
            kind, index = current
            # keep line numbers in errors: pad with the lines before the section
            words = assemble("\n" * start + "\n".join(body), name)
            (progs.controllers if kind == CONTROLLER else progs.drams).append(Program(kind, index, words))

    kinds = {v: k for k, v in _SECTION_NAMES.items()}
    for lineno, line in enumerate(text.splitlines(), 1):
        stripped = line.split(";", 1)[0].strip()
        if stripped.startswith("."):
            m = re.fullmatch(r"\.(\w+)\s+(\d+)", stripped)
            if not m or m.group(1) not in kinds:
                raise ProgramError(f"{name}:{lineno}: a section directive is '.controller N' or '.dram N', "
                                   f"not {stripped!r}")
            close()
            current, body, start = (kinds[m.group(1)], int(m.group(2))), [], lineno
        elif stripped:
            if current is None:
                raise ProgramError(f"{name}:{lineno}: instruction before the first section directive "
                                   f"('.controller N' or '.dram N')")
            body.append(line)
        else:
            body.append("")
    close()
    return progs


def disassemble_programs(programs: LayerPrograms) -> str:
    """Text form of a whole program file (assembles back to the same file)."""
    out = []
    for p in programs.sections():
        out.append(f".{_SECTION_NAMES[p.kind]} {p.index}    ; {len(p.words)} words")
        out.append(disassemble(p.words))
    return "\n".join(out)


def write_programs(programs: LayerPrograms, path) -> None:
    sections = programs.sections()
    out = bytearray(_MAGIC + struct.pack("<II", _VERSION, len(sections)))
    for p in sections:
        out += struct.pack("<III", p.kind, p.index, len(p.words))
        out += struct.pack(f"<{len(p.words)}Q", *p.words)
    with open(path, "wb") as f:
        f.write(out)


def check_programs(programs: LayerPrograms, system, name: str = "programs") -> None:
    """Check a program file against a system configuration before it runs: one
    controller section per chiplet and one DRAM section per channel (each index once),
    every word a valid instruction, each section within its program memory and closed by
    ``END`` as its last word, and each section's ``SET CHIPLET_ID`` naming the chiplet it
    runs on.  Raises :class:`ProgramError` naming the file and the section."""
    wanted = {CONTROLLER: (system.num_chiplets, system.tile.program_words, "chiplet"),
              DRAM: (len(system.dram_chiplets), system.dram_program_words, "DRAM channel")}
    for kind, sections in ((CONTROLLER, programs.controllers), (DRAM, programs.drams)):
        count, capacity, what = wanted[kind]
        label = _SECTION_NAMES[kind]
        indices = [p.index for p in sections]
        if sorted(indices) != list(range(count)):
            twice = sorted({i for i in indices if indices.count(i) > 1})
            extra = sorted(i for i in set(indices) if i >= count)
            missing = sorted(set(range(count)) - set(indices))
            parts = ([f"missing {', '.join(map(str, missing))}"] if missing else []) + (
                [f"repeated {', '.join(map(str, twice))}"] if twice else []) + (
                [f"no {what} {', '.join(map(str, extra))} here"] if extra else [])
            raise ProgramError(f"{name}: needs one .{label} section for each of the {count} {what}s "
                               f"(0..{count - 1}); {'; '.join(parts)}")
        for p in sections:
            where = f"{name}: .{label} {p.index}"
            if not p.words:
                raise ProgramError(f"{where} is empty; a program ends with END")
            if len(p.words) > capacity:
                raise ProgramError(f"{where} has {len(p.words)} words; the {what}'s program memory holds {capacity}")
            ops = []
            for i, w in enumerate(p.words):
                try:
                    ops.append(decode(w))
                except ProgramError as exc:
                    raise ProgramError(f"{where}, word {i}: {exc}") from None
            ends = [i for i, (op, _) in enumerate(ops) if op is isa.Opcode.END]
            if not ends or ends[0] != len(ops) - 1:
                raise ProgramError(f"{where}: END must be the last word (and only there); found it at "
                                   f"{ends or 'no word'} of {len(ops)}")
            home = system.dram_chiplets[p.index] if kind == DRAM else p.index
            ids = [f["value"] for op, f in ops if op is isa.Opcode.SET and f.get("reg") == isa.Reg.CHIPLET_ID]
            if ids != [home]:
                raise ProgramError(f"{where} runs on chiplet {home}; it must SET CHIPLET_ID to {home} once, "
                                   f"not {ids or 'never'}")


def read_programs(path) -> LayerPrograms:
    try:
        raw = open(path, "rb").read()
    except OSError as exc:
        raise ProgramError(f"{path}: cannot read program file: {exc.strerror}") from None
    if raw[:8] != _MAGIC:
        raise ProgramError(f"{path}: not an fsedp program file (bad magic)")
    try:
        version, count = struct.unpack_from("<II", raw, 8)
        if version != _VERSION:
            raise ProgramError(f"{path}: program file version {version} is not supported (expected {_VERSION})")
        pos, progs = 16, LayerPrograms([], [])
        for _ in range(count):
            kind, index, n = struct.unpack_from("<III", raw, pos)
            pos += 12
            if kind not in _SECTION_NAMES:
                raise ProgramError(f"{path}: unknown section kind {kind}")
            words = list(struct.unpack_from(f"<{n}Q", raw, pos))
            pos += 8 * n
            (progs.controllers if kind == CONTROLLER else progs.drams).append(Program(kind, index, words))
    except struct.error:
        raise ProgramError(f"{path}: program file is truncated") from None
    if pos != len(raw):
        raise ProgramError(f"{path}: {len(raw) - pos} trailing bytes after the last section")
    return progs


# ----------------------------------------------------------------------------------------
# Encoding a plan

def _set(reg, value):
    return _encode(isa.Opcode.SET, reg=reg, value=value)


#: SETs at the head of every controller program (CHIPLET_ID ... HIDDEN_SHIFT).
SET_COUNT = 17


def controller_words(plan, c: int) -> int:
    """Words of chiplet ``c``'s controller program as :func:`encode_plan` writes it."""
    from hw.vector_unit import SILU_ENTRIES

    lut = dict(isa.OPERANDS[isa.Opcode.LUT].as_shape())["values"].shape.length
    sends = sum(1 for s in plan.token_sends if s.src == c)
    remote = len(plan.remote_rows[c]) if plan.remote_rows else 0
    return (SET_COUNT + SILU_ENTRIES // lut + len(plan.jobs[c]) + sum(len(j) for j in plan.jobs[c].values())
            + remote + sends + 1)


def _field(opcode, name) -> int:
    from .sizing import field_max
    return field_max(isa.OPERANDS[opcode], name)


def check_model_fits(strategy: str, model, tile: TileConfig) -> None:
    """The layer shape against the tile, whatever the plan: ``d`` a multiple of the MAC
    array and at most the token rows' ``d_max``."""
    from .plan import FitError

    d = model.d_model
    if d % tile.mac_rows or d % tile.mac_cols:
        raise FitError(f"{strategy} does not fit: hidden size d {d} must be a multiple of the MAC array "
                       f"({tile.mac_rows}x{tile.mac_cols})")
    if d > tile.d_max:
        raise FitError(f"{strategy} does not fit: hidden size d {d} exceeds the token rows' {tile.d_max} bytes")


def check_fits(plan, tile: TileConfig, dram_words: int | None = None, dram_program_words: int | None = None) -> int:
    """Check that ``plan`` fits a configuration's capacities and every packet and
    instruction field, before any data exists; returns the words per weight slot.  Both
    engines run it on every plan.  Raises :class:`scheduler.plan.FitError` naming what the
    plan needs and what the hardware allows."""
    from hw.packets import Header

    from .plan import FitError
    from .presets import format_size
    from .sizing import field_max

    model, n = plan.model, plan.num_chiplets
    cols = model.d_ff // plan.slices
    word = tile.word_bytes

    def fail(text):
        raise FitError(f"{plan.strategy} does not fit: {text}")

    check_model_fits(plan.strategy, model, tile)
    if cols % tile.mac_rows or cols % tile.mac_cols:
        fail(f"slice columns f/S {cols} must be a multiple of the MAC array ({tile.mac_rows}x{tile.mac_cols})")
    if plan.slot_bytes % word:
        fail(f"a slot of {plan.slot_bytes} bytes is not a whole number of {word}-byte weight words")
    slot_words = plan.slot_bytes // word
    buffer = tile.weight_words * word
    if plan.buffer_bytes > buffer:
        fail(f"it needs {format_size(plan.buffer_bytes)} of weight buffer ({plan.slots} slot(s) of "
             f"{format_size(plan.slot_bytes)}); the weight buffer holds {format_size(buffer)}")
    if plan.slots > tile.max_slots:
        fail(f"{plan.slots} slots exceed the router's slot table of {tile.max_slots}")
    flits = -(-plan.slot_bytes // tile.link_bytes)
    if flits > field_max(Header, "length"):
        fail(f"a slot of {format_size(plan.slot_bytes)} is {flits} flits of {tile.link_bytes} B; a packet "
             f"header's length field holds at most {field_max(Header, 'length')} flits")
    if max(model.num_experts, plan.slices, n) > min(tile.max_experts, field_max(Header, "expert") + 1):
        fail(f"experts, slices and chiplets are limited to {tile.max_experts} each (8-bit header fields)")
    if plan.slices > field_max(Header, "slice") + 1:
        fail(f"S = {plan.slices} exceeds the header's slice index ({field_max(Header, 'slice') + 1} slices)")
    uses_max = _field(isa.Opcode.REMOTE, "uses")
    for c in range(n):
        rows = plan.token_rows(c)
        if rows > tile.token_rows:
            fail(f"chiplet {c} needs {rows} token rows; the token buffer has {tile.token_rows}")
        entries = sum(len(j) for j in plan.jobs[c].values())
        if entries > tile.table_entries:
            fail(f"chiplet {c} needs {entries} token-table entries; the table has {tile.table_entries}")
        words = controller_words(plan, c)
        if words > tile.program_words:
            fail(f"chiplet {c}'s program of {words} words exceeds the program memory's {tile.program_words}")
        uses = plan.remote_uses(c)
        if uses and max(uses.values()) > uses_max:
            fail(f"a received token on chiplet {c} is used by {max(uses.values())} tiles; the REMOTE "
                 f"instruction's uses field holds at most {uses_max}")
    addr_max = _field(isa.Opcode.STREAM, "addr")
    for ch, stream in enumerate(plan.streams):
        need = len(stream) * slot_words
        if need and need - slot_words > addr_max:
            fail(f"DRAM channel {ch} streams {need} words; STREAM addresses reach word {addr_max}")
        if dram_words is not None and need > dram_words:
            fail(f"DRAM channel {ch} holds {format_size(need * word)} of weights for this plan; the channel "
                 f"has {format_size(dram_words * word)}")
        if dram_program_words is not None and dram_program_length(stream) > dram_program_words:
            fail(f"DRAM channel {ch}'s program of {dram_program_length(stream)} words ({len(stream)} STREAMs) "
                 f"exceeds the channel's program memory of {dram_program_words}")
    return slot_words


#: SET instructions that open a DRAM channel program (CHIPLET_ID, SLOT_WORDS).
DRAM_SET_COUNT = 2


def dram_program_length(stream) -> int:
    """Words of a DRAM channel program: its SETs, one STREAM per transfer, and END."""
    return DRAM_SET_COUNT + len(stream) + 1


def encode_plan(plan, layer, tile: TileConfig) -> LayerPrograms:
    """Programs for every chiplet controller and DRAM channel of ``plan``.

    ``layer`` supplies the requantization constants and SiLU table; ``tile`` the build's
    capacities (checked first by :func:`check_fits`).
    """
    model, hw = plan.model, plan.hardware
    n = plan.num_chiplets
    d, cols = model.d_model, model.d_ff // plan.slices
    slot_words = check_fits(plan, tile)

    q = layer.quant
    silu = [int(v) & 0xFF for v in q.silu]
    controllers = []
    for c in range(n):
        rows = plan.token_rows(c)
        words = [_set(isa.Reg.CHIPLET_ID, c),
                 _set(isa.Reg.SUCCESSOR, plan.successor[c] if plan.successor else c),
                 _set(isa.Reg.RING_LEN, plan.ring_len(c)),
                 _set(isa.Reg.SLOTS, plan.slots), _set(isa.Reg.SLOT_WORDS, slot_words),
                 _set(isa.Reg.D_MODEL, d), _set(isa.Reg.SLICE_COLS, cols), _set(isa.Reg.TOKEN_ROWS, rows),
                 _set(isa.Reg.ARRIVALS, plan.arrivals(c)), _set(isa.Reg.RESULTS, plan.results_in(c)),
                 _set(isa.Reg.TOKENS, plan.tokens_in(c)),
                 _set(isa.Reg.GATE_MULT, q.gate_mult), _set(isa.Reg.GATE_SHIFT, q.gate_shift),
                 _set(isa.Reg.UP_MULT, q.up_mult), _set(isa.Reg.UP_SHIFT, q.up_shift),
                 _set(isa.Reg.HIDDEN_MULT, q.hidden_mult), _set(isa.Reg.HIDDEN_SHIFT, q.hidden_shift)]
        assert len(words) == SET_COUNT
        words += [_encode(isa.Opcode.LUT, index=i, values=silu[i:i + 4]) for i in range(0, 256, 4)]
        entries = []
        for e, job in plan.jobs[c].items():
            words.append(_encode(isa.Opcode.EXPERT, expert=e, first=len(entries), count=len(job)))
            entries += job
        words += [_encode(isa.Opcode.ENTRY, row=r, gate=g) for r, g in entries]
        if plan.remote_rows:
            uses = plan.remote_uses(c)
            for (src, t), r in plan.remote_rows[c].items():
                words.append(_encode(isa.Opcode.REMOTE, row=r, uses=uses[r], home=src,
                                     home_row=plan.token_row[t]))
        for s in plan.token_sends:
            if s.src == c:
                words.append(_encode(isa.Opcode.SEND, row=plan.token_row[s.token], dst=s.dst,
                                     dst_row=plan.remote_rows[s.dst][(s.src, s.token)]))
        words.append(_encode(isa.Opcode.END))
        assert len(words) == controller_words(plan, c)
        controllers.append(Program(CONTROLLER, c, words))

    drams = []
    for ch, stream in enumerate(plan.streams):
        words = [_set(isa.Reg.CHIPLET_ID, hw.dram_chiplets[ch]), _set(isa.Reg.SLOT_WORDS, slot_words)]
        words += [_encode(isa.Opcode.STREAM, kind=isa.StreamKind[plan.stream_kind(ch, t)], expert=t.expert,
                          slice=t.slice, dst=t.dst, addr=i * slot_words) for i, t in enumerate(stream)]
        words.append(_encode(isa.Opcode.END))
        assert len(words) == dram_program_length(stream)
        drams.append(Program(DRAM, ch, words))
    return LayerPrograms(controllers, drams)


def dram_images(plan, layer, tile: TileConfig) -> list:
    """Per DRAM channel, its weight image as a ``(words, word_bytes)`` uint8 array: the
    slot images of the channel's transfers, in stream order, at the addresses its
    ``STREAM`` instructions name (``i * SLOT_WORDS``), each packed in the slice layout of
    ``hw.slice_layout`` (a whole expert for EP and Hydra)."""
    from hw.slice_layout import pack_slice

    from .golden import slice_columns

    images = []
    for stream in plan.streams:
        words = [pack_slice(layer.w_gate[t.expert][:, cols], layer.w_up[t.expert][:, cols],
                            layer.w_down[t.expert][cols, :], tile.mac_rows, tile.mac_cols)
                 for t in stream for cols in [slice_columns(layer.d_ff, plan.slices, t.slice)]]
        images.append(np.concatenate(words) if words else np.zeros((0, tile.word_bytes), np.uint8))
    return images
