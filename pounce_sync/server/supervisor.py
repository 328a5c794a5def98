"""The supervisor for process mode: fork worker processes, keep them alive, drain them.

The app is imported and the listening sockets are bound here, before forking, so
every worker process shares them (copy-on-write memory, one accept queue: a
worker that stops accepting loses no connection, which is what makes rolling
restarts lossless). The supervisor starts no threads, so forking is safe.

Workers run in their own process group (a terminal's Ctrl-C reaches only the
supervisor, which then stops them in order) and get SIGTERM if the supervisor
dies, so they never linger.
"""

import logging
import mmap
import os
import signal
import time
from dataclasses import dataclass
from types import FrameType
from typing import Any

from async_pool import QuicEndpoint
from pounce_sync.config import Config
from pounce_sync.observe.metrics import MetricsLayout, SharedMetrics
from pounce_sync.worker.context import Listener

from .exit_codes import EXIT_ERROR, EXIT_OK, EXIT_RETIRED, EXIT_STARTUP_FAILURE
from .listeners import close_listeners, describe_listener
from .restart_budget import RestartBudget
from .worker_process import WorkerProcessSpec, run_worker_process

error_log = logging.getLogger("pounce_sync.error")

_POLL = 0.05
_READY_TIMEOUT = 60.0
# Blocked around fork(): the child must not run the supervisor's handlers for these.
_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


@dataclass(slots=True)
class WorkerProcess:
    slot: int  # 1-based position, stable across restarts
    pid: int
    ready_fd: int  # read end of the pipe the worker writes one byte to once it serves
    ready: bool = False


class ProcessSupervisor:
    def __init__(
        self,
        config: Config,
        app: Any,
        listeners: list[Listener],
        quic: list[QuicEndpoint] | None = None,
    ) -> None:
        self.config = config
        # HTTP/3: one UDP socket per slot, in one SO_REUSEPORT group, kept open here for
        # the server's life so a restarting worker's clients are not re-spread.
        self.quic = quic or []
        self.app = app
        self.listeners = listeners
        self.workers: dict[int, WorkerProcess] = {}  # by pid
        self.retiring: set[int] = set()  # pids we told to stop
        self.restarts = RestartBudget()
        # Slot -> monotonic time its replacement is due. The back-off is a deadline the
        # main loop checks, not a sleep, so a stop signal or a tripped restart budget seen
        # during it cancels the restart instead of forking a worker that is not wanted.
        self._due: dict[int, float] = {}
        # A plain flag, not a threading.Event: signal handlers set it, and Event.set()
        # in a handler can deadlock against the same Event's wait() in the main thread.
        self._stop = _Flag()
        # Shared with every worker process: set when the whole server stops, so each
        # worker serves the connections waiting in the accept queue before it closes.
        self._server_stopping = SharedFlag()
        self._reload = False
        self._signals = 0
        self._exit_code = EXIT_OK
        # Made before any fork, so every worker process writes into the same mapping.
        self.metrics = (
            SharedMetrics(MetricsLayout(processes=config.worker_count, threads=config.threads))
            if config.metrics_path
            else None
        )

    # -- lifecycle -------------------------------------------------------------
    def run(self) -> int:
        self._install_signal_handlers()
        for listener in self.listeners:
            error_log.info("Listening on %s (Press CTRL+C to quit)", describe_listener(listener))
        if self.quic:
            port = self.quic[0].sock.getsockname()[1]
            error_log.info("HTTP/3 on udp port %d, one socket per worker process", port)
        for slot in range(1, self.config.worker_count + 1):
            self._spawn(slot)
        while not self._stop.is_set():
            time.sleep(_POLL)
            self._collect_ready()
            self._reap()
            self._spawn_due()
            if self._reload:
                self._reload = False
                self._rolling_restart()
        self._stop_all()
        return self._exit_code

    def _spawn(self, slot: int) -> WorkerProcess:
        """Fork a worker; a stop signal sent to it at any moment ends it (never swallowed)."""
        ready_r, ready_w = os.pipe()
        # Until the child resets them, its handlers are ours: a SIGTERM landing there would
        # only set the child's copy of our stop flag. Blocked, it waits for the reset.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        try:
            pid = os.fork()
        except BaseException:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            os.close(ready_r)
            os.close(ready_w)
            raise
        if pid == 0:
            try:
                for signum in _STOP_SIGNALS:
                    signal.signal(signum, signal.SIG_DFL)
                # A SIGTERM that arrived meanwhile now ends the child by the default
                # action, which is right: it has served nothing yet.
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)
                os.close(ready_r)
            except BaseException:
                os._exit(EXIT_ERROR)  # never return into the supervisor's code
            run_worker_process(
                WorkerProcessSpec(
                    self.config,
                    self.app,
                    self.listeners,
                    slot,
                    self.metrics,
                    self._server_stopping.is_set,
                    self.quic[slot - 1] if self.quic else None,
                ),
                ready_w,
            )
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        os.close(ready_w)
        worker = WorkerProcess(slot, pid, ready_r)
        self.workers[pid] = worker
        error_log.info("Started worker process %d [%d]", slot, pid)
        return worker

    # -- monitoring ------------------------------------------------------------
    def _collect_ready(self) -> None:
        for worker in self.workers.values():
            if not worker.ready and _readable(worker.ready_fd):
                worker.ready = _said_ready(worker.ready_fd)

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self._on_exit(pid, os.waitstatus_to_exitcode(status))

    def _on_exit(self, pid: int, code: int) -> None:
        worker = self.workers.pop(pid, None)
        if worker is None:
            return
        os.close(worker.ready_fd)
        if pid in self.retiring:
            self.retiring.discard(pid)
            return
        if code == EXIT_RETIRED and not self._stop.is_set():
            error_log.info("worker process %d [%d] retired; starting a new one", worker.slot, pid)
            self._spawn(worker.slot)
            return
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        if code == EXIT_STARTUP_FAILURE and not worker.ready:
            error_log.error("worker process %d [%d] failed to start; stopping", worker.slot, pid)
            self._exit_code = EXIT_STARTUP_FAILURE
            self._stop.set()
            return
        if self._stop.is_set():
            return
        if not self.restarts.spend(time.monotonic()):
            error_log.error(
                "worker process %d [%d] %s; %d restarts within %.0fs already, shutting down",
                worker.slot,
                pid,
                how,
                self.restarts.limit,
                self.restarts.window,
            )
            self._exit_code = EXIT_ERROR
            self._stop.set()
            return
        error_log.warning("worker process %d [%d] %s; restarting it", worker.slot, pid, how)
        if self.metrics is not None:
            self.metrics.count_process_restart()
        self._due[worker.slot] = time.monotonic() + self.restarts.backoff()

    def _spawn_due(self) -> None:
        """Start the replacements whose back-off has passed; none once a stop was requested."""
        now = time.monotonic()
        for slot, due in list(self._due.items()):
            if self._stop.is_set():
                return
            if due <= now:
                del self._due[slot]
                self._spawn(slot)

    # -- reload and stop -------------------------------------------------------
    def _rolling_restart(self) -> None:
        """SIGHUP: for each worker, start its replacement, wait until it serves, then stop it."""
        error_log.info("Reloading: replacing worker processes one by one")
        for old in sorted(self.workers.values(), key=lambda w: w.slot):
            if old.pid in self.retiring or self._stop.is_set():
                continue
            new = self._spawn(old.slot)
            if not self._wait_ready(new):
                if self._stop.is_set():  # not a failure: the stop drains the new one too
                    return
                error_log.error("replacement for worker process %d did not start", old.slot)
                return
            self.retiring.add(old.pid)
            _kill(old.pid, signal.SIGTERM)

    def _wait_ready(self, worker: WorkerProcess) -> bool:
        deadline = time.monotonic() + _READY_TIMEOUT
        while time.monotonic() < deadline and not self._stop.is_set():
            if _readable(worker.ready_fd, _POLL):
                worker.ready = _said_ready(worker.ready_fd)
                return worker.ready
            self._reap()
            if worker.pid not in self.workers:
                return False
        return False

    def _stop_all(self) -> None:
        """Graceful drain of every worker within the timeout, then SIGKILL stragglers."""
        error_log.info("Shutting down: stopping %d worker processes", len(self.workers))
        self._server_stopping.set()
        for pid in self.workers:
            self.retiring.add(pid)
            _kill(pid, signal.SIGTERM)
        # Our copy of the listening sockets must not outlive the workers' copies: the
        # socket then closes when the last worker, having emptied its queue, lets go.
        # (A Unix socket's file stays until the end: --drain-delay keeps serving on it.)
        for listener in self.listeners:
            listener.sock.close()
        config = self.config
        deadline = time.monotonic() + config.drain_delay + config.timeout_graceful_shutdown + 5
        while self.workers and time.monotonic() < deadline:
            self._reap()
            time.sleep(_POLL)
        for pid in list(self.workers):
            error_log.warning("worker process [%d] did not stop in time; killing it", pid)
            _kill(pid, signal.SIGKILL)
        while self.workers:
            self._reap()
            time.sleep(_POLL)
        close_listeners(self.listeners)
        for endpoint in self.quic:
            endpoint.sock.close()
        error_log.info("Finished supervisor process [%d]", os.getpid())

    # -- signals ---------------------------------------------------------------
    def _install_signal_handlers(self) -> None:
        signal.signal(signal.SIGINT, self._on_stop_signal)
        signal.signal(signal.SIGTERM, self._on_stop_signal)
        signal.signal(signal.SIGHUP, self._on_reload_signal)

    def _on_stop_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals += 1
        if self._signals > 1:
            os.write(2, b"pounce-sync: second signal, killing worker processes\n")
            for pid in self.workers:
                _kill(pid, signal.SIGKILL)
            os._exit(EXIT_ERROR)
        self._stop.set()

    def _on_reload_signal(self, signum: int, frame: FrameType | None) -> None:
        self._reload = True


class _Flag:
    """set()/is_set() like an Event, safe to set from a signal handler (no lock)."""

    __slots__ = ("_value",)

    def __init__(self) -> None:
        self._value = False

    def set(self) -> None:
        self._value = True

    def is_set(self) -> bool:
        return self._value


class SharedFlag:
    """A flag the supervisor sets and its forked worker processes read (shared memory)."""

    __slots__ = ("_map",)

    def __init__(self) -> None:
        self._map = mmap.mmap(-1, 1)  # anonymous and shared: made before any fork

    def set(self) -> None:
        self._map[0] = 1

    def is_set(self) -> bool:
        return self._map[0] == 1


def _said_ready(fd: int) -> bool:
    """The worker wrote its byte; EOF (it exited first) makes the pipe readable too."""
    return os.read(fd, 1) == b"R"


def _readable(fd: int, timeout: float = 0.0) -> bool:
    import select

    return bool(select.select([fd], [], [], timeout)[0])


def _kill(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass
