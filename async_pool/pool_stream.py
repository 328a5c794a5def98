"""One request on a multiplexed connection (HTTP/2 or HTTP/3) as one ASGI `http` request.

HTTP/2 and HTTP/3 streams behave the same towards the app: request bodies are handed
over as the connection's reader receives them and credited back to the client only as
the app takes them, so a slow app holds its client back instead of growing a buffer;
response HEADERS wait for the first body message, so an app that fails before any body
still gets a 500; a stream the app leaves unfinished is reset. `PoolStream` holds that
behaviour once. Each protocol's subclass frames the response and maps three requests
(reset, answer now, credit the client) and its three reset codes onto its connection.
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
    log_app_error,
)
from pounce_sync.asgi.scope import add_request_context, build_http_scope
from pounce_sync.http1 import ORIGIN_FORM, BodyFraming, Request, error_body, valid_field

from .context import PoolContext
from .handoffs import ClientSocket

Headers = list[tuple[bytes, bytes]]
Message = dict[str, Any]

# Connection-specific fields (RFC 9113 8.2.2, RFC 9114 4.2): an app written for
# HTTP/1.1 may set them; neither protocol may carry them.
_HOP_BY_HOP = frozenset(
    (b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade", b"te")
)


class ConnectionLink(Protocol):
    """What every stream may ask of its connection; each protocol's link adds its own calls."""

    ctx: PoolContext
    conn_info: ClientSocket
    draining: bool

    def default_headers(self) -> Headers: ...


class StreamGone(ClientDisconnected):
    """The stream was reset, or its connection went away."""


# -- the request ---------------------------------------------------------------
def request_from_fields(headers: Headers, ended: bool, http_version: bytes) -> Request:
    """A validated HTTP/2 or HTTP/3 field section as a request head; :authority becomes Host."""
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
        http_version,
        tuple(fields),
        True,
        any(n == b"expect" and v.lower() == b"100-continue" for n, v in fields),
        framing,
        int(length) if length is not None and length.isdigit() else None,  # checked before
        None,
    )


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
    """The app's fields, lower-cased and checked here: h2 or QPACK failing half-way through
    encoding a block would leave the connection's state corrupt."""
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
class PoolStream(HTTPExchange):
    """The shell over `HTTPExchange` for one stream; the connection calls the `on_*` methods.

    `disconnected` here means reset by either side, or the connection is over.
    Subclasses set the three reset codes and implement the protocol's half below.
    """

    NO_ERROR: int  # we answered without reading the whole request
    CANCELLED: int  # the request is refused after the response head went out
    INTERNAL_ERROR: int  # the app failed or left the response unfinished

    def __init__(
        self,
        link: ConnectionLink,
        stream_id: int,
        request: Request,
        scope: dict[str, Any],
        *,
        request_ended: bool,
        extra_headers: Headers | None = None,
    ) -> None:
        super().__init__(request, link.ctx.config.max_body_size, trailers_allowed=True)
        self.link = link
        self.ctx = link.ctx
        self.id = stream_id
        self.scope = scope
        self._extra = extra_headers or []  # x-request-id
        self._head = request.method == b"HEAD"
        # inbound
        self._chunks: list[bytes] = []
        self._unacked = 0  # flow-controlled bytes buffered, not yet credited to the client
        self.request_ended = request_ended
        self._changed = asyncio.Event()  # data, end of request, reset, or drain
        self.window = asyncio.Event()  # the client gave credit, or the stream went away
        # outbound
        self._headers: Headers = []
        self._trailers: Headers = []
        self.ended = False  # our end of stream is sent or queued
        self.body_bytes = 0  # DATA payload sent: the access log's B

    # -- the protocol's half ---------------------------------------------------
    def _reset(self, code: int) -> None:
        raise NotImplementedError

    def _respond_now(self, status: int, body: bytes) -> None:
        """A whole response without the app, ending the stream."""
        raise NotImplementedError

    def _credit(self, size: int) -> None:
        """Give `size` flow-controlled bytes back to the client."""
        raise NotImplementedError

    def _send_continue(self) -> None:
        """The app wants a body the client may hold back for `100 Continue`."""

    async def _body(self, message: Message) -> None:
        raise NotImplementedError

    async def _end_with_trailers(self) -> None:
        raise NotImplementedError

    # -- from the connection ---------------------------------------------------
    def on_data(self, data: bytes, flow_length: int | None = None) -> None:
        """Body bytes; `flow_length` counts padding too where the protocol has it."""
        credit = len(data) if flow_length is None else flow_length
        if self.disconnected or not self.within_limit(len(data)):
            self._credit(credit)  # nobody will read it: free the window
            self.refuse(413)
            return
        self._chunks.append(data)
        self._unacked += credit
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
            self._respond_now(status, error_body(status))
            self.ended = True
            if not self.request_ended:
                self._reset(self.NO_ERROR)  # stop the upload (RFC 9113 8.1, RFC 9114 4.1)
        else:
            self._reset(self.CANCELLED)
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
        self.release()
        return self.request_message(body, not self.request_ended)

    def release(self) -> None:
        """Credit the client with what was buffered (taken by the app, or dropped)."""
        self._chunks.clear()
        if self._unacked:
            self._credit(self._unacked)
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
            headers, more_trailers = self.response_trailers(message)
            self._trailers += response_headers(headers)
            if not more_trailers and not self.ended:
                await self._end_with_trailers()
                self._mark_ended()
        else:
            self.unexpected(kind)

    def _status_field(self) -> tuple[bytes, bytes]:
        return (b":status", str(self.status).encode("ascii"))

    def _mark_ended(self) -> None:
        """Our end of stream is out: an app task waiting in `receive()` hears disconnect."""
        self.ended = True
        self._changed.set()

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
            self._respond_now(500, error_body(500))
            self.ended = True
        elif not self.ended:  # once the end is out the client has the whole response
            self._reset(self.INTERNAL_ERROR)
            self.disconnected = True

    def _close(self) -> None:
        """Whatever the app did, leave the stream closed on our side and its window free."""
        self.release()
        if self.disconnected:
            return
        if not self.ended:
            self._reset(self.INTERNAL_ERROR)  # cancelled mid-response
        elif not self.request_ended:
            self._reset(self.NO_ERROR)  # answered without the whole body
