"""Facts about the interpreter and process limits, read once at start-up."""

import re
import resource
import sys
import warnings
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
# What a free-threaded CPython says when an extension without Py_mod_gil makes it turn the
# GIL back on (Python/import.c); the module's name is the one thing we need from it.
_GIL_REENABLED = re.compile(r"GIL\) has been enabled to load module '([^']+)'")


def gil_enabled() -> bool:
    """True on a normal build, and on a free-threaded one whose GIL an import re-enabled."""
    check = getattr(sys, "_is_gil_enabled", None)
    return True if check is None else bool(check())


def import_watching_gil(load: Callable[[], T]) -> tuple[T, str | None]:
    """Run `load` (the app's import); also the module whose import re-enabled the GIL.

    None when the GIL was already on, or stayed off. Other warnings are shown as usual;
    the GIL's own warning is replaced by the server's start-up line that names the module.
    """
    before = gil_enabled()
    with warnings.catch_warnings(record=True) as caught:
        result = load()
    culprit = None
    for warning in caught:
        found = _GIL_REENABLED.search(str(warning.message))
        if found is not None and culprit is None:
            culprit = found[1]
            continue
        warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)
    if before or not gil_enabled():
        return result, None
    return result, culprit or "an unknown module"


def raise_open_files_limit() -> tuple[int, int]:
    """Raise RLIMIT_NOFILE's soft limit to the hard limit: a server holds many sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft, hard


def choose_worker_mode(requested: str) -> tuple[str, str]:
    """("thread" | "process", why), for the start-up log; asked after the app's import."""
    if requested != "auto":
        return requested, f"--worker-mode {requested}"
    if gil_enabled():
        return "process", "auto: the GIL is enabled, so threads would not run Python in parallel"
    return "thread", "auto: the GIL is disabled"
