"""What every handler on one event-loop thread of the pool shares."""

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from pounce_sync.asgi.exchange import ResponseHeaders
from pounce_sync.asgi.proxy import TrustedProxies
from pounce_sync.config import Config
from pounce_sync.http1 import Request
from pounce_sync.http1.default_fields import DefaultHeaders

from .handoffs import ClientSocket
from .socket_stream import AsyncSocket
from .stats import PoolStats

# Give a keep-alive HTTP/1.1 connection back to the sync side, with the bytes of the
# next request(s) that were already read. Thread-safe; called on a loop thread.
Resume = Callable[[ClientSocket, bytes], None]


class AccessLogger(Protocol):
    """The server's access log (observe.access_log.AccessLog), handed to the pool."""

    enabled: bool
    keeps_response_headers: bool  # the format shows one: the shells must keep the app's

    def log(
        self,
        client: tuple[str, int] | None,
        request: Request,
        status: int,
        body_bytes: int,
        started: float,
        request_id: bytes | None,
        response_headers: ResponseHeaders = (),
    ) -> None: ...

    def log_websocket(
        self, client: tuple[str, int] | None, request: Request, status: int, started: float
    ) -> None: ...


class _NoAccessLog:
    enabled = False
    keeps_response_headers = False

    def log(self, *args: Any) -> None:
        pass

    def log_websocket(self, *args: Any) -> None:
        pass


NO_ACCESS_LOG: AccessLogger = _NoAccessLog()


@dataclass(frozen=True, slots=True)
class PoolContext:
    app: Any  # the ASGI application
    config: Config
    state: dict[str, Any] | None  # lifespan state; each scope gets a shallow copy
    trusted_proxies: TrustedProxies | None
    resume: Resume | None  # None: close keep-alive connections instead
    default_headers: DefaultHeaders  # owned by this loop thread
    # Set when the pool drains: WebSockets close with 1001, HTTP/2 sends GOAWAY,
    # streaming responses get `connection: close`. Owned by this loop.
    shutdown: asyncio.Event
    stats: PoolStats
    access_log: AccessLogger
    # Set by the server from the first shutdown signal (--drain-delay): health says 503.
    unhealthy: threading.Event

    def give_back_or_close(
        self, stream: AsyncSocket, conn: ClientSocket, buffered: bytes, keep_alive: bool
    ) -> None:
        """An HTTP/1.1 exchange ended: a keep-alive connection returns to the sync side
        with the next request's bytes, unless the pool is draining; any other closes."""
        if keep_alive and self.resume is not None and not self.shutdown.is_set():
            stream.detach()
            self.resume(conn, buffered)
        else:
            stream.close()
