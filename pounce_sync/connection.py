"""One client connection on the sync path: a blocking socket and its request parser.

Sockets stay in blocking mode with kernel timeouts (SO_RCVTIMEO / SO_SNDTIMEO)
instead of Python-level timeouts: a Python timeout makes every recv() a poll()
plus a recv(), a kernel timeout costs nothing until it fires.
"""

import contextlib
import socket
import struct

from .http1 import ParserLimits, RequestParser

RECV_SIZE = 65536


def _timeval(seconds: float) -> bytes:
    whole = int(seconds)
    return struct.pack("ll", whole, int((seconds - whole) * 1_000_000))


class ClientDisconnected(OSError):
    """The client went away (or stopped reading) while the server was writing."""


class Connection:
    __slots__ = (
        "client",
        "fd",
        "head_deadline",
        "over_limit",
        "parser",
        "registered",
        "requests",
        "scheme",
        "server",
        "sock",
    )

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
        self.registered = False  # known to the idle poller's epoll set
        self.head_deadline: float | None = None
        self.over_limit = False
        self.requests = 0

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

    def send_nowait(self, data: bytes) -> None:
        """Best effort, for error responses on connections about to close."""
        with contextlib.suppress(OSError):
            self.sock.send(data, socket.MSG_DONTWAIT)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
