"""Everything that runs: toolchain set-up, Verilog builds, cocotb benches, the CLI."""
