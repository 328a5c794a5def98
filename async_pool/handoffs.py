"""The typed handoffs: what a sync worker gives the AsyncPool, and then never touches again.

Each is frozen and slotted. Submitting one transfers ownership of its socket: the
sync worker has already dropped the connection from its idle poller and will not
read, write or close it. The pool closes it, or gives it back through
`PoolContext.resume` when an HTTP/1.1 exchange ends on a keep-alive connection.
"""

import socket
from dataclasses import dataclass
from typing import Any, Literal

from pounce_sync.http1 import Request, RequestParser


@dataclass(frozen=True, slots=True)
class ClientSocket:
    """A connected client socket: plain, or an `ssl.SSLSocket` whose handshake is done."""

    sock: socket.socket
    client: tuple[str, int] | None
    server: tuple[str, int] | None
    scheme: Literal["http", "https"]

    @property
    def tls(self) -> bool:
        return self.scheme == "https"


StreamReason = Literal["event-stream", "stream-path", "learned-path"]


@dataclass(frozen=True, slots=True)
class StreamingRequest:
    """An HTTP/1.1 request whose response is expected to stream; the app has not run yet.

    `parser` is the connection's codec state, positioned at the request body, with
    every byte already read from the socket in its buffer.
    """

    conn: ClientSocket
    request: Request
    parser: RequestParser
    scope: dict[str, Any]  # built by the sync worker: proxy headers and request ID applied
    keep_alive: bool  # False when the server is draining
    default_fields: bytes  # the worker's pre-encoded Server/Date/--header lines
    reason: StreamReason


@dataclass(frozen=True, slots=True)
class WebSocketUpgrade:
    """A GET with `Upgrade: websocket`; `buffered` holds any bytes that followed its head."""

    conn: ClientSocket
    request: Request
    buffered: bytes
    scope: dict[str, Any]  # the ASGI websocket scope


H2Via = Literal["prior-knowledge", "alpn", "h2c"]


@dataclass(frozen=True, slots=True)
class HTTP2Connection:
    """A connection that speaks HTTP/2 from here on.

    prior-knowledge: `buffered` starts with the client preface. alpn: the TLS
    handshake chose h2; `buffered` is whatever arrived after it. h2c: `upgrade` is
    the HTTP/1.1 request that becomes stream 1 (its body, if any, was empty) and
    `buffered` what followed it; the server still owes the 101 response.
    """

    conn: ClientSocket
    buffered: bytes
    via: H2Via
    upgrade: Request | None = None


@dataclass(frozen=True, slots=True)
class PendingWrite:
    """The end of a response that a slow reader had no room for; the app has finished.

    The pool writes `data` under the write timeout, then gives the connection back
    to the sync side with `buffered` (the next request's bytes) if `keep_alive`,
    or closes it. Handed over so that a client that reads slowly holds no worker.
    """

    conn: ClientSocket
    data: memoryview
    keep_alive: bool
    buffered: bytes


Handoff = StreamingRequest | WebSocketUpgrade | HTTP2Connection | PendingWrite
