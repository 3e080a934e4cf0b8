"""The RTL engine: Verilator builds of the Amaranth hardware (cached per configuration),
the runner that loads workloads into them and checks every output against the golden
model, and the cocotb benches and Amaranth-simulator harnesses of the blocks.

``sim.rtl.build`` / ``sim.rtl.run`` are the engine's contract (``sim.fast.run`` has the
same); ``sim.rtl.toolchain`` configures Amaranth, Verilator and cocotb.
"""

from .runner import Build, HardwareError, SimulationStalled, build, run, wave_format

__all__ = ["build", "run", "Build", "HardwareError", "SimulationStalled", "wave_format"]
