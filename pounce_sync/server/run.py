"""From a config to a running server: load the app, bind, then serve in this process or
under the process supervisor. The one place that knows both."""

import logging
import sys
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from async_pool import QuicEndpoint, http3_unavailable, load_credentials
from pounce_sync.config import Config
from pounce_sync.observe.logs import LogConfigError, configure_logging
from pounce_sync.version import __version__
from pounce_sync.worker.context import Listener

from .diagnostic_app import make_diagnostic_app
from .exit_codes import EXIT_ERROR
from .importer import AppImportError, load_app
from .interface import resolve_interface
from .lifecycle import Server
from .listeners import BindError, bind_listeners, bind_udp
from .runtime import (
    choose_worker_mode,
    gil_enabled,
    import_watching_gil,
    raise_open_files_limit,
)
from .supervisor import ProcessSupervisor
from .tls import TLSConfigError

error_log = logging.getLogger("pounce_sync.error")


def run_config(config: Config, app: Any = None, startup_warnings: Sequence[str] = ()) -> int:
    """Run until a shutdown signal; returns the process exit code.

    `app` is an ASGI or WSGI callable to serve instead of importing `config.app`.
    `startup_warnings` (the command line's own) are logged once start-up succeeded: a
    failed start-up says one line, its error.
    """
    raise_open_files_limit()
    try:
        configure_logging(config.log_level, config.log_config)
        # The mode is chosen after the import: an extension module can re-enable the GIL.
        app, gil_culprit = (app, None) if app is not None else _load(config)
        mode, why = choose_worker_mode(config.worker_mode)
        config = replace(config, worker_mode=mode)  # from here on never "auto"
        if app is None:  # no app named: the diagnostic one
            app = make_diagnostic_app(mode, config.worker_count)
        # Resolved once: from here on the config names the interface, never "auto".
        interface, app, interface_why = resolve_interface(app, config.interface)
        config = replace(config, interface=interface)
        listeners = bind_listeners(config)
        config, quic = _bind_http3(config, listeners, mode)
    except (LogConfigError, AppImportError, BindError, TLSConfigError, HTTP3Error) as exc:
        if exc.__cause__ is not None:  # the whole traceback, at --log-level debug only
            error_log.debug("Start-up failed", exc_info=exc.__cause__)
        print(f"pounce-sync: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    for warning in startup_warnings:
        error_log.warning("%s", warning)
    if gil_culprit is not None:
        error_log.warning(
            "Importing %s re-enabled the GIL, so worker threads will not run Python in "
            "parallel; %s",
            gil_culprit,
            "worker mode auto chose processes" if mode == "process" else f"{why} keeps threads",
        )
    _log_start(config, mode, why, interface_why)
    if mode == "process" and config.worker_count > 1:
        return ProcessSupervisor(config, app, listeners, quic).run()
    threads = config.worker_count if mode == "thread" else config.threads
    return Server(config, app, listeners, threads=threads, quic=quic[0] if quic else None).run()


class HTTP3Error(Exception):
    """--http3 cannot run here; the message is one line for the user."""


def _bind_http3(
    config: Config, listeners: list[Listener], mode: str
) -> tuple[Config, list[QuicEndpoint]]:
    """The QUIC sockets: one per worker process, or one for the process (thread mode).

    The config then names the bound port, which the TCP side advertises (Alt-Svc).
    """
    if not config.http3:
        return config, []
    problem = http3_unavailable()
    tcp = next((lst for lst in listeners if lst.server is not None), None)
    if problem is None and tcp is None:
        problem = "--http3 needs a TCP listener (its host, and its port unless --http3-port)"
    if problem is not None:
        _close_all(listeners)
        raise HTTP3Error(problem)
    assert tcp is not None and tcp.server is not None and config.ssl_certfile is not None
    try:
        certificate, key = load_credentials(
            config.ssl_certfile, config.ssl_keyfile, config.ssl_keyfile_password
        )
    except (OSError, ValueError) as exc:
        _close_all(listeners)
        raise HTTP3Error(str(exc)) from exc
    host, port = tcp.server
    count = config.worker_count if mode == "process" and config.worker_count > 1 else 1
    try:
        socks = bind_udp(host, config.http3_port or port, count)
    except BindError:
        _close_all(listeners)
        raise
    bound = socks[0].getsockname()[1]
    config = replace(config, http3_port=bound)
    return config, [QuicEndpoint(sock, certificate, key) for sock in socks]


def _close_all(listeners: list[Listener]) -> None:
    for listener in listeners:
        listener.sock.close()


def _load(config: Config) -> tuple[Any, str | None]:
    """The app (None: the diagnostic app, made once the mode is known) and the module
    whose import re-enabled the GIL, if one did."""
    if config.app is None:
        return None, None
    return import_watching_gil(lambda: load_app(config.app, config.app_dir, config.factory))


def _log_start(config: Config, mode: str, why: str, interface_why: str) -> None:
    gil = "enabled" if gil_enabled() else "disabled"
    error_log.info("pounce-sync %s, Python %s, GIL %s", __version__, sys.version.split()[0], gil)
    if mode == "thread":
        shape = f"{config.worker_count} worker thread(s) in one process"
    elif config.worker_count == 1:
        shape = f"1 worker process (this one, no supervisor) with {config.threads} thread(s)"
    else:
        shape = f"{config.worker_count} worker processes with {config.threads} thread(s) each"
    error_log.info("Worker mode: %s (%s): %s", mode, why, shape)
    error_log.info("Interface: %s (%s)", config.interface, interface_why)
