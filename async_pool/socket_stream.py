"""Awaitable reads and writes on a socket a sync worker handed over, plain or TLS.

asyncio's streams cannot adopt an `ssl.SSLSocket` whose handshake is already done
(and re-wrapping would need a second handshake), so both kinds are driven the
same way: non-blocking calls, and the loop's reader/writer callbacks to wait.
OpenSSL may hold decrypted bytes that epoll never reports; every read takes them
all (`pending()`), so waiting for readability is always safe.
"""

import asyncio
import contextlib
import socket
import ssl

RECV_SIZE = 65536


class ConnectionLost(OSError):
    """The peer went away, or stopped reading, while we were writing."""


class AsyncSocket:
    """One owner at a time; one reader task and one writer task may use it concurrently."""

    def __init__(self, sock: socket.socket, loop: asyncio.AbstractEventLoop) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.fd = sock.fileno()
        self._loop = loop
        self._tls = isinstance(sock, ssl.SSLSocket)
        self._read_waiters: list[asyncio.Future[None]] = []
        self._write_waiters: list[asyncio.Future[None]] = []
        self.closed = False
        self._detached = False

    async def recv(self, size: int = RECV_SIZE) -> bytes:
        """Some bytes; b"" at EOF, after a reset, or on a broken TLS record."""
        sock = self.sock
        while not self.closed:
            try:
                data = sock.recv(size)
                if self._tls:
                    while data and sock.pending():  # type: ignore[attr-defined]
                        data += sock.recv(size)
                return data
            except (BlockingIOError, ssl.SSLWantReadError):
                await self._wait(writable=False)
            except ssl.SSLWantWriteError:
                await self._wait(writable=True)
            except OSError:
                return b""
        return b""

    async def send_all(self, data: bytes | memoryview, timeout: float | None = None) -> None:
        """Write everything, waiting while the peer's window is full (backpressure).

        `timeout` bounds each wait for the peer to read (TimeoutError). The common
        case, a socket with room, costs no timer and no task.
        """
        view = memoryview(data)
        sock = self.sock
        while view:
            if self.closed:
                raise ConnectionLost("connection closed")
            try:
                view = view[sock.send(view) :]
                continue
            except (BlockingIOError, ssl.SSLWantWriteError):
                waiter = self._wait(writable=True)
            except ssl.SSLWantReadError:
                waiter = self._wait(writable=False)
            except OSError as exc:
                raise ConnectionLost(str(exc)) from exc
            if timeout is None:
                await waiter
            else:
                await asyncio.wait_for(waiter, timeout)

    def _wait(self, *, writable: bool) -> "asyncio.Future[None]":
        waiters = self._write_waiters if writable else self._read_waiters
        future = self._loop.create_future()
        if not waiters:
            if writable:
                self._loop.add_writer(self.fd, self._wake, writable)
            else:
                self._loop.add_reader(self.fd, self._wake, writable)
        waiters.append(future)
        return future

    def _wake(self, writable: bool) -> None:
        if writable:
            waiters, self._write_waiters = self._write_waiters, []
            self._loop.remove_writer(self.fd)
        else:
            waiters, self._read_waiters = self._read_waiters, []
            self._loop.remove_reader(self.fd)
        for future in waiters:
            if not future.done():
                future.set_result(None)

    def _forget(self) -> None:
        """Stop watching the descriptor; wake any waiter so it sees `closed`."""
        if self._read_waiters:
            self._wake(False)
        if self._write_waiters:
            self._wake(True)

    def detach(self) -> socket.socket:
        """Give the socket up (back to the sync side); this object is unusable after."""
        self.closed = self._detached = True
        self._forget()
        return self.sock

    def close(self) -> None:
        if self._detached or self.sock.fileno() < 0:
            return
        self.closed = True
        self._forget()
        with contextlib.suppress(OSError):
            self.sock.close()
