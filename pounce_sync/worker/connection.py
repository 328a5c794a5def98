"""One client connection on the sync path: a blocking socket and its request parser.

Sockets stay in blocking mode with kernel timeouts (SO_RCVTIMEO / SO_SNDTIMEO)
instead of Python-level timeouts: a Python timeout makes every recv() a poll()
plus a recv(), a kernel timeout costs nothing until it fires. TLS connections
are the exception, and say why (TLSConnection).
"""

import contextlib
import logging
import os
import select
import socket
import ssl
import struct
from typing import Protocol

from pounce_sync.asgi.disconnect import ClientDisconnected
from pounce_sync.http1 import ParserLimits, RequestParser


class Home(Protocol):
    """The idle poller whose epoll set holds a connection (IdlePoller; typed here, as the
    poller imports this module)."""

    def park(
        self,
        conn: "Connection",
        deadline: float,
        expire_status: int | None = None,
        *,
        writable: bool = False,
    ) -> None: ...

    def forget(self, conn: "Connection") -> None: ...


RECV_SIZE = 65536
error_log = logging.getLogger("pounce_sync.error")


def _timeval(seconds: float) -> bytes:
    whole = int(seconds)
    return struct.pack("ll", whole, int((seconds - whole) * 1_000_000))


class Connection:
    __slots__ = (
        "alpn_h2",
        "client",
        "fd",
        "handshake_deadline",
        "head_deadline",
        "home",
        "over_limit",
        "parser",
        "partial_record",
        "registered",
        "requests",
        "scheme",
        "server",
        "sock",
        "wants_write",
    )

    # Whether `sendfile` can be used: bytes go to the socket as they are.
    zero_copy = True

    def __init__(
        self,
        sock: socket.socket,
        client: tuple[str, int] | None,
        server: tuple[str, int] | None,
        scheme: str,
        limits: ParserLimits,
    ) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.client = client
        self.server = server
        self.scheme = scheme
        self.parser = RequestParser(limits)
        self.registered = 0  # the events registered in its home's epoll set; 0: in none
        self.home: Home | None = None  # the poller whose epoll set holds it
        self.head_deadline: float | None = None
        self.over_limit = False
        self.requests = 0
        # TLS only (see TLSConnection); plain connections keep these values.
        self.handshake_deadline: float | None = None
        self.wants_write = False
        self.partial_record = False
        self.alpn_h2 = False  # the TLS handshake chose HTTP/2

    def set_timeouts(self, read: float, write: float) -> None:
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _timeval(read))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _timeval(write))

    def read_ready(self) -> bool:
        """Read what the kernel already has, without waiting. False if nothing was there.

        The poller can report a connection whose descriptor was meanwhile closed and
        reused; reading without waiting makes such a stale wake-up harmless.
        """
        try:
            data = self.sock.recv(RECV_SIZE, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return False
        except OSError:
            data = b""
        self.parser.feed(data)
        return True

    def read_blocking(self) -> None:
        """Read at least one byte, waiting up to the socket's read timeout."""
        try:
            data = self.sock.recv(RECV_SIZE)
        except BlockingIOError as exc:  # SO_RCVTIMEO fired
            raise TimeoutError("read timed out") from exc
        self.parser.feed(data)

    def send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except BlockingIOError as exc:  # SO_SNDTIMEO fired: the client stopped reading
            raise ClientDisconnected("write timed out") from exc
        except OSError as exc:
            raise ClientDisconnected(str(exc)) from exc

    def sendfile(self, fd: int, offset: int, count: int) -> int:
        """Up to `count` bytes of file `fd` from `offset`, copied by the kernel (sendfile(2)):
        the bytes never enter Python. How many went: fewer if the file ended first.

        Own loop rather than socket.sendfile, which waits in select() without a deadline
        when SO_SNDTIMEO fires; here that is the write timeout, as for `send`.
        """
        sent = 0
        try:
            while sent < count:
                done = os.sendfile(self.fd, fd, offset + sent, count - sent)
                if not done:
                    break  # the end of the file
                sent += done
        except BlockingIOError as exc:
            raise ClientDisconnected("write timed out") from exc
        except OSError as exc:
            raise ClientDisconnected(str(exc)) from exc
        return sent

    def send_what_fits(self, data: bytes) -> memoryview | None:
        """Write what the socket has room for now; the rest, or None if all of it went.

        A response's last bytes go out this way: a client that reads slowly leaves a
        remainder, which the AsyncPool writes, instead of holding this worker.
        """
        view = None
        try:
            sent = self.sock.send(data, socket.MSG_DONTWAIT)
            if sent == len(data):
                return None
            view = memoryview(data)[sent:]
            while view:
                view = view[self.sock.send(view, socket.MSG_DONTWAIT) :]
        except BlockingIOError:
            return memoryview(data) if view is None else view
        except OSError as exc:
            raise ClientDisconnected(str(exc)) from exc
        return None

    def input_says_gone(self) -> bool | None:
        """While a response is pending: True if the client left, False if it sent more
        (a pipelined request, left in the socket), None if nothing is decided yet."""
        try:
            data = self.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return None
        except OSError:
            return True
        return not data

    def send_nowait(self, data: bytes) -> None:
        """Best effort, for error responses on connections about to close."""
        with contextlib.suppress(OSError):
            self.sock.send(data, socket.MSG_DONTWAIT)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


class ServerSSLSocket(ssl.SSLSocket):
    """An SSLSocket that answers readiness peeks (`MSG_PEEK`) from the raw transport.

    The idle poller's reaper and the ASGI disconnect check peek with
    `MSG_PEEK | MSG_DONTWAIT` to learn whether bytes or EOF are waiting; a plain
    SSLSocket refuses any flags. On a TLS connection what waits is records, so the
    peek looks at those, consuming nothing. Every other call is the SSLSocket's own.
    """

    def recv(self, buflen: int = 1024, flags: int = 0) -> bytes:
        if flags & socket.MSG_PEEK:
            return socket.socket.recv(self, buflen, flags)
        return super().recv(buflen, flags)

    def shutdown(self, how: int) -> None:
        """Shut the transport down, keeping the SSL object.

        Shutdown aborts a stuck request from another thread; SSLSocket.shutdown would
        drop the SSL object under the worker still using it.
        """
        socket.socket.shutdown(self, how)


def _wait(fd: int, events: int, timeout: float) -> bool:
    """Wait up to `timeout` seconds for `events` on `fd`; False if they did not come."""
    poller = select.poll()
    poller.register(fd, events)
    return bool(poller.poll(timeout * 1000))


class TLSConnection(Connection):
    """A TLS connection: a non-blocking SSLSocket whose waits are poll() with our timeouts.

    Kernel timeouts cannot bound TLS reads: when SO_RCVTIMEO interrupts a blocking
    SSL_read, CPython's ssl module retries it, for ever. So the socket is non-blocking
    from accept on. The handshake is stepped without waiting (the worker parks the
    connection in between, see `read_ready`); reads and writes try first and wait in
    poll() only when OpenSSL says it must, under the same read and write timeouts
    that plain connections get from the kernel.

    OpenSSL can hold decrypted bytes that epoll never reports (`pending()`). Every
    read here takes all of them into the parser, so a parked TLS connection never
    has any, and peeking at the socket tells the whole truth about waiting input.
    """

    __slots__ = ("_read_timeout", "_write_timeout")

    zero_copy = False  # OpenSSL encrypts in user space: a file's bytes pass through it

    def __init__(
        self,
        sock: ssl.SSLSocket,
        client: tuple[str, int] | None,
        server: tuple[str, int] | None,
        scheme: str,
        limits: ParserLimits,
        handshake_deadline: float,
    ) -> None:
        super().__init__(sock, client, server, scheme, limits)
        self.handshake_deadline = handshake_deadline  # None once the handshake is done
        self._read_timeout = self._write_timeout = 30.0

    def set_timeouts(self, read: float, write: float) -> None:
        self._read_timeout = read
        self._write_timeout = write

    def read_ready(self) -> bool:
        """Step the handshake, then read a complete record, all without waiting.

        False if the connection must wait; `wants_write` then says for what. A failed
        handshake or a broken record ends the connection like EOF: silently.
        """
        handshaking = self.handshake_deadline is not None
        self.wants_write = False
        try:
            if handshaking:
                self.sock.do_handshake()  # type: ignore[attr-defined]
                self.handshake_deadline = None
                self.alpn_h2 = self.sock.selected_alpn_protocol() == "h2"  # type: ignore[attr-defined]
            data = self._recv()
        except ssl.SSLWantReadError:
            # Part of a record arrived (or nothing yet, right after the handshake): the
            # worker then parks it as a request head on its way, under the head deadline.
            self.partial_record = not handshaking
            return False
        except ssl.SSLWantWriteError:
            self.wants_write = True
            return False
        except OSError as exc:  # ssl.SSLError included: a bad handshake or record, a reset
            if handshaking:
                error_log.debug("TLS handshake with %s failed: %s", self.client, exc)
            data = b""
        self.partial_record = False
        self.parser.feed(data)
        return True

    def read_blocking(self) -> None:
        while True:
            try:
                data = self._recv()
                break
            except ssl.SSLWantReadError:
                ready = _wait(self.fd, select.POLLIN, self._read_timeout)
            except ssl.SSLWantWriteError:
                ready = _wait(self.fd, select.POLLOUT, self._read_timeout)
            if not ready:
                raise TimeoutError("read timed out")
        self.partial_record = False
        self.parser.feed(data)

    def input_says_gone(self) -> bool | None:
        """Records are decrypted, not peeked: a close_notify alert means the client left,
        while a record of data is a pipelined request, kept in the parser."""
        try:
            data = self._recv()
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return None
        except OSError:
            return True
        if not data:
            return True
        self.parser.feed(data)
        return False

    def _recv(self) -> bytes:
        """One record's bytes, and whatever else OpenSSL has decrypted already."""
        sock = self.sock
        data = sock.recv(RECV_SIZE)
        while data and sock.pending():  # type: ignore[attr-defined]
            data += sock.recv(RECV_SIZE)
        return data

    def send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[self.sock.send(view) :]
                continue
            except ssl.SSLWantWriteError:
                ready = _wait(self.fd, select.POLLOUT, self._write_timeout)
            except ssl.SSLWantReadError:
                ready = _wait(self.fd, select.POLLIN, self._write_timeout)
            except OSError as exc:
                raise ClientDisconnected(str(exc)) from exc
            if not ready:
                raise ClientDisconnected("write timed out")

    def send_what_fits(self, data: bytes) -> memoryview | None:
        """As for plain connections. OpenSSL wants a write it refused retried with the
        same bytes: the remainder starts where the refused write did."""
        view = memoryview(data)
        while view:
            try:
                view = view[self.sock.send(view) :]
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                return view
            except OSError as exc:
                raise ClientDisconnected(str(exc)) from exc
        return None

    def send_nowait(self, data: bytes) -> None:
        with contextlib.suppress(OSError):
            self.sock.send(data)  # the socket never blocks
