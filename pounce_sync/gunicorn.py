"""A gunicorn worker class: `gunicorn -k pounce_sync.gunicorn.Worker app:app`.

gunicorn's master binds, forks and watches the worker processes; each one serves
here as a worker process of pounce-sync's own supervisor does (`server.lifecycle.
Server`): the app's lifespan, `--threads` sync worker threads on the idle poller, the
AsyncPool for streaming, WebSocket and HTTP/2, on the sockets gunicorn hands over.
ASGI and WSGI apps alike (uvicorn's worker serves ASGI only).

gunicorn's settings that have a counterpart are mapped (`config_from_gunicorn`);
the rest of gunicorn's behaviour is gunicorn's own: SIGTERM drains gracefully within
--graceful-timeout, SIGINT and SIGQUIT exit at once, SIGUSR1 reopens the log files,
the worker notifies the master every tick (its --timeout heartbeat) and stops when
the master tells it to or goes away. Use it where gunicorn is already how services
are run and watched; otherwise `pounce-sync --workers N` does the same with no
gunicorn in between.
"""

import logging
import os
import signal
import socket
import sys
from typing import Any

from gunicorn.arbiter import Arbiter
from gunicorn.workers import base

from pounce_sync.config import Config, ConfigError
from pounce_sync.server.exit_codes import EXIT_STARTUP_FAILURE
from pounce_sync.server.interface import resolve_interface
from pounce_sync.server.lifecycle import Server
from pounce_sync.server.tls import TLSConfigError, build_ssl_context
from pounce_sync.worker.context import Listener

# gunicorn's --keep-alive 0 turns keep-alive off; ours must be positive: close at once.
_NO_KEEP_ALIVE = 0.01
_DEFAULT = Config()


def config_from_gunicorn(cfg: Any, interface: str) -> Config:
    """Our settings from gunicorn's: threads, timeouts, request limits, logs, TLS.

    gunicorn's per-field limit (--limit-request-field_size) bounds our whole header
    block as `size x --limit-request-fields`, never above our default; 0 (gunicorn's
    "unlimited") keeps our defaults.
    """
    fields_limit = cfg.limit_request_fields or _DEFAULT.limit_request_fields
    field_size = cfg.limit_request_field_size
    headers_size = _DEFAULT.limit_request_headers_size
    if field_size:
        headers_size = min(headers_size, field_size * fields_limit)
    forwarded = cfg.forwarded_allow_ips
    settings: dict[str, Any] = {
        "interface": interface,
        "worker_mode": "process",
        "threads": cfg.threads,
        "backlog": cfg.backlog,
        "timeout_keep_alive": cfg.keepalive if cfg.keepalive > 0 else _NO_KEEP_ALIVE,
        "timeout_graceful_shutdown": cfg.graceful_timeout,
        "limit_max_requests": cfg.max_requests or None,
        "limit_max_requests_jitter": cfg.max_requests_jitter,
        "limit_request_line": cfg.limit_request_line or _DEFAULT.limit_request_line,
        "limit_request_fields": fields_limit,
        "limit_request_headers_size": headers_size,
        "forwarded_allow_ips": forwarded if isinstance(forwarded, str) else ",".join(forwarded),
        "access_log": cfg.accesslog is not None,
        "access_log_format": cfg.access_log_format,
    }
    if cfg.is_ssl:
        settings.update(
            ssl_certfile=cfg.certfile,
            ssl_keyfile=cfg.keyfile,
            ssl_ca_certs=cfg.ca_certs,
            ssl_cert_reqs=int(cfg.cert_reqs),
        )
        if cfg.ciphers:
            settings["ssl_ciphers"] = cfg.ciphers
    return Config(**settings)


def listeners_from_sockets(sockets: list[Any], config: Config) -> list[Listener]:
    """gunicorn's bound sockets (non-blocking already) as our listeners."""
    context = build_ssl_context(config)
    scheme = "https" if context is not None else "http"
    listeners = []
    for wrapped in sockets:
        sock: socket.socket = getattr(wrapped, "sock", wrapped)
        server = None if sock.family == socket.AF_UNIX else sock.getsockname()[:2]
        listeners.append(Listener(sock, scheme, server, ssl_context=context))
    return listeners


class Worker(base.Worker):
    """One gunicorn worker process serving with pounce-sync's worker threads."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.server: Server | None = None
        # Our loggers write where gunicorn's do (--error-logfile, --access-logfile).
        for ours, theirs in (
            ("pounce_sync.error", self.log.error_log),
            ("pounce_sync.access", self.log.access_log),
        ):
            logger = logging.getLogger(ours)
            logger.handlers = list(theirs.handlers)
            logger.setLevel(theirs.level)
            logger.propagate = False

    def init_signals(self) -> None:
        """gunicorn's handlers, without the wake-up pipe, which nothing here reads.

        SIGTERM only clears `alive` (the next tick starts the drain); SIGINT and SIGQUIT
        run gunicorn's quick exit (the worker_int hook, then SystemExit in the main
        thread; the worker threads are daemons and end with the process).
        """
        for signum in self.SIGNALS:
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, self.handle_exit)
        signal.signal(signal.SIGQUIT, self.handle_quit)
        signal.signal(signal.SIGINT, self.handle_quit)
        signal.signal(signal.SIGWINCH, self.handle_winch)
        signal.signal(signal.SIGUSR1, self.handle_usr1)
        signal.signal(signal.SIGABRT, self.handle_abort)
        signal.siginterrupt(signal.SIGTERM, False)
        signal.siginterrupt(signal.SIGUSR1, False)

    def run(self) -> None:
        try:
            interface, app, _ = resolve_interface(self.wsgi, "auto")
            config = config_from_gunicorn(self.cfg, interface)
            listeners = listeners_from_sockets(self.sockets, config)
        except (ConfigError, TLSConfigError) as exc:
            self.log.error("pounce-sync: %s", exc)
            sys.exit(Arbiter.WORKER_BOOT_ERROR)  # the master stops: every worker would fail
        self.server = Server(
            config,
            app,
            listeners,
            threads=config.threads,
            primary=False,
            # Whether gunicorn stops or replaces us, connections already queued on the
            # shared socket are taken and served before it is closed: none is reset.
            server_stopping=lambda: True,
            own_signals=False,
            on_tick=self._tick,
        )
        if self.server.run() == EXIT_STARTUP_FAILURE:  # the app's lifespan startup failed
            sys.exit(Arbiter.WORKER_BOOT_ERROR)

    def _tick(self) -> None:
        """The heartbeat gunicorn's --timeout watches; a stop once gunicorn wants one."""
        self.notify()
        if self.server is not None and (not self.alive or self.ppid != os.getppid()):
            if self.alive:
                self.log.info("Parent changed, shutting down: %s", self)
                self.alive = False
            self.server.request_shutdown()
