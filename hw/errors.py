"""The error bits of every unit and the system's error status: one definition of each.

Each unit of a chiplet keeps sticky error bits (never set in a correct system):
:class:`RouterError` (the router; its low four bits are the slot table's),
:class:`ControllerError` (the tile controller), :class:`DramError` (a DRAM channel) and
:class:`TileError` (the tile's own checks).  Every member carries the one-line
description the RTL engine prints (``sim.rtl.runner``).  The system top
(:class:`hw.system.System`) latches the first error it sees in :func:`error_status_layout`
and stops the system (docs/system.md, "Errors").
"""

import enum as py_enum

from amaranth.hdl import unsigned
from amaranth.lib import data

__all__ = ["DescribedFlag", "DescribedEnum", "Unit", "RouterError", "ControllerError", "DramError", "TileError",
           "SLOT_ERRORS", "bit", "error_enum", "error_status_layout", "ERROR_STATUS_BITS", "describe_bits"]


def _described(cls, value, description=""):
    """A member ``value`` with a ``description`` (the ``__new__`` of the two classes below)."""
    obj = int.__new__(cls, value)
    obj._value_ = value
    obj.description = description
    return obj


class DescribedFlag(py_enum.IntFlag):
    """An ``IntFlag`` whose members are ``value, description``."""

    __new__ = _described


class DescribedEnum(py_enum.IntEnum):
    """An ``IntEnum`` whose members are ``value, description``."""

    __new__ = _described


def bit(flag) -> int:
    """The bit index of a one-bit flag member (``bit(RouterError.BUFFER_OVERFLOW) == 4``)."""
    value = int(flag)
    if value <= 0 or value & (value - 1):
        raise ValueError(f"{flag!r} is not a single bit")
    return value.bit_length() - 1


class Unit(DescribedEnum):
    """The unit an error or a watchdog report names (its name as messages print it)."""

    ROUTER = 0, "router"
    CONTROLLER = 1, "controller"
    DRAM = 2, "DRAM channel"
    TILE = 3, "tile"
    ENGINE = 4, "slice engine"


class RouterError(DescribedFlag):
    """Bits of the router's ``stats.error``.  The low four are the slot table's
    (:attr:`hw.slot_table.SlotTable.error`, :data:`SLOT_ERRORS`)."""

    FILL_NOT_RESERVED = 1, "a fill for a slot that was not reserved (the write was blocked)"
    COMPUTE_NOT_PENDING = 2, "a compute_done for a slot that was not being computed"
    FORWARD_NOT_PENDING = 4, "a forward ended for a slot that was not being forwarded"
    RELEASE_FREE_SLOT = 8, "a RELEASE for a free slot"
    BUFFER_OVERFLOW = 16, "a flit arrived without a credit"
    DROPPED_PACKET = 32, "a packet with the wrong VC for its kind, an unknown kind or a destination outside the mesh"
    REQUEST_OVERFLOW = 64, "more RESERVEs queued than agents exist"
    UNEXPECTED_GRANT = 128, "a GRANT for an agent with no request in flight"
    LENGTH_MISMATCH = 256, "payload flits differ from the header's length"
    CONTROL_PAYLOAD = 512, "a control packet with payload flits"


#: The slot table's bits of :class:`RouterError`.
SLOT_ERRORS = (RouterError.FILL_NOT_RESERVED | RouterError.COMPUTE_NOT_PENDING | RouterError.FORWARD_NOT_PENDING
               | RouterError.RELEASE_FREE_SLOT)


class ControllerError(DescribedFlag):
    """Bits of :attr:`hw.controller.Controller.error` (sticky until the next ``start``).
    Any of them stops the controller from issuing work: no further instruction, job or
    packet starts (a packet already being injected is completed, so the network is never
    left with half a packet); received packets are still drained, and dropped if they are
    malformed."""

    UNKNOWN_OPCODE = 1, "an instruction word with an opcode outside hw.isa.Opcode"
    NO_END = 2, "the program counter ran off the program memory without END"
    UNKNOWN_EXPERT = 4, "an arrival for an expert without a valid EXPERT entry"
    ROW_RANGE = 8, "ENTRY, REMOTE or SEND row >= TOKEN_ROWS"
    TABLE_OVERFLOW = 16, "EXPERT id >= max_experts or first + count > table entries; too many ENTRYs"
    PACKET_ROW = 32, "a TOKEN or RESULT packet for a row >= TOKEN_ROWS (dropped)"
    EXTRA_ARRIVAL = 64, "more arrivals than ARRIVALS"
    BAD_OPERAND = 128, ("SET of an unknown register or a value the build cannot hold (at END: SLOTS * SLOT_WORDS "
                        "> weight words); LUT index not a multiple of 4; REMOTE with uses 0 or for a row already "
                        "marked remote")
    BAD_PACKET = 256, ("an ejected packet of another kind or the wrong length, or more TOKEN / RESULT packets than "
                       "TOKENS / RESULTS (dropped)")
    USES_UNDERFLOW = 512, "a job used a remote row whose result had already been sent home"


class DramError(DescribedFlag):
    """Bits of :attr:`hw.dram.DramChannel.error` (sticky until the next ``start``).  Every
    error stops the program at the offending instruction: nothing after it is issued, the
    packets issued before it are completed, then ``done`` rises (in a system, which stops
    at the first error, nothing more is sent)."""

    OPCODE = 1, "an opcode other than SET, STREAM, END"
    SET = 2, "SET of a register the channel does not have, or a value out of range"
    RANGE = 4, "STREAM with SLOT_WORDS = 0, or addr + SLOT_WORDS > dram_words"
    MISSING_END = 8, "the program ran past its last word without an END"


class TileError(DescribedFlag):
    """The tile's own error bits (:attr:`hw.tile.Tile.error` above the controller's and
    the router's)."""

    WEIGHT_WRITE = 1, "a weight-buffer write outside the configured slots"
    WRONG_CHIPLET = 2, "the program's CHIPLET_ID differs from the chiplet's position"


def error_enum(unit: Unit):
    """The error flags of a unit."""
    return {Unit.ROUTER: RouterError, Unit.CONTROLLER: ControllerError, Unit.DRAM: DramError,
            Unit.TILE: TileError}[Unit(unit)]


#: Width of the ``bits`` field of the error status (the widest unit's bits).
ERROR_STATUS_BITS = max(len(e) for e in (RouterError, ControllerError, DramError, TileError))


def error_status_layout() -> data.StructLayout:
    """The system's error status (:attr:`hw.system.System.error_status`), latched at the
    first error: the chiplet (for a DRAM channel, the chiplet it is attached to), the
    :class:`Unit`, that unit's error bits and the ``cycles`` value at which the system saw
    them (one cycle after the offending event: the bits are registers)."""
    return data.StructLayout({"chiplet": unsigned(8), "unit": unsigned(3),
                              "bits": unsigned(ERROR_STATUS_BITS), "cycle": unsigned(32)})


def describe_bits(unit: Unit, bits: int) -> tuple[str, str]:
    """``(names, descriptions)`` of a unit's error bits, each joined for one line."""
    flags = [f for f in error_enum(unit) if bits & f]
    unknown = bits & ~sum(int(f) for f in error_enum(unit))
    names = [f.name for f in flags] + ([f"0x{unknown:x}"] if unknown else [])
    return ", ".join(names) or "0x0", "; ".join(f.description for f in flags)
