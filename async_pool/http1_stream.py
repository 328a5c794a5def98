"""Streaming HTTP/1.1 on the pool: the app runs here once, its response streams with backpressure.

The sync worker decided before the app ran that this response will stream
(server-sent events, a configured prefix, or a path already seen streaming), so
the exchange lives on an event loop instead of holding a worker thread. When it
ends on a keep-alive connection the socket goes back to the sync side.
"""

import asyncio
import logging
import time
from typing import Any

from pounce_sync.asgi.disconnect import ClientDisconnected, disconnect_message
from pounce_sync.asgi.exchange import (
    AWAIT_DISCONNECT,
    COMPLETE,
    NOT_STARTED,
    READ_BODY,
    HTTPExchange,
    KeepsResponseHeaders,
    log_app_error,
)
from pounce_sync.http1 import (
    CONTINUE_HEAD,
    NEED_DATA,
    BodyFraming,
    Data,
    EndOfMessage,
    ProtocolError,
    ResponseWriter,
    error_response,
)

from .context import PoolContext
from .handoffs import StreamingRequest
from .socket_stream import AsyncSocket, ConnectionLost

error_log = logging.getLogger("pounce_sync.error")

# Pipelined bytes read while watching for a disconnect: past this, stop reading.
_MAX_READ_AHEAD = 65536


class StreamingExchange(HTTPExchange):
    """The pool's HTTP/1.1 shell over `HTTPExchange`: ASGI receive/send over an AsyncSocket."""

    def __init__(self, stream: AsyncSocket, handoff: StreamingRequest, ctx: PoolContext) -> None:
        super().__init__(handoff.request, ctx.config.max_body_size)
        self.stream = stream
        self.handoff = handoff
        self.ctx = ctx
        self.parser = handoff.parser
        keep_alive = handoff.keep_alive and not ctx.shutdown.is_set()
        self.writer = ResponseWriter(handoff.request, keep_alive, handoff.default_fields)
        self.eom_seen = False  # the parser has given the body's EndOfMessage
        self.gone = asyncio.Event()  # set with `disconnected`: the client closed, reset or left
        # Set when the response is complete: a receive() waiting then says http.disconnect.
        self.responded = asyncio.Event()
        self._watcher: asyncio.Task[None] | None = None

    def _lost(self) -> None:
        self.disconnected = True
        self.gone.set()

    # -- receive ---------------------------------------------------------------
    async def receive(self) -> dict[str, Any]:
        step = self.next_receive()
        if step is READ_BODY:
            if self.eom_seen:  # a body-less request, finished early by `send`
                return self.request_message(b"", False)
            return await self._read_body()
        if step is AWAIT_DISCONNECT:
            self._watch()
            events = (self.ctx.shutdown, self.gone, self.responded)
            waits = [asyncio.ensure_future(event.wait()) for event in events]
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for wait in waits:
                    wait.cancel()
        return disconnect_message()

    async def _read_body(self) -> dict[str, Any]:
        try:
            event = await self._next_body_event()
        except ProtocolError as exc:
            return await self._abort(exc.status)
        except TimeoutError:
            return await self._abort(408)
        if event is None:
            return await self._abort(None)
        if type(event) is EndOfMessage:
            self.eom_seen = True
            return self.request_message(b"", False)
        data = event.data
        if not self.within_limit(len(data)):
            return await self._abort(413)
        return self.request_message(data, True)

    async def _next_body_event(self) -> Data | EndOfMessage | None:
        """The next body event; None if the client went away first."""
        while True:
            event = self.parser.next_event()
            if event is not NEED_DATA:
                return event  # type: ignore[return-value]
            if self.continue_due():
                await self.stream.send_all(CONTINUE_HEAD)
            timeout = self.ctx.config.timeout_body_read
            data = await asyncio.wait_for(self.stream.recv(), timeout)
            if not data:
                return None
            self.parser.feed(data)

    async def _abort(self, status: int | None) -> dict[str, Any]:
        if self.abort(status):
            try:
                await self.stream.send_all(error_response(status))  # type: ignore[arg-type]
            except ConnectionLost:
                pass
        self.gone.set()
        return disconnect_message()

    def _finish_empty_body(self) -> None:
        """A body-less request has its EndOfMessage waiting: take it, so watching can start."""
        if not self.eom_seen and self.request.framing is BodyFraming.NONE:
            self.parser.next_event()
            self.eom_seen = True

    def _watch(self) -> None:
        """Once the body is read, notice a departing client while the response streams."""
        if self._watcher is None and self.eom_seen:
            self._watcher = asyncio.ensure_future(self._watch_for_eof())

    async def _watch_for_eof(self) -> None:
        while len(self.parser.buffered) < _MAX_READ_AHEAD:
            data = await self.stream.recv()
            if not data:
                self._lost()
                return
            self.parser.feed(data)  # a pipelined request: kept for the sync side

    # -- send ------------------------------------------------------------------
    async def send(self, message: dict[str, Any]) -> None:
        if self.disconnected:
            raise ClientDisconnected("the client disconnected")
        kind = message["type"]
        if kind == "http.response.start":
            status = self.response_start(message)
            self.writer.start(status, message.get("headers", ()))
            self._finish_empty_body()
            # A client waiting for 100 Continue may never send the body nobody read.
            if self.ctx.shutdown.is_set() or (self.continue_pending and not self.eom_seen):
                self.writer.close_after()
        elif kind == "http.response.body":
            await self._send_body(message)
            if self.response_complete:
                self.responded.set()
        else:
            self.unexpected(kind)

    async def _send_body(self, message: dict[str, Any]) -> None:
        body, more_body = self.response_body(message)
        data = self.writer.body(body, more_body)
        self._watch()
        if not data:
            return
        try:
            await self.stream.send_all(data, self.ctx.config.timeout_write)
        except (ConnectionLost, TimeoutError) as exc:
            self._lost()
            raise ClientDisconnected(str(exc) or "write timed out") from None

    # -- the whole exchange ----------------------------------------------------
    async def run(self) -> bool:
        """Call the app once; True if the connection can carry another request."""
        try:
            await self.ctx.app(self.handoff.scope, self.receive, self.send)
        except ClientDisconnected:
            return False
        except Exception as exc:
            log_app_error(exc)
            await self._fail()
            return False
        finally:
            await self._stop_watching()
        outcome = self.app_returned()
        outcome.log()
        if outcome is NOT_STARTED:
            await self._fail()
        if outcome is not COMPLETE:
            return False
        return self.writer.keep_alive and self._body_finished()

    async def _fail(self) -> None:
        if self.fail():
            try:
                await self.stream.send_all(error_response(500))
            except ConnectionLost:
                pass

    async def _stop_watching(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.cancel()
            try:
                await watcher
            except asyncio.CancelledError:
                pass

    def _body_finished(self) -> bool:
        """The request body is consumed, so the next request starts at the parser's buffer."""
        while not self.eom_seen:
            try:
                event = self.parser.next_event()
            except ProtocolError:
                return False
            if event is NEED_DATA:
                return False
            self.eom_seen = type(event) is EndOfMessage
        self.parser.start_next_cycle()
        return True


class HeaderKeepingStreamingExchange(KeepsResponseHeaders, StreamingExchange):
    """A StreamingExchange for an access format that shows response headers (`{name}o`)."""


async def serve_streaming(handoff: StreamingRequest, ctx: PoolContext) -> None:
    stream = AsyncSocket(handoff.conn.sock, asyncio.get_running_loop())
    keeps = ctx.access_log.keeps_response_headers
    exchange = (HeaderKeepingStreamingExchange if keeps else StreamingExchange)(
        stream, handoff, ctx
    )
    started = time.perf_counter()
    keep_alive = False
    try:
        keep_alive = await exchange.run()
    finally:
        ctx.give_back_or_close(stream, handoff.conn, handoff.parser.buffered, keep_alive)
        access = ctx.access_log
        if access.enabled:
            scope = handoff.scope
            request_id = scope.get("extensions", {}).get("request_id", {}).get("id")
            access.log(
                scope.get("client"),
                exchange.request,
                exchange.status,
                exchange.writer.body_bytes,
                started,
                request_id.encode("ascii") if request_id else None,
                exchange.response_headers,
            )
