"""Amaranth hardware of the FSE-DP multi-chiplet accelerator: one chiplet tile and the
R x C system.  Formats that software encodes (packets, instructions, memory layouts) are
defined here once, as ``amaranth.lib.data`` layouts."""
