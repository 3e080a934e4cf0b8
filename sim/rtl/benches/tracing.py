"""Trace windows for cocotb benches on Verilator trace builds.

A trace build (``sim.rtl.toolchain.verilate(..., waves=...)``) runs a simulator main that
dumps the waveform only at simulation times inside a window, which the bench sets by
calling the executable's ``fsedp_trace_window(from, to)`` (times in simulator steps,
picoseconds; inclusive).  By default the window is all of time.

Verilator compiles ``$dumpoff``/``$dumpon`` to nothing and cocotb's main has no switch,
hence the call into the simulator process (ctypes; the benches run inside it).
"""

import ctypes

from sim.rtl.toolchain import TRACE_WINDOW_SYMBOL

__all__ = ["NEVER", "trace_window_setter"]

#: A time after every simulation: ``set(NEVER, NEVER)`` stops tracing.
NEVER = (1 << 64) - 1


def trace_window_setter():
    """``set(from_step, to_step)`` of the running simulator; raises if the executable is
    not a trace build with a window (``sim.rtl.toolchain`` builds them so)."""
    try:
        fn = getattr(ctypes.CDLL(None), TRACE_WINDOW_SYMBOL)
    except (OSError, AttributeError):
        raise RuntimeError(f"a trace window needs a trace build whose simulator exports {TRACE_WINDOW_SYMBOL} "
                           f"(sim.rtl.toolchain.verilate(..., waves=...) builds it so)") from None
    fn.argtypes, fn.restype = [ctypes.c_ulonglong, ctypes.c_ulonglong], None
    return fn
