"""Test-only fault injection (docs/system.md, "Injected faults").

A system built with ``faults=True`` (``hw.system.System``, ``sim.rtl.build``) has one more
input, ``fault`` (:func:`fault_layout`): from cycle ``cycle`` of a run (counted like
``cycles``) the fault ``code`` acts on chiplet ``chiplet`` with argument ``arg``.  The
default build has none of this logic: its Verilog does not change.  Each fault either
acts from that cycle on or, where said, once (on the first event at or after it).
"""

from amaranth.hdl import unsigned
from amaranth.lib import data

from .errors import DescribedEnum

__all__ = ["Fault", "fault_layout", "unit_fault_layout"]


class Fault(DescribedEnum):
    """The faults a test can inject, and what each ``arg`` is.  The router's input and
    output channels are numbered ``2 * direction + vc`` (``hw.router.Dir``)."""

    NONE = 0, "no fault"
    CREDIT_OVERFLOW = 1, ("the router stops freeing input channel arg (2 * direction + vc) and returns a credit "
                          "for every flit that arrives there, so the sender overruns the buffer")
    UNRESERVED_FILL = 2, ("once: the router writes its DRAM channel's next local fill into a slot it did not "
                          "reserve (the lowest HELD slot, else the lowest FREE one)")
    LENGTH = 3, "once: the forward engine's next header claims one payload flit more than it sends"
    UNKNOWN_EXPERT = 4, "once: the next arrival reaches the controller with expert 255"
    DRAM_OPCODE = 5, "the DRAM channel of the chiplet reads the instruction it executes as an unknown opcode"
    STUCK_LINK = 6, "the outgoing link in direction arg takes no more flits"
    LOST_CREDIT = 7, "every credit returned for output channel arg (2 * direction + vc) is lost"
    STUCK_INPUT = 8, ("the router stops freeing input channel arg (2 * direction + vc), so the sender runs out "
                      "of credits there")


def fault_layout() -> data.StructLayout:
    """The system's test-only ``fault`` input."""
    return data.StructLayout({"code": unsigned(4), "chiplet": unsigned(8), "arg": unsigned(8),
                              "cycle": unsigned(32)})


def unit_fault_layout() -> data.StructLayout:
    """What a tile (and its router) receives: the fault's code while it is active for this
    chiplet (else ``NONE``) and its argument."""
    return data.StructLayout({"code": unsigned(4), "arg": unsigned(8)})
