"""One HTTP/3 request stream as one ASGI `http` request: checks, `receive()` and `send()`.

The connection (`http3.H3Server`) owns zoomies' QUIC state and the socket; a stream
talks to it only through `StreamLink`, as HTTP/2 streams do. Request bodies are
credited to the client (MAX_STREAM_DATA) only as the app takes them, so a slow app
holds its client back. Response HEADERS wait for the first body message, so an app
that fails before any body still gets a 500.
"""

import asyncio
from typing import Any, Protocol

from pounce_sync.asgi.disconnect import ClientDisconnected, disconnect_message
from pounce_sync.asgi.exchange import (
    AWAIT_DISCONNECT,
    DISCONNECT,
    INCOMPLETE,
    NOT_STARTED,
    HTTPExchange,
    KeepsResponseHeaders,
    log_app_error,
)
from pounce_sync.http1 import Request, error_body, valid_field

from .context import PoolContext
from .handoffs import ClientSocket
from .http2_stream import StreamGone, request_from_h2, response_headers
from .http3_frames import (
    H3_INTERNAL_ERROR,
    H3_NO_ERROR,
    H3_REQUEST_CANCELLED,
    HEADERS,
    frame,
)
from .qpack_static import encode_field_section

Headers = list[tuple[bytes, bytes]]
Message = dict[str, Any]

_REQUEST_PSEUDO = frozenset({b":method", b":scheme", b":authority", b":path"})
# RFC 9114 4.2: connection-specific fields make a request malformed.
_CONNECTION_FIELDS = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"}
)


class StreamLink(Protocol):
    """What a stream may ask of its connection; every call but `send` returns at once."""

    ctx: PoolContext
    conn_info: ClientSocket
    draining: bool

    def default_headers(self) -> Headers: ...
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
    return request_from_h2(headers, ended)._replace(http_version=b"3")


class H3Stream(HTTPExchange):
    """The HTTP/3 shell over `HTTPExchange` for one request stream.

    `disconnected` here means reset or stopped by either side, or the connection is over.
    """

    def __init__(
        self,
        link: StreamLink,
        stream_id: int,
        request: Request,
        scope: dict[str, Any],
        *,
        request_ended: bool,
        extra_headers: Headers | None = None,
    ) -> None:
        super().__init__(request, link.ctx.config.max_body_size, trailers_allowed=True)
        self.link = link
        self.id = stream_id
        self.scope = scope
        self.ctx = link.ctx
        self._extra = extra_headers or []
        self._head = request.method == b"HEAD"
        self._chunks: list[bytes] = []
        self._unacked = 0  # body bytes buffered, not yet credited to the client
        self.request_ended = request_ended
        self._changed = asyncio.Event()
        self.window = asyncio.Event()  # credit arrived, or the stream went away
        self._headers: Headers = []
        self._trailers: Headers = []
        self.ended = False  # our FIN is queued
        self.body_bytes = 0  # DATA payload sent: the access log's B
        self.sent_offset = 0  # stream bytes queued, frames included: our final size
        self.peer_limit = 0  # the client's MAX_STREAM_DATA for this stream
        self.credited = 0  # request-stream bytes given back to the client
        self.limit_sent = 0  # the MAX_STREAM_DATA we last sent

    # -- from the connection -----------------------------------------------------
    def on_data(self, data: bytes) -> None:
        if self.disconnected or not self.within_limit(len(data)):
            self.link.consumed(self, len(data))
            self.refuse(413)
            return
        self._chunks.append(data)
        self._unacked += len(data)
        self._changed.set()

    def on_end(self) -> None:
        self.request_ended = True
        self._changed.set()

    def on_gone(self) -> None:
        self.disconnected = True
        self._changed.set()
        self.window.set()

    def wake(self) -> None:
        self._changed.set()

    def refuse(self, status: int) -> None:
        """Answer `status` if no head was sent yet, else reset; the app hears disconnect."""
        if self.disconnected:
            return
        if self.abort(status):
            self.link.respond_now(self, status, error_body(status))
            self.ended = True
            if not self.request_ended:
                self.link.reset(self, H3_NO_ERROR)  # stop the upload (RFC 9114 4.1)
        else:
            self.link.reset(self, H3_REQUEST_CANCELLED)
        self.on_gone()

    # -- receive -------------------------------------------------------------------
    async def receive(self) -> Message:
        while True:
            step = self.next_receive()
            if step is DISCONNECT:
                return disconnect_message()
            if step is AWAIT_DISCONNECT:
                if self.ended or self.link.draining:
                    return disconnect_message()
                await self._wait_changed()
            elif self._chunks or self.request_ended:
                return self._take_body()
            else:
                try:
                    async with asyncio.timeout(self.ctx.config.timeout_body_read):
                        await self._wait_changed()
                except TimeoutError:
                    self.refuse(408)

    async def _wait_changed(self) -> None:
        self._changed.clear()
        await self._changed.wait()

    def _take_body(self) -> Message:
        body = b"".join(self._chunks)
        self._chunks.clear()
        self.release()
        return self.request_message(body, not self.request_ended)

    def release(self) -> None:
        """Credit the client with what was buffered (taken by the app, or dropped)."""
        self._chunks.clear()
        if self._unacked:
            self.link.consumed(self, self._unacked)
            self._unacked = 0

    # -- send ------------------------------------------------------------------------
    async def send(self, message: Message) -> None:
        if self.disconnected:
            raise StreamGone("the stream was closed by the client")
        kind = message["type"]
        if kind == "http.response.start":
            self.response_start(message)
            headers = response_headers(message.get("headers", ()))
            self._headers = [*self.link.default_headers(), *self._extra, *headers]
        elif kind == "http.response.body":
            await self._body(message)
        elif kind == "http.response.trailers":
            await self._add_trailers(message)
        else:
            self.unexpected(kind)

    async def _body(self, message: Message) -> None:
        first = not self.head_sent
        body, _ = self.response_body(message)
        if self._head:
            body = b""
        end = self.response_complete or self._head
        out = b""
        if first:
            status = (b":status", str(self.status).encode("ascii"))
            out = frame(HEADERS, encode_field_section([status, *self._headers]))
        elif self.ended:
            return  # HEAD: the body is not sent
        if body:
            out += frame(0x00, body)
        if out or end:
            await self.link.send(self, out, end)
            self.body_bytes += len(body)
        if end:
            self._mark_ended()

    def _mark_ended(self) -> None:
        self.ended = True
        self._changed.set()

    async def _add_trailers(self, message: Message) -> None:
        headers, more_trailers = self.response_trailers(message)
        self._trailers += response_headers(headers)
        if not more_trailers and not self.ended:
            await self.link.send(self, frame(HEADERS, encode_field_section(self._trailers)), True)
            self._mark_ended()

    # -- the whole request -------------------------------------------------------------
    async def run(self) -> None:
        """Call the app once; answer 500 or reset the stream if it fails."""
        try:
            await self.ctx.app(self.scope, self.receive, self.send)
        except ClientDisconnected:
            pass
        except Exception as exc:
            log_app_error(exc)
            self._fail()
        else:
            outcome = self.app_returned()
            outcome.log()
            if outcome is NOT_STARTED or outcome is INCOMPLETE:
                self._fail()
        finally:
            self._close()

    def _fail(self) -> None:
        if self.disconnected:
            return
        if self.fail():
            self.link.respond_now(self, 500, error_body(500))
            self.ended = True
        elif not self.ended:
            self.link.reset(self, H3_INTERNAL_ERROR)
            self.disconnected = True

    def _close(self) -> None:
        self.release()
        if self.disconnected:
            return
        if not self.ended:
            self.link.reset(self, H3_INTERNAL_ERROR)  # cancelled mid-response
        elif not self.request_ended:
            self.link.reset(self, H3_NO_ERROR)  # answered without the whole body


class HeaderKeepingH3Stream(KeepsResponseHeaders, H3Stream):
    """An H3Stream for an access format that shows response headers (`{name}o`)."""
