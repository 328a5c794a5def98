"""pounce-sync: an HTTP server for free-threaded Python.

Plain request/response traffic runs on blocking worker threads; everything
long-lived or multiplexed is handed to the AsyncPool (see `async_pool`).

Embedding: `pounce_sync.run("app:app", workers=4)` or `pounce_sync.run(app_object)`
blocks until SIGINT/SIGTERM and returns the exit code, like the command line.
"""

import signal
from typing import Any

from .version import __version__

_HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def run(app: Any, **settings: Any) -> int:
    """Serve `app` (an import string, or an ASGI or WSGI callable) with `Config` settings.

    A bad setting raises `pounce_sync.config.ConfigError` before anything starts; a
    failed start-up (port in use, app that does not import) prints its one line and
    returns the non-zero exit code. The signal handlers the server installs are put
    back as they were when it returns, so the caller's Ctrl-C works again.
    """
    import threading

    from pounce_sync.server.run import run_config

    from .config import Config, ConfigError

    unknown = sorted(settings.keys() - Config.__dataclass_fields__.keys())
    if unknown:
        raise ConfigError(f"pounce_sync.run(): no such setting {unknown[0]!r}")
    if settings.get("reload"):
        raise ConfigError("reload needs the command line: pounce-sync --reload APP")
    if isinstance(app, str):
        config, app = Config(app=app, **settings), None
    else:
        config = Config(**settings)
    if threading.current_thread() is not threading.main_thread():
        return run_config(config, app=app)
    before = {signum: signal.getsignal(signum) for signum in _HANDLED}
    try:
        return run_config(config, app=app)
    finally:
        for signum, handler in before.items():
            if handler is not None:  # None: set outside Python, cannot be put back
                signal.signal(signum, handler)


__all__ = ["__version__", "run"]
