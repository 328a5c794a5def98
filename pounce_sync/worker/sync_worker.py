"""A sync worker thread: wait on its seat's poller, serve what is ready, park what is idle.

A worker serves a connection only while it has a request ready. When the
connection goes quiet (between keep-alive requests, or in the middle of a
slowly arriving request head) it goes back to the idle poller, so a handful of
workers can hold thousands of open connections.
"""

import logging
import threading
import time
from typing import Any

from async_pool import (
    ClientSocket,
    Handoff,
    HTTP2Connection,
    PendingWrite,
    StreamingRequest,
    WebSocketUpgrade,
)
from pounce_sync.asgi.disconnect import ClientDisconnected
from pounce_sync.asgi.exchange import COMPLETE, NOT_STARTED, log_app_error
from pounce_sync.asgi.request_id import find_or_make_request_id
from pounce_sync.asgi.scope import (
    add_request_context,
    build_http_scope,
    build_websocket_scope,
    split_target,
)
from pounce_sync.http1 import (
    NEED_DATA,
    BodyFraming,
    ConnectionClosed,
    HTTP2Preface,
    ProtocolError,
    Request,
    ResponseWriter,
    error_response,
)
from pounce_sync.http1.default_fields import DefaultHeaders
from pounce_sync.http1.parser import SeenFields
from pounce_sync.http1.writer import SeenResponseFields
from pounce_sync.observe.metrics import ThreadMetrics

from .asgi_http import HeaderKeepingCycle, HTTPCycle
from .connection import Connection, Home
from .context import Listener, ServeContext
from .coroutine_driver import CoroutineDriver, make_driver
from .wsgi import WSGIGateway

error_log = logging.getLogger("pounce_sync.error")


_PROMETHEUS_TYPE = b"text/plain; version=0.0.4; charset=utf-8"
ACCEPT_BATCH = 16  # connections one worker accepts per wake-up of a listener


class SyncWorker:
    # Slots: every request reads a dozen of these, and on 3.13t an instance-dict lookup
    # from a worker thread costs a thread-safe dict probe each time (perf on the server).
    __slots__ = (
        "_access_log",
        "_cycle_type",
        "_default_headers",
        "_driver",
        "_health_target",
        "_local_targets",
        "_log_connections",
        "_metrics_target",
        "_request_started",
        "_seen_fields",
        "_seen_response",
        "_stopping",
        "_streaming_paths",
        "_timed",
        "_turn",
        "_wsgi",
        "busy",
        "config",
        "ctx",
        "current",
        "detached",
        "max_requests",
        "metrics",
        "poller",
        "requests_served",
        "seat",
    )

    def __init__(
        self,
        ctx: ServeContext,
        metrics: ThreadMetrics | None = None,
        max_requests: int | None = None,
        seat: int = 0,
    ) -> None:
        self.ctx = ctx
        self.seat = seat
        self.poller = ctx.reactors.for_seat(seat)  # the one epoll set this thread waits on
        self._turn = 0  # new connections go to the seats' sets in turn (_home)
        self.metrics = metrics
        self.requests_served = 0
        self.busy = False
        self.max_requests = max_requests  # retire after this many (None: never)
        self.config = ctx.config
        self.current: Connection | None = None  # read by shutdown to unblock a stuck write
        # A new thread took this worker's seat while it finishes a streaming response.
        self.detached = False
        self._request_started = 0.0
        self._stopping = ctx.stopping.is_set
        self._default_headers = DefaultHeaders(
            self.config.server_name if self.config.server_header else None,
            self.config.date_header,
            self.config.extra_headers,
        )
        self._streaming_paths = ctx.streaming_paths
        self._health_target = (self.config.health_path or "").encode() or None
        self._metrics_target = (self.config.metrics_path or "").encode() or None
        # Targets the worker answers itself; checked inline so most requests skip a call.
        self._local_targets = {self._health_target, self._metrics_target} - {None}
        self._access_log = ctx.access_log  # its format compiled once, for every worker
        # Whether a request's start time is read at all: only metrics and the log use it.
        self._timed = metrics is not None or ctx.access_log.enabled
        # Chosen once: only a format that shows response headers has them kept.
        keeps = ctx.access_log.keeps_response_headers
        self._cycle_type = HeaderKeepingCycle if keeps else HTTPCycle
        self._log_connections = ctx.log_connections
        self._driver: CoroutineDriver | None = None  # made by run(), on the worker's thread
        # Made again by run(), on the thread that uses them.
        self._seen_fields = SeenFields()
        self._seen_response: SeenResponseFields = {}
        # The interface was resolved at load; None: the app is ASGI.
        self._wsgi: WSGIGateway | None = None
        if self.config.interface == "wsgi":
            self._wsgi = WSGIGateway(ctx.app, self.config, ctx.trusted_proxies, self._fail)

    def run(self) -> None:
        # Made here, on the thread that reads it: on 3.13t a dict that another thread
        # made costs far more to read (docs/benchmarks.md, "A free-threading trap").
        self._seen_fields = SeenFields()
        self._seen_response = {}
        if self._wsgi is not None:  # a WSGI app is called directly: no event loop to own
            self._serve_forever()
            return
        driver = self._driver = make_driver(self.config.coroutine_driver)
        try:
            self._serve_forever()
        finally:
            driver.close()

    def _serve_forever(self) -> None:
        wait, finished = self.poller.wait, self.ctx.finished
        while not finished.is_set():
            for fd, _ in wait(1.0):
                self.busy = True  # read by the drain, which waits for idle workers
                try:
                    self.dispatch(fd)
                finally:
                    self.busy = False
                if self.detached:
                    return  # our successor waits on the poller (and sees the rest of a batch)
            if self.retired:
                return  # the server starts a replacement; our parked connections stay shared

    @property
    def retired(self) -> bool:
        return self.max_requests is not None and self.requests_served >= self.max_requests

    def dispatch(self, fd: int) -> None:
        """Handle one readiness event from this seat's poller."""
        listener = self.ctx.listeners.get(fd)
        if listener is not None:
            self._accept(listener)
            return
        conn = self.poller.claim(fd)
        if conn is None:
            return  # the reaper or shutdown took it first
        self.current = conn
        try:
            # Buffered bytes: a connection back from the AsyncPool with a next request read.
            if conn.read_ready() or conn.parser.has_buffered_data:
                self._serve(conn)
            else:
                self._park(conn)
        except Exception:
            error_log.exception("Unexpected error serving %s", conn.client)
            self._close(conn)
        finally:
            self.current = None

    # -- accepting -------------------------------------------------------------
    def _accept(self, listener: Listener) -> None:
        """Take up to ACCEPT_BATCH waiting connections; serve the last one at once.

        One per wake-up let new connections wait seconds behind busy ones under load.
        The others are parked in the seats' sets in turn (_home), for their workers.
        """
        accepted = None
        for _ in range(ACCEPT_BATCH):
            try:
                sock, addr = listener.sock.accept()
            except BlockingIOError:
                break  # the queue is empty, or another worker (or process) took it
            except OSError as exc:
                self.ctx.pause_accepting(listener, exc)
                break
            self.ctx.accepted()
            try:
                conn = self.ctx.open_connection(sock, addr, listener)
            except OSError:  # the client reset before TLS could be set up on its socket
                sock.close()
                continue
            if accepted is not None:
                self._park(accepted)
            accepted = conn
            if self._stopping():
                break  # the drain takes the rest of the queue itself
        if accepted is None:
            return
        if accepted.read_ready():
            self._serve(accepted)
        else:
            self._park(accepted)

    # -- serving ---------------------------------------------------------------
    def _park(self, conn: Connection) -> None:
        # Draining, a keep-alive connection is parked too, not closed: the response just
        # sent promised keep-alive, so the next request may be on its way, and closing
        # would reset it. The poller caps its stay at a short grace (begin_drain); a
        # request arriving meanwhile is answered with `connection: close`.
        now = time.monotonic()
        if conn.handshake_deadline is not None:  # TLS handshake under way; silent at the end
            if conn.handshake_deadline <= now:  # input kept the reaper away, but time is up
                self._close(conn)
            else:
                self._home(conn).park(conn, conn.handshake_deadline, writable=conn.wants_write)
            return
        # A TLS record that has started to arrive is a request head on its way too.
        if conn.requests == 0 or conn.parser.has_buffered_data or conn.partial_record:
            if conn.head_deadline is None:
                conn.head_deadline = now + self.config.timeout_header_read
            elif conn.head_deadline <= now:
                # The reaper spares connections with input waiting; the deadline still
                # holds for a head that is trickling in.
                self._reject(conn, 408, "request head not complete by its deadline")
                return
            self._home(conn).park(conn, conn.head_deadline, 408)
        else:
            self._home(conn).park(conn, now + self.config.timeout_keep_alive)

    def _home(self, conn: Connection) -> Home:
        """Where `conn` parks: its set, or, new here (accepted, back from the pool), the next
        seat's in turn, so the connections of one accept batch spread over the workers."""
        home = conn.home
        if home is None:
            self._turn += 1
            home = self.ctx.reactors.for_seat(self.seat + self._turn)
        return home

    def _close(self, conn: Connection) -> None:
        conn.close()
        self.ctx.connections.release()
        if self._log_connections:
            self.ctx.log_connection(conn, f"closed after {conn.requests} request(s)")

    def _serve(self, conn: Connection) -> None:
        """Serve requests while they are ready; park or close the connection after."""
        if conn.alpn_h2:
            handoff = HTTP2Connection(_client_socket(conn), conn.parser.buffered, "alpn")
            self._hand_off(conn, handoff)
            return
        parser = conn.parser
        parser.seen = self._seen_fields
        while True:
            try:
                event = parser.next_event()
            except ProtocolError as exc:
                if type(exc) is HTTP2Preface and self._prior_knowledge_h2(conn):
                    return
                self._reject(conn, exc.status, exc.detail)
                return
            if event is NEED_DATA:
                self._park(conn)
                return
            if type(event) is ConnectionClosed:
                self._close(conn)
                return
            conn.head_deadline = None
            keep_open = self._handle(conn, event)  # type: ignore[arg-type]
            if keep_open is None:
                return  # handed to the AsyncPool, which owns the connection now
            if not keep_open:
                self._close(conn)
                return
            parser.start_next_cycle()

    def _reject(self, conn: Connection, status: int, detail: str) -> None:
        error_log.debug("rejecting request from %s: %s (%d)", conn.client, detail, status)
        conn.send_nowait(error_response(status))
        self._close(conn)

    def _handle(self, conn: Connection, request: Request) -> bool | None:
        """Run one request through the app; True if the connection stays open.

        None: the request and its connection went to the AsyncPool.
        """
        conn.requests += 1
        self.requests_served += 1
        if self.ctx.on_request is not None:
            self.ctx.on_request()
        if conn.over_limit or request.content_length or request.target in self._local_targets:
            answered = self._answer_without_app(conn, request)
            if answered is not None:
                return answered
        config = self.config
        if self._timed:
            started = self._request_started = time.perf_counter()
            if self.metrics is not None:
                self.metrics.started()
        else:
            started = 0.0  # neither metrics nor the access log read it
        keep_alive = request.keep_alive and not self._stopping()
        fields = self._default_headers.get()
        request_id = find_or_make_request_id(request.headers) if config.request_id else None
        if request_id is not None:
            fields += b"x-request-id: " + request_id + b"\r\n"
        if request.upgrade is not None or request.event_stream or self._streaming_paths.active:
            handoff = self._pool_handoff(conn, request, request_id, keep_alive, fields)
            if handoff is not None:
                self._hand_off(conn, handoff)
                return None
        writer = ResponseWriter(request, keep_alive, fields, self._seen_response)
        cycle = self._cycle_type(
            conn, request, writer, config.max_body_size, self.ctx.stopping, self._stream_started
        )
        if self._wsgi is None:
            scope = self._scope(conn, request, request_id)
            ok = self._run_app(scope, cycle)
            client = scope["client"] if self._timed else None
        else:
            ok, client = self._wsgi.serve(conn, request, cycle, request_id)
        if self.metrics is not None:
            elapsed = time.perf_counter() - started
            self.metrics.finished(request.method, cycle.status or 500, elapsed)
        if self._access_log.enabled:
            self._access_log.log(
                client,
                request,
                cycle.status,
                writer.body_bytes,
                started,
                request_id,
                cycle.response_headers,
            )
        # Not closed just because a drain began meanwhile: this response promised keep-alive,
        # so a next request may be on its way already (see _park).
        keep_open = ok and writer.keep_alive and cycle.drain_body()
        if cycle.unsent is not None:
            return self._finish_elsewhere(conn, cycle.unsent, keep_open)
        return keep_open

    def _stream_started(self, cycle: HTTPCycle) -> None:
        """The app's response streams, maybe for ever: this worker leaves its seat.

        The app keeps running here, once; a new thread takes the seat in the poller,
        so the requests other connections have ready do not wait for the stream.
        Later requests for the path go to the pool before their app runs (a WSGI
        app has no pool handoffs: nothing is learned for it).
        """
        if self._wsgi is None and self.ctx.pool is not None:
            self._streaming_paths.learn(split_target(cycle.request.target)[0])
        if self.ctx.detach is not None and not self.detached:
            self.ctx.detach(self, cycle)

    def leave_seat(self, cycle: HTTPCycle) -> ThreadMetrics | None:
        """Called by the server while it detaches this worker, on this worker's thread.

        The request is counted now (its duration: to the first streamed byte) and the
        seat's metric cells go to the successor: only one thread may write them.
        """
        self.detached = True
        metrics, self.metrics = self.metrics, None
        if metrics is not None:
            elapsed = time.perf_counter() - self._request_started
            metrics.finished(cycle.request.method, cycle.status, elapsed)
        conn = self.current
        if conn is not None:
            # Out of the epoll set while it streams: a level-triggered registration
            # (one worker per poller) would wake our successor for it over and over.
            self.ctx.reactors.forget(conn)
        threading.current_thread().name += "-streaming"
        return metrics

    def _finish_elsewhere(
        self, conn: Connection, unsent: memoryview, keep_open: bool
    ) -> bool | None:
        """The client reads slower than the app wrote: the pool writes the rest.

        None: the connection went to the pool, with the next request's bytes if it
        stays open. With the pool full, this worker waits for the client itself.
        """
        if self.ctx.pool is not None:
            buffered = conn.parser.buffered if keep_open else b""
            handoff = PendingWrite(_client_socket(conn), unsent, keep_open, buffered)
            if self._give_to_pool(conn, handoff):
                return None
        try:
            conn.send(unsent)  # type: ignore[arg-type]
        except ClientDisconnected:
            return False
        return keep_open

    def _answer_without_app(self, conn: Connection, request: Request) -> bool | None:
        """Limits and the server's own endpoints; None when the app should run."""
        max_body = self.config.max_body_size
        if conn.over_limit:
            conn.send_nowait(error_response(503))
            return False
        too_large = max_body and (request.content_length or 0) > max_body
        if too_large and request.framing is BodyFraming.LENGTH:
            conn.send_nowait(error_response(413))
            return False
        if request.target == self._health_target:
            if self.ctx.unhealthy.is_set() or self._stopping():
                return self._answer_local(conn, request, b"text/plain", b"draining\n", 503)
            return self._answer_local(conn, request, b"text/plain", b"ok\n")
        if request.target == self._metrics_target and self.ctx.metrics is not None:
            body = self.ctx.metrics.render()
            return self._answer_local(conn, request, _PROMETHEUS_TYPE, body)
        return None

    # -- handing over to the AsyncPool ------------------------------------------
    def _pool_handoff(
        self,
        conn: Connection,
        request: Request,
        request_id: bytes | None,
        keep_alive: bool,
        fields: bytes,
    ) -> Handoff | None:
        """The handoff this request calls for, decided before the app runs; None: serve here.

        Never for a WSGI app: it streams on this thread, ignores h2c, and its gateway
        refuses WebSocket upgrades.
        """
        if self.ctx.pool is None or self._wsgi is not None:
            return None
        config = self.config
        upgrade = request.upgrade
        if upgrade == b"websocket" and config.ws and request.method == b"GET":
            scope = build_websocket_scope(self._scope(conn, request, request_id))
            conn.parser.next_event()  # the GET's EndOfMessage; what follows is WebSocket frames
            return WebSocketUpgrade(_client_socket(conn), request, conn.parser.buffered, scope)
        if upgrade is not None and config.http2 and conn.scheme == "http" and _wants_h2c(request):
            conn.parser.next_event()  # its EndOfMessage: only body-less requests upgrade
            return HTTP2Connection(_client_socket(conn), conn.parser.buffered, "h2c", request)
        if request.event_stream:
            reason = "event-stream"
        else:
            reason = self._streaming_paths.reason(split_target(request.target)[0])
            if reason is None:
                return None
        scope = self._scope(conn, request, request_id)
        return StreamingRequest(
            _client_socket(conn),
            request,
            conn.parser,
            scope,
            keep_alive,
            fields,
            reason,  # type: ignore[arg-type]
        )

    def _hand_off(self, conn: Connection, handoff: Handoff) -> None:
        """Give `conn` to the AsyncPool before its app runs; a full pool answers 503."""
        if not self._give_to_pool(conn, handoff):
            error_log.warning("AsyncPool full; answering 503 to %s", conn.client)
            conn.send_nowait(error_response(503))
            self._close(conn)

    def _give_to_pool(self, conn: Connection, handoff: Handoff) -> bool:
        """True: the pool owns `conn` now, and this thread never touches its socket again."""
        pool = self.ctx.pool
        assert pool is not None
        self.ctx.reactors.forget(conn)
        conn.parser.seen = None  # this thread's memo stays with this thread
        if not pool.submit(handoff):
            return False
        self.ctx.connections.release()
        if self._log_connections:
            self.ctx.log_connection(conn, f"handed to the AsyncPool ({type(handoff).__name__})")
        return True

    def _prior_knowledge_h2(self, conn: Connection) -> bool:
        """A connection opening with the HTTP/2 preface goes to the pool; True if it went.

        The parser consumed the preface's first part as a request head before refusing
        it, so it is put back in front of what followed. Checking here, on the
        parser's error path, keeps the hot path untouched.
        """
        buffered = conn.parser.buffered
        if conn.requests:
            return False
        if self.ctx.pool is None or not self.config.serves_http2:
            return False  # answered 505, as with --no-http2
        preface = _PREFACE_HEAD + buffered
        self._hand_off(conn, HTTP2Connection(_client_socket(conn), preface, "prior-knowledge"))
        return True

    def _scope(
        self, conn: Connection, request: Request, request_id: bytes | None
    ) -> dict[str, Any]:
        scope = build_http_scope(
            request,
            scheme=conn.scheme,
            client=conn.client,
            server=conn.server,
            root_path=self.config.root_path,
            state=self.ctx.lifespan_state,
        )
        if request_id is None and not request.forwarded:
            return scope  # the common case: nothing to add
        trusted = self.ctx.trusted_proxies if request.forwarded else None
        return add_request_context(scope, request, request_id, trusted)

    def _answer_local(
        self,
        conn: Connection,
        request: Request,
        content_type: bytes,
        body: bytes,
        status: int = 200,
    ) -> bool:
        """Health and metrics endpoints: answered by the worker, without the app."""
        keep_alive = request.keep_alive and not self._stopping()
        writer = ResponseWriter(request, keep_alive, self._default_headers.get())
        writer.start(status, [(b"content-type", content_type)])
        try:
            conn.send(writer.body(body, False))
        except ClientDisconnected:
            return False
        if request.framing is not BodyFraming.NONE:
            return False  # not worth reading a body nobody asked for
        conn.parser.next_event()  # the body-less request's EndOfMessage
        return writer.keep_alive

    def _run_app(self, scope: dict[str, Any], cycle: HTTPCycle) -> bool:
        """Call the app once; True if it produced a complete response."""
        try:
            self._driver.run(self.ctx.app(scope, cycle.receive, cycle.send))  # type: ignore[union-attr]
        except ClientDisconnected:
            return False
        except Exception as exc:
            log_app_error(exc)
            return self._fail(cycle)
        outcome = cycle.app_returned()
        if outcome is COMPLETE:
            return True
        outcome.log()
        if outcome is NOT_STARTED:
            return self._fail(cycle)
        return False

    def _fail(self, cycle: HTTPCycle) -> bool:
        if cycle.fail():
            cycle.conn.send_nowait(error_response(500))
        return False


_PREFACE_HEAD = b"PRI * HTTP/2.0\r\n\r\n"


def _client_socket(conn: Connection) -> ClientSocket:
    return ClientSocket(conn.sock, conn.client, conn.server, conn.scheme)  # type: ignore[arg-type]


def _wants_h2c(request: Request) -> bool:
    """`Upgrade: h2c` with HTTP2-Settings on a body-less request (RFC 9113 drops it; 7540 3.2)."""
    tokens = [token.strip() for token in (request.upgrade or b"").split(b",")]
    if b"h2c" not in tokens or request.framing is not BodyFraming.NONE:
        return False  # an upgrade with a body is allowed, but rare: served over HTTP/1.1
    return any(name == b"http2-settings" for name, _ in request.headers)


def start_worker_thread(
    ctx: ServeContext,
    index: int,
    metrics: ThreadMetrics | None = None,
    max_requests: int | None = None,
) -> tuple[threading.Thread, SyncWorker]:
    worker = SyncWorker(ctx, metrics, max_requests, seat=index - 1)
    thread = threading.Thread(target=worker.run, name=f"worker-{index}", daemon=True)
    thread.start()
    return thread, worker
