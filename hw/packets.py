"""D2D packet formats, defined once: the router hardware and the software encoder and
decoder below both use these layouts; nothing else knows the bit positions.

A packet is one *header flit* followed by ``length`` *payload flits*.  A flit is as wide
as the link (``link_bytes``, a build parameter; at least :data:`HEADER_BYTES`).  The
header occupies the low :data:`HEADER_BITS` bits of the header flit (:class:`Header`,
LSB first); the rest of the flit is zero.  Payload bytes fill the payload flits
little-endian (byte ``i`` of the payload is bits ``8*(i % link_bytes)`` .. of flit
``i // link_bytes``), the last flit zero-padded.  Next to the data, every flit on a link
carries a ``last`` bit (the packet's final flit) and its virtual channel
(:func:`link_flit_layout`); the router relies on ``last``, not on ``length``, to find the
end of a packet, and flags a mismatch.

Header fields and widths (bits), 96 in all:

========  =====  ==========================================================================
field     bits   meaning
========  =====  ==========================================================================
kind      4      :class:`PacketKind`
flags     4      :class:`Flag` bits (SLICE: ``SOLE``)
src       8      chiplet that sent the packet (stamped by the sending router)
dst       8      destination chiplet ``r * cols + c``
length    16     payload flits after the header (0 for control packets)
expert    8      SLICE, WEIGHT: expert id
slice     8      SLICE, WEIGHT: micro-slice index within the expert
hops      8      SLICE: forwards the slice has made so far (0 when DRAM injects it)
slot      8      SLICE, WEIGHT: reserved slot at ``dst`` the payload goes to;
                 GRANT: the slot granted; RELEASE: the receiver's slot whose
                 predecessor copy is gone
token     16     TOKEN, RESULT: token index (the bench uses it as a per-flow sequence)
agent     8      RESERVE, GRANT: :class:`Agent` that asked for the slot
========  =====  ==========================================================================

Kinds and virtual channels (see :func:`vc_of`): tile traffic (TOKEN, RESULT) travels on
:data:`VC_TILE`; slot traffic (SLICE, WEIGHT) and the slot-credit control packets
(RESERVE, GRANT, RELEASE) on :data:`VC_SLOT`.  Every packet on ``VC_SLOT`` is consumed by
router-owned resources (a reserved slot, the request queue, a grant register), so that
channel drains whatever the tiles do; ``VC_TILE`` only needs the tiles to drain their
ejection streams eventually.
"""


import dataclasses

from amaranth.hdl import unsigned
from amaranth.lib import data, enum

__all__ = [
    "PacketKind", "Agent", "Flag", "Header", "HEADER_BITS", "HEADER_BYTES",
    "VC_TILE", "VC_SLOT", "NUM_VCS", "vc_of", "SLOT_KINDS", "CONTROL_KINDS", "TILE_KINDS",
    "flit_layout", "link_flit_layout", "check_link_bytes",
    "pack_header", "unpack_header", "build_packet", "parse_packet", "Packet",
    "token_packet", "result_packet", "slice_packet", "weight_packet", "control_packet",
]


class PacketKind(enum.Enum, shape=4):
    SLICE = 0     # ring traffic: a micro-slice forwarded to the successor (FSE-DP)
    WEIGHT = 1    # a whole expert or a slice loaded from DRAM to one chiplet (EP, Hydra)
    TOKEN = 2     # an int8 token vector sent to another chiplet (EP, Hydra)
    RESULT = 3    # an int32 partial output sent back to the token's home chiplet
    RESERVE = 4   # control: "reserve a slot for my agent"
    GRANT = 5     # control: "slot ``slot`` is reserved for your agent"
    RELEASE = 6   # control: "my copy of the slice in your slot ``slot`` is gone" (R2)


class Agent(enum.Enum, shape=8):
    """Who asked for a slot: each agent of a chiplet has at most one request in flight."""

    FORWARD = 0   # the ring forward engine (R1, R5, R7)
    DRAM = 1      # the DRAM channel, for a WEIGHT load to another chiplet


class Flag(enum.IntFlag):
    """Bits of :attr:`Header.flags`."""

    SOLE = 1      # SLICE: the sender's copy is already computed, so it is freed when this
                  # transfer ends; the receiver's copy is the only one (no RELEASE follows)
    RELAY = 2     # WEIGHT from a DRAM channel for another chiplet: the channel's own router
                  # stages it in a local slot (two free, like R6) and its forward engine sends
                  # it on to ``dst`` at link rate, so no link waits on DRAM's pace


class Header(data.Struct):
    kind: PacketKind
    flags: unsigned(4)
    src: unsigned(8)
    dst: unsigned(8)
    length: unsigned(16)
    expert: unsigned(8)
    slice: unsigned(8)
    hops: unsigned(8)
    slot: unsigned(8)
    token: unsigned(16)
    agent: Agent


HEADER_BITS = Header.as_shape().size
HEADER_BYTES = HEADER_BITS // 8
assert HEADER_BITS == 96

VC_TILE = 0
VC_SLOT = 1
NUM_VCS = 2
SLOT_KINDS = (PacketKind.SLICE, PacketKind.WEIGHT)
CONTROL_KINDS = (PacketKind.RESERVE, PacketKind.GRANT, PacketKind.RELEASE)
TILE_KINDS = (PacketKind.TOKEN, PacketKind.RESULT)


def vc_of(kind: PacketKind) -> int:
    """The virtual channel a packet kind travels on."""
    return VC_TILE if PacketKind(kind) in TILE_KINDS else VC_SLOT


def check_link_bytes(link_bytes) -> int:
    if not isinstance(link_bytes, int) or isinstance(link_bytes, bool) or link_bytes <= 0:
        raise TypeError(f"Link width in bytes must be a positive integer, not {link_bytes!r}")
    if link_bytes < HEADER_BYTES:
        raise ValueError(f"Link width must be at least {HEADER_BYTES} bytes to carry a header "
                         f"flit, not {link_bytes}")
    return link_bytes


def flit_layout(link_bytes: int) -> data.StructLayout:
    """A flit inside a chiplet (tile, DRAM and router-internal streams): ``{data, last}``."""
    return data.StructLayout({"data": unsigned(8 * link_bytes), "last": unsigned(1)})


def link_flit_layout(link_bytes: int) -> data.StructLayout:
    """A flit on a D2D link: ``{data, last, vc}``."""
    return data.StructLayout({"data": unsigned(8 * link_bytes), "last": unsigned(1),
                              "vc": unsigned(max(1, (NUM_VCS - 1).bit_length()))})


# --- software encoder / decoder ---------------------------------------------------------

_FIELDS = [name for name, _ in Header.as_shape()]


def pack_header(**fields) -> int:
    """The header as an integer (the low :data:`HEADER_BITS` of a header flit).

    Unknown field names and out-of-range values raise ``ValueError``.
    """
    layout = Header.as_shape()
    values = {}
    for name, value in fields.items():
        if name not in _FIELDS:
            raise ValueError(f"unknown header field {name!r}; fields are: {', '.join(_FIELDS)}")
        shape = layout[name].shape
        if name == "kind":
            value = PacketKind(value)
        elif name == "agent":
            value = Agent(value)
        else:
            width = shape.width
            if not isinstance(value, int) or not 0 <= int(value) < (1 << width):
                raise ValueError(f"header field {name} must be an integer in 0..{(1 << width) - 1}, "
                                 f"not {value!r}")
            value = int(value)
        values[name] = value
    return Header.const(values).as_value().value


def unpack_header(flit: int) -> dict:
    """The header fields of a header flit (``kind`` and ``agent`` as enum members)."""
    c = Header.from_bits(flit & ((1 << HEADER_BITS) - 1))
    out = {name: getattr(c, name) for name in _FIELDS}
    for name in _FIELDS:
        if name not in ("kind", "agent"):
            out[name] = int(out[name])
    return out


@dataclasses.dataclass(frozen=True)
class Packet:
    """A decoded packet: header fields and payload bytes (whole flits)."""

    header: dict
    payload: bytes

    @property
    def kind(self) -> PacketKind:
        return self.header["kind"]


def build_packet(link_bytes: int, payload: bytes = b"", **fields) -> list[int]:
    """Flits (integers of ``8 * link_bytes`` bits) of a packet; ``length`` defaults to the
    number of flits the payload needs.  The ``last`` bit is implied: it is the final flit."""
    check_link_bytes(link_bytes)
    payload = bytes(payload)
    flits = -(-len(payload) // link_bytes)
    fields.setdefault("length", flits)
    if fields["length"] != flits:
        raise ValueError(f"length {fields['length']} does not match a payload of {len(payload)} bytes "
                         f"({flits} flits of {link_bytes} bytes)")
    out = [pack_header(**fields)]
    for i in range(flits):
        out.append(int.from_bytes(payload[i * link_bytes:(i + 1) * link_bytes], "little"))
    return out


def parse_packet(flits, link_bytes: int) -> Packet:
    """Inverse of :func:`build_packet`; checks that the flit count matches ``length``."""
    flits = list(flits)
    if not flits:
        raise ValueError("a packet has at least a header flit")
    header = unpack_header(flits[0])
    if header["length"] != len(flits) - 1:
        raise ValueError(f"header length {header['length']} but {len(flits) - 1} payload flits")
    payload = b"".join(int(f).to_bytes(link_bytes, "little") for f in flits[1:])
    return Packet(header, payload)


def token_packet(link_bytes: int, *, src: int, dst: int, token: int, vector) -> list[int]:
    """A TOKEN packet carrying an int8 token vector."""
    payload = bytes(int(v) & 0xFF for v in vector)
    return build_packet(link_bytes, payload, kind=PacketKind.TOKEN, src=src, dst=dst, token=token)


def result_packet(link_bytes: int, *, src: int, dst: int, token: int, vector) -> list[int]:
    """A RESULT packet carrying an int32 partial output (little-endian two's complement)."""
    payload = b"".join((int(v) & 0xFFFFFFFF).to_bytes(4, "little") for v in vector)
    return build_packet(link_bytes, payload, kind=PacketKind.RESULT, src=src, dst=dst, token=token)


def slice_packet(link_bytes: int, *, expert: int, slice: int, payload: bytes, src: int = 0,
                 dst: int = 0, hops: int = 0, slot: int = 0, flags: int = 0) -> list[int]:
    """A SLICE packet (the DRAM channel sends it with ``hops = 0``; the router fills
    ``src``, ``dst``, ``slot`` and ``flags`` when it forwards)."""
    return build_packet(link_bytes, payload, kind=PacketKind.SLICE, src=src, dst=dst, expert=expert,
                        slice=slice, hops=hops, slot=slot, flags=flags)


def weight_packet(link_bytes: int, *, expert: int, slice: int, dst: int, payload: bytes,
                  src: int = 0, slot: int = 0, flags: int = 0) -> list[int]:
    """A WEIGHT packet: a whole expert or a tile loaded into one chiplet's slot (``flags``
    :data:`Flag.RELAY` from a DRAM channel: staged in its own chiplet first)."""
    return build_packet(link_bytes, payload, kind=PacketKind.WEIGHT, src=src, dst=dst, expert=expert,
                        slice=slice, slot=slot, flags=int(flags))


def control_packet(link_bytes: int, kind: PacketKind, *, src: int, dst: int, slot: int = 0,
                   agent: Agent = Agent.FORWARD) -> list[int]:
    """A one-flit RESERVE, GRANT or RELEASE packet."""
    if PacketKind(kind) not in CONTROL_KINDS:
        raise ValueError(f"control packet kind must be one of RESERVE, GRANT, RELEASE, not {kind!r}")
    return build_packet(link_bytes, b"", kind=kind, src=src, dst=dst, slot=slot, agent=agent)
