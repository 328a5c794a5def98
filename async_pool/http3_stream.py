"""One HTTP/3 request stream as one ASGI `http` request: `PoolStream` over QUIC.

The connection (`http3.H3Server`) owns zoomies' QUIC state and the socket; a stream
talks to it only through `StreamLink`, as HTTP/2 streams do. What HTTP/3 adds to the
shared behaviour (`pool_stream`): its own malformed-request checks, HEADERS and DATA
frames written on the stream, and the stream's credit (MAX_STREAM_DATA) kept here.
No `100 Continue` is sent: a client that waits for one sends its body after its own
timeout.
"""

from typing import Protocol

from pounce_sync.asgi.exchange import KeepsResponseHeaders
from pounce_sync.http1 import Request, valid_field

from .http3_frames import (
    H3_INTERNAL_ERROR,
    H3_NO_ERROR,
    H3_REQUEST_CANCELLED,
    HEADERS,
    frame,
)
from .pool_stream import ConnectionLink, Headers, Message, PoolStream, request_from_fields
from .qpack_static import encode_field_section

_REQUEST_PSEUDO = frozenset({b":method", b":scheme", b":authority", b":path"})
# RFC 9114 4.2: connection-specific fields make a request malformed.
_CONNECTION_FIELDS = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"}
)


class StreamLink(ConnectionLink, Protocol):
    """What a stream may ask of its connection; every call but `send` returns at once."""

    async def send(self, stream: "H3Stream", data: bytes, end_stream: bool) -> None: ...
    def respond_now(self, stream: "H3Stream", status: int, body: bytes) -> None: ...
    def consumed(self, stream: "H3Stream", size: int) -> None: ...
    def reset(self, stream: "H3Stream", code: int) -> None: ...


def malformed(headers: Headers) -> str | None:
    """Why a request's field section is malformed (RFC 9114 4.1.2, 4.3.1), or None."""
    pseudo: dict[bytes, bytes] = {}
    regular = False
    for name, value in headers:
        if name[:1] == b":":
            if regular or name not in _REQUEST_PSEUDO or name in pseudo:
                return f"misplaced, unknown or repeated pseudo-header {name!r}"
            pseudo[name] = value
            continue
        regular = True
        if name != name.lower() or name in _CONNECTION_FIELDS:
            return f"field {name!r} is not allowed"
        if name == b"te" and value.lower() != b"trailers":
            return "te other than trailers"
        if not valid_field(name, value):
            return f"invalid field {name!r}"
    method = pseudo.get(b":method")
    if method is None or not method:
        return "no :method"
    if method == b"CONNECT":
        return None  # answered 501 by the refusal check
    if not pseudo.get(b":scheme") or not pseudo.get(b":path"):
        return "no :scheme or :path"
    return None


def request_from_h3(headers: Headers, ended: bool) -> Request:
    return request_from_fields(headers, ended, b"3")


class H3Stream(PoolStream):
    """One HTTP/3 request stream; the connection calls the `on_*` methods."""

    link: StreamLink
    NO_ERROR = H3_NO_ERROR
    CANCELLED = H3_REQUEST_CANCELLED
    INTERNAL_ERROR = H3_INTERNAL_ERROR

    def __init__(
        self,
        link: StreamLink,
        stream_id: int,
        request: Request,
        scope: dict,
        *,
        request_ended: bool,
        extra_headers: Headers | None = None,
    ) -> None:
        super().__init__(
            link,
            stream_id,
            request,
            scope,
            request_ended=request_ended,
            extra_headers=extra_headers,
        )
        self.sent_offset = 0  # stream bytes queued, frames included: our final size
        self.peer_limit = 0  # the client's MAX_STREAM_DATA for this stream
        self.credited = 0  # request-stream bytes given back to the client
        self.limit_sent = 0  # the MAX_STREAM_DATA we last sent

    def _reset(self, code: int) -> None:
        self.link.reset(self, code)

    def _respond_now(self, status: int, body: bytes) -> None:
        self.link.respond_now(self, status, body)

    def _credit(self, size: int) -> None:
        self.link.consumed(self, size)

    async def _body(self, message: Message) -> None:
        first = not self.head_sent
        body, _ = self.response_body(message)
        if self._head:
            body = b""
        end = self.response_complete or self._head
        out = b""
        if first:
            out = frame(HEADERS, encode_field_section([self._status_field(), *self._headers]))
        elif self.ended:
            return  # HEAD: the body is not sent
        if body:
            out += frame(0x00, body)
        if out or end:
            await self.link.send(self, out, end)
            self.body_bytes += len(body)
        if end:
            self._mark_ended()

    async def _end_with_trailers(self) -> None:
        await self.link.send(self, frame(HEADERS, encode_field_section(self._trailers)), True)


class HeaderKeepingH3Stream(KeepsResponseHeaders, H3Stream):
    """An H3Stream for an access format that shows response headers (`{name}o`)."""
