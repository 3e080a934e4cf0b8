"""Workloads (model and hardware presets, routing traces), the bit-exact golden model,
and the strategies that turn an MoE layer into plans and stream control programs."""
