"""What all workers of one server share: the frozen config and a few thread-safe objects."""

import errno
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pounce_sync.asgi.proxy import TrustedProxies
from pounce_sync.config import Config
from pounce_sync.http1 import ParserLimits
from pounce_sync.observe.access_log import AccessLog
from pounce_sync.observe.metrics import SharedMetrics

from .connection import Connection, TLSConnection
from .reactors import Reactors
from .streaming_paths import StreamingPaths

if TYPE_CHECKING:
    from async_pool import AsyncPool, ClientSocket

error_log = logging.getLogger("pounce_sync.error")

# Accept errors that mean "out of descriptors or memory": pause accepting instead of spinning.
_RESOURCE_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
ACCEPT_PAUSE = 0.1


@dataclass(frozen=True, slots=True)
class Listener:
    sock: socket.socket
    scheme: str
    server: tuple[str, int] | None  # scope["server"]; None for Unix sockets
    ssl_context: ssl.SSLContext | None = None  # set: TLS, and scheme is "https"
    owned_path: str | None = None  # a Unix socket file we created, removed at exit


class ConnectionCounter:
    """Open connections, exact under free-threading (a lock, not `+=` on a shared int)."""

    def __init__(self, limit: int | None) -> None:
        self._lock = threading.Lock()
        self._open = 0
        self._limit = limit

    def acquire(self) -> bool:
        """Count one more connection; False if that exceeds the limit."""
        with self._lock:
            self._open += 1
            return self._limit is None or self._open <= self._limit

    def release(self) -> None:
        with self._lock:
            self._open -= 1

    @property
    def open(self) -> int:
        return self._open


def _debug_enabled() -> bool:
    return error_log.isEnabledFor(logging.DEBUG)


def describe_peer(client: tuple[str, int] | None) -> str:
    return "from a Unix socket peer" if client is None else f"from {client[0]}:{client[1]}"


@dataclass(frozen=True, slots=True)
class ServeContext:
    config: Config
    app: Any
    reactors: Reactors  # one idle poller per worker seat
    listeners: dict[int, Listener]  # filled before workers start, read-only after
    lifespan_state: dict[str, Any] | None
    # Draining: accept nothing new, answer with `connection: close`, keep no idle connection.
    stopping: threading.Event = field(default_factory=threading.Event)
    # Told to stop and waiting out --drain-delay: still serving, health checks fail.
    unhealthy: threading.Event = field(default_factory=threading.Event)
    # Drained: the workers leave their loops.
    finished: threading.Event = field(default_factory=threading.Event)
    connections: ConnectionCounter = field(default_factory=lambda: ConnectionCounter(None))
    limits: ParserLimits = field(default_factory=ParserLimits)
    metrics: SharedMetrics | None = None  # for rendering; each worker writes its own cells
    trusted_proxies: TrustedProxies | None = None  # None: --no-proxy-headers
    # Called once per request when this worker process retires after a request limit.
    on_request: Callable[[], None] | None = None
    pool: "AsyncPool | None" = None  # streaming, WebSocket and HTTP/2 go here
    streaming_paths: StreamingPaths = field(default_factory=lambda: StreamingPaths(()))
    # detach(worker, cycle): the worker's response streams; True if a new thread took its
    # seat in the poller (SyncWorker._stream_started). None: workers never detach.
    detach: Callable[[Any, Any], bool] | None = None
    access_log: AccessLog = field(default_factory=lambda: AccessLog(Config(access_log=False)))
    # --log-level debug, asked once when serving starts: connection events (open, closed,
    # handed to the pool) are logged only then, behind this flag, never per request.
    log_connections: bool = field(default_factory=_debug_enabled)
    _paused: list[tuple[float, Listener]] = field(default_factory=list)
    _paused_lock: threading.Lock = field(default_factory=threading.Lock)
    # Accepts paused since descriptors last ran out: the warning is logged at the first
    # only, and one line when accepting works again, never one line per attempt.
    _pauses: list[int] = field(default_factory=lambda: [0])  # one cell: the class is frozen

    def open_connection(self, sock: socket.socket, addr: Any, listener: Listener) -> Connection:
        client = (addr[0], addr[1]) if isinstance(addr, tuple) else None
        if client is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        context = listener.ssl_context
        if context is None:
            conn = Connection(sock, client, listener.server, listener.scheme, self.limits)
        else:
            # The handshake is stepped later by workers, without waiting (TLSConnection).
            sock.setblocking(False)
            tls = context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
            deadline = time.monotonic() + self.config.timeout_tls_handshake
            conn = TLSConnection(
                tls, client, listener.server, listener.scheme, self.limits, deadline
            )
        if self.log_connections:
            self.log_connection(conn, f"open ({listener.scheme})")
        return self._counted(conn)

    def adopt(self, client: "ClientSocket", buffered: bytes) -> Connection:
        """A keep-alive connection back from the AsyncPool, as if it had just been served."""
        sock = client.sock
        if client.tls:
            conn: Connection = TLSConnection(
                sock,  # type: ignore[arg-type]
                client.client,
                client.server,
                client.scheme,
                self.limits,
                0.0,
            )
            conn.handshake_deadline = None
        else:
            sock.setblocking(True)
            conn = Connection(sock, client.client, client.server, client.scheme, self.limits)
        conn.requests = 1
        if buffered:
            conn.parser.feed(buffered)
        if self.log_connections:
            self.log_connection(conn, "back from the AsyncPool")
        return self._counted(conn)

    def close_connection(self, conn: Connection, why: str) -> None:
        """Closed by the server, and no longer counted against --limit-concurrency."""
        conn.close()
        self.connections.release()
        if self.log_connections:
            self.log_connection(conn, f"closed {why}")

    def log_connection(self, conn: Connection, event: str) -> None:
        """At debug only: callers test `log_connections` first, so nothing else pays."""
        error_log.debug("Connection %s %s", describe_peer(conn.client), event)

    def _counted(self, conn: Connection) -> Connection:
        """Timeouts set, and counted against --limit-concurrency."""
        conn.set_timeouts(self.config.timeout_body_read, self.config.timeout_write)
        conn.over_limit = not self.connections.acquire()
        return conn

    def pause_accepting(self, listener: Listener, exc: OSError) -> None:
        """Out of descriptors: stop accepting on `listener` briefly rather than spin or die."""
        if exc.errno not in _RESOURCE_ERRNOS:
            return  # the client gave up before we accepted it; nothing to pause
        self.reactors.remove_listener(listener.sock)
        with self._paused_lock:
            self._paused.append((time.monotonic() + ACCEPT_PAUSE, listener))
            self._pauses[0] += 1
            first = self._pauses[0] == 1
        if first:
            error_log.warning(
                "accept() failed (%s); accepting pauses %.1fs at a time until it works again",
                exc,
                ACCEPT_PAUSE,
            )

    def accepted(self) -> None:
        """An accept worked: if descriptors had run out, say once that they no longer do."""
        if not self._pauses[0]:  # the common case: no lock
            return
        with self._paused_lock:
            pauses, self._pauses[0] = self._pauses[0], 0
        if pauses:
            error_log.warning("accepting again, after %d paused attempts", pauses)

    def resume_paused_listeners(self, now: float) -> None:
        with self._paused_lock:
            due = [item for item in self._paused if item[0] <= now]
            self._paused[:] = [item for item in self._paused if item[0] > now]
        for _, listener in due:
            if not self.stopping.is_set():
                self.reactors.add_listener(listener.sock)
