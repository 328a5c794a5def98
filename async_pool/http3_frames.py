"""HTTP/3 framing (RFC 9114 7) of one request stream and of the control stream, sans I/O.

`RequestStreamParser` takes a request stream's bytes as QUIC delivers them and
gives back events: the head's field section, body pieces, trailers, the end.
zoomies 0.3.3 has an H3 parser, but it reads unidirectional streams as if they
had no type byte and drops a FIN that arrives without data, so the adapter
frames and unframes HTTP/3 itself (docs/http3.md).
"""

from dataclasses import dataclass

from .quic_wire import pull_varint, varint

DATA = 0x00
HEADERS = 0x01
SETTINGS = 0x04
GOAWAY = 0x07
# Frames of HTTP/2 that HTTP/3 reserves (RFC 9114 7.2.8), and control-stream-only
# frames: on a request stream they are H3_FRAME_UNEXPECTED.
_UNEXPECTED = frozenset({0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0D})

STREAM_CONTROL = 0x00
SETTING_QPACK_MAX_TABLE_CAPACITY = 0x01
SETTING_MAX_FIELD_SECTION_SIZE = 0x06
SETTING_QPACK_BLOCKED_STREAMS = 0x07

# RFC 9114 8.1 error codes.
H3_NO_ERROR = 0x100
H3_GENERAL_PROTOCOL_ERROR = 0x101
H3_INTERNAL_ERROR = 0x102
H3_FRAME_UNEXPECTED = 0x105
H3_EXCESSIVE_LOAD = 0x107
H3_REQUEST_REJECTED = 0x10B
H3_REQUEST_CANCELLED = 0x10C
H3_REQUEST_INCOMPLETE = 0x10D
H3_MESSAGE_ERROR = 0x10E


def frame(kind: int, payload: bytes) -> bytes:
    return varint(kind) + varint(len(payload)) + payload


def data_frame_head(size: int) -> bytes:
    return varint(DATA) + varint(size)


def control_stream(max_field_section_size: int) -> bytes:
    """The control stream's opening: its type, then SETTINGS (a dynamic table of 0)."""
    settings = (
        varint(SETTING_QPACK_MAX_TABLE_CAPACITY)
        + varint(0)
        + varint(SETTING_QPACK_BLOCKED_STREAMS)
        + varint(0)
        + varint(SETTING_MAX_FIELD_SECTION_SIZE)
        + varint(max_field_section_size)
    )
    return varint(STREAM_CONTROL) + frame(SETTINGS, settings)


def goaway(stream_id: int) -> bytes:
    return frame(GOAWAY, varint(stream_id))


@dataclass(frozen=True, slots=True)
class Head:
    block: bytes  # a QPACK field section


@dataclass(frozen=True, slots=True)
class Body:
    data: bytes


@dataclass(frozen=True, slots=True)
class Trailers:
    block: bytes


@dataclass(frozen=True, slots=True)
class End:
    """The client's FIN, after a whole frame."""


@dataclass(frozen=True, slots=True)
class Malformed:
    """The stream broke HTTP/3's framing; `code` is the stream error to reset with."""

    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class TooLarge:
    """A field section longer than the limit; its bytes are skipped, not buffered."""


StreamEvent = Head | Body | Trailers | End | Malformed | TooLarge


class RequestStreamParser:
    """HEADERS, DATA..., optional trailing HEADERS, FIN (RFC 9114 4.1); unknown frames skipped.

    DATA payloads are handed on as they arrive, never whole; a HEADERS frame is
    buffered up to `max_field_section` bytes.
    """

    def __init__(self, max_field_section: int) -> None:
        self._max = max_field_section
        self._buffer = b""
        self._kind: int | None = None  # the frame being read, once its header is in
        self._left = 0  # its payload bytes still to come
        self._skip = False  # the frame's payload is dropped (unknown, or too large)
        self._seen_head = False
        self._seen_trailers = False
        self._failed = False

    def feed(self, data: bytes, end: bool) -> list[StreamEvent]:
        if self._failed:
            return []
        self._buffer += data
        events: list[StreamEvent] = []
        while not self._failed and self._step(events):
            pass
        if end and not self._failed:
            if self._kind is not None or self._buffer or not self._seen_head:
                events.append(Malformed(H3_REQUEST_INCOMPLETE, "the stream ended mid-frame"))
                self._failed = True
            else:
                events.append(End())
        return events

    def _step(self, events: list[StreamEvent]) -> bool:
        if self._kind is None:
            return self._read_frame_header(events)
        if self._kind == DATA and not self._skip:
            piece = self._buffer[: self._left]
            if not piece:
                return False
            self._buffer = self._buffer[len(piece) :]
            self._left -= len(piece)
            events.append(Body(piece))
        elif len(self._buffer) >= self._left or self._skip:
            taken = min(self._left, len(self._buffer))
            payload, self._buffer = self._buffer[:taken], self._buffer[taken:]
            self._left -= taken
            if self._left:
                return False
            if not self._skip:
                self._whole_frame(payload, events)
        else:
            return False
        if not self._left:
            self._kind = None
        return True

    def _read_frame_header(self, events: list[StreamEvent]) -> bool:
        try:
            kind, pos = pull_varint(self._buffer, 0)
            length, pos = pull_varint(self._buffer, pos)
        except ValueError:
            return False
        self._buffer = self._buffer[pos:]
        self._kind, self._left = kind, length
        self._skip = False
        if kind in _UNEXPECTED:
            self._fail(events, H3_FRAME_UNEXPECTED, f"frame type 0x{kind:x} on a request stream")
        elif kind == DATA and not self._seen_head:
            self._fail(events, H3_FRAME_UNEXPECTED, "DATA before HEADERS")
        elif kind == DATA and self._seen_trailers:
            self._fail(events, H3_FRAME_UNEXPECTED, "DATA after trailers")
        elif kind == HEADERS and length > self._max:
            self._skip = True
            events.append(TooLarge())
        elif kind not in (DATA, HEADERS):
            self._skip = True  # unknown and reserved (grease) types are ignored (RFC 9114 9)
        if not length and not self._failed:
            if kind == HEADERS and not self._skip:
                self._whole_frame(b"", events)
            self._kind = None
        return True

    def _whole_frame(self, payload: bytes, events: list[StreamEvent]) -> None:
        if not self._seen_head:
            self._seen_head = True
            events.append(Head(payload))
        elif not self._seen_trailers:
            self._seen_trailers = True
            events.append(Trailers(payload))
        else:
            self._fail(events, H3_FRAME_UNEXPECTED, "HEADERS after trailers")

    def _fail(self, events: list[StreamEvent], code: int, reason: str) -> None:
        self._failed = True
        events.append(Malformed(code, reason))
