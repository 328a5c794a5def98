"""WebSocket on the pool: the ASGI websocket protocol over wsproto, with backpressure both ways.

The sync worker handed over a GET with `Upgrade: websocket` before any app code
ran; the app runs here exactly once. The opening handshake is checked and
answered with the project's own HTTP/1.1 codec (101, 403, 500 or the app's
denial response, all with our Server/Date fields); wsproto's frame-level
`Connection` does everything after the 101.

Three small tasks run beside the app once it accepts: the reader (socket ->
wsproto -> a bounded inbox, so a slow app pauses reading), the keep-alive pinger
and the shutdown watcher. Every write goes through one lock: wsproto's deflate
context must see frames in the order they reach the socket.

Longer than most modules (about 650 lines): one connection's phases, its three
tasks and the ASGI side share state, and read best together.
"""

import asyncio
import base64
import binascii
import logging
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any, Literal

from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Event, Ping, Pong, TextMessage
from wsproto.extensions import Extension, PerMessageDeflate
from wsproto.frame_protocol import CloseReason
from wsproto.utilities import LocalProtocolError as FrameStateError
from wsproto.utilities import generate_accept_token, split_comma_header

from pounce_sync.http1 import (
    LocalProtocolError,
    Request,
    ResponseWriter,
    encode_fields,
    status_line,
)

from .context import PoolContext
from .handoffs import WebSocketUpgrade
from .socket_stream import AsyncSocket, ConnectionLost

error_log = logging.getLogger("pounce_sync.error")

Header = tuple[bytes, bytes]
Message = dict[str, Any]
Phase = Literal["connecting", "denying", "open", "closed"]

INBOX_LIMIT = 16  # messages the app has not received yet; past this, stop reading the socket
EARLY_READ_LIMIT = 65536  # bytes read before the app accepts (frames sent ahead of the 101)
CLOSE_TIMEOUT = 5.0  # seconds the peer gets to answer our Close before the socket is closed
LINGER_TIMEOUT = 2.0  # seconds, after our FIN, to wait for the peer's before closing anyway
# Fragments of one message: past this, close 1009. Without it a flood of empty
# continuation frames grows nothing the size limit sees. Autobahn's largest case
# (9.3.1: 4 MiB in 64-byte fragments) has 65,536.
MAX_FRAGMENTS = 1 << 17
INFLATE_STEP = 16384  # compressed bytes fed at a time, so one read inflates to at most ~16 MiB

_VERSION = b"13"
_DEFLATE = PerMessageDeflate.name
_DEFLATE_PARAMS = frozenset(
    (
        "client_no_context_takeover",
        "server_no_context_takeover",
        "client_max_window_bits",
        "server_max_window_bits",
    )
)
# Fields of the 101 that are ours to write; an app's copies are dropped.
_HANDSHAKE_FIELDS = frozenset(
    (
        b"upgrade",
        b"connection",
        b"sec-websocket-accept",
        b"sec-websocket-extensions",
        b"content-length",
        b"transfer-encoding",
    )
)


class WebSocketClosed(OSError):
    """Raised by `send` once the connection is closed (ASGI 2.4 lets send raise then)."""


# -- the opening handshake (RFC 6455 4.2.1) ---------------------------------------
Fields = dict[bytes, list[bytes]]


def _fields(headers: Iterable[Header]) -> Fields:
    fields: Fields = {}
    for name, value in headers:
        fields.setdefault(name, []).append(value)
    return fields


def _has_token(values: list[bytes] | None, token: str) -> bool:
    return any(token == t.lower() for v in values or () for t in split_comma_header(v))


def _valid_key(values: list[bytes] | None) -> bool:
    """Exactly one Sec-WebSocket-Key, the base64 of 16 bytes."""
    if values is None or len(values) != 1:
        return False
    try:
        return len(base64.b64decode(values[0].strip(), validate=True)) == 16
    except (binascii.Error, ValueError):
        return False


_HANDSHAKE_RULES: tuple[tuple[Callable[[Request, Fields], bool], int, bytes], ...] = (
    (lambda r, f: r.http_version == b"1.1", 400, b"WebSocket needs HTTP/1.1\n"),
    (lambda r, f: b"host" in f, 400, b"Missing Host\n"),
    (lambda r, f: _has_token(f.get(b"connection"), "upgrade"), 400, b"No Connection: upgrade\n"),
    (lambda r, f: _valid_key(f.get(b"sec-websocket-key")), 400, b"Bad Sec-WebSocket-Key\n"),
    (lambda r, f: b"sec-websocket-version" in f, 400, b"No Sec-WebSocket-Version\n"),
    (lambda r, f: f[b"sec-websocket-version"] == [_VERSION], 426, b"Unsupported version\n"),
)


def handshake_problem(request: Request) -> tuple[int, bytes] | None:
    """Why `request` is not a valid opening handshake, as (status, body); None if it is."""
    fields = _fields(request.headers)
    for rule, status, body in _HANDSHAKE_RULES:
        if not rule(request, fields):
            return status, body
    return None


def negotiate_deflate(offers: Iterable[str]) -> tuple[PerMessageDeflate, bytes] | None:
    """The first permessage-deflate offer we can take (RFC 7692 5.1): extension and answer."""
    for offer in offers:
        name, *params = (p.strip() for p in offer.split(";"))
        if name != _DEFLATE or any(p.split("=")[0].strip() not in _DEFLATE_PARAMS for p in params):
            continue
        extension = PerMessageDeflate()
        try:
            answer = extension.accept(offer)
        except ValueError:  # a window size that is not a number
            continue
        if isinstance(answer, str):
            return extension, f"{_DEFLATE}; {answer}".rstrip("; ").encode("ascii")
    return None


def _text_size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8"))


# -- what the app's receive() returns -----------------------------------------------
class Inbox:
    """Messages for the app's `receive`, bounded; then one final `websocket.disconnect`.

    The reader awaits `put` while `limit` messages wait, which stops it reading the
    socket: a slow app slows the client instead of growing memory. The disconnect
    never waits and comes after the messages that arrived before it.
    """

    def __init__(self, limit: int) -> None:
        self._messages: deque[Message] = deque()
        self._limit = limit
        self.final: Message | None = None
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()

    @property
    def full(self) -> bool:
        return len(self._messages) >= self._limit

    async def put(self, message: Message) -> None:
        """Queue `message`, waiting for room; dropped once the connection is closing."""
        while self.full and self.final is None:
            self._writable.clear()
            await self._writable.wait()
        if self.final is None:
            self._messages.append(message)
            self._readable.set()

    def finish(self, code: int, reason: str = "") -> None:
        """Set the disconnect the app will get; the first one set wins."""
        if self.final is None:
            self.final = {"type": "websocket.disconnect", "code": int(code), "reason": reason}
            self._readable.set()
            self._writable.set()

    async def get(self) -> Message:
        while not self._messages and self.final is None:
            self._readable.clear()
            await self._readable.wait()
        if not self._messages:
            return self.final  # type: ignore[return-value]
        message = self._messages.popleft()
        if not self.full:
            self._writable.set()
        return message


# -- one connection -------------------------------------------------------------------
class WebSocketSession:
    """One WebSocket connection: the app's receive/send, and the tasks beside it."""

    def __init__(self, stream: AsyncSocket, handoff: WebSocketUpgrade, ctx: PoolContext) -> None:
        self.stream = stream
        self.handoff = handoff
        self.request = handoff.request
        self.scope = handoff.scope
        self.ctx = ctx
        self.phase: Phase = "connecting"
        self.status = 0  # for the access log: 101, or the HTTP status of a refusal
        self.inbox = Inbox(INBOX_LIMIT)
        self.ws: Connection | None = None
        self.done = asyncio.Event()  # the socket is closed
        self._linger: asyncio.Task[None] | None = None
        self._connect_sent = False
        self._denial: ResponseWriter | None = None
        self._denial_written = False
        self._early = bytearray()  # read before accept, decoded after it
        self._early_watch: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._write_lock = asyncio.Lock()
        self._parts: list[Any] = []  # the fragments of the message being received
        self._size = 0
        self._fragments = 0
        self._inflate_step = 0  # set when permessage-deflate is on
        self._pong = asyncio.Event()
        self._close_timer: asyncio.TimerHandle | None = None

    # -- the app -------------------------------------------------------------------
    async def run(self) -> None:
        """Check the handshake, then call the app once and see the connection to its end."""
        problem = handshake_problem(self.request)
        if problem is not None:
            await self._respond(*problem)
        else:
            await self._run_app()
        await self._wait_closed()

    async def _run_app(self) -> None:
        self._early_watch = asyncio.ensure_future(self._watch_before_accept())
        try:
            await self.ctx.app(self.scope, self.receive, self.send)
        except WebSocketClosed:
            # Our "connection closed" came through the app: the same as returning.
            await self._app_returned()
        except Exception as exc:
            if isinstance(exc, LocalProtocolError):
                error_log.error("Invalid response from ASGI application: %s", exc)
            else:
                error_log.exception("Exception in ASGI application")
            await self._app_failed()
        else:
            await self._app_returned()

    async def receive(self) -> Message:
        if not self._connect_sent:
            self._connect_sent = True
            return {"type": "websocket.connect"}
        return await self.inbox.get()

    async def send(self, message: Message) -> None:
        kind = message["type"]
        handler = _SEND_HANDLERS.get((self.phase, kind))
        if handler is not None:
            await handler(self, message)
        elif self.phase == "closed":
            raise WebSocketClosed(f"{kind} on a closed WebSocket")
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} while {self.phase}")

    async def _app_failed(self) -> None:
        if self.phase == "open":
            await self._close(CloseReason.INTERNAL_ERROR, "internal error")
        elif self.phase != "closed" and not self._denial_written:
            await self._respond(500, b"Internal Server Error\n")
        else:
            self._end()

    async def _app_returned(self) -> None:
        if self.phase == "open":
            await self._close(CloseReason.NORMAL_CLOSURE)
        elif self.phase != "closed" and not self._denial_written:
            error_log.error("ASGI application returned without accepting or denying a WebSocket")
            await self._respond(500, b"Internal Server Error\n")
        elif self.phase != "closed":
            error_log.error("ASGI application returned before its denial response was complete")
            self._end()

    async def _wait_closed(self) -> None:
        """The end of the closing handshake and of lingering, each bounded by its timer."""
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT + LINGER_TIMEOUT + 1.0):
                await self.done.wait()
        except TimeoutError:
            self._lose()

    # -- before accept ----------------------------------------------------------------
    async def _watch_before_accept(self) -> None:
        """Notice a client that leaves while the app decides; keep frames sent early."""
        while len(self._early) < EARLY_READ_LIMIT:
            data = await self.stream.recv()
            if not data:
                self._lose()
                return
            self._early += data

    async def _stop_early_watch(self) -> None:
        task, self._early_watch = self._early_watch, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _accept(self, message: Message) -> None:
        subprotocol = message.get("subprotocol")
        if subprotocol is not None and subprotocol not in self.scope["subprotocols"]:
            raise RuntimeError(f"subprotocol {subprotocol!r} was not offered by the client")
        await self._stop_early_watch()
        if self.phase == "closed":
            raise WebSocketClosed("the client left before the WebSocket was accepted")
        extensions, answer = self._extensions()
        head = self._switching_protocols(subprotocol, answer, message.get("headers") or ())
        trailing, self._early = self.handoff.buffered + bytes(self._early), bytearray()
        self.ws = Connection(ConnectionType.SERVER, extensions, trailing)
        self.phase = "open"
        self.status = 101
        async with self._write_lock:
            await self._write(head)
        self._start(self._read_frames())
        self._start(self._close_on_shutdown())
        interval = self.ctx.config.ws_ping_interval
        if interval:
            self._start(self._keep_alive(interval, self.ctx.config.ws_ping_timeout))

    def _extensions(self) -> tuple[list[Extension], bytes | None]:
        if not self.ctx.config.ws_per_message_deflate:
            return [], None
        offers = [
            offer
            for name, value in self.request.headers
            if name == b"sec-websocket-extensions"
            for offer in split_comma_header(value)
        ]
        agreed = negotiate_deflate(offers)
        if agreed is None:
            return [], None
        self._inflate_step = INFLATE_STEP
        return [agreed[0]], agreed[1]

    def _switching_protocols(
        self, subprotocol: str | None, extensions: bytes | None, app_headers: Iterable[Header]
    ) -> bytes:
        key = _fields(self.request.headers)[b"sec-websocket-key"][0].strip()
        fields = [
            (b"upgrade", b"websocket"),
            (b"connection", b"Upgrade"),
            (b"sec-websocket-accept", generate_accept_token(key)),
        ]
        if subprotocol is not None:
            fields.append((b"sec-websocket-protocol", subprotocol.encode("ascii")))
        if extensions is not None:
            fields.append((b"sec-websocket-extensions", extensions))
        owned = _HANDSHAKE_FIELDS | ({b"sec-websocket-protocol"} if subprotocol else set())
        fields += [(n, v) for n, v in app_headers if bytes(n).lower() not in owned]
        head = status_line(101) + self.ctx.default_headers.get() + encode_fields(fields)
        return head + b"\r\n"

    async def _deny(self, message: Message) -> None:
        """`websocket.close` before accept: 403, as the ASGI spec asks."""
        await self._respond(403, b"Forbidden\n")

    async def _start_denial(self, message: Message) -> None:
        await self._stop_early_watch()
        writer = ResponseWriter(self.request, False, self.ctx.default_headers.get())
        writer.start(message["status"], message.get("headers") or ())
        self._denial = writer
        self.phase = "denying"
        self.status = message["status"]

    async def _denial_body(self, message: Message) -> None:
        assert self._denial is not None
        more_body = message.get("more_body", False)
        data = self._denial.body(message.get("body", b""), more_body)
        if data:
            self._denial_written = True
            async with self._write_lock:
                await self._write(data)
        if not more_body:
            self._end()

    async def _respond(self, status: int, body: bytes) -> None:
        """A whole plain-text HTTP response instead of the upgrade; then close."""
        await self._stop_early_watch()
        fields = [(b"content-type", b"text/plain; charset=utf-8")]
        if status == 426:
            fields.append((b"sec-websocket-version", _VERSION))
        writer = ResponseWriter(self.request, False, self.ctx.default_headers.get())
        writer.start(status, fields)
        self.status = status
        try:
            async with self._write_lock:
                await self._write(writer.body(body, False))
        except WebSocketClosed:
            pass
        self._end()

    # -- after accept: sending ----------------------------------------------------------
    async def _send_message(self, message: Message) -> None:
        data, text = message.get("bytes"), message.get("text")
        if data is not None:
            await self._send_frame(BytesMessage(data=bytes(data)))
        elif text is not None:
            await self._send_frame(TextMessage(data=text))
        else:
            raise RuntimeError("websocket.send needs bytes or text")

    async def _close_from_app(self, message: Message) -> None:
        await self._close(message.get("code") or 1000, message.get("reason") or "")

    async def _ignore(self, message: Message) -> None:
        """A close on a connection already closed: nothing left to do."""

    async def _close(self, code: int, reason: str = "", *, app_code: int | None = None) -> None:
        """Start the closing handshake: tell the app, send our Close, bound the wait."""
        ws = self.ws
        if ws is None or ws.state is not ConnectionState.OPEN:
            return
        self.inbox.finish(code if app_code is None else app_code, reason)
        self._arm_close_timer()
        try:
            await self._send_frame(CloseConnection(code=code, reason=reason or None))
        except WebSocketClosed:
            pass

    async def _send_frame(self, event: Event) -> None:
        async with self._write_lock:
            if self.phase == "closed" or self.ws is None:
                raise WebSocketClosed("the WebSocket is closed")
            try:
                data = self.ws.send(event)
            except FrameStateError:
                raise WebSocketClosed("the WebSocket is closing") from None
            await self._write(data)

    async def _write(self, data: bytes | bytearray) -> None:
        """Send with backpressure; a write stalled past timeout_write loses the connection."""
        try:
            async with asyncio.timeout(self.ctx.config.timeout_write or None):
                await self.stream.send_all(data)
        except (ConnectionLost, TimeoutError):
            self._lose()
            raise WebSocketClosed("the connection is closed") from None

    # -- after accept: reading ------------------------------------------------------------
    async def _read_frames(self) -> None:
        """Socket -> wsproto -> events, until the connection ends."""
        await self._handle_events()  # frames that came with, or right after, the handshake
        while self.phase != "closed":
            data = await self.stream.recv()
            if not data:
                self._lose()
                return
            for piece in self._pieces(data):
                assert self.ws is not None
                self.ws.receive_data(piece)
                await self._handle_events()
                if self.phase == "closed":
                    return

    def _pieces(self, data: bytes) -> Iterator[bytes]:
        step = self._inflate_step
        if not step or len(data) <= step:
            yield data
            return
        for start in range(0, len(data), step):
            yield data[start : start + step]

    async def _handle_events(self) -> None:
        assert self.ws is not None
        for event in self.ws.events():
            await _EVENT_HANDLERS[type(event)](self, event)
            if self.phase == "closed":
                return

    async def _on_data(self, event: TextMessage | BytesMessage) -> None:
        if self.inbox.final is not None:
            return  # we are closing: data that crossed our Close is dropped
        data = event.data
        self._size += _text_size(data) if isinstance(data, str) else len(data)
        self._fragments += event.frame_finished  # a frame may come in several events
        if self._size > self.ctx.config.ws_max_size:
            await self._close(CloseReason.MESSAGE_TOO_BIG, "message too big")
            return
        if self._fragments > MAX_FRAGMENTS:
            await self._close(CloseReason.MESSAGE_TOO_BIG, "too many fragments")
            return
        if data:  # an empty fragment would cost a list slot and hold nothing
            self._parts.append(data)
        if event.message_finished:
            await self.inbox.put(self._take_message(isinstance(data, str)))

    def _take_message(self, text: bool) -> Message:
        parts, self._parts, self._size, self._fragments = self._parts, [], 0, 0
        if text:
            return {"type": "websocket.receive", "bytes": None, "text": "".join(parts)}
        return {"type": "websocket.receive", "bytes": b"".join(parts), "text": None}

    async def _on_ping(self, event: Ping) -> None:
        assert self.ws is not None
        if self.ws.state is ConnectionState.OPEN:
            try:
                await self._send_frame(event.response())
            except WebSocketClosed:
                pass

    async def _on_pong(self, event: Pong) -> None:
        self._pong.set()

    async def _on_close(self, event: CloseConnection) -> None:
        assert self.ws is not None
        state = self.ws.state
        self.inbox.finish(event.code, event.reason or "")
        if state is ConnectionState.REMOTE_CLOSING:  # the peer closes: answer, then hang up
            reply: CloseConnection | None = event.response()
        elif state is ConnectionState.OPEN:
            # wsproto reports a protocol error as a Close of its own making: fail the
            # connection (RFC 6455 7.1.7), our Close first, no wait for an answer.
            reply = CloseConnection(event.code, event.reason)
        else:  # CLOSED: the peer answered our Close; LOCAL_CLOSING: garbage after it
            reply = None
        if reply is not None:
            try:
                await self._send_frame(reply)
            except WebSocketClosed:
                pass
        self._end()

    # -- keep-alive and shutdown ----------------------------------------------------------
    async def _keep_alive(self, interval: float, timeout: float | None) -> None:
        """Ping every `interval` seconds; close if a pong is `timeout` seconds late."""
        while True:
            await asyncio.sleep(interval)
            self._pong.clear()
            try:
                await self._send_frame(Ping())
            except WebSocketClosed:
                return
            if not timeout:
                continue
            try:
                async with asyncio.timeout(timeout):
                    await self._pong.wait()
            except TimeoutError:
                if self.inbox.full:
                    continue  # the pong waits behind messages the app has not taken
                # No Close came from the peer: the app hears 1006, as for a lost connection.
                await self._close(CloseReason.INTERNAL_ERROR, "ping timeout", app_code=1006)
                return

    async def _close_on_shutdown(self) -> None:
        await self.ctx.shutdown.wait()
        await self._close(CloseReason.GOING_AWAY, "server shutting down")

    # -- the end ------------------------------------------------------------------------
    def _start(self, coroutine: Awaitable[None]) -> None:
        self._tasks.append(asyncio.ensure_future(coroutine))

    def _arm_close_timer(self) -> None:
        if self._close_timer is None and self.phase != "closed":
            loop = asyncio.get_running_loop()
            self._close_timer = loop.call_later(CLOSE_TIMEOUT, self._lose)

    def _lose(self) -> None:
        """The connection is gone (or given up on) without a finished closing handshake."""
        self.inbox.finish(CloseReason.ABNORMAL_CLOSURE)
        self._end(linger=False)

    def _end(self, *, linger: bool = True) -> None:
        """Close the connection; from here on the app's sends raise WebSocketClosed.

        Lingering (RFC 6455 7.1.1): our FIN first, then read until the peer's, so a
        peer still sending gets no reset, which could destroy our last frames.
        """
        self.phase = "closed"
        self.inbox.finish(CloseReason.ABNORMAL_CLOSURE)  # only if nothing said otherwise
        if self._close_timer is not None:
            self._close_timer.cancel()
        if self.done.is_set():
            return
        if not linger:
            self.stream.close()
            self.done.set()
        elif self._linger is None:
            self._linger = asyncio.ensure_future(self._linger_then_close())

    async def _linger_then_close(self) -> None:
        try:
            # On an SSLSocket this drops TLS (no close_notify); what follows is only drained.
            self.stream.sock.shutdown(socket.SHUT_WR)
            async with asyncio.timeout(LINGER_TIMEOUT):
                while await self.stream.recv():
                    pass
        except (OSError, TimeoutError):
            pass
        finally:
            self.stream.close()
            self.done.set()

    async def stop_tasks(self) -> None:
        tasks, self._tasks = [self._linger, self._early_watch, *self._tasks], []
        tasks = [task for task in tasks if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


SendHandler = Callable[[WebSocketSession, Message], Awaitable[None]]

# What each ASGI message does in each phase; anything else is the app's error.
_SEND_HANDLERS: dict[tuple[Phase, str], SendHandler] = {
    ("connecting", "websocket.accept"): WebSocketSession._accept,
    ("connecting", "websocket.close"): WebSocketSession._deny,
    ("connecting", "websocket.http.response.start"): WebSocketSession._start_denial,
    ("denying", "websocket.http.response.body"): WebSocketSession._denial_body,
    ("open", "websocket.send"): WebSocketSession._send_message,
    ("open", "websocket.close"): WebSocketSession._close_from_app,
    ("closed", "websocket.close"): WebSocketSession._ignore,
}

_EVENT_HANDLERS: dict[type, Callable[[WebSocketSession, Any], Awaitable[None]]] = {
    TextMessage: WebSocketSession._on_data,
    BytesMessage: WebSocketSession._on_data,
    Ping: WebSocketSession._on_ping,
    Pong: WebSocketSession._on_pong,
    CloseConnection: WebSocketSession._on_close,
}


async def serve_websocket(handoff: WebSocketUpgrade, ctx: PoolContext) -> None:
    """Serve one handed-over upgrade request, from handshake to closed socket."""
    stream = AsyncSocket(handoff.conn.sock, asyncio.get_running_loop())
    session = WebSocketSession(stream, handoff, ctx)
    started = time.perf_counter()
    try:
        await session.run()
    finally:
        try:
            await session.stop_tasks()
        finally:
            stream.close()
            access = session.ctx.access_log
            if access.enabled:
                client = session.scope.get("client")
                access.log_websocket(client, session.request, session.status, started)
