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
class H2Stream:
    """The ASGI side of one stream. The connection's reader calls the `on_*` methods."""

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
        self.link = link
        self.id = stream_id
        self.request = request
        self.scope = scope
        self.ctx = link.ctx
        self._extra = extra_headers or []  # x-request-id
        self._head = request.method == b"HEAD"
        # inbound
        self._chunks: list[bytes] = []
        self._unacked = 0  # flow-controlled bytes buffered, not yet given back to the peer
        self.received = 0
        self.request_ended = request_ended
        self._body_done = False  # the app has had the body's last message
        self._continue_sent = False
        self._changed = asyncio.Event()  # data, end of request, reset, or drain
        self.window = asyncio.Event()  # the peer opened its window, or the stream went away
        self.gone = False
        # outbound
        self.status = 0
        self._headers: Headers = []
        self._trailers_wanted = False
        self._trailers: Headers = []
        self.headers_sent = False
        self._body_complete = False
        self.ended = False  # END_STREAM sent
        self.bytes_sent = 0

    # -- from the connection's reader ----------------------------------------
    def on_data(self, data: bytes, flow_length: int) -> None:
        self.received += len(data)
        limit = self.ctx.config.max_body_size
        if self.gone or (limit and self.received > limit):
            self.link.consumed(self.id, flow_length)  # nobody will read it: free the window
            if not self.gone:
                self.abort(413)
            return
        self._chunks.append(data)
        self._unacked += flow_length
        self._changed.set()

    def on_end(self) -> None:
        self.request_ended = True
        self._changed.set()

    def on_gone(self) -> None:
        """Reset by the peer, or the connection is over: the app gets `http.disconnect`."""
        self.gone = True
        self._changed.set()
        self.window.set()

    def wake(self) -> None:
        """The connection is draining: an app waiting for disconnect hears it now."""
        self._changed.set()

    def abort(self, status: int) -> None:
        """Answer `status` if nothing was sent yet, else reset; the app hears disconnect."""
        if self.gone:
            return
        if not self.headers_sent:
            self.link.respond_now(self.id, status, error_body(status))
            self.status, self.headers_sent, self.ended = status, True, True
            if not self.request_ended:
                self.link.reset(self.id, ErrorCodes.NO_ERROR)  # RFC 9113 8.1: stop the upload
        else:
            self.link.reset(self.id, ErrorCodes.CANCEL)
        self.on_gone()

    # -- receive ---------------------------------------------------------------
    async def receive(self) -> Message:
        while True:
            if self.gone:
                return disconnect_message()
            if self._chunks or (self.request_ended and not self._body_done):
                return self._take_body()
            if self._body_done:
                if self.ended or self.link.draining:
                    return disconnect_message()
                await self._wait_changed()
                continue
            self._maybe_continue()
            try:
                async with asyncio.timeout(self.ctx.config.timeout_body_read):
                    await self._wait_changed()
            except TimeoutError:
                self.abort(408)

    async def _wait_changed(self) -> None:
        self._changed.clear()  # state was checked just before, with no await between
        await self._changed.wait()

    def _take_body(self) -> Message:
        body = b"".join(self._chunks)
        self._chunks.clear()
        if self._unacked:
            self.link.consumed(self.id, self._unacked)
            self._unacked = 0
        more = not self.request_ended
        self._body_done = not more
        return {"type": "http.request", "body": body, "more_body": more}

    def _maybe_continue(self) -> None:
        """The app wants the body a client holds back for `100 Continue`: ask for it."""
        if self.request.expect_continue and not self._continue_sent and not self.headers_sent:
            self._continue_sent = True
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
        if self.gone:
            raise StreamGone("the stream was closed by the client")
        kind = message["type"]
        if kind == "http.response.start":
            self._start(message)
        elif kind == "http.response.body":
            await self._body(message.get("body", b""), message.get("more_body", False))
        elif kind == "http.response.trailers":
            self._add_trailers(message)
        else:
            raise RuntimeError(f"unexpected ASGI message type {kind!r} on an http stream")

    def _start(self, message: Message) -> None:
        if self.status:
            raise RuntimeError("http.response.start sent twice")
        status = message["status"]
        if type(status) is not int or not 200 <= status <= 599:
            raise ValueError(f"invalid response status {status!r}")
        headers = response_headers(message.get("headers", ()))
        self._headers = [*self.link.default_headers(), *self._extra, *headers]
        self._trailers_wanted = bool(message.get("trailers", False))
        self.status = status

    async def _body(self, body: bytes, more_body: bool) -> None:
        if not self.status:
            raise RuntimeError("http.response.body before http.response.start")
        if self._body_complete:
            raise RuntimeError("http.response.body after the response body was complete")
        last = not more_body
        self._body_complete = last
        if not self.headers_sent:
            only_head = self._head or (last and not body and not self._trailers_wanted)
            self._send_head(only_head)
        if self.ended:
            return  # HEAD: the body is not sent
        end = last and not self._trailers_wanted
        if body or end:
            await self.link.send_body(self, body, end)
            self.bytes_sent += len(body)
            if end:
                self._mark_ended()

    def _send_head(self, end_stream: bool) -> None:
        status = (b":status", str(self.status).encode("ascii"))
        self.link.send_head(self.id, [status, *self._headers], end_stream)
        self.headers_sent = True
        if end_stream:
            self._mark_ended()

    def _mark_ended(self) -> None:
        """END_STREAM is out: an app task waiting in `receive()` hears disconnect."""
        self.ended = True
        self._changed.set()

    def _add_trailers(self, message: Message) -> None:
        if not self._trailers_wanted:
            raise RuntimeError("http.response.trailers without trailers=True in the start")
        if not self._body_complete:
            raise RuntimeError("http.response.trailers before the response body was complete")
        self._trailers += response_headers(message.get("headers", ()))
        if not message.get("more_trailers", False) and not self.ended:
            self.link.send_head(self.id, self._trailers, True)
            self._mark_ended()

    # -- the whole request -----------------------------------------------------
    async def run(self) -> None:
        """Call the app once; answer 500 or reset the stream if it fails."""
        try:
            await self.ctx.app(self.scope, self.receive, self.send)
        except ClientDisconnected:
            pass
        except Exception:
            error_log.exception("Exception in ASGI application")
            self._fail()
        else:
            if not self.status and not self.gone:
                error_log.error("ASGI application returned without starting a response")
                self._fail()
            elif not self.ended and not self.gone:
                error_log.error("ASGI application returned without completing the response")
                self._fail()
        finally:
            self._close()

    def _fail(self) -> None:
        if self.gone:
            return
        if not self.headers_sent:
            self.link.respond_now(self.id, 500, error_body(500))
            self.status, self.headers_sent, self.ended = 500, True, True
        else:
            self.link.reset(self.id, ErrorCodes.INTERNAL_ERROR)
            self.gone = True

    def _close(self) -> None:
        """Whatever the app did, leave the stream closed on our side and its window free."""
        self.release()
        if self.gone:
            return
        if not self.ended:
            self.link.reset(self.id, ErrorCodes.INTERNAL_ERROR)  # cancelled mid-response
        elif not self.request_ended:
            self.link.reset(self.id, ErrorCodes.NO_ERROR)  # answered without the whole body
