"""Stream control programs: the binary instruction format, defined once.

The hardware decoder (the tile controller and the DRAM channel) and the software
assembler (``scheduler.program``) both use these layouts; nothing else knows the bit
positions.

Every instruction is one 64-bit word: an 8-bit :class:`Opcode` in bits 0..7 and a
56-bit operand field whose layout depends on the opcode (:data:`OPERANDS`).

Chiplet controller program
    ``SET reg, value`` writes a configuration register (:class:`Reg`): the router's
    successor and ring length (R1, R3), slot partitioning (slot count and words per slot),
    the layer shape, the requantization constants, and the counts that tell the
    controller when the layer is done.  ``LUT index, b0..b3`` loads four SiLU table
    entries.  ``EXPERT expert, first, count`` and ``ENTRY row, gate`` build the
    expert-to-local-token table: expert ``e``'s job applies each slice of ``e`` to the
    ``count`` token-buffer rows listed from entry ``first`` on.  ``REMOTE row, uses, home,
    home_row`` marks a token-buffer row as holding a token received from another chiplet
    (EP/Hydra): after ``uses`` jobs have used it, its int32 result is sent back to row
    ``home_row`` of chiplet ``home``.  A job whose token list includes such a row starts
    only once all ``TOKENS`` expected tokens have arrived (EP's all-to-all dispatch
    completes before expert compute).  ``SEND row, dst, dst_row`` sends a resident token
    to another chiplet.  ``END`` closes the program: the controller then serves slice
    arrivals and signals done once every expected arrival, job, result and send has
    completed.

DRAM channel program
    ``SET CHIPLET_ID`` (the chiplet the channel is attached to) and ``SET SLOT_WORDS``
    first; then ``STREAM kind, expert, slice, dst, addr`` streams one slot's worth of
    weights (``SLOT_WORDS`` weight-buffer words) from DRAM word address ``addr``, in
    program order: as a SLICE packet into the channel's own chiplet (FSE-DP: it then
    travels the ring), as a WEIGHT packet to chiplet ``dst`` (cut through the mesh at the
    channel's rate), or as a RELAY: a WEIGHT packet with the ``RELAY`` flag that the
    channel's own chiplet stages in one of its slots and forwards to ``dst`` at link rate.
    ``END`` closes it.
"""

from amaranth.lib import enum

from amaranth.hdl import unsigned
from amaranth.lib import data

__all__ = ["Opcode", "Reg", "StreamKind", "Instruction", "OPERANDS", "INSTRUCTION_BITS",
           "OPERAND_BITS"]

INSTRUCTION_BITS = 64
OPERAND_BITS = 56


class Opcode(enum.Enum, shape=8):
    END = 0x00
    SET = 0x01
    LUT = 0x02
    EXPERT = 0x03
    ENTRY = 0x04
    REMOTE = 0x05
    SEND = 0x06
    STREAM = 0x10


class Reg(enum.Enum, shape=8):
    """Configuration registers written by ``SET``."""

    CHIPLET_ID = 0x00   # this chiplet's index r * cols + c
    SUCCESSOR = 0x01    # R1: chiplet that receives every forwarded slice
    RING_LEN = 0x02     # R3: chiplets on the ring (a slice makes RING_LEN - 1 forwards)
    SLOTS = 0x03        # weight slots in use
    SLOT_WORDS = 0x04   # weight-buffer words per slot
    D_MODEL = 0x05      # hidden size d
    SLICE_COLS = 0x06   # FFN columns per slot (f / S, or f for a whole expert)
    TOKEN_ROWS = 0x07   # token-buffer rows in use (resident, then received)
    ARRIVALS = 0x08     # slice or expert arrivals this chiplet will compute on
    RESULTS = 0x09      # results it will receive from other chiplets
    TOKENS = 0x0A       # tokens it will receive from other chiplets (EP/Hydra dispatch)
    GATE_MULT = 0x10
    GATE_SHIFT = 0x11
    UP_MULT = 0x12
    UP_SHIFT = 0x13
    HIDDEN_MULT = 0x14
    HIDDEN_SHIFT = 0x15


class StreamKind(enum.Enum, shape=2):
    SLICE = 0    # ring traffic (FSE-DP): into the channel's own chiplet, then round the ring
    WEIGHT = 1   # a weight load (whole expert or tile) unicast to its chiplet, cut through from DRAM
    RELAY = 2    # a weight load for another chiplet, staged in a slot of the channel's own chiplet
                 # and forwarded from there at link rate (store-and-forward)


class SetOperands(data.Struct):
    reg: Reg
    value: unsigned(32)
    _pad: unsigned(16)


class LutOperands(data.Struct):
    index: unsigned(8)       # first of four entries (a multiple of 4)
    values: data.ArrayLayout(unsigned(8), 4)
    _pad: unsigned(16)


class ExpertOperands(data.Struct):
    expert: unsigned(8)
    first: unsigned(16)      # first ENTRY index of its token list
    count: unsigned(16)      # rows it applies to (0: the job costs almost nothing)
    _pad: unsigned(16)


class EntryOperands(data.Struct):
    row: unsigned(16)
    gate: unsigned(8)        # Q0.8 gate weight
    _pad: unsigned(32)


class RemoteOperands(data.Struct):
    row: unsigned(16)
    uses: unsigned(16)       # jobs (slices or tiles applied to it) before its result goes home
    home: unsigned(8)
    home_row: unsigned(16)


class SendOperands(data.Struct):
    row: unsigned(16)
    dst: unsigned(8)
    dst_row: unsigned(16)
    _pad: unsigned(16)


class StreamOperands(data.Struct):
    kind: StreamKind
    expert: unsigned(8)
    slice: unsigned(8)
    dst: unsigned(8)
    addr: unsigned(24)       # DRAM word address of the slot image
    _pad: unsigned(6)


class EmptyOperands(data.Struct):
    _pad: unsigned(56)


#: Operand layout of each opcode.
OPERANDS = {
    Opcode.END: EmptyOperands, Opcode.SET: SetOperands, Opcode.LUT: LutOperands,
    Opcode.EXPERT: ExpertOperands, Opcode.ENTRY: EntryOperands, Opcode.REMOTE: RemoteOperands,
    Opcode.SEND: SendOperands, Opcode.STREAM: StreamOperands,
}


class Operands(data.Union):
    set: SetOperands
    lut: LutOperands
    expert: ExpertOperands
    entry: EntryOperands
    remote: RemoteOperands
    send: SendOperands
    stream: StreamOperands
    raw: unsigned(56)


class Instruction(data.Struct):
    opcode: Opcode
    operands: Operands


assert Instruction.as_shape().size == INSTRUCTION_BITS
assert all(layout.as_shape().size == OPERAND_BITS for layout in OPERANDS.values())
