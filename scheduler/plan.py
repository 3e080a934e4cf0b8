"""Plans: what moves where, and in which order, for one MoE layer under one strategy.

A :class:`Plan` is plain data.  The program encoder turns it into binary stream control
programs for the RTL, and the fast model executes it directly; both therefore run the
very same decisions, and the hardware alone decides *when* things happen (handshakes,
slot credits, back-pressure).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .presets import HardwarePreset, ModelPreset
from .routing import RoutingTrace

__all__ = ["STRATEGIES", "Transfer", "TokenSend", "Plan"]

#: Strategy names as the CLI takes them.
STRATEGIES = ("fse-dp", "fse-dp-paired", "ep", "hydra")


@dataclass(frozen=True)
class Transfer:
    """One weight transfer issued by a DRAM channel.

    For FSE-DP, slice ``slice`` of ``expert`` is injected into the channel's own chiplet
    (``dst``) and then travels the ring.  For EP and Hydra the whole expert (``slice`` 0
    of 1) is sent to the chiplet that computes it (``dst``), XY routed.
    """

    expert: int
    slice: int
    dst: int


@dataclass(frozen=True)
class TokenSend:
    """EP/Hydra: token ``token`` (resident on ``src``) is sent to ``dst``, which applies
    ``experts`` to it and sends one int32 result back."""

    token: int
    src: int
    dst: int
    experts: tuple


@dataclass(frozen=True, eq=False)
class Plan:
    """Everything a strategy decides for one layer.

    Attributes
    ----------
    strategy : str
        One of :data:`STRATEGIES`.
    model, hardware : presets
    trace : RoutingTrace
    slices : int
        Micro-slices per expert S (1 for EP and Hydra: whole experts).
    token_home : tuple of int
        Home chiplet of each of the L tokens (tokens never move in FSE-DP).
    token_row : tuple of int
        Row of each token in its home chiplet's token buffer.
    expert_order : tuple of int
        Experts with at least one token, in schedule order.
    streams : tuple of tuple of Transfer
        Per DRAM channel (in ``hardware.dram_chiplets`` order), the transfers in issue order.
    successor : tuple of int or None
        FSE-DP ring: ``successor[c]`` receives every slice chiplet ``c`` forwards (R1).
    placement : dict or None
        EP/Hydra: expert -> chiplet that loads and computes it.
    jobs : tuple of dict
        Per chiplet: expert -> tuple of ``(row, gate_q)``: the token-buffer rows the
        chiplet applies that expert (each slice of it) to, with the Q0.8 gate weights.
        An expert absent from a chiplet's dict is never applied there; FSE-DP lists every
        scheduled expert on every chiplet (possibly with no rows), since every slice
        visits every chiplet.
    token_sends : tuple of TokenSend
        EP/Hydra dispatch; empty for FSE-DP.
    remote_rows : tuple of dict
        EP/Hydra: per chiplet, ``(src, token) -> row`` of the tokens it receives.
    slot_bytes : int
        Bytes of one weight slot (a micro-slice, or a whole expert).
    slots : int
        Weight slots per chiplet.
    """

    strategy: str
    model: ModelPreset
    hardware: HardwarePreset
    trace: RoutingTrace
    slices: int
    token_home: tuple
    token_row: tuple
    expert_order: tuple
    streams: tuple
    jobs: tuple
    slot_bytes: int
    slots: int
    successor: tuple | None = None
    placement: dict | None = None
    token_sends: tuple = ()
    remote_rows: tuple = field(default=())

    @property
    def num_chiplets(self) -> int:
        return self.hardware.num_chiplets

    @property
    def gate_q(self) -> np.ndarray:
        from .golden import quantize_gate_weights
        return quantize_gate_weights(self.trace.weights)

    def resident_tokens(self, chiplet: int) -> list[int]:
        return [t for t, h in enumerate(self.token_home) if h == chiplet]

    def token_rows(self, chiplet: int) -> int:
        """Rows of ``chiplet``'s token buffer in use (resident plus received tokens)."""
        remote = len(self.remote_rows[chiplet]) if self.remote_rows else 0
        return len(self.resident_tokens(chiplet)) + remote

    def weight_bytes_streamed(self) -> int:
        """Bytes all DRAM channels read for this plan."""
        return sum(len(s) for s in self.streams) * self.slot_bytes

    def macs(self) -> int:
        """MACs of the layer (every token-expert pair, all three projections)."""
        return self.trace.num_tokens * self.trace.top_k * self.model.macs_per_token_expert()
