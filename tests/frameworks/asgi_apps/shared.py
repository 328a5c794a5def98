"""What every framework app here needs: its working directory and the runtime it sees."""

import os
import sys
import threading
import time
from pathlib import Path

RELEASE_WAIT = 30.0  # seconds an app waits for a test's release file before giving up


def work_dir() -> Path:
    """The directory the test gave the server ($FRAMEWORK_APP_DIR): files in, files out."""
    return Path(os.environ["FRAMEWORK_APP_DIR"])


def runtime() -> dict[str, object]:
    """What the test checks about where a request ran: process, thread, GIL."""
    check = getattr(sys, "_is_gil_enabled", None)
    return {
        "pid": os.getpid(),
        "thread": threading.current_thread().name,
        "main_thread": threading.current_thread() is threading.main_thread(),
        "gil_enabled": True if check is None else bool(check()),
    }


def record(name: str, line: str) -> None:
    """Append one line to a file of the work directory (O_APPEND: one write, whole)."""
    with open(work_dir() / name, "a", encoding="utf-8") as out:
        out.write(line + "\n")


def released(token: str) -> bool:
    """True once the test has created `release-<token>`."""
    return (work_dir() / f"release-{token}").exists()


def wait_released(token: str) -> bool:
    """Block (a sync handler's thread) until the test releases `token`, or give up."""
    deadline = time.monotonic() + RELEASE_WAIT
    while not released(token):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True
