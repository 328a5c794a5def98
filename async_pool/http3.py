"""HTTP/3 on the AsyncPool: one UDP endpoint, many QUIC connections, each stream an ASGI call.

Layers: the endpoint (`H3Endpoint`, an asyncio datagram protocol on one pool loop:
routes datagrams by connection ID) <-> `H3Server` (one connection: zoomies' QUIC
state with the fixes of `quic_compat`, timers, flow control, HTTP/3 framing,
GOAWAY) <-> `H3Stream` (`http3_stream`: the ASGI side of one request stream).
Everything runs on the loop thread that owns the socket, so no state needs a lock.

Flow control, both ways: the client gets credit (MAX_STREAM_DATA, MAX_DATA) only
as apps take their request bodies, and MAX_STREAMS as streams finish; a response
waits for the client's credit and for zoomies' send queue to drain below a mark,
so a client that stops reading holds back its own streams only.
"""

import asyncio
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

from zoomies import QuicConfiguration
from zoomies.events import (
    ConnectionClosed,
    ConnectionIdIssued,
    HandshakeComplete,
    StopSendingReceived,
    StreamDataReceived,
    StreamReset,
)

from pounce_sync.asgi.request_id import find_or_make_request_id
from pounce_sync.http1 import Request, error_body

from . import quic_wire as wire
from .context import PoolContext
from .handoffs import ClientSocket
from .http2 import DefaultFields
from .http3_frames import (
    H3_NO_ERROR,
    H3_REQUEST_REJECTED,
    HEADERS,
    Body,
    End,
    Head,
    Malformed,
    RequestStreamParser,
    TooLarge,
    Trailers,
    control_stream,
    frame,
    goaway,
)
from .http3_stream import H3Stream, HeaderKeepingH3Stream, malformed, request_from_h3
from .pool_stream import StreamGone, build_scope, refusal
from .qpack_static import QpackError, decode_field_section, encode_field_section
from .quic_compat import ServerQuic, install

error_log = logging.getLogger("pounce_sync.error")

CONNECTION_WINDOW = 1 << 20  # what the client may send on a connection beyond what apps took
STREAM_WINDOW = 256 * 1024
HIGH_WATER = 256 * 1024  # stream bytes zoomies may hold unsent before senders wait
# zoomies 0.3.3 puts each send_stream_data call in one STREAM frame, whatever its size,
# and so one packet: pieces this small keep every packet within its 1200-byte MTU.
STREAM_PIECE = 1100
CONTROL_STREAM = 3  # the server's first unidirectional stream
Headers = list[tuple[bytes, bytes]]


class Credentials:
    """The certificate and key zoomies loads (PEM, the key unencrypted), read once."""

    def __init__(self, certificate: bytes, private_key: bytes) -> None:
        self.certificate = certificate
        self.private_key = private_key


class H3Server:
    """One QUIC connection: zoomies' state, its timer, and the streams' tasks."""

    def __init__(
        self, endpoint: "H3Endpoint", addr: tuple[str, int], quic: ServerQuic, ctx: PoolContext
    ) -> None:
        self.endpoint = endpoint
        self.addr = addr
        self.quic = quic
        self.ctx = ctx
        self.conn_info = ClientSocket(endpoint.sock, addr[:2], endpoint.server, "https")
        self.streams: dict[int, H3Stream] = {}
        self.parsers: dict[int, RequestStreamParser] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.draining = False
        self.closed = False
        self._timer: asyncio.TimerHandle | None = None
        self._frames: list[bytes] = []  # control frames for the next packet
        self._ready = False  # the control stream is open
        self._highest = -4  # highest request stream id seen
        self._finished_streams = 0
        self._credited_early: dict[int, int] = {}  # a stream's frame bytes before it opened
        self._received = 0  # request-stream bytes credited back, on the connection
        self._limit_sent = CONNECTION_WINDOW
        self._room = asyncio.Event()  # zoomies' send queue fell below HIGH_WATER
        self._room.set()
        self._defaults = _H3Fields(ctx)
        # Chosen once a connection, as for HTTP/2: only a format showing response headers
        # (`{name}o`) keeps them.
        keeps = ctx.access_log.keeps_response_headers
        self._stream_type = HeaderKeepingH3Stream if keeps else H3Stream
        health = ctx.config.health_path
        self._health_target = health.encode() if health else None

    # -- datagrams in, datagrams out ---------------------------------------------------
    def receive(self, data: bytes, addr: tuple[str, int]) -> None:
        now = time.monotonic()
        for packet in wire.split_datagram(data):
            try:
                events = self.quic.datagram_received(packet, addr, now=now)
            except Exception as exc:  # zoomies raises on some bad handshakes
                error_log.debug("QUIC error from %s: %r", addr, exc)
                self.quic.close(0x0A, "protocol violation")
                events = [ConnectionClosed(0x0A, "protocol violation")]
            for event in events:
                self._on_event(event)
            if self.closed:
                break
        self._on_credit()
        self.flush()

    def flush(self) -> None:
        if self._frames:
            self.quic.queue_frames(b"".join(self._frames))
            self._frames.clear()
        now = time.monotonic()
        for datagram in self.quic.send_datagrams(now=now):
            self.endpoint.send(datagram, self.addr)
        if self.quic.queued_bytes < HIGH_WATER:
            self._room.set()
        self._arm_timer()
        if self.quic.closed and not self.closed:
            self._end()

    def _arm_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self.quic.get_timer()
        if deadline is None or self.closed:
            return
        loop = asyncio.get_running_loop()
        # The loop's clock is time.monotonic, the clock zoomies is fed.
        self._timer = loop.call_at(max(deadline, loop.time()), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        for event in self.quic.handle_timer(time.monotonic()):
            self._on_event(event)
        self.flush()

    def _end(self) -> None:
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for stream in list(self.streams.values()):
            stream.on_gone()
        self._room.set()
        self.endpoint.forget(self)

    # -- QUIC events ----------------------------------------------------------------------
    def _on_event(self, event: Any) -> None:
        kind = type(event)
        if kind is StreamDataReceived:
            self._on_stream_data(event.stream_id, event.data, event.end_stream)
        elif kind is HandshakeComplete:
            self._open_control_stream()
        elif kind is ConnectionIdIssued:
            self.endpoint.route(event.connection_id, self)
        elif kind is StreamReset or kind is StopSendingReceived:
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                stream.on_gone()
        elif kind is ConnectionClosed:
            self.closed = True
            self._end()

    def _open_control_stream(self) -> None:
        if self._ready:
            return
        self._ready = True
        limit = self.ctx.config.limit_request_headers_size
        self.quic.send_stream_data(CONTROL_STREAM, control_stream(limit), False)
        if self.ctx.shutdown.is_set():
            self.begin_drain()

    def _on_stream_data(self, stream_id: int, data: bytes, end: bool) -> None:
        if stream_id % 4 != 0:
            # The client's control and QPACK streams: SETTINGS need no answer, and with a
            # dynamic table of 0 nothing there changes how a field section decodes.
            self._credit(len(data))
            return
        parser = self.parsers.get(stream_id)
        if parser is None:
            if stream_id <= self._highest and stream_id not in self.streams:
                self._credit(len(data))  # a stream we are done with, reset or refused
                return
            self._highest = max(self._highest, stream_id)
            parser = self.parsers[stream_id] = RequestStreamParser(
                self.ctx.config.limit_request_headers_size
            )
        body = 0
        for event in parser.feed(data, end):
            body += len(event.data) if type(event) is Body else 0
            self._on_request_event(stream_id, event)
        self._credit(len(data) - body, stream_id)  # frame headers: credited at once
        if end or stream_id not in self.parsers:
            self.parsers.pop(stream_id, None)

    def _on_request_event(self, stream_id: int, event: Any) -> None:
        stream = self.streams.get(stream_id)
        kind = type(event)
        if kind is Head:
            self._on_head(stream_id, event.block)
        elif stream is None:
            if kind is Body:
                self._credit(len(event.data), stream_id)
        elif kind is Body:
            stream.on_data(event.data)
        elif kind is End:
            stream.on_end()
        elif kind is Trailers:
            pass  # request trailers are not offered to ASGI apps
        elif kind is Malformed:
            error_log.debug("HTTP/3 stream %d from %s: %s", stream_id, self.addr, event.reason)
            stream.refuse(400)
        if kind is TooLarge:
            self._answer(stream_id, 431, None)

    def _on_head(self, stream_id: int, block: bytes) -> None:
        config = self.ctx.config
        if self.draining or len(self.streams) >= config.http3_max_concurrent_streams:
            self._reject(stream_id, H3_REQUEST_REJECTED)  # safe to retry elsewhere
            return
        try:
            headers = decode_field_section(block)
        except QpackError as exc:
            error_log.debug("HTTP/3 QPACK error from %s: %s", self.addr, exc)
            self._answer(stream_id, 400, None)
            return
        ended = False  # the parser reports the FIN as its own event
        if malformed(headers) is not None or len(headers) > config.limit_request_fields:
            self._answer(stream_id, 400 if malformed(headers) else 431, None)
            return
        request = request_from_h3(headers, ended)
        status = refusal(request, self.ctx, 0)
        if status is None and request.target == self._health_target:
            draining = self.draining or self.ctx.unhealthy.is_set() or self.ctx.shutdown.is_set()
            status = 503 if draining else 200
        if status is None:
            self._open_stream(stream_id, request)
        else:
            self._answer(stream_id, status, request)

    def _answer(self, stream_id: int, status: int, request: Request | None) -> None:
        """A whole small response without the app (errors, health); then stop reading."""
        started = time.perf_counter()
        body = b"ok\n" if status == 200 else error_body(status)
        if status == 503 and request is not None and request.target == self._health_target:
            body = b"draining\n"
        headers = [
            (b":status", str(status).encode("ascii")),
            *self._defaults.get(),
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode("ascii")),
        ]
        data = frame(HEADERS, encode_field_section(headers)) + frame(0x00, body)
        self._send_now(stream_id, data)
        self._frames.append(wire.stop_sending_frame(stream_id, H3_NO_ERROR))
        self._stream_done(stream_id)
        if request is not None and self.ctx.access_log.enabled:
            self.ctx.access_log.log(self.conn_info.client, request, status, 0, started, None)

    def _reject(self, stream_id: int, code: int) -> None:
        self._frames.append(wire.reset_stream_frame(stream_id, code, 0))
        self._frames.append(wire.stop_sending_frame(stream_id, code))
        self._stream_done(stream_id)

    def _stream_done(self, stream_id: int) -> None:
        """The stream is over on our side: drop its parser, give the client a new one."""
        self.parsers.pop(stream_id, None)
        self._credited_early.pop(stream_id, None)
        self._finished_streams += 1
        self._frames.append(
            wire.max_streams_frame(
                self._finished_streams + self.ctx.config.http3_max_concurrent_streams
            )
        )
        if self.draining and not self.streams:
            self._close_drained()

    def _send_now(self, stream_id: int, data: bytes) -> None:
        if self.closed or len(data) > self.quic.peer_data_room:
            self._reject(stream_id, H3_REQUEST_REJECTED)
            return
        self.quic.send_stream_data(stream_id, data, True)

    def _open_stream(self, stream_id: int, request: Request) -> None:
        config = self.ctx.config
        request_id = find_or_make_request_id(request.headers) if config.request_id else None
        scope = build_scope(request, self.conn_info, self.ctx, request_id)
        extra = [(b"x-request-id", request_id)] if request_id is not None else None
        stream = self._stream_type(
            self, stream_id, request, scope, request_ended=False, extra_headers=extra
        )
        params = self.quic.peer_params
        stream.peer_limit = (params.initial_max_stream_data_bidi_local or 0) if params else 0
        stream.limit_sent = STREAM_WINDOW
        stream.credited = self._credited_early.pop(stream_id, 0)
        self.streams[stream_id] = stream
        task = asyncio.get_running_loop().create_task(self._run_stream(stream, request_id))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _run_stream(self, stream: H3Stream, request_id: bytes | None) -> None:
        started = time.perf_counter()
        self.ctx.stats.h3_stream(1)
        try:
            await stream.run()
        finally:
            self.ctx.stats.h3_stream(-1)
            del self.streams[stream.id]
            access = self.ctx.access_log
            if access.enabled:
                client = stream.scope.get("client")
                access.log(
                    client,
                    stream.request,
                    stream.status,
                    stream.body_bytes,
                    started,
                    request_id,
                    stream.response_headers,
                )
            if not self.closed:
                self._stream_done(stream.id)
                self.flush()

    # -- flow control ---------------------------------------------------------------------
    def _credit(self, size: int, stream_id: int | None = None) -> None:
        """`size` request bytes are off our hands: the client may send that much more."""
        if size <= 0 or self.closed:
            return
        self._received += size
        if self._received + CONNECTION_WINDOW - self._limit_sent >= CONNECTION_WINDOW // 2:
            self._limit_sent = self._received + CONNECTION_WINDOW
            self.quic.raise_receive_limit(self._limit_sent)
        if stream_id is not None:
            stream = self.streams.get(stream_id)
            if stream is None and stream_id in self.parsers:
                self._credited_early[stream_id] = self._credited_early.get(stream_id, 0) + size
            elif stream is not None:
                stream.credited += size
                if stream.credited + STREAM_WINDOW - stream.limit_sent >= STREAM_WINDOW // 2:
                    stream.limit_sent = stream.credited + STREAM_WINDOW
                    self.quic.raise_stream_receive_limit(stream_id, stream.limit_sent)

    def _on_credit(self) -> None:
        """The client's MAX_DATA and MAX_STREAM_DATA: wake the senders they concern."""
        credits = self.quic.credit_events
        if not credits:
            return
        for stream_id, limit in credits:
            targets = self.streams.values() if stream_id is None else [self.streams.get(stream_id)]
            for stream in targets:
                if stream is None:
                    continue
                if stream_id is not None:
                    stream.peer_limit = max(stream.peer_limit, limit)
                stream.window.set()
        credits.clear()

    # -- what streams may ask (StreamLink) --------------------------------------------------
    def default_headers(self) -> Headers:
        return self._defaults.get()

    async def send(self, stream: H3Stream, data: bytes, end_stream: bool) -> None:
        """Stream bytes within the client's windows; waits for credit and for the queue."""
        view = memoryview(data)
        while True:
            if stream.disconnected or self.closed:
                raise StreamGone("the stream is closed")
            room = min(self.quic.peer_data_room, stream.peer_limit - stream.sent_offset)
            if len(view) <= room:
                self._queue(stream, view, end_stream)
                break
            if room > 0:
                self._queue(stream, view[:room], False)
                view = view[room:]
            stream.window.clear()
            self.flush()
            await self._wait(stream.window)
        self.flush()
        if self.quic.queued_bytes >= HIGH_WATER:
            self._room.clear()
            await self._wait(self._room)

    def _queue(self, stream: H3Stream, data: memoryview, end_stream: bool) -> None:
        for start in range(0, max(len(data), 1), STREAM_PIECE):
            piece = bytes(data[start : start + STREAM_PIECE])
            last = start + STREAM_PIECE >= len(data)
            self.quic.send_stream_data(stream.id, piece, end_stream and last)
        stream.sent_offset += len(data)

    async def _wait(self, event: asyncio.Event) -> None:
        try:
            async with asyncio.timeout(self.ctx.config.timeout_write):
                await event.wait()
        except TimeoutError:
            raise StreamGone("the client kept its window shut too long") from None

    def respond_now(self, stream: H3Stream, status: int, body: bytes) -> None:
        headers = [
            (b":status", str(status).encode("ascii")),
            *self._defaults.get(),
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode("ascii")),
        ]
        data = frame(HEADERS, encode_field_section(headers)) + frame(0x00, body)
        if self.closed:
            return
        if len(data) > min(self.quic.peer_data_room, stream.peer_limit - stream.sent_offset):
            self.reset(stream, H3_REQUEST_REJECTED)
            return
        self._queue(stream, memoryview(data), True)
        stream.ended = True
        self.flush()

    def consumed(self, stream: H3Stream, size: int) -> None:
        self._credit(size, stream.id)
        self.flush()

    def reset(self, stream: H3Stream, code: int) -> None:
        """Our side: RESET_STREAM unless our FIN is out; theirs: STOP_SENDING while open."""
        if self.closed:
            return
        if not stream.ended:
            self._frames.append(wire.reset_stream_frame(stream.id, code, stream.sent_offset))
            stream.ended = True
        if not stream.request_ended:
            self._frames.append(wire.stop_sending_frame(stream.id, code))
        self.flush()

    # -- drain --------------------------------------------------------------------------------
    def begin_drain(self) -> None:
        """GOAWAY: streams already seen finish, later ones are refused (RFC 9114 5.2)."""
        if self.draining or self.closed:
            return
        self.draining = True
        if self._ready:
            self.quic.send_stream_data(CONTROL_STREAM, goaway(self._highest + 4), False)
        for stream in self.streams.values():
            stream.wake()
        if not self.streams:
            self._close_drained()
        self.flush()

    def _close_drained(self) -> None:
        if not self.closed:
            self.quic.close(H3_NO_ERROR, "server shutting down")
            self.flush()


class _H3Fields(DefaultFields):
    """Server, Date and --header fields; Alt-Svc is for the TCP side only."""

    def __init__(self, ctx: PoolContext) -> None:
        super().__init__(ctx.config)
        self._extra = [(n, v) for n, v in self._extra if n != b"alt-svc"]
        self._fields = [*self._server, *self._extra]


class H3Endpoint(asyncio.DatagramProtocol):
    """The UDP socket's protocol: routes datagrams to connections by destination CID."""

    def __init__(
        self,
        sock: socket.socket,
        ctx: PoolContext,
        credentials: Credentials,
        on_open: Callable[[], None],
        on_close: Callable[[], None],
    ) -> None:
        self.sock = sock
        self.ctx = ctx
        host, port = sock.getsockname()[:2]
        self.server = (host, port)
        config = ctx.config
        self.quic_config = QuicConfiguration(
            certificate=credentials.certificate,
            private_key=credentials.private_key,
            max_data=CONNECTION_WINDOW,
            max_stream_data=STREAM_WINDOW,
            idle_timeout=config.http3_idle_timeout,
        )
        self.connections: dict[bytes, H3Server] = {}
        self._lengths: tuple[int, ...] = ()
        self._on_open = on_open
        self._on_close = on_close
        self.transport: asyncio.DatagramTransport | None = None
        self.live: set[H3Server] = set()
        self.idle = asyncio.Event()
        self.idle.set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.DatagramTransport)
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            for cid in wire.destination_cid(data, self._lengths):
                conn = self.connections.get(cid)
                if conn is not None:
                    conn.receive(data, addr)
                    return
            if self._accepts(data):
                self._open(data, addr)
        except Exception:
            error_log.exception("Unexpected error serving HTTP/3 to %s", addr)

    def _accepts(self, data: bytes) -> bool:
        """A new connection starts with an Initial in a datagram of 1200 bytes or more.

        At most --async-backlog connections at once, the cap every pool connection has:
        past it a client's Initial is dropped, as a full listen queue drops a SYN.
        """
        return (
            len(data) >= 1200
            and data[0] & 0xB0 == 0x80  # long header, Initial
            and not self.ctx.shutdown.is_set()
            and len(self.live) < self.ctx.config.async_backlog
        )

    def _open(self, data: bytes, addr: tuple[str, int]) -> None:
        quic = ServerQuic(
            self.quic_config, max_streams=self.ctx.config.http3_max_concurrent_streams
        )
        conn = H3Server(self, addr, quic, self.ctx)
        (cid,) = wire.destination_cid(data, ())
        self.route(cid, conn)
        self.live.add(conn)
        self.idle.clear()
        self._on_open()
        conn.receive(data, addr)

    def route(self, cid: bytes, conn: H3Server) -> None:
        self.connections[cid] = conn
        if len(cid) not in self._lengths:
            self._lengths = (*self._lengths, len(cid))

    def forget(self, conn: H3Server) -> None:
        for cid in [c for c, owner in self.connections.items() if owner is conn]:
            del self.connections[cid]
        if conn in self.live:
            self.live.discard(conn)
            self._on_close()
            if not self.live:
                self.idle.set()

    def send(self, datagram: bytes, addr: tuple[str, int]) -> None:
        if self.transport is not None:
            self.transport.sendto(datagram, addr)

    def begin_drain(self) -> None:
        for conn in list(self.live):
            conn.begin_drain()


async def serve_http3(
    sock: socket.socket,
    ctx: PoolContext,
    credentials: Credentials,
    on_open: Callable[[], None],
    on_close: Callable[[], None],
) -> None:
    """Serve QUIC on `sock` until the pool drains and the last connection is gone."""
    install()
    loop = asyncio.get_running_loop()
    transport, endpoint = await loop.create_datagram_endpoint(
        lambda: H3Endpoint(sock, ctx, credentials, on_open, on_close), sock=sock
    )
    try:
        await ctx.shutdown.wait()
        endpoint.begin_drain()
        await endpoint.idle.wait()
    finally:
        for conn in list(endpoint.live):
            for task in conn.tasks:
                task.cancel()
            endpoint.forget(conn)
        transport.close()
