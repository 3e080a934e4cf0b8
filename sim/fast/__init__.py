"""The fast model: the RTL's hardware semantics, event-driven, at packet and phase
granularity (see ``docs/fast_model.md``).

:func:`run` has the contract of :func:`sim.rtl.run` (``engine="fast"``, ``bit_exact``
None); :func:`timeline` and :func:`write_timeline` give a Chrome trace-event view of one
run.
"""

from __future__ import annotations

__all__ = ["run", "simulate", "timeline", "write_timeline"]


def simulate(workload, *, tracing=False):
    """Run one workload; returns the :class:`sim.fast.system.FastSystem` (its events and
    parts), with ``.result`` the :class:`sim.results.RunResult`."""
    from .system import FastSystem

    if workload.system.dram_jitter:
        raise ValueError(f"the fast model does not model DRAM latency jitter (dram_jitter "
                         f"{workload.system.dram_jitter}); run it on the RTL engine")
    system = FastSystem(workload, tracing=tracing)
    system.result = system.run()
    return system


def run(workloads) -> list:
    """Run workloads (any mix of configurations, with or without data)."""
    return [simulate(w).result for w in workloads]


def timeline(workload) -> dict:
    from .chrome import chrome_trace
    return chrome_trace(simulate(workload, tracing=True))


def write_timeline(workload, path) -> dict:
    import json

    trace = timeline(workload)
    with open(path, "w") as f:
        json.dump(trace, f)
    return trace
