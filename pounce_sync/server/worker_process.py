"""A forked worker process's own entry: the supervisor forks, this serves.

Its own module so that the supervisor, which forks, and the server, which
serves, need not import each other.
"""

import ctypes
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

from async_pool import QuicEndpoint
from pounce_sync.config import Config
from pounce_sync.observe.metrics import SharedMetrics
from pounce_sync.worker.context import Listener

from .exit_codes import EXIT_ERROR
from .lifecycle import Server

error_log = logging.getLogger("pounce_sync.error")
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True, slots=True)
class WorkerProcessSpec:
    """What a worker process serves, made by the supervisor before it forks."""

    config: Config
    app: Any
    listeners: list[Listener]
    slot: int  # 1-based, stable across restarts
    metrics: SharedMetrics | None
    server_stopping: Callable[[], bool]  # the whole server stops, not just this process
    quic: QuicEndpoint | None = None  # this slot's HTTP/3 socket


def run_worker_process(spec: WorkerProcessSpec, ready_w: int) -> NoReturn:
    """Serve until stopped, then exit; writes one byte to `ready_w` once serving."""
    code = EXIT_ERROR
    try:
        os.setpgid(0, 0)
        _die_with_parent()
        threading.current_thread().name = f"process-{spec.slot}"

        def ready() -> None:
            os.write(ready_w, b"R")
            os.close(ready_w)

        server = Server(
            spec.config,
            spec.app,
            spec.listeners,
            threads=spec.config.threads,
            primary=False,
            on_ready=ready,
            metrics=spec.metrics,
            process_index=spec.slot - 1,
            server_stopping=spec.server_stopping,
            quic=spec.quic,
        )
        code = server.run()
    except BaseException:
        error_log.exception("worker process %d failed", spec.slot)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _die_with_parent() -> None:
    """Linux: get SIGTERM when the supervisor dies, even by SIGKILL."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the supervisor died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)
