"""ASGI `receive` / `send` for one request on a blocking connection.

The body is read from the socket only when the app calls `receive()`, so an
upload is never buffered whole. A streaming response (`more_body=True`) is
written chunk by chunk by this same thread (the app is never started twice),
after `on_stream` lets the worker give up its seat; a response's last message is
written without waiting, and what a slow reader has no room for is left in
`unsent` for the worker to hand to the AsyncPool.
"""

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from pounce_sync.asgi.disconnect import ClientDisconnected, disconnect_message
from pounce_sync.asgi.exchange import (
    AWAIT_DISCONNECT,
    READ_BODY,
    HTTPExchange,
    KeepsResponseHeaders,
)
from pounce_sync.http1 import (
    CONTINUE_HEAD,
    NEED_DATA,
    Data,
    EndOfMessage,
    LocalProtocolError,
    ProtocolError,
    Request,
    ResponseWriter,
    error_response,
)

from .connection import Connection


class HTTPCycle(HTTPExchange):
    """The sync worker's shell over `HTTPExchange`: blocking reads, writes that may not wait."""

    __slots__ = (
        "_disconnect_waiter",
        "_pending",
        "conn",
        "on_stream",
        "stopping",
        "streamed",
        "unsent",
        "writer",
    )

    def __init__(
        self,
        conn: Connection,
        request: Request,
        writer: ResponseWriter,
        max_body_size: int,
        stopping: threading.Event,
        on_stream: "Callable[[HTTPCycle], None] | None" = None,
    ) -> None:
        HTTPExchange.__init__(self, request, max_body_size)
        self.conn = conn
        self.stopping = stopping
        self.writer = writer
        self.streamed = False  # the body came in several messages: the path is learned
        # Called once, at the first body message with more_body=True.
        self.on_stream = on_stream
        # The end of the response that the client had no room for yet (see _send_body).
        self.unsent: memoryview | None = None
        self._pending: Any = None
        self._disconnect_waiter: asyncio.Future[None] | None = None

    # -- receive ---------------------------------------------------------------
    async def receive(self) -> dict[str, Any]:
        step = self.next_receive()
        if step is READ_BODY:
            return self._read_body()
        if step is AWAIT_DISCONNECT:
            return await self._wait_for_disconnect()
        return disconnect_message()

    def _read_body(self) -> dict[str, Any]:
        try:
            event = self._next_body_event()
        except ProtocolError as exc:
            return self._abort(exc.status)
        except TimeoutError:
            return self._abort(408)
        except OSError:
            return self._abort(None)
        if type(event) is EndOfMessage:
            return self.request_message(b"", False)
        data = event.data
        if not self.within_limit(len(data)):
            return self._abort(413)
        return self.request_message(data, not self._peek_end())

    def _next_body_event(self) -> Data | EndOfMessage:
        pending, self._pending = self._pending, None
        if isinstance(pending, ProtocolError):
            raise pending
        if pending is not None:
            return pending
        parser = self.conn.parser
        while True:
            event = parser.next_event()
            if event is not NEED_DATA:
                return event  # type: ignore[return-value]
            if self.continue_due():
                self.conn.send(CONTINUE_HEAD)
            self.conn.read_blocking()

    def _peek_end(self) -> bool:
        """Look at already-buffered bytes so a body's last piece says more_body=False."""
        try:
            event = self.conn.parser.next_event()
        except ProtocolError as exc:
            self._pending = exc
            return False
        if type(event) is EndOfMessage:
            return True
        if event is not NEED_DATA:
            self._pending = event
        return False

    def _abort(self, status: int | None) -> dict[str, Any]:
        """The body cannot be read on: answer `status` if we still can, then disconnect."""
        if self.abort(status):
            self.conn.send_nowait(error_response(status))  # type: ignore[arg-type]
        return disconnect_message()

    async def _wait_for_disconnect(self) -> dict[str, Any]:
        """Body read, response not done: suspend until the client goes away.

        A client already gone is said at once, without suspending: an app that polls with
        a wait cancelled before it starts (Starlette's `request.is_disconnected()`) never
        lets the loop run the reader below, so it would never learn of it otherwise.
        """
        if self.conn.input_says_gone():
            self.disconnected = True
            return disconnect_message()
        loop = asyncio.get_running_loop()
        waiter = self._disconnect_waiter = loop.create_future()
        fd = self.conn.fd

        def on_readable() -> None:
            gone = self.conn.input_says_gone()
            if gone is None:
                return
            loop.remove_reader(fd)  # either way there is nothing more to learn here
            if gone and not waiter.done():
                self.disconnected = True
                waiter.set_result(None)

        loop.add_reader(fd, on_readable)
        try:
            await waiter
        finally:
            loop.remove_reader(fd)
            self._disconnect_waiter = None
        return disconnect_message()

    # -- send ------------------------------------------------------------------
    async def send(self, message: dict[str, Any]) -> None:
        if self.disconnected:
            raise ClientDisconnected("the client disconnected")
        kind = message["type"]
        if kind == "http.response.start":
            status = self.response_start(message)
            self.writer.start(status, message.get("headers", ()))
            # expect_continue first: the property costs a call on every response otherwise.
            if (self.request.expect_continue and self.continue_pending) or self.stopping.is_set():
                self.writer.close_after()  # the client may never send the body we skipped
        elif kind == "http.response.body":
            self._send_body(message)
        else:
            self.unexpected(kind)

    def _send_body(self, message: dict[str, Any]) -> None:
        body, more_body = self.response_body(message)
        data = self.writer.body(body, more_body)
        if more_body and not self.streamed and not self.writer.length_reached:
            self.streamed = True
            if self.on_stream is not None:
                self.on_stream(self)
        if data:
            try:
                if more_body:
                    self.conn.send(data)
                else:
                    # The app is done: what a slow reader has no room for is left to the
                    # worker to hand on (SyncWorker), rather than waited for here.
                    self.unsent = self.conn.send_what_fits(data)
            except ClientDisconnected:
                self.disconnected = True
                raise
        waiter = self._disconnect_waiter
        if not more_body and waiter is not None and not waiter.done():
            waiter.set_result(None)

    def send_file(self, fd: int, offset: int, count: int) -> None:
        """`count` bytes of file `fd` from `offset` as the next part of the body, with
        sendfile(2) (only where `conn.zero_copy`); the end of the body follows as a
        message. Fewer bytes in the file than `count` cut the response off."""
        self.response_body({"more_body": True})  # the order rules, as for a message
        writer = self.writer
        head = writer.body(b"", True)  # the head, the first time: framing for a stream
        frame = writer.file_frame(count)
        try:
            if frame is None:  # HEAD, 204, 304: no body on the wire
                self.conn.send(head)
                return
            before, after = frame
            self.conn.send(head + before)
            sent = self.conn.sendfile(fd, offset, count)
            if sent < count:
                raise LocalProtocolError(f"the file ended after {sent} of {count} bytes")
            if after:
                self.conn.send(after)
        except ClientDisconnected:
            self.disconnected = True
            raise

    # -- after the app returned -------------------------------------------------
    def drain_body(self) -> bool:
        """Discard what is left of the request body if it is already here; False if not."""
        if self.request.expect_continue and self.continue_pending:
            return False  # the client may still be waiting to send it
        if self._pending is not None:
            return False
        if self.body_done:
            return True  # the parser already gave EndOfMessage
        parser = self.conn.parser
        while True:
            try:
                event = parser.next_event()
            except ProtocolError:
                return False
            if event is NEED_DATA:
                return False
            if type(event) is not Data:
                return True


class HeaderKeepingCycle(KeepsResponseHeaders, HTTPCycle):
    """An HTTPCycle for an access format that shows response headers (`{name}o`)."""
