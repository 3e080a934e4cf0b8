"""Plans: what moves where, and in which order, for one MoE layer under one strategy.

A :class:`Plan` is plain data.  The program encoder turns it into binary stream control
programs for the RTL, and the fast model executes it directly; both therefore run the
very same decisions, and the hardware alone decides *when* things happen (handshakes,
slot credits, back-pressure).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from .presets import HardwarePreset, ModelPreset
from .routing import RoutingTrace

__all__ = ["STRATEGIES", "DESCRIPTIONS", "Transfer", "TokenSend", "Plan", "PlanError", "FitError"]

#: Strategy names as the CLI takes them, in the order ``fsedp compare`` runs them.
STRATEGIES = ("fse-dp", "fse-dp-paired", "ep", "hydra", "ep-whole", "ep-paper")

#: One line per strategy (``fsedp --help``, the report).
DESCRIPTIONS = {
    "fse-dp": "FSE-DP: tokens stay home, every micro-slice travels the ring (experts in id order)",
    "fse-dp-paired": "FSE-DP with the paired load order (heaviest, lightest, ...)",
    "ep": "expert parallelism, tiled: each expert streamed in tiles through its owner's slots, "
          "work-balanced owners (split experts where that balances), every channel an equal share",
    "hydra": "Hydra: the tiled EP machinery with popularity-aware placement (experts where their "
             "tokens are) and the paired order",
    "ep-whole": "expert parallelism with whole-expert slots (experts dealt to chiplets by id, loaded "
                "from the nearest channel)",
    "ep-paper": "the reference model's EP: whole experts to the channel's own chiplet, one resident at a "
                "time (a load needs both expert buffers free), compute after all its tokens arrived",
}


class PlanError(ValueError):
    """A workload the strategy cannot plan (wrong shapes or options)."""


class FitError(PlanError):
    """A plan that exceeds the hardware: the weight buffer budget, a buffer or table
    capacity, or a packet or instruction field (the message names what it needs and what
    the hardware allows)."""


@dataclass(frozen=True)
class Transfer:
    """One weight transfer issued by a DRAM channel.

    For FSE-DP, slice ``slice`` of ``expert`` is injected into the channel's own chiplet
    (``dst``) and then travels the ring.  For the EP family, tile ``slice`` of ``expert``
    (the whole expert when S = 1) is sent to the chiplet that computes it (``dst``), XY
    routed.
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
        Micro-slices (FSE-DP) or tiles (EP, Hydra) per expert S; 1 for whole experts.
    token_home : tuple of int
        Home chiplet of each of the L tokens (tokens never move in FSE-DP).
    token_row : tuple of int
        Row of each token in its home chiplet's token buffer.
    expert_order : tuple of int
        Experts with at least one token, in schedule order (with ``groups``: every
        group's experts, in the order of the whole layer's token counts; each group's own
        order is :meth:`group_experts`).
    streams : tuple of tuple of Transfer
        Per DRAM channel (in ``hardware.dram_chiplets`` order), the transfers in issue order.
    successor : tuple of int or None
        FSE-DP ring: ``successor[c]`` receives every slice chiplet ``c`` forwards (R1).
    groups : tuple of tuple of int or None
        FSE-DP with chiplet groups (``scheduler.groups``): the rings, each in visiting
        order; every slice travels the ring of the channel that streamed it, and each
        group's channels stream exactly the experts its tokens are routed to.  ``None``:
        one ring over the whole mesh (or an EP-family plan).
    placement : dict or None
        EP family: expert -> tuple of the chiplets that compute its tiles (one chiplet
        unless the expert is split by FFN columns).
    jobs : tuple of dict
        Per chiplet: expert -> tuple of ``(row, gate_q)``: the token-buffer rows the
        chiplet applies that expert (each slice of it) to, with the Q0.8 gate weights.
        An expert absent from a chiplet's dict is never applied there; FSE-DP lists every
        expert scheduled on the chiplet's ring on every chiplet of it (possibly with no
        rows), since every slice visits every chiplet of its ring.
    token_sends : tuple of TokenSend
        EP/Hydra dispatch; empty for FSE-DP.
    remote_rows : tuple of dict
        EP/Hydra: per chiplet, ``(src, token) -> row`` of the tokens it receives.
    slot_bytes : int
        Bytes of one weight slot (a micro-slice, a tile or a whole expert).
    slots : int
        Weight slots per chiplet.
    buffer_bytes : int
        Weight-buffer bytes per chiplet the plan needs: ``slots * slot_bytes``, except for
        ``ep-paper``, which needs two whole-expert buffers but uses one at a time.
    relay : bool
        EP family: a transfer for a chiplet other than the channel's own is a RELAY (staged
        in a slot of the channel's chiplet and forwarded at link rate) rather than cut
        through the mesh at the channel's rate.
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
    buffer_bytes: int = 0
    relay: bool = False
    successor: tuple | None = None
    groups: tuple | None = None
    placement: dict | None = None
    token_sends: tuple = ()
    remote_rows: tuple = field(default=())

    def __post_init__(self):
        if not self.buffer_bytes:
            object.__setattr__(self, "buffer_bytes", self.slots * self.slot_bytes)

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

    @cached_property
    def _ring_lengths(self) -> tuple:
        if self.successor is None:
            return (1,) * self.num_chiplets
        from hw.topology import ring_lengths
        return tuple(ring_lengths(self.successor))

    def ring_len(self, chiplet: int) -> int:
        """Chiplets on ``chiplet``'s ring (controller register RING_LEN, R3: a slice makes
        ``ring_len - 1`` forwards); 1 for the EP family."""
        return self._ring_lengths[chiplet]

    def group_experts(self, group: int) -> tuple:
        """With ``groups``: the experts group ``group``'s channels stream, in its order."""
        return tuple(self.jobs[self.groups[group][0]])

    @cached_property
    def _tiles(self) -> tuple:
        n = self.num_chiplets
        if self.successor is not None:
            return tuple({e: tuple(range(self.slices)) for e in self.jobs[c]} for c in range(n))
        out = [dict() for _ in range(n)]
        for stream in self.streams:
            for t in stream:
                out[t.dst].setdefault(t.expert, []).append(t.slice)
        return tuple({e: tuple(sorted(v)) for e, v in d.items()} for d in out)

    def tiles(self, chiplet: int) -> dict:
        """expert -> the slices (tiles) of it that ``chiplet`` computes on."""
        return self._tiles[chiplet]

    def arrivals(self, chiplet: int) -> int:
        """Slot fills ``chiplet`` computes on (controller register ARRIVALS)."""
        return sum(len(v) for v in self._tiles[chiplet].values())

    def remote_uses(self, chiplet: int) -> dict:
        """EP family: received-token row -> the jobs (tiles) that use it before its result
        goes home (controller REMOTE ``uses``)."""
        if not self.remote_rows:
            return {}
        remote = set(self.remote_rows[chiplet].values())
        tiles = self._tiles[chiplet]
        uses = {}
        for e, job in self.jobs[chiplet].items():
            for r, _ in job:
                if r in remote:
                    uses[r] = uses.get(r, 0) + len(tiles.get(e, ()))
        return uses

    def tokens_in(self, chiplet: int) -> int:
        """TOKEN packets ``chiplet`` receives (controller register TOKENS)."""
        return sum(1 for s in self.token_sends if s.dst == chiplet)

    def results_in(self, chiplet: int) -> int:
        """RESULT packets ``chiplet`` receives (controller register RESULTS)."""
        return sum(1 for s in self.token_sends if s.src == chiplet)

    def stream_kind(self, channel: int, transfer: Transfer) -> str:
        """How DRAM channel ``channel`` sends ``transfer``: ``"SLICE"`` (FSE-DP),
        ``"RELAY"`` or ``"WEIGHT"`` (names of :class:`hw.isa.StreamKind`)."""
        if self.successor is not None:
            return "SLICE"
        if self.relay and transfer.dst != self.hardware.dram_chiplets[channel]:
            return "RELAY"
        return "WEIGHT"

    def weight_bytes_streamed(self) -> int:
        """Bytes all DRAM channels read for this plan."""
        return sum(len(s) for s in self.streams) * self.slot_bytes

    def macs(self) -> int:
        """MACs of the layer (every token-expert pair, all three projections)."""
        return self.trace.num_tokens * self.trace.top_k * self.model.macs_per_token_expert()
