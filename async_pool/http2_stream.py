"""One HTTP/2 stream as one ASGI `http` request: its scope, `receive()` and `send()`.

The connection (`http2.H2Server`) owns h2's state machine and the socket; a stream
only talks to it through the narrow `StreamLink` below. Request bodies arrive as
the reader hands them over and are acknowledged to the peer only when the app
takes them, so a slow app holds the client back instead of growing a buffer.
Response HEADERS wait for the first body message: an empty or HEAD response then
goes out as one frame, and an app that fails before any body still gets a 500.
"""

import asyncio
import logging
from typing import Any, Protocol

from h2.errors import ErrorCodes

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
from pounce_sync.asgi.scope import add_request_context, build_http_scope
from pounce_sync.http1 import ORIGIN_FORM, BodyFraming, Request, error_body, valid_field

from .context import PoolContext
from .handoffs import ClientSocket

error_log = logging.getLogger("pounce_sync.error")

Headers = list[tuple[bytes, bytes]]
Message = dict[str, Any]

# Connection-specific fields (RFC 9113 8.2.2): an app written for HTTP/1.1 may set them.
_HOP_BY_HOP = frozenset(
    (b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade", b"te")
)
_FIELD_OVERHEAD = 32  # RFC 9113 6.5.2: each field counts its name, value and 32 octets


class StreamLink(Protocol):
    """What a stream may ask of its connection; every call but `send_body` returns at once."""

    ctx: PoolContext
    conn_info: ClientSocket
    draining: bool

    def default_headers(self) -> Headers: ...
    def send_head(self, stream_id: int, headers: Headers, end_stream: bool) -> None: ...
    async def send_body(self, stream: "H2Stream", data: bytes, end_stream: bool) -> None: ...
    def respond_now(self, stream_id: int, status: int, body: bytes) -> None: ...
    def consumed(self, stream_id: int, size: int) -> None: ...
    def reset(self, stream_id: int, code: ErrorCodes) -> None: ...


class StreamGone(ClientDisconnected):
    """The stream was reset, or its connection went away."""


# -- the request ---------------------------------------------------------------
def request_from_h2(headers: Headers, ended: bool) -> Request:
    """h2's validated header block as a request head; :authority becomes Host."""
    pseudo: dict[bytes, bytes] = {}
    fields: Headers = []
    for name, value in headers:
        if name[:1] == b":":
            pseudo[name] = value
        elif name != b"host" or b":authority" not in pseudo:
            fields.append((name, value))
    if b":authority" in pseudo:
        fields.insert(0, (b"host", pseudo[b":authority"]))
    length = next((v for n, v in fields if n == b"content-length"), None)
    framing = BodyFraming.NONE if ended else BodyFraming.LENGTH
    return Request(
        pseudo.get(b":method", b""),
        pseudo.get(b":path", b""),
        b"2",
        tuple(fields),
        True,
        any(n == b"expect" and v.lower() == b"100-continue" for n, v in fields),
        framing,
        int(length) if length is not None and length.isdigit() else None,  # h2 checked it
        None,
    )


def request_from_upgrade(request: Request) -> Request:
    """The h2c upgrade request as stream 1: HTTP/2 has no use for its hop-by-hop fields."""
    drop = {b"connection", b"upgrade", b"http2-settings", b"keep-alive"}
    fields = tuple((n, v) for n, v in request.headers if n not in drop)
    return request._replace(http_version=b"2", headers=fields, upgrade=None)


def header_list_size(headers: Headers) -> int:
    return sum(len(n) + len(v) + _FIELD_OVERHEAD for n, v in headers)


def refusal(request: Request, ctx: PoolContext, list_size: int) -> int | None:
    """The status that answers a request without the app, or None when the app should run."""
    if request.method == b"CONNECT":
        return 501  # no tunnels, and no extended CONNECT (not advertised)
    if not ORIGIN_FORM.fullmatch(request.target) and not (
        request.target == b"*" and request.method == b"OPTIONS"
    ):
        return 400
    if list_size > ctx.config.h2_max_header_list_size:
        return 431
    limit = ctx.config.max_body_size
    if limit and (request.content_length or 0) > limit:
        return 413
    return None


def build_scope(
    request: Request, conn: ClientSocket, ctx: PoolContext, request_id: bytes | None
) -> dict[str, Any]:
    scope = build_http_scope(
        request,
        scheme=conn.scheme,
        client=conn.client,
        server=conn.server,
        root_path=ctx.config.root_path,
        state=ctx.state,
        extensions={"http.response.trailers": {}},
    )
    return add_request_context(scope, request, request_id, ctx.trusted_proxies)


def response_headers(raw: Any) -> Headers:
    """The app's fields, lower-cased and checked here: h2 failing half-way through
    encoding a block would leave the connection's HPACK state corrupt."""
    headers = []
    for raw_name, raw_value in raw:
        name = bytes(raw_name).lower()
        value = bytes(raw_value).strip(b" \t")
        if name in _HOP_BY_HOP:
            continue
        if not valid_field(name, value):
            raise ValueError(f"invalid response header {bytes(raw_name)!r}")
        headers.append((name, value))
    return headers


# -- the stream ----------------------------------------------------------------
class H2Stream(HTTPExchange):
    """The HTTP/2 shell over `HTTPExchange` for one stream; the reader calls the `on_*` methods.

    `disconnected` here means reset by either side, or the connection is over.
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
        self._extra = extra_headers or []  # x-request-id
        self._head = request.method == b"HEAD"
        # inbound
        self._chunks: list[bytes] = []
        self._unacked = 0  # flow-controlled bytes buffered, not yet given back to the peer
        self.request_ended = request_ended
        self._changed = asyncio.Event()  # data, end of request, reset, or drain
        self.window = asyncio.Event()  # the peer opened its window, or the stream went away
        # outbound
        self._headers: Headers = []
        self._trailers: Headers = []
        self.ended = False  # END_STREAM sent
        self.body_bytes = 0  # DATA payload sent: the access log's B

    # -- from the connection's reader ----------------------------------------
    def on_data(self, data: bytes, flow_length: int) -> None:
        if self.disconnected or not self.within_limit(len(data)):
            self.link.consumed(self.id, flow_length)  # nobody will read it: free the window
            self.refuse(413)
            return
        self._chunks.append(data)
        self._unacked += flow_length
        self._changed.set()

    def on_end(self) -> None:
        self.request_ended = True
        self._changed.set()

    def on_gone(self) -> None:
        """Reset by the peer, or the connection is over: the app gets `http.disconnect`."""
        self.disconnected = True
        self._changed.set()
        self.window.set()

    def wake(self) -> None:
        """The connection is draining: an app waiting for disconnect hears it now."""
        self._changed.set()

    def refuse(self, status: int) -> None:
        """Answer `status` if no head was sent yet, else reset; the app hears disconnect."""
        if self.disconnected:
            return
        if self.abort(status):
            self.link.respond_now(self.id, status, error_body(status))
            self.ended = True
            if not self.request_ended:
                self.link.reset(self.id, ErrorCodes.NO_ERROR)  # RFC 9113 8.1: stop the upload
        else:
            self.link.reset(self.id, ErrorCodes.CANCEL)
        self.on_gone()

    # -- receive ---------------------------------------------------------------
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
                if self.continue_due():
                    self._send_continue()
                try:
                    async with asyncio.timeout(self.ctx.config.timeout_body_read):
                        await self._wait_changed()
                except TimeoutError:
                    self.refuse(408)

    async def _wait_changed(self) -> None:
        self._changed.clear()  # state was checked just before, with no await between
        await self._changed.wait()

    def _take_body(self) -> Message:
        body = b"".join(self._chunks)
        self._chunks.clear()
        if self._unacked:
            self.link.consumed(self.id, self._unacked)
            self._unacked = 0
        return self.request_message(body, not self.request_ended)

    def _send_continue(self) -> None:
        """The app wants the body a client holds back for `100 Continue`: ask for it."""
        try:
            self.link.send_head(self.id, [(b":status", b"100")], False)
        except StreamGone:
            self.on_gone()

    def release(self) -> None:
        """The app is done: give back the window of what it never read."""
        self._chunks.clear()
        if self._unacked:
            self.link.consumed(self.id, self._unacked)
            self._unacked = 0

    # -- send ------------------------------------------------------------------
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
            self._add_trailers(message)
        else:
            self.unexpected(kind)

    async def _body(self, message: Message) -> None:
        first = not self.head_sent
        body, more_body = self.response_body(message)
        if first:
            last = not more_body
            self._send_head(self._head or (last and not body and not self.trailers_wanted))
        if self.ended:
            return  # HEAD: the body is not sent
        end = self.response_complete
        if body or end:
            await self.link.send_body(self, body, end)
            self.body_bytes += len(body)
            if end:
                self._mark_ended()

    def _send_head(self, end_stream: bool) -> None:
        status = (b":status", str(self.status).encode("ascii"))
        self.link.send_head(self.id, [status, *self._headers], end_stream)
        if end_stream:
            self._mark_ended()

    def _mark_ended(self) -> None:
        """END_STREAM is out: an app task waiting in `receive()` hears disconnect."""
        self.ended = True
        self._changed.set()

    def _add_trailers(self, message: Message) -> None:
        headers, more_trailers = self.response_trailers(message)
        self._trailers += response_headers(headers)
        if not more_trailers and not self.ended:
            self.link.send_head(self.id, self._trailers, True)
            self._mark_ended()

    # -- the whole request -----------------------------------------------------
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
            self.link.respond_now(self.id, 500, error_body(500))
            self.ended = True
        elif not self.ended:  # once END_STREAM is out the client has the whole response
            self.link.reset(self.id, ErrorCodes.INTERNAL_ERROR)
            self.disconnected = True

    def _close(self) -> None:
        """Whatever the app did, leave the stream closed on our side and its window free."""
        self.release()
        if self.disconnected:
            return
        if not self.ended:
            self.link.reset(self.id, ErrorCodes.INTERNAL_ERROR)  # cancelled mid-response
        elif not self.request_ended:
            self.link.reset(self.id, ErrorCodes.NO_ERROR)  # answered without the whole body


class HeaderKeepingH2Stream(KeepsResponseHeaders, H2Stream):
    """An H2Stream for an access format that shows response headers (`{name}o`)."""
