"""One process's serving: lifespan, worker seats, the reaper, the graceful drain."""

import contextlib
import logging
import os
import random
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from async_pool import AsyncPool, ClientSocket, QuicEndpoint
from pounce_sync.asgi.proxy import parse_trusted
from pounce_sync.config import Config
from pounce_sync.http1 import ParserLimits, error_response
from pounce_sync.observe.access_log import AccessLog
from pounce_sync.observe.metrics import MetricsLayout, SharedMetrics, ThreadMetrics
from pounce_sync.worker.context import ConnectionCounter, Listener, ServeContext
from pounce_sync.worker.reactors import REBALANCE_INTERVAL, VACANT_SEAT, Reactors
from pounce_sync.worker.streaming_paths import StreamingPaths
from pounce_sync.worker.sync_worker import SyncWorker, start_worker_thread

from .exit_codes import EXIT_ERROR, EXIT_OK, EXIT_RETIRED, EXIT_STARTUP_FAILURE
from .lifespan import Lifespan, LifespanFailure
from .listeners import describe_listener
from .restart_budget import RestartBudget

error_log = logging.getLogger("pounce_sync.error")

REAP_INTERVAL = 0.25


class Server:
    """One process's serving: lifespan, worker threads, the reaper, graceful drain."""

    def __init__(
        self,
        config: Config,
        app: Any,
        listeners: list[Listener],
        *,
        threads: int,
        primary: bool = True,
        on_ready: Callable[[], None] | None = None,
        metrics: SharedMetrics | None = None,
        process_index: int = 0,
        server_stopping: Callable[[], bool] | None = None,
        quic: QuicEndpoint | None = None,
        own_signals: bool = True,
        on_tick: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        # A host that runs this server in its own worker process (gunicorn) handles the
        # signals itself, and is told every tick (0.2 s or less) while serving or draining:
        # its heartbeat, and where it asks for a shutdown (request_shutdown).
        self.own_signals = own_signals
        self.on_tick = on_tick
        self.quic = quic  # HTTP/3's UDP socket, served by this process's AsyncPool
        self.app = app
        self.listeners = listeners
        self.threads = threads
        # The primary process owns the listening sockets: it announces them and removes
        # a Unix socket's file at exit. Worker processes of a supervisor are not primary.
        self.primary = primary
        self.on_ready = on_ready
        # A supervised worker: whether the whole server is stopping, rather than this
        # process retiring or being replaced while its siblings keep serving.
        self._server_stopping = server_stopping
        if metrics is None and config.metrics_path:
            metrics = SharedMetrics(MetricsLayout(processes=1, threads=threads))
        self.metrics = metrics
        self.process_index = process_index  # which block of the shared metrics is ours
        self._pool_counters_before = (
            metrics.process(process_index).pool_counters() if metrics is not None else []
        )
        self.process_limit = None if primary else _with_jitter(config)
        self._served = 0
        self._served_lock = threading.Lock()
        # WSGI has no lifespan protocol: nothing to run, nothing to warn about.
        self.lifespan = Lifespan(app, "off" if config.interface == "wsgi" else config.lifespan)
        self.reactors = Reactors(threads)
        self._shutdown_requested = threading.Event()
        # Signal handlers only set this plain flag: calling Event.set() from a handler can
        # deadlock when the signal lands while the main thread holds that Event's lock
        # inside wait() (seen: a worker process hung for good on 3.13t).
        self._signalled = False
        self._signals = 0
        self._hangups = 0
        self._exit_code = EXIT_OK
        self._restarts = RestartBudget()
        # Seats in the poller, and workers that left theirs to finish a streaming
        # response (SyncWorker.leave_seat). Worker threads detach: both under the lock.
        self.workers: list[tuple[threading.Thread, SyncWorker]] = []
        self._detached: list[tuple[threading.Thread, SyncWorker]] = []
        self._seats_lock = threading.Lock()
        self.ctx: ServeContext | None = None
        self.pool: AsyncPool | None = None

    # -- lifecycle -------------------------------------------------------------
    def run(self) -> int:
        self._install_signal_handlers()
        # Threads inherit the signal mask of the thread that starts them. Blocking the
        # shutdown signals while ours start sends every later SIGINT/SIGTERM to the main
        # thread, which wakes at once instead of when some worker's syscall returns.
        masked = _block_shutdown_signals()
        try:
            self.lifespan.startup()
        except LifespanFailure as exc:
            print(f"pounce-sync: error: application startup failed: {exc}", file=sys.stderr)
            self._close_listeners()
            return EXIT_STARTUP_FAILURE
        else:
            self.ctx = self._make_context()
            self._start()
        finally:
            _restore_signal_mask(masked)
        if self.on_ready is not None:
            self.on_ready()
        while not self._signalled and not self._shutdown_requested.wait(0.2):
            self._tick()
            self._replace_dead_workers()
            self._publish_gauges()
            self._note_hangup()
        if self._signalled:
            self._delay_drain()
        self._drain()
        lifespan_ok = self.lifespan.shutdown(timeout=max(self.config.timeout_graceful_shutdown, 5))
        error_log.info("Finished server process [%d]", os.getpid())
        return self._exit_code if lifespan_ok else EXIT_ERROR

    def _tick(self) -> None:
        if self.on_tick is not None:
            self.on_tick()

    def _delay_drain(self) -> None:
        """--drain-delay: keep serving while health checks fail, so balancers look away first."""
        delay = self.config.drain_delay
        if not delay:
            return
        assert self.ctx is not None
        self.ctx.unhealthy.set()
        error_log.info("Shutdown signal: serving %.1fs more with the health path at 503", delay)
        until = time.monotonic() + delay
        while time.monotonic() < until:
            time.sleep(max(0.0, min(0.05, until - time.monotonic())))  # a 2nd signal still lands

    def _note_hangup(self) -> None:
        if self._hangups:
            self._hangups = 0
            error_log.warning(
                "SIGHUP ignored: one process cannot restart itself without dropping requests; "
                "run several worker processes (--worker-mode process --workers N) for "
                "rolling restarts, or let a process manager restart this one"
            )

    def _publish_gauges(self) -> None:
        if self.metrics is not None and self.ctx is not None:
            gauges = self.metrics.process(self.process_index)
            gauges.set_connections(self.ctx.connections.open, self.reactors.parked_count)
            if self.pool is not None:
                gauges.set_pool(self.pool.stats.snapshot(), self._pool_counters_before)

    def _thread_metrics(self, index: int) -> ThreadMetrics | None:
        if self.metrics is None:
            return None
        return self.metrics.thread(self.process_index, index)

    def _replace_dead_workers(self) -> None:
        """A worker thread whose loop died is replaced, within the restart budget."""
        assert self.ctx is not None
        with self._seats_lock:
            seats = list(self.workers)
            self._detached = [pair for pair in self._detached if pair[0].is_alive()]
        for index, (thread, worker) in enumerate(seats):
            if thread.is_alive():
                continue
            if worker.retired:
                error_log.info(
                    "worker thread %s retired after %d requests; starting a new one",
                    thread.name,
                    worker.requests_served,
                )
                self._start_worker(index)
                continue
            if not self._restarts.spend(time.monotonic()):
                error_log.error(
                    "worker thread %s died; %d restarts within %.0fs already, shutting down",
                    thread.name,
                    self._restarts.limit,
                    self._restarts.window,
                )
                self._exit_code = EXIT_ERROR
                self._shutdown_requested.set()
                return
            error_log.warning("worker thread %s died; starting a new one", thread.name)
            if self.metrics is not None:
                self.metrics.process(self.process_index).count_thread_restart()
            time.sleep(self._restarts.backoff())
            self._start_worker(index)

    def _start_worker(self, index: int) -> None:
        assert self.ctx is not None
        masked = _block_shutdown_signals()
        try:
            with self._seats_lock:
                self.workers[index] = start_worker_thread(
                    self.ctx, index + 1, self._thread_metrics(index), self._thread_request_limit()
                )
        finally:
            _restore_signal_mask(masked)

    def _detach(self, worker: SyncWorker, cycle: Any) -> bool:
        """`worker`'s response streams: a new thread takes its seat (see SyncWorker).

        Called on the worker's thread, whose signal mask the new thread inherits.
        False past --limit-stream-threads, or while draining: the worker keeps its seat.
        """
        assert self.ctx is not None
        with self._seats_lock:
            if self.ctx.stopping.is_set():
                return False
            self._detached = [pair for pair in self._detached if pair[0].is_alive()]
            if len(self._detached) >= self.config.limit_stream_threads:
                return False
            index = next(i for i, (_, seated) in enumerate(self.workers) if seated is worker)
            self._detached.append(self.workers[index])
            metrics = worker.leave_seat(cycle)
            self.workers[index] = start_worker_thread(
                self.ctx, index + 1, metrics, self._thread_request_limit()
            )
        return True

    def _all_workers(self) -> list[tuple[threading.Thread, SyncWorker]]:
        """Seated and detached: the drain waits for both."""
        with self._seats_lock:
            return self.workers + self._detached

    def _thread_request_limit(self) -> int | None:
        """Threads retire on their own only when the process does not (see _process_retires)."""
        if self.primary:
            return _with_jitter(self.config)
        return None

    def _count_process_request(self) -> None:
        """A supervised worker process retires whole once its threads served its share."""
        with self._served_lock:
            self._served += 1
            if self._served != self.process_limit:
                return
        error_log.info("worker process [%d] retiring after %d requests", os.getpid(), self._served)
        self._exit_code = EXIT_RETIRED
        # Stop taking connections now, on this worker thread, rather than when the main
        # thread starts the drain: a fast client would meanwhile get dozens more requests
        # served here. The siblings accept from the shared socket; what is parked here
        # is answered with `connection: close` (the drain's first step, done early).
        assert self.ctx is not None
        self.ctx.stopping.set()
        for listener in self.listeners:
            self.reactors.remove_listener(listener.sock)
        self._shutdown_requested.set()

    def request_shutdown(self) -> None:
        self._shutdown_requested.set()

    def _make_context(self) -> ServeContext:
        config = self.config
        trusted = parse_trusted(config.forwarded_allow_ips) if config.proxy_headers else None
        unhealthy = threading.Event()  # shared: health fails alike on both paths
        access_log = AccessLog(config)  # shared too: immutable
        self.pool = AsyncPool(
            self.app,
            config,
            state=self.lifespan.state,
            trusted_proxies=trusted,
            resume=self._resume,
            unhealthy=unhealthy,
            access_log=access_log,
            quic=self.quic,
        )
        return ServeContext(
            config=config,
            app=self.app,
            reactors=self.reactors,
            listeners={listener.sock.fileno(): listener for listener in self.listeners},
            lifespan_state=self.lifespan.state,
            connections=ConnectionCounter(config.limit_concurrency),
            metrics=self.metrics,
            on_request=self._count_process_request if self.process_limit else None,
            trusted_proxies=trusted,
            pool=self.pool,
            streaming_paths=StreamingPaths(config.stream_path),
            detach=self._detach if config.limit_stream_threads else None,
            unhealthy=unhealthy,
            access_log=access_log,
            limits=ParserLimits(
                max_request_line=config.limit_request_line,
                max_header_bytes=config.limit_request_headers_size,
                max_headers=config.limit_request_fields,
            ),
        )

    def _resume(self, client: ClientSocket, buffered: bytes) -> None:
        """A keep-alive connection back from the AsyncPool: park it for the workers.

        With bytes of a next request already read, it is parked for writability,
        which is immediate, so a worker picks it up at once.
        """
        ctx = self.ctx
        assert ctx is not None
        if ctx.stopping.is_set():
            with contextlib.suppress(OSError):
                client.sock.close()
            return
        conn = ctx.adopt(client, buffered)
        deadline = time.monotonic() + self.config.timeout_keep_alive
        self.reactors.park(conn, deadline, writable=bool(buffered))

    def _start(self) -> None:
        assert self.ctx is not None
        assert self.pool is not None
        if self.config.interface != "wsgi" or self.quic is not None:
            # A WSGI app never runs on the pool; its one handoff, the end of a response a
            # slow reader has no room for, starts the pool's loops on demand (submit).
            # HTTP/3's endpoint lives on the pool, so it starts the pool with the server.
            self.pool.start()
        for listener in self.listeners:
            self.reactors.add_listener(listener.sock)
        count = self.threads
        # Under the seats lock: a worker may stream its first request (one already in the
        # backlog) and look for its seat in _detach before its siblings have started.
        with self._seats_lock:
            self.workers = [
                start_worker_thread(
                    self.ctx, i + 1, self._thread_metrics(i), self._thread_request_limit()
                )
                for i in range(count)
            ]
        threading.Thread(target=self._reap, name="reaper", daemon=True).start()
        error_log.info("Started server process [%d] with %d worker threads", os.getpid(), count)
        if self.primary:
            for listener in self.listeners:
                error_log.info(
                    "Listening on %s (Press CTRL+C to quit)", describe_listener(listener)
                )
            if self.quic is not None:
                error_log.info("HTTP/3 on udp port %d", self.quic.sock.getsockname()[1])

    def _reap(self) -> None:
        """Close connections idle past their deadline; 408 if a request head was pending.

        In between, every REBALANCE_INTERVAL, move ready connections away from workers
        stuck in one request (Reactors.rebalance): a slow handler keeps no hostages.
        """
        ctx = self.ctx
        assert ctx is not None
        next_reap = time.monotonic() + REAP_INTERVAL
        while not ctx.finished.wait(REBALANCE_INTERVAL):
            # Draining too: the requests in a stuck worker's set still get their answer.
            with self._seats_lock:
                seats = [w if t.is_alive() else VACANT_SEAT for t, w in self.workers]
            ctx.reactors.rebalance(seats)
            now = time.monotonic()
            if now < next_reap:
                continue
            next_reap = now + REAP_INTERVAL
            for expired in ctx.reactors.pop_expired(now):
                conn = expired.connection
                if expired.status is not None and conn.parser.has_buffered_data:
                    conn.send_nowait(error_response(expired.status))
                ctx.close_connection(conn, "idle past its deadline")
            ctx.resume_paused_listeners(now)

    # -- shutdown --------------------------------------------------------------
    def _drain(self) -> None:
        """Stop accepting, let requests in flight finish, close idle connections soon.

        In flight means: being served, or sent by the client (input waiting, or a new
        connection whose first request is on its way). The workers keep serving those
        with `connection: close` until none is left or the graceful timeout ends.
        An idle keep-alive connection closes after a short grace, not at once: its
        client may be sending the next request already (IdlePoller.begin_drain).
        """
        ctx = self.ctx
        assert ctx is not None
        error_log.info("Shutting down")
        ctx.stopping.set()
        pool = self.pool
        assert pool is not None
        pool.begin_shutdown()  # WebSockets close 1001, HTTP/2 sends GOAWAY
        if self.primary or (self._server_stopping is not None and self._server_stopping()):
            # A worker process that retires alone shares the socket with its siblings:
            # its queue survives our close and a sibling takes it. When the whole server
            # stops, every worker empties the queue before closing, or the last close
            # would reset connections whose requests were already sent.
            for listener in self.listeners:
                self._accept_backlog(listener)
        self._close_listeners()
        deadline = time.monotonic() + self.config.timeout_graceful_shutdown
        self.reactors.begin_drain(deadline)
        # Drained twice in a row, 50 ms apart: a worker just back from epoll_wait with a
        # connection it accepted has had time to say it is busy or to park it.
        calm = 0
        while time.monotonic() < deadline and calm < 2:
            calm = calm + 1 if self._drained() and not pool.active else 0
            self._tick()
            time.sleep(0.05)  # short sleeps keep the main thread responsive to a second signal
        pool.stop(max(0.0, deadline - time.monotonic()))
        ctx.finished.set()
        self.reactors.wake_all()
        workers = self._all_workers()
        for thread, _ in workers:
            while thread.is_alive() and time.monotonic() < deadline:
                self._tick()
                thread.join(min(0.1, max(0.0, deadline - time.monotonic())))
        stuck = [worker for thread, worker in workers if thread.is_alive()]
        for worker in stuck:
            conn = worker.current
            if conn is not None:
                _abort_socket(conn.sock)
        if stuck:
            error_log.warning(
                "%d request(s) did not finish within %.1fs; their connections were closed",
                len(stuck),
                self.config.timeout_graceful_shutdown,
            )
        self._close_parked()

    def _accept_backlog(self, listener: Listener) -> None:
        """Take the connections the kernel already accepted: closing would reset them.

        They are parked as new connections; the workers serve their first request.
        """
        assert self.ctx is not None
        # Bounded in time too: clients that keep connecting must not hold the drain open.
        until = time.monotonic() + 0.1
        for _ in range(self.config.backlog):
            if time.monotonic() > until:
                return
            try:
                sock, addr = listener.sock.accept()
            except OSError:
                return  # empty (BlockingIOError), or closed meanwhile
            try:
                conn = self.ctx.open_connection(sock, addr, listener)
            except OSError:
                sock.close()
                continue
            deadline = conn.handshake_deadline or (
                time.monotonic() + self.config.timeout_header_read
            )
            self.reactors.park(conn, deadline, 408)

    def _drained(self) -> bool:
        idle = not any(worker.busy for _, worker in self._all_workers())
        return idle and self.reactors.parked_count == 0

    def _close_parked(self) -> None:
        assert self.ctx is not None
        for conn in self.reactors.drain():
            self.ctx.close_connection(conn, "at shutdown")

    def _close_listeners(self) -> None:
        for listener in self.listeners:
            self.reactors.remove_listener(listener.sock)
            listener.sock.close()
            if self.primary:
                _unlink_quietly(listener.owned_path)

    # -- signals ---------------------------------------------------------------
    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread() or not self.own_signals:
            return  # embedded in a test or another program: the caller stops us
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        if self.primary:  # supervised workers leave SIGHUP to the supervisor
            signal.signal(signal.SIGHUP, self._on_hangup)

    def _on_hangup(self, signum: int, frame: FrameType | None) -> None:
        self._hangups += 1  # a plain counter: see _signalled

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals += 1
        if self._signals > 1 and not self.primary:
            # A worker process can get SIGTERM twice in one orderly stop (a service
            # manager signals the whole group, then the supervisor forwards its own);
            # forcing it out is the supervisor's call, by SIGKILL.
            return
        if self._signals > 1:
            os.write(2, b"pounce-sync: second signal, exiting without waiting\n")
            os._exit(EXIT_ERROR)
        self._signalled = True


_SHUTDOWN_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def _block_shutdown_signals() -> set[signal.Signals] | None:
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.pthread_sigmask(signal.SIG_BLOCK, _SHUTDOWN_SIGNALS)


def _restore_signal_mask(previous: set[signal.Signals] | None) -> None:
    if previous is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _with_jitter(config: Config) -> int | None:
    if config.limit_max_requests is None:
        return None
    return config.limit_max_requests + random.randint(0, config.limit_max_requests_jitter)


def _abort_socket(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _unlink_quietly(path: str | None) -> None:
    if path:
        with contextlib.suppress(OSError):
            os.unlink(path)
