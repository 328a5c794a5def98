"""One HTTP/2 stream as one ASGI `http` request: `PoolStream` over h2's connection.

The connection (`http2.H2Server`) owns h2's state machine and the socket; a stream
only talks to it through the narrow `StreamLink` below. What HTTP/2 adds to the shared
behaviour (`pool_stream`): `100 Continue` as an informational HEADERS frame, an empty
or HEAD response as one HEADERS frame with END_STREAM, and padding counted in flow control.
"""

from typing import Protocol

from h2.errors import ErrorCodes

from pounce_sync.asgi.exchange import KeepsResponseHeaders
from pounce_sync.http1 import Request

from .pool_stream import (
    ConnectionLink,
    Headers,
    Message,
    PoolStream,
    StreamGone,
    request_from_fields,
)

_FIELD_OVERHEAD = 32  # RFC 9113 6.5.2: each field counts its name, value and 32 octets


class StreamLink(ConnectionLink, Protocol):
    """What a stream may ask of its connection; every call but `send_body` returns at once."""

    def send_head(self, stream_id: int, headers: Headers, end_stream: bool) -> None: ...
    async def send_body(self, stream: "H2Stream", data: bytes, end_stream: bool) -> None: ...
    def respond_now(self, stream_id: int, status: int, body: bytes) -> None: ...
    def consumed(self, stream_id: int, size: int) -> None: ...
    def reset(self, stream_id: int, code: ErrorCodes) -> None: ...


def request_from_h2(headers: Headers, ended: bool) -> Request:
    """h2's validated header block as a request head; :authority becomes Host."""
    return request_from_fields(headers, ended, b"2")


def request_from_upgrade(request: Request) -> Request:
    """The h2c upgrade request as stream 1: HTTP/2 has no use for its hop-by-hop fields."""
    drop = {b"connection", b"upgrade", b"http2-settings", b"keep-alive"}
    fields = tuple((n, v) for n, v in request.headers if n not in drop)
    return request._replace(http_version=b"2", headers=fields, upgrade=None)


def header_list_size(headers: Headers) -> int:
    return sum(len(n) + len(v) + _FIELD_OVERHEAD for n, v in headers)


class H2Stream(PoolStream):
    """One HTTP/2 stream; the connection's reader calls the `on_*` methods."""

    link: StreamLink
    NO_ERROR = ErrorCodes.NO_ERROR
    CANCELLED = ErrorCodes.CANCEL
    INTERNAL_ERROR = ErrorCodes.INTERNAL_ERROR

    def _reset(self, code: int) -> None:
        self.link.reset(self.id, ErrorCodes(code))

    def _respond_now(self, status: int, body: bytes) -> None:
        self.link.respond_now(self.id, status, body)

    def _credit(self, size: int) -> None:
        self.link.consumed(self.id, size)

    def _send_continue(self) -> None:
        try:
            self.link.send_head(self.id, [(b":status", b"100")], False)
        except StreamGone:
            self.on_gone()

    async def _body(self, message: Message) -> None:
        first = not self.head_sent
        body, more_body = self.response_body(message)
        if first:
            last = not more_body
            end_stream = self._head or (last and not body and not self.trailers_wanted)
            self.link.send_head(self.id, [self._status_field(), *self._headers], end_stream)
            if end_stream:
                self._mark_ended()
        if self.ended:
            return  # HEAD: the body is not sent
        end = self.response_complete
        if body or end:
            await self.link.send_body(self, body, end)
            self.body_bytes += len(body)
            if end:
                self._mark_ended()

    async def _end_with_trailers(self) -> None:
        self.link.send_head(self.id, self._trailers, True)


class HeaderKeepingH2Stream(KeepsResponseHeaders, H2Stream):
    """An H2Stream for an access format that shows response headers (`{name}o`)."""
