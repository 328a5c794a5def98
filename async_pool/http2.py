"""HTTP/2 on the AsyncPool: one connection, many streams, each an ASGI request run once.

Layers: AsyncSocket (bytes) <-> H2Server (h2's state machine, flow control, the
connection's lifetime) <-> H2Stream (`http2_stream`: the ASGI side of one stream).
Everything of one connection runs on its loop thread, so h2's state needs no lock.
Frames leave through one FrameWriter, whole and in the order h2 produced them, and
its bounded queue holds back the senders and the reader when the client reads slowly.

h2 refuses to send anything once its own GOAWAY is out, so the graceful GOAWAY of a
drain is written as a raw frame; streams already open finish, later ones are refused,
and h2's `close_connection` sends the last GOAWAY when none is left.
"""

import asyncio
import binascii
import logging
import time
from collections.abc import Callable
from email.utils import formatdate
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
from h2.errors import ErrorCodes
from h2.settings import SettingCodes, Settings
from hyperframe.exceptions import HyperframeError
from hyperframe.frame import GoAwayFrame

from pounce_sync.asgi.request_id import find_or_make_request_id
from pounce_sync.config import Config
from pounce_sync.http1 import Request, error_body, error_response, informational_head

from .context import PoolContext
from .handoffs import HTTP2Connection
from .http2_stream import (
    H2Stream,
    HeaderKeepingH2Stream,
    header_list_size,
    request_from_h2,
    request_from_upgrade,
)
from .pool_stream import Headers, StreamGone, build_scope, refusal, response_headers
from .socket_stream import AsyncSocket, ConnectionLost

error_log = logging.getLogger("pounce_sync.error")

HIGH_WATER = 256 * 1024  # bytes queued for the socket before senders and the reader wait
LOW_WATER = 64 * 1024
# The connection's receive window. Streams keep h2's 64 KiB each and are credited only
# as their app reads, so this bounds what one connection buffers while sparing the
# other streams when one app stops reading.
CONNECTION_WINDOW = 1 << 20
DEFAULT_WINDOW = 65535
# Rapid reset (CVE-2023-44487): each HEADERS starts an app, its RST_STREAM frees the
# stream slot at once. A client may reset this many streams whose app still runs, plus
# one for each stream it let finish (never banking more than this); past it, GOAWAY
# ENHANCE_YOUR_CALM. Browsers cancel now and then; they do not cancel nearly everything.
RESET_ALLOWANCE = 200
_SWITCHING = informational_head(101, [(b"connection", b"Upgrade"), (b"upgrade", b"h2c")])


class FrameWriter:
    """The connection's one writer: bytes go out whole and in order, the queue bounded."""

    def __init__(self, sock: AsyncSocket, timeout: float, on_lost: Callable[[], None]) -> None:
        self._sock = sock
        self._timeout = timeout
        self._on_lost = on_lost
        self._chunks: list[bytes] = []
        self._queued = 0
        self._wanted = asyncio.Event()
        self._room = asyncio.Event()  # queued <= LOW_WATER since it last passed HIGH_WATER
        self._idle = asyncio.Event()  # everything written
        self._room.set()
        self._idle.set()
        self.lost = False

    def write(self, data: bytes) -> None:
        if not data or self.lost:
            return
        self._chunks.append(data)
        self._queued += len(data)
        self._wanted.set()
        self._idle.clear()
        if self._queued > HIGH_WATER:
            self._room.clear()

    async def drain(self) -> None:
        """Wait while too much is queued; ConnectionLost once writing has failed."""
        if not self._room.is_set():
            await self._room.wait()
        if self.lost:
            raise ConnectionLost("the connection is gone")

    async def flush(self) -> None:
        """Wait until everything queued is written, or writing failed."""
        await self._idle.wait()

    def close(self) -> None:
        """Nothing more goes out: whoever waits for room or for the flush goes on."""
        self.lost = True
        self._chunks.clear()
        self._room.set()
        self._idle.set()

    async def run(self) -> None:
        try:
            while True:
                await self._wanted.wait()
                self._wanted.clear()
                while self._chunks:
                    data = b"".join(self._chunks)
                    self._chunks.clear()
                    async with asyncio.timeout(self._timeout):
                        await self._sock.send_all(data)
                    self._queued -= len(data)
                    if self._queued <= LOW_WATER:
                        self._room.set()
                self._idle.set()
        except (ConnectionLost, TimeoutError):
            self.close()
            self._on_lost()


class DefaultFields:
    """Server, Date and --header fields of every response; Date rebuilt once a second."""

    def __init__(self, config: Config) -> None:
        self._server = [(b"server", config.server_name)] if config.server_header else []
        self._extra = response_headers(config.extra_headers)
        self._date = config.date_header
        self._second = -1
        self._fields = [*self._server, *self._extra]

    def get(self) -> Headers:
        if not self._date:
            return self._fields
        second = int(time.time())
        if second != self._second:
            self._second = second
            date = (b"date", formatdate(second, usegmt=True).encode("ascii"))
            self._fields = [*self._server, date, *self._extra]
        return self._fields


def _h2_connection(config: Config) -> h2.connection.H2Connection:
    conn = h2.connection.H2Connection(
        h2.config.H2Configuration(
            client_side=False, header_encoding=None, validate_inbound_headers=True
        )
    )
    conn.local_settings = Settings(
        client=False,
        initial_values={
            SettingCodes.MAX_CONCURRENT_STREAMS: config.h2_max_concurrent_streams,
            SettingCodes.MAX_HEADER_LIST_SIZE: config.h2_max_header_list_size,
            SettingCodes.MAX_FRAME_SIZE: config.h2_max_inbound_frame_size,
        },
    )
    # Initial values apply at once, without an ACK, so h2 never updates these two itself.
    conn.max_inbound_frame_size = config.h2_max_inbound_frame_size
    # Past the advertised size a request gets 431; past twice that, decoding stops and
    # the connection ends with ENHANCE_YOUR_CALM (HPACK state cannot survive a half block).
    conn.decoder.max_header_list_size = 2 * config.h2_max_header_list_size
    return conn


def _settings_header(request: Request) -> bytes:
    """HTTP2-Settings is base64url without padding (RFC 7540 3.2.1); h2 wants padding."""
    value = next(v for n, v in request.headers if n == b"http2-settings").strip()
    return value + b"=" * (-len(value) % 4)


class H2Server:
    """One HTTP/2 connection: reads frames, runs a task per stream, writes through one writer."""

    def __init__(self, handoff: HTTP2Connection, ctx: PoolContext, sock: AsyncSocket) -> None:
        self.ctx = ctx
        self.handoff = handoff
        self.conn_info = handoff.conn
        self.sock = sock
        self.conn = _h2_connection(ctx.config)
        self.writer = FrameWriter(sock, ctx.config.timeout_write, self._end)
        self.streams: dict[int, H2Stream] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.draining = False  # our GOAWAY is out: open streams finish, new ones are refused
        self.closed = False  # no frame can be sent any more
        self._last_stream_id = 0  # in the drain's GOAWAY; the last one must not exceed it
        self._resets_left = RESET_ALLOWANCE
        self._done = asyncio.Event()
        self._idle_timer: asyncio.TimerHandle | None = None
        self._defaults = DefaultFields(ctx.config)
        # Chosen once a connection: only a format that shows response headers keeps them.
        keeps = ctx.access_log.keeps_response_headers
        self._stream_type = HeaderKeepingH2Stream if keeps else H2Stream
        health = ctx.config.health_path
        self._health_target = health.encode() if health else None
        self._handlers: dict[type, Callable[[Any], None]] = {
            h2.events.RequestReceived: self._on_request,
            h2.events.DataReceived: self._on_data,
            h2.events.StreamEnded: self._on_stream_ended,
            h2.events.StreamReset: self._on_stream_reset,
            h2.events.WindowUpdated: self._on_window_updated,
            h2.events.RemoteSettingsChanged: self._on_settings_changed,
            h2.events.ConnectionTerminated: self._on_terminated,
        }

    # -- the connection's life -------------------------------------------------
    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        background = [loop.create_task(self.writer.run()), loop.create_task(self._watch_drain())]
        try:
            self._start()
            if not self.closed:
                background.append(loop.create_task(self._read_loop()))
                await self._done.wait()
            for stream in list(self.streams.values()):
                stream.on_gone()
            await self.writer.flush()
            self._stop(background)  # the socket closes before the apps are waited for
            if self.tasks:  # apps hear http.disconnect; wait for them to return
                await asyncio.gather(*self.tasks, return_exceptions=True)
        except asyncio.CancelledError:
            for task in self.tasks:
                task.cancel()
            raise
        finally:
            self._stop(background)

    def _stop(self, background: list[asyncio.Task[Any]]) -> None:
        for task in background:
            task.cancel()
        self._cancel_idle()
        self.writer.close()
        self.sock.close()

    def _start(self) -> None:
        if self.handoff.via == "h2c":
            self._start_upgrade()
        else:
            self.conn.initiate_connection()
            self._open_connection_window()
        if not self.closed:
            if not self.streams:
                self._arm_idle()
            if self.handoff.buffered:
                self._receive(self.handoff.buffered)

    def _start_upgrade(self) -> None:
        """Answer 101, then serve the upgrade request as stream 1 (RFC 7540 3.2)."""
        request = self.handoff.upgrade
        assert request is not None
        try:
            self.conn.initiate_upgrade_connection(_settings_header(request))
        except (binascii.Error, ValueError, HyperframeError, h2.exceptions.ProtocolError):
            self.writer.write(error_response(400))
            self._end()
            return
        self.writer.write(_SWITCHING)
        self._open_connection_window()
        self._open_stream(1, request_from_upgrade(request), ended=True)

    def _open_connection_window(self) -> None:
        self.conn.increment_flow_control_window(CONNECTION_WINDOW - DEFAULT_WINDOW)
        self._flush()

    async def _read_loop(self) -> None:
        try:
            while not self.closed:
                data = await self.sock.recv()
                if not data:
                    self._end()
                    return
                self._receive(data)
                await self.writer.drain()  # a client that sends but never reads stops here
                await asyncio.sleep(0)  # fair to the other connections of this loop
        except ConnectionLost:
            self._end()
        except Exception:
            error_log.exception("Unexpected error serving HTTP/2 to %s", self.conn_info.client)
            self._close_with(ErrorCodes.INTERNAL_ERROR)

    def _receive(self, data: bytes) -> None:
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            # h2 has queued the GOAWAY with the matching error code.
            error_log.debug("HTTP/2 protocol error from %s: %s", self.conn_info.client, exc)
            self._flush()
            self._end()
            return
        handlers = self._handlers
        for event in events:
            handler = handlers.get(type(event))
            if handler is not None:
                handler(event)
                if self.closed:  # a handler ended the connection: nothing after counts
                    break
        self._flush()

    def _flush(self) -> None:
        self.writer.write(self.conn.data_to_send())

    def _end(self) -> None:
        """The connection is over: it ended, or the peer went away or stopped reading."""
        self.closed = True
        self._done.set()

    def _close_with(self, code: ErrorCodes) -> None:
        """GOAWAY and end: idle, drained, or an error of ours."""
        if self.closed:
            return
        last = self._last_stream_id if self.draining else None
        try:
            self.conn.close_connection(code, last_stream_id=last)
        except h2.exceptions.ProtocolError:
            pass  # h2 has sent or received a GOAWAY already
        self._flush()
        self._end()

    # -- idle and drain ---------------------------------------------------------
    def _arm_idle(self) -> None:
        self._cancel_idle()
        loop = asyncio.get_running_loop()
        self._idle_timer = loop.call_later(self.ctx.config.timeout_keep_alive, self._on_idle)

    def _cancel_idle(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    def _on_idle(self) -> None:
        self._idle_timer = None
        if not self.streams:
            self._close_with(ErrorCodes.NO_ERROR)

    async def _watch_drain(self) -> None:
        await self.ctx.shutdown.wait()
        self._begin_drain()

    def _begin_drain(self) -> None:
        if self.closed or self.draining:
            return
        self.draining = True
        self._last_stream_id = self.conn.highest_inbound_stream_id
        self._flush()
        goaway = GoAwayFrame(0, last_stream_id=self._last_stream_id, error_code=0)
        self.writer.write(goaway.serialize())
        for stream in self.streams.values():
            stream.wake()
        if not self.streams:
            self._close_with(ErrorCodes.NO_ERROR)

    # -- h2 events ---------------------------------------------------------------
    def _on_request(self, event: h2.events.RequestReceived) -> None:
        stream_id = event.stream_id
        if self.draining or len(self.streams) >= self.ctx.config.h2_max_concurrent_streams:
            # h2 counts open streams; apps still running after their stream was reset
            # count here too, so resetting streams at once cannot pile up app tasks.
            self.reset(stream_id, ErrorCodes.REFUSED_STREAM)  # safe to retry
            return
        headers: Headers = event.headers  # type: ignore[assignment]
        request = request_from_h2(headers, event.stream_ended)
        status = refusal(request, self.ctx, header_list_size(headers))
        if status is None and request.target == self._health_target:
            draining = self.draining or self.ctx.unhealthy.is_set() or self.ctx.shutdown.is_set()
            status = 503 if draining else 200
        if status is None:
            self._open_stream(stream_id, request, event.stream_ended)
            return
        started = time.perf_counter()
        body = b"ok\n" if status == 200 else error_body(status)
        if status == 503 and request.target == self._health_target:
            body = b"draining\n"
        self.respond_now(stream_id, status, body)
        if not event.stream_ended:
            self.reset(stream_id, ErrorCodes.NO_ERROR)
        if self.ctx.access_log.enabled:
            self.ctx.access_log.log(self.conn_info.client, request, status, 0, started, None)

    def _open_stream(self, stream_id: int, request: Request, ended: bool) -> None:
        config = self.ctx.config
        request_id = find_or_make_request_id(request.headers) if config.request_id else None
        scope = build_scope(request, self.conn_info, self.ctx, request_id)
        extra = [(b"x-request-id", request_id)] if request_id is not None else None
        stream = self._stream_type(
            self, stream_id, request, scope, request_ended=ended, extra_headers=extra
        )
        self.streams[stream_id] = stream
        self._cancel_idle()
        task = asyncio.get_running_loop().create_task(self._run_stream(stream, request_id))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _run_stream(self, stream: H2Stream, request_id: bytes | None) -> None:
        started = time.perf_counter()
        self.ctx.stats.h2_stream(1)
        try:
            await stream.run()
        finally:
            self.ctx.stats.h2_stream(-1)
            del self.streams[stream.id]
            if not stream.disconnected:  # answered to the end: earns back one reset
                self._resets_left = min(RESET_ALLOWANCE, self._resets_left + 1)
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
            self._stream_finished()

    def _stream_finished(self) -> None:
        if self.streams or self.closed:
            return
        if self.draining:
            self._close_with(ErrorCodes.NO_ERROR)
        else:
            self._arm_idle()

    def _on_data(self, event: h2.events.DataReceived) -> None:
        stream = self.streams.get(event.stream_id)
        if stream is None:  # refused, or its app is done: only the window matters
            self.consumed(event.stream_id, event.flow_controlled_length)
        else:
            stream.on_data(event.data, event.flow_controlled_length)

    def _on_stream_ended(self, event: h2.events.StreamEnded) -> None:
        stream = self.streams.get(event.stream_id)
        if stream is not None:
            stream.on_end()

    def _on_stream_reset(self, event: h2.events.StreamReset) -> None:
        stream = self.streams.get(event.stream_id)
        if stream is None:
            return
        stream.on_gone()
        if event.remote_reset:
            self._resets_left -= 1
            if self._resets_left < 0:
                error_log.debug("HTTP/2 rapid reset from %s", self.conn_info.client)
                self._close_with(ErrorCodes.ENHANCE_YOUR_CALM)

    def _on_window_updated(self, event: h2.events.WindowUpdated) -> None:
        if event.stream_id:
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                stream.window.set()
        else:
            self._wake_senders()

    def _on_settings_changed(self, event: h2.events.RemoteSettingsChanged) -> None:
        self._wake_senders()  # INITIAL_WINDOW_SIZE or MAX_FRAME_SIZE may have changed

    def _wake_senders(self) -> None:
        for stream in self.streams.values():
            stream.window.set()

    def _on_terminated(self, event: h2.events.ConnectionTerminated) -> None:
        """The client's GOAWAY. h2 sends nothing after it, so open streams end here too."""
        if event.error_code:
            error_log.debug(
                "HTTP/2 GOAWAY from %s: %s %r",
                self.conn_info.client,
                event.error_code,
                event.additional_data,
            )
        self._end()

    # -- what streams may ask (StreamLink) ----------------------------------------
    def default_headers(self) -> Headers:
        return self._defaults.get()

    def send_head(self, stream_id: int, headers: Headers, end_stream: bool) -> None:
        if self.closed:
            raise StreamGone("the connection is closed")
        try:
            self.conn.send_headers(stream_id, headers, end_stream=end_stream)
        except h2.exceptions.StreamClosedError:
            raise StreamGone("the stream is closed") from None
        self._flush()

    async def send_body(self, stream: H2Stream, data: bytes, end_stream: bool) -> None:
        """DATA frames within the peer's windows and frame size; waits for WINDOW_UPDATE."""
        view = memoryview(data)
        conn = self.conn
        while True:
            if stream.disconnected or self.closed:
                raise StreamGone("the stream is closed")
            try:
                room = self._room(stream.id)
                if len(view) <= room:
                    conn.send_data(stream.id, view, end_stream=end_stream)
                    break
                if room:
                    conn.send_data(stream.id, view[:room])
                    view = view[room:]
            except h2.exceptions.StreamClosedError:
                raise StreamGone("the stream is closed") from None
            if room:
                await self._drain()
            else:
                stream.window.clear()  # the window was read just now, with no await between
                self._flush()
                await self._wait_window(stream)
        await self._drain()

    def _room(self, stream_id: int) -> int:
        """Bytes of DATA that may go in one frame now: both windows and the frame size.

        A window can be negative: SETTINGS may shrink it below what is in flight.
        """
        conn = self.conn
        window = conn.local_flow_control_window(stream_id)
        return max(0, min(window, conn.max_outbound_frame_size))

    async def _drain(self) -> None:
        self._flush()
        try:
            await self.writer.drain()
        except ConnectionLost:
            raise StreamGone("the connection is gone") from None

    async def _wait_window(self, stream: H2Stream) -> None:
        try:
            async with asyncio.timeout(self.ctx.config.timeout_write):
                await stream.window.wait()
        except TimeoutError:
            self.reset(stream.id, ErrorCodes.CANCEL)  # the client kept its window shut too long
            stream.on_gone()
            raise StreamGone("the client's flow-control window stayed closed") from None

    def respond_now(self, stream_id: int, status: int, body: bytes) -> None:
        """A whole small response (errors, health) without waiting: the body only if it fits."""
        if self.closed:
            return
        conn = self.conn
        try:
            if len(body) > min(
                conn.local_flow_control_window(stream_id), conn.max_outbound_frame_size
            ):
                body = b""
            headers = [
                (b":status", str(status).encode("ascii")),
                *self._defaults.get(),
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode("ascii")),
            ]
            conn.send_headers(stream_id, headers, end_stream=not body)
            if body:
                conn.send_data(stream_id, body, end_stream=True)
        except h2.exceptions.StreamClosedError:
            pass
        self._flush()

    def consumed(self, stream_id: int, size: int) -> None:
        """The app took `size` flow-controlled bytes: h2 credits the windows when worthwhile."""
        if self.closed or not size:
            return
        self.conn.acknowledge_received_data(size, stream_id)
        self._flush()

    def reset(self, stream_id: int, code: ErrorCodes) -> None:
        if self.closed:
            return
        try:
            self.conn.reset_stream(stream_id, code)
        except h2.exceptions.StreamClosedError:
            pass
        self._flush()


async def serve_http2(handoff: HTTP2Connection, ctx: PoolContext) -> None:
    """Serve one HTTP/2 connection until it ends; the socket is closed in every case."""
    sock = AsyncSocket(handoff.conn.sock, asyncio.get_running_loop())
    try:
        await H2Server(handoff, ctx, sock).run()
    finally:
        sock.close()
