"""Packet formats: one definition for hardware and software."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hw.packets import (HEADER_BITS, Agent, Flag, Header, PacketKind, build_packet, control_packet,
                        pack_header, parse_packet, result_packet, token_packet, unpack_header, vc_of,
                        VC_SLOT, VC_TILE, check_link_bytes)

WIDTHS = {"kind": 4, "flags": 4, "src": 8, "dst": 8, "length": 16, "expert": 8, "slice": 8, "hops": 8,
          "slot": 8, "token": 16, "agent": 8}


def test_header_field_widths_are_the_documented_ones():
    layout = Header.as_shape()
    assert {name: field.width for name, field in layout} == WIDTHS
    assert HEADER_BITS == 96 == sum(WIDTHS.values())


@settings(max_examples=200, deadline=None)
@given(kind=st.sampled_from(PacketKind), agent=st.sampled_from(Agent),
       values=st.fixed_dictionaries({k: st.integers(0, (1 << w) - 1) for k, w in WIDTHS.items()
                                     if k not in ("kind", "agent")}))
def test_header_round_trip(kind, agent, values):
    word = pack_header(kind=kind, agent=agent, **values)
    assert word < 1 << HEADER_BITS
    assert unpack_header(word) == {"kind": kind, "agent": agent, **values}


def test_header_bit_positions_are_lsb_first():
    assert pack_header(kind=PacketKind.RESULT) == 3
    assert pack_header(src=0xAB) == 0xAB << 8
    assert pack_header(length=1) == 1 << 24
    assert pack_header(agent=Agent.DRAM) == 1 << 88


@settings(max_examples=50, deadline=None)
@given(payload=st.binary(max_size=100), link_bytes=st.sampled_from([12, 16, 32]))
def test_packet_round_trip(payload, link_bytes):
    flits = build_packet(link_bytes, payload, kind=PacketKind.WEIGHT, src=1, dst=2, expert=3, slice=4, slot=5)
    assert len(flits) == 1 + -(-len(payload) // link_bytes)
    assert all(f < 1 << (8 * link_bytes) for f in flits)
    p = parse_packet(flits, link_bytes)
    assert p.kind == PacketKind.WEIGHT and p.header["length"] == len(flits) - 1
    assert p.payload[:len(payload)] == payload and not any(p.payload[len(payload):])


def test_token_and_result_payloads():
    t = parse_packet(token_packet(16, src=1, dst=2, token=300, vector=[-1, 2, -128, 127]), 16)
    assert t.header["token"] == 300 and t.payload[:4] == bytes([0xFF, 2, 0x80, 0x7F])
    r = parse_packet(result_packet(16, src=2, dst=1, token=300, vector=[-2, 1 << 20, 5, 6, 7]), 16)
    assert r.header["length"] == 2
    assert int.from_bytes(r.payload[0:4], "little", signed=True) == -2
    assert int.from_bytes(r.payload[4:8], "little", signed=True) == 1 << 20


def test_virtual_channel_of_each_kind():
    assert {k: vc_of(k) for k in PacketKind} == {
        PacketKind.SLICE: VC_SLOT, PacketKind.WEIGHT: VC_SLOT, PacketKind.TOKEN: VC_TILE,
        PacketKind.RESULT: VC_TILE, PacketKind.RESERVE: VC_SLOT, PacketKind.GRANT: VC_SLOT,
        PacketKind.RELEASE: VC_SLOT}
    assert len(control_packet(16, PacketKind.RELEASE, src=0, dst=1, slot=3)) == 1
    assert Flag.SOLE == 1


def test_encoder_errors_are_one_line_and_name_the_field():
    with pytest.raises(ValueError, match=r"^header field hops must be an integer in 0\.\.255, not 256$"):
        pack_header(hops=256)
    with pytest.raises(ValueError, match=r"^unknown header field 'colour'"):
        pack_header(colour=1)
    with pytest.raises(ValueError, match=r"^length 2 does not match a payload of 3 bytes"):
        build_packet(16, b"abc", kind=PacketKind.TOKEN, length=2)
    with pytest.raises(ValueError, match=r"^Link width must be at least 12 bytes"):
        check_link_bytes(8)
    with pytest.raises(ValueError, match=r"^header length 2 but 1 payload flits$"):
        parse_packet(build_packet(16, b"x" * 20, kind=PacketKind.TOKEN)[:2], 16)
