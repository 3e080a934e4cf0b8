"""Model and hardware presets.

A *model preset* is the shape of one MoE layer (hidden size, expert FFN size, number of
routed experts, top-k) with the source of its numbers.  A *hardware preset* is an R x C
chiplet system: MAC array per chiplet, DRAM channels and their bandwidth, D2D link
bandwidth, and on-chip buffer budgets.  Bandwidths are in bytes per core clock cycle, so
cycle counts are independent of the clock; the clock only converts cycles to seconds.

The paper-scale presets follow the FSE-DP paper's reference hardware (arXiv 2603.27624:
MAC array, D2D and DRAM bandwidth, clock), with the SRAM we chose (``docs/sram.md``);
hardware of your own is a description file (``docs/description_files.md``).  The ``rtl-*`` presets are
small enough for RTL simulation and keep the ratios that decide which resource is the
bottleneck: system MACs per DRAM byte, D2D-to-DRAM-channel bandwidth, and slice slots per
chiplet.  ``fsedp presets`` prints all of them with those ratios.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

__all__ = [
    "ModelPreset", "HardwarePreset", "MODEL_PRESETS", "HARDWARE_PRESETS",
    "get_model", "get_hardware", "PresetError", "parse_size", "format_size", "KiB", "MiB", "GiB",
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
    moe_layers : int
        MoE layers of the whole model (``fsedp model`` runs each); dense layers are not
        counted.
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
    moe_layers: int = 1

    def __post_init__(self):
        for field in ("d_model", "d_ff", "num_experts", "top_k", "slices", "moe_layers"):
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


KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30

#: Bytes per token-buffer row and hidden element: an int8 token plus its int32 accumulator.
TOKEN_ROW_BYTES_PER_ELEMENT = 1 + 4


@dataclass(frozen=True)
class HardwarePreset:
    """An R x C chiplet system and the SRAM it provisions per chiplet.

    Attributes
    ----------
    rows, cols : int
        Mesh shape; chiplet ``(r, c)`` has index ``r * cols + c``.
    clock_ghz : float
        Core clock, only used to convert cycles into seconds.
    mac_rows, mac_cols : int
        INT8 MAC array per chiplet (``mac_rows * mac_cols`` MACs per cycle).
    dram_bytes_per_cycle : float
        Bandwidth of one DRAM channel.
    dram_latency : int
        Cycles from a DRAM request to its first byte.
    link_bytes_per_cycle : float
        Bandwidth of one direction of one D2D link between neighbouring chiplets.
    link_latency : int
        Cycles a flit spends on one D2D hop.
    weight_sram_bytes : int
        Weight buffer per chiplet, in bytes (``--sram`` overrides it): every strategy's
        weight slots are carved out of it, so its slot count follows from this budget and
        its slot size (:mod:`scheduler.sizing`).  A whole number of weight words (one
        ``mac_rows x mac_cols`` int8 block each).
    token_rows : int
        Rows of the token buffer (int8) and of the accumulator buffer (int32) per chiplet:
        the resident tokens, plus the tokens EP-family strategies receive.
    d_max : int
        Largest hidden size d a row holds.
    source : str
        Where the numbers come from, and the reasoning behind the SRAM figures.
    dram_chiplets : tuple of int
        Chiplets that have a DRAM channel attached (one channel each; default: corners).
    slot_target : int
        Slots per chiplet the default slice count aims for (:func:`scheduler.sizing.size_plan`).
    max_slots : int
        Entries of the router's slot table: no strategy uses more slots than this.
    table_entries, program_words : int
        Capacity of the controller's expert-to-token table and program memory.
    dram_program_words : int
        Capacity of each DRAM channel's program memory (one STREAM per transfer).
    dram_channel_bytes : int
        Capacity of one DRAM channel's weight memory.
    buffer_depth : int
        Router input buffer per virtual channel, in flits (0: sized to the credit round
        trip, ``hw.config.credit_depth``).
    injection_headroom : int
        Free slots a DRAM channel needs to inject a slice or stage a tile: 2, rule R6 (the
        default).  1 turns R6 off, which the deadlock check (``scheduler.deadlock``)
        refuses wherever a ring can then fill; a build parameter for studying the rule.
    rtl : bool
        Small enough to simulate as RTL.
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
    weight_sram_bytes: int
    token_rows: int
    d_max: int
    source: str
    dram_chiplets: tuple = ()
    slot_target: int = 12
    max_slots: int = 16
    table_entries: int = 2048
    program_words: int = 4096
    dram_program_words: int = 1024
    dram_channel_bytes: int = 128 * KiB
    buffer_depth: int = 0
    injection_headroom: int = 2
    rtl: bool = False

    def __post_init__(self):
        for field in ("rows", "cols", "mac_rows", "mac_cols", "weight_sram_bytes", "token_rows", "d_max",
                      "slot_target", "max_slots", "table_entries", "program_words", "dram_program_words",
                      "dram_channel_bytes", "injection_headroom"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise PresetError(f"hardware {self.name!r}: {field} must be a positive integer, not {value!r}")
        for field in ("clock_ghz", "dram_bytes_per_cycle", "link_bytes_per_cycle"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
                raise PresetError(f"hardware {self.name!r}: {field} must be a positive number, not {value!r}")
        for field in ("dram_latency", "link_latency", "buffer_depth"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise PresetError(f"hardware {self.name!r}: {field} must be a non-negative integer, not {value!r}")
        if not self.dram_chiplets:
            object.__setattr__(self, "dram_chiplets", corner_chiplets(self.rows, self.cols))
        for c in self.dram_chiplets:
            if not 0 <= c < self.num_chiplets:
                raise PresetError(f"hardware {self.name!r}: DRAM chiplet {c} is outside 0..{self.num_chiplets - 1}")
        if self.max_slots < 2:
            raise PresetError(f"hardware {self.name!r}: max_slots must be at least 2 (rule R6), not {self.max_slots}")
        for field in ("weight_sram_bytes", "dram_channel_bytes"):
            if getattr(self, field) % self.word_bytes:
                raise PresetError(f"hardware {self.name!r}: {field} {getattr(self, field)} is not a whole number "
                                  f"of {self.word_bytes}-byte weight words ({self.mac_rows}x{self.mac_cols} "
                                  f"MAC-array blocks)")

    @property
    def num_chiplets(self) -> int:
        return self.rows * self.cols

    @property
    def macs_per_chiplet(self) -> int:
        return self.mac_rows * self.mac_cols

    @property
    def word_bytes(self) -> int:
        """Bytes of one weight-buffer word (one MAC-array block of int8 weights)."""
        return self.mac_rows * self.mac_cols

    @property
    def dram_channels(self) -> int:
        return len(self.dram_chiplets)

    @property
    def token_sram_bytes(self) -> int:
        """Token buffer (int8) plus accumulator buffer (int32) per chiplet."""
        return self.token_rows * self.d_max * TOKEN_ROW_BYTES_PER_ELEMENT

    @property
    def provisioned_sram_bytes(self) -> int:
        """All the buffer SRAM one chiplet provisions: weight buffer + token buffers."""
        return self.weight_sram_bytes + self.token_sram_bytes

    def with_weight_sram(self, size: int) -> "HardwarePreset":
        """The same hardware with a weight buffer of ``size`` bytes per chiplet."""
        if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
            raise PresetError(f"the weight buffer size must be a positive number of bytes, not {size!r}")
        if size % self.word_bytes:
            raise PresetError(f"a weight buffer of {size} bytes is not a whole number of the {self.name} "
                              f"weight words ({self.word_bytes} bytes, one {self.mac_rows}x{self.mac_cols} "
                              f"MAC-array block each); give a multiple of {self.word_bytes} bytes")
        return dataclasses.replace(self, weight_sram_bytes=size)

    def ratios(self) -> dict:
        """The ratios that the small presets keep from the paper-scale ones."""
        total_dram = self.dram_bytes_per_cycle * self.dram_channels
        return {
            "macs_per_dram_byte": self.macs_per_chiplet * self.num_chiplets / total_dram,
            "d2d_to_dram_channel": self.link_bytes_per_cycle / self.dram_bytes_per_cycle,
        }

    def summary(self) -> dict:
        return dataclasses.asdict(self) | {
            "num_chiplets": self.num_chiplets, "macs_per_chiplet": self.macs_per_chiplet,
            "dram_gbps_per_channel": self.dram_bytes_per_cycle * self.clock_ghz,
            "link_gbps": self.link_bytes_per_cycle * self.clock_ghz,
            "token_sram_bytes": self.token_sram_bytes, "provisioned_sram_bytes": self.provisioned_sram_bytes,
        } | self.ratios()


def corner_chiplets(rows: int, cols: int) -> tuple:
    """Indices of the corner chiplets, in ring order, without repeats (for 1 x N meshes)."""
    corners = [0, cols - 1, rows * cols - 1, (rows - 1) * cols]
    return tuple(dict.fromkeys(corners))


_PAPER = "FSE-DP paper (arXiv 2603.27624) reference hardware (link, DRAM, MACs, clock)"
_PAPER_CLOCK = 0.8  # GHz
_DRAM_GBPS = 25.6
_D2D_GBPS = 288.0
_PAPER_SRAM = (
    "SRAM per chiplet (our choice; the paper does not state it): an 8 MiB weight buffer, in the middle of "
    "the few to few tens of MiB an edge accelerator chiplet carries (the reference model's own Qwen3 FSE-DP "
    "example needs about 3.5 MB), swept from 1 to 32 MiB by `fsedp grid`; token and accumulator buffers "
    "of 1024 rows x d_max 4096 (int8 + int32, 20 MiB), enough for every token of the grid's largest layer "
    "(L = 1024) on one chiplet, so that no strategy is refused for token rows (the rows each run uses are "
    "reported); a 16-entry slot table; an 8192-entry token table and 16384-word program memories (controller "
    "and DRAM channel), enough for L = 1024 at top-8 and for S = 128 micro-slices of every expert")


def _paper(n: int, dram_scale: float) -> HardwarePreset:
    return HardwarePreset(
        name=f"paper-{n}x{n}", rows=n, cols=n, clock_ghz=_PAPER_CLOCK, mac_rows=32, mac_cols=64,
        dram_bytes_per_cycle=_DRAM_GBPS * dram_scale / _PAPER_CLOCK, dram_latency=80,
        link_bytes_per_cycle=_D2D_GBPS / _PAPER_CLOCK, link_latency=8,
        weight_sram_bytes=8 * MiB, token_rows=1024, d_max=4096, table_entries=8192, program_words=16384,
        dram_program_words=16384, dram_channel_bytes=4 * GiB,
        source=_PAPER + (f"; DRAM x{dram_scale:g} for {n}x{n}" if dram_scale != 1 else "") + ". " + _PAPER_SRAM)


def _rtl(paper: HardwarePreset) -> HardwarePreset:
    """Small preset for RTL simulation with the same bottleneck ratios as ``paper``.

    64 MACs per chiplet (8 x 8); the DRAM channel bandwidth is chosen so that system MACs
    per DRAM byte match, and the D2D link so that D2D-to-DRAM-channel bandwidth matches.
    2-cycle links with 4-flit router buffers keep the simulation small (a VC is then
    credit-bound at 4 flits per 7 cycles, a little under the nominal rate).
    """
    macs = 8 * 8
    ratios = paper.ratios()
    dram = macs * paper.num_chiplets / (ratios["macs_per_dram_byte"] * paper.dram_channels)
    return HardwarePreset(
        name=paper.name.replace("paper", "rtl"), rows=paper.rows, cols=paper.cols, clock_ghz=paper.clock_ghz,
        mac_rows=8, mac_cols=8, dram_bytes_per_cycle=dram, dram_latency=16,
        link_bytes_per_cycle=dram * ratios["d2d_to_dram_channel"], link_latency=2,
        weight_sram_bytes=12 * KiB, token_rows=512, d_max=32, buffer_depth=4, rtl=True,
        source=f"small RTL preset with the ratios of {paper.name}; SRAM per chiplet: a 12 KiB weight buffer "
               f"(16 micro-slices or two whole experts of tiny-8x2), 512 token rows of d_max 32")


def _rtl_long(paper: HardwarePreset) -> HardwarePreset:
    """RTL preset with the timing character of ``paper``: its link latency, a router buffer
    sized to the same credit round trip, its DRAM latency, d_max 64 and a weight buffer
    for slices of hundreds of flits (small-8x2: 384-flit slices)."""
    base = _rtl(paper)
    return dataclasses.replace(
        base, name=base.name + "-long", dram_latency=paper.dram_latency, link_latency=paper.link_latency,
        buffer_depth=0, weight_sram_bytes=96 * KiB, d_max=64, dram_channel_bytes=512 * KiB,
        source=f"RTL preset with the ratios of {paper.name} and its timing: {paper.link_latency}-cycle links, "
               f"router buffers sized to the credit round trip, {paper.dram_latency}-cycle DRAM latency; SRAM per "
               f"chiplet: a 96 KiB weight buffer (16 slices of small-8x2, 384 flits each, or two whole experts), "
               f"512 token rows of d_max 64")


_PAPER_PRESETS = [_paper(2, 1.0), _paper(3, 1.5), _paper(4, 2.0)]
HARDWARE_PRESETS = {p.name: p for p in _PAPER_PRESETS + [_rtl(p) for p in _PAPER_PRESETS]
                    + [_rtl_long(p) for p in _PAPER_PRESETS[:2]]}

MODEL_PRESETS = {p.name: p for p in [
    ModelPreset("deepseek-moe-16b", 2048, 1408, 64, 6, slices=16, shared_experts=2,
                source="DeepSeek-MoE-16B config.json (hidden_size 2048, moe_intermediate_size 1408, "
                       "n_routed_experts 64, num_experts_per_tok 6, n_shared_experts 2; num_hidden_layers 28 with "
                       "first_k_dense_replace 1: 27 MoE layers)", moe_layers=27),
    ModelPreset("qwen3-30b-a3b", 2048, 768, 128, 8, slices=16,
                source="Qwen3-30B-A3B config.json (hidden_size 2048, moe_intermediate_size 768, "
                       "num_experts 128, num_experts_per_tok 8; num_hidden_layers 48, all MoE)", moe_layers=48),
    ModelPreset("phi-3.5-moe", 4096, 6400, 16, 2, slices=64,
                source="Phi-3.5-MoE-instruct config.json (hidden_size 4096, intermediate_size 6400, "
                       "num_local_experts 16, num_experts_per_tok 2; num_hidden_layers 32, all MoE)", moe_layers=32),
    ModelPreset("yuan2-m32", 2048, 8192, 32, 2, slices=64,
                source="Yuan2.0-M32 config.json (hidden_size 2048, ffn_hidden_size 8192, "
                       "num_experts 32, moe_top_k 2; num_layers 24, all MoE)", moe_layers=24),
    ModelPreset("mixtral-8x7b", 4096, 14336, 8, 2, slices=64,
                source="Mixtral-8x7B-v0.1 config.json (hidden_size 4096, intermediate_size 14336, "
                       "num_local_experts 8, num_experts_per_tok 2; num_hidden_layers 32, all MoE)", moe_layers=32),
    ModelPreset("olmoe-1b-7b", 2048, 1024, 64, 8, slices=16,
                source="OLMoE-1B-7B-0924 config.json (hidden_size 2048, intermediate_size 1024, "
                       "num_experts 64, num_experts_per_tok 8; num_hidden_layers 16, all MoE)", moe_layers=16),
    ModelPreset("tiny-8x2", 32, 64, 8, 2, slices=8,
                source="small RTL preset with the expert count and top-k of Mixtral-8x7B"),
    ModelPreset("tiny-64x8", 16, 32, 64, 8, slices=4,
                source="small RTL preset with the expert count and top-k of OLMoE-1B-7B"),
    ModelPreset("small-8x2", 64, 256, 8, 2, slices=8,
                source="RTL preset with the expert count and top-k of Mixtral-8x7B and slices of 6 KiB "
                       "(384 flits of 16 bytes), for the rtl-*-long presets"),
]}


_UNITS = {"": 1, "B": 1, "K": KiB, "KIB": KiB, "M": MiB, "MIB": MiB, "G": GiB, "GIB": GiB}


def format_size(n) -> str:
    """Bytes in the largest binary unit that keeps the number at least 1 (``768 B``,
    ``6 KiB``, ``1.5 MiB``, ``168 MiB``)."""
    for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if n >= size:
            v = n / size
            return f"{v:.3g} {unit}" if v < 1000 else f"{v:.0f} {unit}"
    return f"{n} B"


def parse_size(text: str) -> int:
    """A memory size such as ``8MiB``, ``512KiB``, ``1.5MiB`` or ``6144`` (bytes; K, M and G
    are binary, like KiB, MiB and GiB) as a whole number of bytes."""
    import re

    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*", str(text))
    unit = m.group(2).upper() if m else None
    if not m or unit not in _UNITS:
        raise PresetError(f"{text!r} is not a memory size; give bytes or a number with KiB, MiB or GiB "
                          f"(e.g. 8MiB, 512KiB, 1.5MiB)")
    value = float(m.group(1)) * _UNITS[unit]
    if value != int(value) or value <= 0:
        raise PresetError(f"{text!r} is not a positive whole number of bytes")
    return int(value)


def _get(table: dict, kind: str, name: str):
    try:
        return table[name]
    except KeyError:
        raise PresetError(f"unknown {kind} preset {name!r}; choose one of: {', '.join(table)}, "
                          f"or a .toml description file (fsedp presets --export NAME writes one)") from None


def get_model(name: str) -> ModelPreset:
    """A model preset by name, or the model a ``.toml`` description file describes
    (:mod:`scheduler.description`)."""
    if isinstance(name, ModelPreset):
        return name
    from scheduler import description

    if description.is_description_path(name):
        return description.load_model(name)
    return _get(MODEL_PRESETS, "model", name)


def get_hardware(name: str) -> HardwarePreset:
    """A hardware preset by name, or the hardware a ``.toml`` description file describes
    (:mod:`scheduler.description`)."""
    if isinstance(name, HardwarePreset):
        return name
    from scheduler import description

    if description.is_description_path(name):
        return description.load_hardware(name)
    return _get(HARDWARE_PRESETS, "hardware", name)
