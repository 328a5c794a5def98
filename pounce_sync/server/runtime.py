"""Facts about the interpreter and process limits, read once at start-up."""

import resource
import sys


def gil_enabled() -> bool:
    """True on a normal build, and on a free-threaded one whose GIL an import re-enabled."""
    check = getattr(sys, "_is_gil_enabled", None)
    return True if check is None else bool(check())


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
    """("thread" | "process", why), for the start-up log."""
    if requested != "auto":
        return requested, f"--worker-mode {requested}"
    if gil_enabled():
        return "process", "auto: the GIL is enabled, so threads would not run Python in parallel"
    return "thread", "auto: the GIL is disabled"
