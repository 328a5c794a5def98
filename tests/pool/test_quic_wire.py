"""quic_wire, sans I/O, on every interpreter: varints, frame spans, coalesced datagrams."""

import pytest

from async_pool import quic_wire as wire
from async_pool.http3_frames import Body, End, Head, Malformed, RequestStreamParser, frame


@pytest.mark.parametrize("value", [0, 63, 64, 16383, 16384, 2**30 - 1, 2**30, 2**62 - 1])
def test_varint_round_trip(value: int) -> None:
    data = wire.varint(value)
    assert wire.pull_varint(data, 0) == (value, len(data))


def test_frame_spans_walk_a_payload_zoomies_would_misread() -> None:
    """MAX_DATA then STREAM: zoomies skipped the MAX_DATA as length-prefixed."""
    stream = bytes([0x0B]) + wire.varint(0) + wire.varint(3) + b"abc"
    payload = wire.max_data_frame(2_000_000) + stream + bytes(3)
    spans = []
    pos = 0
    while pos < len(payload):
        kind, _, pos = wire.frame_span(payload, pos)
        spans.append(kind)
    assert spans == [wire.MAX_DATA, 0x0B, wire.PADDING]


def _long(kind: int, payload: bytes) -> bytes:
    token = wire.varint(0) if kind == 0 else b""
    head = bytes([0xC0 | kind << 4]) + b"\x00\x00\x00\x01" + b"\x04abcd\x04efgh" + token
    return head + wire.varint(len(payload)) + payload


def test_coalesced_datagram_splits_into_its_packets() -> None:
    initial, handshake = _long(0, b"i" * 30), _long(2, b"h" * 40)
    short = bytes([0x40]) + b"abcd" + b"s" * 25
    assert wire.split_datagram(initial + handshake + short) == [initial, handshake, short]
    assert wire.split_datagram(initial + bytes(50)) == [initial]  # padding after a packet


def test_request_stream_parser_events_and_a_fin_without_data() -> None:
    parser = RequestStreamParser(1024)
    data = frame(0x01, b"HEAD") + frame(0x21, b"grease") + frame(0x00, b"body")
    events = parser.feed(data[:5], False) + parser.feed(data[5:], False) + parser.feed(b"", True)
    assert events[0] == Head(b"HEAD")
    assert b"".join(e.data for e in events if type(e) is Body) == b"body"
    assert events[-1] == End()


def test_data_before_headers_is_malformed() -> None:
    (event,) = RequestStreamParser(1024).feed(frame(0x00, b"x"), False)
    assert type(event) is Malformed
