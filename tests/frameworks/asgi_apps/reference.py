"""Serve a framework app with pounce-sync and with uvicorn, and compare their answers.

uvicorn is the reference: what a framework's users see under it is what they expect
under pounce-sync. Both servers run as subprocesses on 127.0.0.1 with a free port and
get the same $FRAMEWORK_APP_DIR, so files the app serves are the same bytes (and the
same mtimes, hence the same ETags).
"""

import re
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ...http_client import Response, request
from ...server_process import TESTS_DIR, ServerProcess, running_server

_UVICORN_LISTENING = re.compile(r"Uvicorn running on http://(\S+):(\d+)")
# Framing and the representation: what a client's parsing depends on.
FRAMING = (b"content-type", b"content-length", b"transfer-encoding")
WAIT = 30.0  # seconds a test waits for a file an app writes; only turns a hang into a failure


class UvicornProcess(ServerProcess):
    """`python -m uvicorn` as a subprocess; it announces its port as uvicorn does."""

    def _read(self, stream, lines: list[str]) -> None:
        for line in stream:
            lines.append(line)
            m = _UVICORN_LISTENING.search(line)
            if m:
                self.host, self.port = m[1].strip("[]"), int(m[2])
                self._listening.set()


@contextmanager
def running_uvicorn(app: str, work: Path, *args: str) -> Iterator[UvicornProcess]:
    """uvicorn serving `app` (tests/ on its path) on a free port of 127.0.0.1."""
    argv = [
        "uvicorn", "--host", "127.0.0.1", "--port", "0", "--app-dir", str(TESTS_DIR),
        "--no-access-log", *args, app,
    ]  # fmt: skip
    # ServerProcess runs `python <script> <args>`: "-m" makes that `python -m uvicorn ...`.
    server = UvicornProcess(argv, env=app_env(work), script="-m").wait_listening()
    try:
        yield server
    finally:
        server.kill()


@contextmanager
def running_pounce(app: str, work: Path, *args: str) -> Iterator[ServerProcess]:
    """pounce-sync serving `app` with the work directory and without an access log."""
    with running_server("--no-access-log", *args, app=app, env=app_env(work)) as server:
        yield server


def app_env(work: Path) -> dict[str, str]:
    return {"FRAMEWORK_APP_DIR": str(work)}


def stop_gracefully(server: ServerProcess) -> int:
    """SIGTERM and the exit code: lifespan shutdown runs only on a graceful stop."""
    return server.stop(signal.SIGTERM)


def same_answer(
    ours: ServerProcess,
    theirs: ServerProcess,
    raw: bytes,
    *fields: bytes,
    method: bytes = b"GET",
) -> Response:
    """`raw` to both servers: the same status, body, framing and `fields`. Ours is returned."""
    mine, reference = request(ours, raw, method), request(theirs, raw, method)
    assert_same(mine, reference, *fields)
    return mine


def assert_same(mine: Response, reference: Response, *fields: bytes) -> None:
    """Status, body, the framing headers and `fields` as uvicorn's (every value, in order)."""
    # Messages spelled out: pytest rewrites asserts in test modules only, not here.
    ours, theirs = (mine.status, mine.body[:2000]), (reference.status, reference.body[:2000])
    assert ours == theirs, f"pounce-sync {ours!r} != uvicorn {theirs!r}"
    assert mine.body == reference.body, "the bodies differ after their first 2000 bytes"
    for name in (*FRAMING, *fields):
        ours, theirs = mine.header_values(name), reference.header_values(name)
        assert ours == theirs, f"{name.decode()}: pounce-sync {ours!r} != uvicorn {theirs!r}"


def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Poll until `condition` holds; a timeout fails (never asserts on the time taken)."""
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def lines_of(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []
