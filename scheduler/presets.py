"""Model and hardware presets.

A *model preset* is the shape of one MoE layer (hidden size, expert FFN size, number of
routed experts, top-k) with the source of its numbers.  A *hardware preset* is an R x C
chiplet system: MAC array per chiplet, DRAM channels and their bandwidth, D2D link
bandwidth, and on-chip buffer budgets.  Bandwidths are in bytes per core clock cycle, so
cycle counts are independent of the clock; the clock only converts cycles to seconds.

The paper-scale presets follow ``docs/fsedp.md`` section 4.  The ``rtl-*`` presets are
small enough for RTL simulation and keep the ratios that decide which resource is the
bottleneck: system MACs per DRAM byte, D2D-to-DRAM-channel bandwidth, and slice slots per
chiplet.  ``fsedp presets`` prints all of them with those ratios.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

__all__ = [
    "ModelPreset", "HardwarePreset", "MODEL_PRESETS", "HARDWARE_PRESETS",
    "get_model", "get_hardware", "PresetError",
]


class PresetError(ValueError):
    """An unknown preset name or an inconsistent preset."""


@dataclass(frozen=True)
class ModelPreset:
    """Shape of one MoE layer.

    Attributes
    ----------
    name : str
    d_model : int
        Hidden size d (rows of the gate/up projections, columns of the down projection).
    d_ff : int
        Expert FFN size f.
    num_experts : int
        Routed experts E.
    top_k : int
        Experts per token.
    shared_experts : int
        Always-on shared experts of the model (not part of the routed layer we time).
    slices : int
        Default micro-slices per expert S for FSE-DP.
    source : str
    """

    name: str
    d_model: int
    d_ff: int
    num_experts: int
    top_k: int
    slices: int
    source: str
    shared_experts: int = 0

    def __post_init__(self):
        for field in ("d_model", "d_ff", "num_experts", "top_k", "slices"):
            value = getattr(self, field)
            if not isinstance(value, int) or value <= 0:
                raise PresetError(f"model {self.name!r}: {field} must be a positive integer, not {value!r}")
        if self.top_k > self.num_experts:
            raise PresetError(f"model {self.name!r}: top_k {self.top_k} exceeds num_experts {self.num_experts}")
        if self.d_ff % self.slices:
            raise PresetError(f"model {self.name!r}: d_ff {self.d_ff} is not divisible by slices {self.slices}")

    @property
    def expert_bytes(self) -> int:
        """INT8 bytes of one SwiGLU expert: gate (d x f), up (d x f) and down (f x d)."""
        return 3 * self.d_model * self.d_ff

    def slice_bytes(self, slices: int | None = None) -> int:
        return self.expert_bytes // (slices or self.slices)

    def macs_per_token_expert(self) -> int:
        """MACs to apply one expert to one token (gate, up and down projections)."""
        return 3 * self.d_model * self.d_ff

    def summary(self) -> dict:
        return dataclasses.asdict(self) | {"expert_bytes": self.expert_bytes,
                                           "slice_bytes": self.slice_bytes()}


@dataclass(frozen=True)
class HardwarePreset:
    """An R x C chiplet system.

    Attributes
    ----------
    rows, cols : int
        Mesh shape; chiplet ``(r, c)`` has index ``r * cols + c``.
    clock_ghz : float
        Core clock, only used to convert cycles into seconds.
    mac_rows, mac_cols : int
        INT8 MAC array per chiplet (``mac_rows * mac_cols`` MACs per cycle).
    dram_chiplets : tuple of int
        Chiplets that have a DRAM channel attached (one channel each).
    dram_bytes_per_cycle : float
        Bandwidth of one DRAM channel.
    dram_latency : int
        Cycles from a DRAM request to its first byte.
    link_bytes_per_cycle : float
        Bandwidth of one direction of one D2D link between neighbouring chiplets.
    link_latency : int
        Cycles a flit spends on one D2D hop.
    slice_slots : int
        Micro-slice slots per chiplet for FSE-DP.
    expert_slots : int
        Whole-expert slots per chiplet for EP and Hydra.
    source : str
    """

    name: str
    rows: int
    cols: int
    clock_ghz: float
    mac_rows: int
    mac_cols: int
    dram_bytes_per_cycle: float
    dram_latency: int
    link_bytes_per_cycle: float
    link_latency: int
    slice_slots: int
    expert_slots: int
    source: str
    dram_chiplets: tuple = ()
    rtl: bool = False

    def __post_init__(self):
        for field in ("rows", "cols", "mac_rows", "mac_cols", "slice_slots", "expert_slots"):
            value = getattr(self, field)
            if not isinstance(value, int) or value <= 0:
                raise PresetError(f"hardware {self.name!r}: {field} must be a positive integer, not {value!r}")
        if not self.dram_chiplets:
            object.__setattr__(self, "dram_chiplets", corner_chiplets(self.rows, self.cols))
        for c in self.dram_chiplets:
            if not 0 <= c < self.num_chiplets:
                raise PresetError(f"hardware {self.name!r}: DRAM chiplet {c} is outside 0..{self.num_chiplets - 1}")
        if self.slice_slots < 2:
            raise PresetError(f"hardware {self.name!r}: slice_slots must be at least 2 (rule R6), "
                              f"not {self.slice_slots}")

    @property
    def num_chiplets(self) -> int:
        return self.rows * self.cols

    @property
    def macs_per_chiplet(self) -> int:
        return self.mac_rows * self.mac_cols

    @property
    def dram_channels(self) -> int:
        return len(self.dram_chiplets)

    def ratios(self) -> dict:
        """The ratios that the small presets keep from the paper-scale ones."""
        total_dram = self.dram_bytes_per_cycle * self.dram_channels
        return {
            "macs_per_dram_byte": self.macs_per_chiplet * self.num_chiplets / total_dram,
            "d2d_to_dram_channel": self.link_bytes_per_cycle / self.dram_bytes_per_cycle,
            "slice_slots": self.slice_slots,
        }

    def summary(self) -> dict:
        return dataclasses.asdict(self) | {
            "num_chiplets": self.num_chiplets, "macs_per_chiplet": self.macs_per_chiplet,
            "dram_gbps_per_channel": self.dram_bytes_per_cycle * self.clock_ghz,
            "link_gbps": self.link_bytes_per_cycle * self.clock_ghz,
        } | self.ratios()


def corner_chiplets(rows: int, cols: int) -> tuple:
    """Indices of the corner chiplets, in ring order, without repeats (for 1 x N meshes)."""
    corners = [0, cols - 1, rows * cols - 1, (rows - 1) * cols]
    return tuple(dict.fromkeys(corners))


_PAPER = "FSE-DP paper (arXiv 2603.27624) reference hardware, docs/fsedp.md section 4"
_PAPER_CLOCK = 0.8  # GHz
_DRAM_GBPS = 25.6
_D2D_GBPS = 288.0


def _paper(n: int, dram_scale: float) -> HardwarePreset:
    return HardwarePreset(
        name=f"paper-{n}x{n}", rows=n, cols=n, clock_ghz=_PAPER_CLOCK, mac_rows=32, mac_cols=64,
        dram_bytes_per_cycle=_DRAM_GBPS * dram_scale / _PAPER_CLOCK, dram_latency=80,
        link_bytes_per_cycle=_D2D_GBPS / _PAPER_CLOCK, link_latency=8,
        slice_slots=12, expert_slots=2,
        source=_PAPER + (f"; DRAM x{dram_scale:g} for {n}x{n}" if dram_scale != 1 else ""))


def _rtl(paper: HardwarePreset) -> HardwarePreset:
    """Small preset for RTL simulation with the same bottleneck ratios as ``paper``.

    64 MACs per chiplet (8 x 8); the DRAM channel bandwidth is chosen so that system MACs
    per DRAM byte match, and the D2D link so that D2D-to-DRAM-channel bandwidth matches.
    """
    macs = 8 * 8
    ratios = paper.ratios()
    dram = macs * paper.num_chiplets / (ratios["macs_per_dram_byte"] * paper.dram_channels)
    return HardwarePreset(
        name=paper.name.replace("paper", "rtl"), rows=paper.rows, cols=paper.cols, clock_ghz=paper.clock_ghz,
        mac_rows=8, mac_cols=8, dram_bytes_per_cycle=dram, dram_latency=16,
        link_bytes_per_cycle=dram * ratios["d2d_to_dram_channel"], link_latency=2,
        slice_slots=paper.slice_slots, expert_slots=paper.expert_slots, rtl=True,
        source=f"small RTL preset with the ratios of {paper.name}")


_PAPER_PRESETS = [_paper(2, 1.0), _paper(3, 1.5), _paper(4, 2.0)]
HARDWARE_PRESETS = {p.name: p for p in _PAPER_PRESETS + [_rtl(p) for p in _PAPER_PRESETS]}

MODEL_PRESETS = {p.name: p for p in [
    ModelPreset("deepseek-moe-16b", 2048, 1408, 64, 6, slices=16, shared_experts=2,
                source="DeepSeek-MoE-16B config.json (hidden_size 2048, moe_intermediate_size 1408, "
                       "n_routed_experts 64, num_experts_per_tok 6, n_shared_experts 2)"),
    ModelPreset("qwen3-30b-a3b", 2048, 768, 128, 8, slices=16,
                source="Qwen3-30B-A3B config.json (hidden_size 2048, moe_intermediate_size 768, "
                       "num_experts 128, num_experts_per_tok 8)"),
    ModelPreset("phi-3.5-moe", 4096, 6400, 16, 2, slices=64,
                source="Phi-3.5-MoE-instruct config.json (hidden_size 4096, intermediate_size 6400, "
                       "num_local_experts 16, num_experts_per_tok 2)"),
    ModelPreset("yuan2-m32", 2048, 8192, 32, 2, slices=64,
                source="Yuan2.0-M32 config.json (hidden_size 2048, ffn_hidden_size 8192, "
                       "num_experts 32, moe_top_k 2)"),
    ModelPreset("mixtral-8x7b", 4096, 14336, 8, 2, slices=64,
                source="Mixtral-8x7B-v0.1 config.json (hidden_size 4096, intermediate_size 14336, "
                       "num_local_experts 8, num_experts_per_tok 2)"),
    ModelPreset("olmoe-1b-7b", 2048, 1024, 64, 8, slices=16,
                source="OLMoE-1B-7B-0924 config.json (hidden_size 2048, intermediate_size 1024, "
                       "num_experts 64, num_experts_per_tok 8)"),
    ModelPreset("tiny-8x2", 32, 64, 8, 2, slices=8,
                source="small RTL preset with the expert count and top-k of Mixtral-8x7B"),
    ModelPreset("tiny-64x8", 16, 32, 64, 8, slices=4,
                source="small RTL preset with the expert count and top-k of OLMoE-1B-7B"),
]}


def _get(table: dict, kind: str, name: str):
    try:
        return table[name]
    except KeyError:
        raise PresetError(f"unknown {kind} preset {name!r}; choose one of: {', '.join(table)}") from None


def get_model(name: str) -> ModelPreset:
    return _get(MODEL_PRESETS, "model", name)


def get_hardware(name: str) -> HardwarePreset:
    return _get(HARDWARE_PRESETS, "hardware", name)
