"""The AsyncPool: event-loop threads that serve what the sync workers hand over.

`submit()` is called by sync worker threads and never blocks them: it counts the
handoff against a bounded backlog and schedules it on a loop with
`call_soon_threadsafe`. A full pool refuses (the worker answers 503) rather than
queue without bound.

The loops start with `start()`, or else at the first `submit()`: a server whose
handoffs are rare (a WSGI app's only one is a slow reader's `PendingWrite`) has
no loop thread until it needs one.
"""

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pounce_sync.asgi.proxy import TrustedProxies
from pounce_sync.config import Config
from pounce_sync.http1.default_fields import DefaultHeaders

from .context import NO_ACCESS_LOG, AccessLogger, PoolContext, Resume
from .handoffs import Handoff, HTTP2Connection, PendingWrite, StreamingRequest, WebSocketUpgrade
from .http3_setup import QuicEndpoint
from .stats import PoolStats

error_log = logging.getLogger("pounce_sync.error")

Handler = Callable[[Any, PoolContext], Awaitable[None]]


def _handler_for(handoff: Handoff) -> tuple[str, Handler]:
    # Imported here: each protocol module pulls in its library (wsproto, h2) on first use.
    if type(handoff) is StreamingRequest:
        from .http1_stream import serve_streaming

        return "streaming", serve_streaming
    if type(handoff) is WebSocketUpgrade:
        from .websocket import serve_websocket

        return "websocket", serve_websocket
    if type(handoff) is HTTP2Connection:
        from .http2 import serve_http2

        return "http2", serve_http2
    if type(handoff) is PendingWrite:
        from .pending_write import serve_pending_write

        return "pending_write", serve_pending_write
    raise TypeError(f"not a handoff: {handoff!r}")


class _LoopThread:
    """One event loop, its thread, and the handler tasks it runs."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.loop = asyncio.new_event_loop()
        self.tasks: set[asyncio.Task[None]] = set()
        self.ctx: PoolContext | None = None
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._finished = self.loop.create_future()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            # A main task for the loop's whole life, as asyncio.run() gives a program:
            # anyio roots its worker threads (sync routes) on it, not on each handler's
            # task, so they are not stopped and started again for every request.
            self.loop.run_until_complete(self._main())
        finally:
            with contextlib.suppress(Exception):
                self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    async def _main(self) -> None:
        await self._finished

    def finish(self) -> None:
        """On the loop's thread: end the main task, and with it the loop."""
        if not self._finished.done():
            self._finished.set_result(None)

    def cancel_all(self) -> None:
        for task in list(self.tasks):
            task.cancel()


class AsyncPool:
    def __init__(
        self,
        app: Any,
        config: Config,
        *,
        state: dict[str, Any] | None,
        trusted_proxies: TrustedProxies | None,
        resume: Resume | None,
        stats: PoolStats | None = None,
        unhealthy: threading.Event | None = None,
        access_log: AccessLogger = NO_ACCESS_LOG,
        quic: QuicEndpoint | None = None,
    ) -> None:
        self.config = config
        self._quic = quic  # HTTP/3: served by the first loop thread
        self.stats = stats or PoolStats()
        self._app = app
        self._state = state
        self._trusted = trusted_proxies
        self._resume = resume
        self._unhealthy = unhealthy or threading.Event()
        self._access_log = access_log
        self._lock = threading.Lock()
        self._active = 0
        self._next = 0
        self._closed = False
        # Published whole by start(), so submit() never picks a loop without its context.
        self._loops: list[_LoopThread] = []
        self._start_lock = threading.Lock()  # one start; none once shutdown began

    # -- lifecycle -------------------------------------------------------------
    def start(self) -> None:
        """Start the loop threads, once; after begin_shutdown(), none."""
        with self._start_lock:
            if self._loops or self._closed:
                return
            count = self.config.async_threads
            loops = [_LoopThread(f"async-pool-{i + 1}") for i in range(count)]
            for lt in loops:
                lt.thread.start()
                ready = threading.Event()
                lt.loop.call_soon_threadsafe(self._make_context, lt, ready)
                ready.wait()
            self._loops = loops
        if self._quic is not None:
            lt = self._loops[0]
            lt.loop.call_soon_threadsafe(self._start_http3, lt, self._quic)

    def _start_http3(self, lt: _LoopThread, quic: QuicEndpoint) -> None:
        """The UDP endpoint: each QUIC connection counts against the backlog like a handoff."""
        from .http3 import Credentials, serve_http3  # zoomies, on Python 3.14 only

        def opened() -> None:
            with self._lock:
                self._active += 1
            self.stats.accepted("http3")

        def closed() -> None:
            with self._lock:
                self._active -= 1
            self.stats.finished("http3")

        assert lt.ctx is not None
        credentials = Credentials(quic.certificate, quic.private_key)
        task = lt.loop.create_task(serve_http3(quic.sock, lt.ctx, credentials, opened, closed))
        lt.tasks.add(task)
        task.add_done_callback(lt.tasks.discard)

    def _make_context(self, lt: _LoopThread, ready: threading.Event) -> None:
        config = self.config
        lt.ctx = PoolContext(
            app=self._app,
            config=config,
            state=self._state,
            trusted_proxies=self._trusted,
            resume=self._resume,
            default_headers=DefaultHeaders(
                config.server_name if config.server_header else None,
                config.date_header,
                config.extra_headers,
            ),
            shutdown=asyncio.Event(),
            stats=self.stats,
            access_log=self._access_log,
            unhealthy=self._unhealthy,
        )
        ready.set()

    @property
    def active(self) -> int:
        return self._active

    def begin_shutdown(self) -> None:
        """Take no more handoffs; ask every handler to wind down (returns at once)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        with self._start_lock:  # a start under way ends first; no other begins after this
            loops = self._loops
        for lt in loops:
            if lt.ctx is not None:
                lt.loop.call_soon_threadsafe(lt.ctx.shutdown.set)

    def stop(self, timeout: float) -> None:
        """Wind down, wait up to `timeout` for handlers to finish, then cancel the rest."""
        self.begin_shutdown()
        deadline = time.monotonic() + timeout
        while self._active and time.monotonic() < deadline:
            time.sleep(0.02)
        if self._active:
            error_log.warning(
                "%d pool connection(s) still open after %.1fs; closing them", self._active, timeout
            )
        for lt in self._loops:
            lt.loop.call_soon_threadsafe(lt.cancel_all)
        cancel_deadline = time.monotonic() + 2.0
        while self._active and time.monotonic() < cancel_deadline:
            time.sleep(0.02)
        for lt in self._loops:
            lt.loop.call_soon_threadsafe(lt.finish)
            lt.thread.join(2.0)

    # -- handing over ----------------------------------------------------------
    def submit(self, handoff: Handoff) -> bool:
        """Take ownership of `handoff` and its socket; False (socket untouched) when full."""
        kind, handler = _handler_for(handoff)
        if not self._loops:
            self.start()  # on demand: the first handoff of a server that did not start us
        with self._lock:
            loops = self._loops
            if self._closed or not loops or self._active >= self.config.async_backlog:
                full = True
            else:
                full = False
                self._active += 1
                lt = loops[self._next % len(loops)]
                self._next += 1
        if full:
            self.stats.rejected()
            return False
        self.stats.accepted(kind)
        lt.loop.call_soon_threadsafe(self._start_task, lt, handoff, kind, handler)
        return True

    def _start_task(self, lt: _LoopThread, handoff: Handoff, kind: str, handler: Handler) -> None:
        task = lt.loop.create_task(self._serve(lt, handoff, kind, handler))
        lt.tasks.add(task)
        task.add_done_callback(lt.tasks.discard)

    async def _serve(self, lt: _LoopThread, handoff: Handoff, kind: str, handler: Handler) -> None:
        assert lt.ctx is not None
        try:
            await handler(handoff, lt.ctx)
        except asyncio.CancelledError:
            pass  # the pool is stopping; the handler closed its socket on the way out
        except Exception:
            error_log.exception("Unexpected error in the AsyncPool serving %s", kind)
        finally:
            with self._lock:
                self._active -= 1
            self.stats.finished(kind)
