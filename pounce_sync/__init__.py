"""pounce-sync: an HTTP server for free-threaded Python.

Plain request/response traffic runs on blocking worker threads; everything
long-lived or multiplexed is handed to the AsyncPool (see `async_pool`).

Embedding: `pounce_sync.run("app:app", workers=4)` or `pounce_sync.run(app_object)`
blocks until SIGINT/SIGTERM and returns the exit code, like the command line.
"""

from typing import Any

from .version import __version__


def run(app: Any, **settings: Any) -> int:
    """Serve `app` (an import string, or an ASGI or WSGI callable) with `Config` settings."""
    from pounce_sync.server.run import run_config

    from .config import Config

    if isinstance(app, str):
        return run_config(Config(app=app, **settings))
    return run_config(Config(**settings), app=app)


__all__ = ["__version__", "run"]
