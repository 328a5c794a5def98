"""`gunicorn -k pounce_sync.gunicorn.Worker`: gunicorn's real master, our worker processes.

Each test starts gunicorn itself on 127.0.0.1 (a free port) with the apps of
tests/apps_habits.py and talks to it over real sockets.
"""

import http.client
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from gunicorn.config import Config as GunicornConfig
from websockets.sync.client import connect as websocket_connect

from pounce_sync.config import Config
from pounce_sync.gunicorn import config_from_gunicorn

from ..server_process import TESTS_DIR
from ..tls_server import client_context, make_certs

_LISTENING = re.compile(r"Listening at: https?://127\.0\.0\.1:(\d+)")
_STARTED = re.compile(r"Started server process \[(\d+)\]")
_EXITING = re.compile(r"Worker exiting \(pid: (\d+)\)")
WAIT = 30.0  # turns a hang into a failure; never a measure of speed
# gunicorn 25+ opens a control socket in $HOME unless told not to.
_NO_CONTROL_SOCKET = (
    ["--no-control-socket"] if "control_socket_disable" in GunicornConfig().settings else []
)


class Gunicorn:
    """A gunicorn master process; its log (stderr) collected line by line."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        cmd = [
            sys.executable, "-m", "gunicorn", "-k", "pounce_sync.gunicorn.Worker",
            "-b", "127.0.0.1:0", "--pythonpath", str(TESTS_DIR), *_NO_CONTROL_SOCKET, *args,
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **env},
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.port = 0

    def wait_listening(self) -> None:
        self.port = int(self.wait_for(_LISTENING)[0][1])

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def found(self, pattern: re.Pattern[str]) -> list[re.Match[str]]:
        return [m for line in list(self.lines) if (m := pattern.search(line))]

    def wait_for(self, pattern: re.Pattern[str], count: int = 1) -> list[re.Match[str]]:
        deadline = time.monotonic() + WAIT
        while len(found := self.found(pattern)) < count:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"no {count} x {pattern.pattern!r} in:\n{self.log}")
            time.sleep(0.02)
        return found

    def started_pids(self, count: int) -> list[int]:
        return [int(m[1]) for m in self.wait_for(_STARTED, count)]

    def get(self, path: str, timeout: float = WAIT) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def stop(self, signum: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        return self.wait_exit()

    def wait_exit(self) -> int:
        code = self.proc.wait(WAIT)
        self._reader.join(5)
        return code


@contextmanager
def running_gunicorn(*args: str, app: str = "apps_habits:app", **env: str) -> Iterator[Gunicorn]:
    server = Gunicorn([*args, app], env)
    try:
        server.wait_listening()
        yield server
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait(10)
        server._reader.join(5)
        assert server.proc.stderr is not None
        server.proc.stderr.close()


def _in_background(call) -> tuple[threading.Thread, list]:
    """Run `call` on a thread; its result (or exception) lands in the returned list."""
    result: list = []

    def run() -> None:
        try:
            result.append(call())
        except Exception as exc:
            result.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


def _wait_for_line(path: Path, count: int = 1) -> list[str]:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= count:
            return lines
        time.sleep(0.02)
    raise AssertionError(f"{path} never got {count} line(s)")


# -- serving --------------------------------------------------------------------------------


@pytest.mark.parametrize("app", ["apps_habits:app", "apps_habits:wsgi_app"], ids=["asgi", "wsgi"])
def test_two_workers_serve_asgi_and_wsgi(app: str) -> None:
    with running_gunicorn("-w", "2", "--threads", "2", app=app) as server:
        pids = server.started_pids(2)
        assert len(set(pids)) == 2
        answered = {int(server.get("/pid")[1]) for _ in range(10)}
        assert answered <= set(pids)
        assert server.stop() == 0
    assert "Traceback" not in server.log, server.log


def test_worker_threads_run_as_the_interpreter_does() -> None:
    """On 3.13t gunicorn's imports leave the GIL off in the worker; and two requests are
    in the app at once on its two threads (each waits for the other)."""
    gil = str(getattr(sys, "_is_gil_enabled", lambda: True)()).encode()
    with running_gunicorn("--threads", "2") as server:
        assert server.get("/gil") == (200, gil)
        first, first_result = _in_background(lambda: server.get("/together"))
        second, second_result = _in_background(lambda: server.get("/together"))
        first.join(WAIT + 5)
        second.join(WAIT + 5)
        assert server.stop() == 0
    assert first_result == second_result == [(200, b"together")]


def test_streaming_response_and_websocket() -> None:
    """The AsyncPool is there in gunicorn's workers too."""
    with running_gunicorn() as server:
        assert server.get("/stream?n=3") == (200, b"chunk 0\nchunk 1\nchunk 2\n")
        with websocket_connect(f"ws://127.0.0.1:{server.port}/ws", open_timeout=WAIT) as ws:
            ws.send("hi")
            assert ws.recv(timeout=WAIT) == "echo: hi"
        assert server.stop() == 0


def test_lifespan_runs_in_each_worker(tmp_path: Path) -> None:
    log = tmp_path / "lifespan.log"
    with running_gunicorn("-w", "2", HABITS_LIFESPAN_LOG=str(log)) as server:
        pids = server.started_pids(2)
        assert server.get("/")[0] == 200
        assert server.stop() == 0
    events = sorted(log.read_text().splitlines())
    assert events == sorted(f"{kind} {pid}" for pid in pids for kind in ("startup", "shutdown"))


def test_failed_lifespan_startup_stops_gunicorn() -> None:
    """As uvicorn's worker does: a worker that cannot boot makes the master give up."""
    with running_gunicorn(app="apps:failing_startup") as server:
        code = server.wait_exit()
    assert code == 3, server.log  # gunicorn's WORKER_BOOT_ERROR
    assert "application startup failed: database unreachable" in server.log


@pytest.mark.skipif(shutil.which("openssl") is None, reason="the openssl command makes the certs")
def test_tls_from_gunicorns_certfile_and_keyfile(tmp_path: Path) -> None:
    certs = make_certs(shutil.which("openssl") or "", tmp_path)
    with running_gunicorn("--certfile", certs.server_cert, "--keyfile", certs.server_key) as server:
        conn = http.client.HTTPSConnection(
            "localhost", server.port, timeout=WAIT, context=client_context(certs)
        )
        try:
            conn.request("GET", "/")
            response = conn.getresponse()
            assert (response.status, response.read()) == (200, b"habits ok")
        finally:
            conn.close()
        assert server.stop() == 0


# -- signals ----------------------------------------------------------------------------------


def test_sigterm_finishes_the_request_in_flight(tmp_path: Path) -> None:
    slow_log = tmp_path / "slow.log"
    with running_gunicorn("--graceful-timeout", "20", HABITS_SLOW_LOG=str(slow_log)) as server:
        server.started_pids(1)
        thread, result = _in_background(lambda: server.get("/slow?s=1"))
        _wait_for_line(slow_log)
        code = server.stop(signal.SIGTERM)
        thread.join(WAIT)
    assert result == [(200, b"slow done")]
    assert code == 0, server.log


def test_sigquit_exits_without_waiting_for_the_request(tmp_path: Path) -> None:
    """gunicorn's quick shutdown: the request in flight is cut off, not awaited."""
    slow_log = tmp_path / "slow.log"
    with running_gunicorn("--graceful-timeout", "120", HABITS_SLOW_LOG=str(slow_log)) as server:
        server.started_pids(1)
        thread, result = _in_background(lambda: server.get("/slow?s=120"))
        _wait_for_line(slow_log)
        code = server.stop(signal.SIGQUIT)  # waits WAIT at most: far below the 120 s
        thread.join(WAIT)
    assert code == 0, server.log
    assert len(result) == 1 and isinstance(result[0], Exception), result


def test_sighup_replaces_workers_without_failing_a_request(tmp_path: Path) -> None:
    slow_log = tmp_path / "slow.log"
    with running_gunicorn("-w", "2", HABITS_SLOW_LOG=str(slow_log)) as server:
        old = set(server.started_pids(2))
        thread, in_flight = _in_background(lambda: server.get("/slow?s=1"))
        _wait_for_line(slow_log)
        server.proc.send_signal(signal.SIGHUP)
        statuses = []
        deadline = time.monotonic() + WAIT
        # Requests all along the reload: until both old workers have exited.
        while {int(m[1]) for m in server.found(_EXITING)} < old:
            assert time.monotonic() < deadline, server.log
            statuses.append(server.get("/")[0])
        new = set(server.started_pids(4)) - old
        assert len(new) == 2
        answered = {int(server.get("/pid")[1]) for _ in range(10)}
        thread.join(WAIT)
        assert server.stop() == 0
    assert in_flight == [(200, b"slow done")]
    assert statuses and set(statuses) == {200}
    assert answered <= new


def test_heartbeat_keeps_a_busy_worker_alive(tmp_path: Path) -> None:
    """--timeout 1 and a request of 3 s: the worker notifies the master meanwhile, so it
    is not killed as hung (gthread's semantics: the process's main loop is watched).

    gunicorn watches a worker only once it has notified at all (before, the file's time
    is wall-clock, the master compares monotonic time); a worker that stopped after its
    first notification fails here."""
    with running_gunicorn("--timeout", "1") as server:
        [pid] = server.started_pids(1)
        assert server.get("/slow?s=3") == (200, b"slow done")
        assert server.get("/pid") == (200, str(pid).encode())
        assert server.stop() == 0
    assert "WORKER TIMEOUT" not in server.log, server.log


def test_max_requests_replaces_the_worker() -> None:
    with running_gunicorn("--max-requests", "3") as server:
        [first] = server.started_pids(1)
        statuses = [server.get("/")[0] for _ in range(3)]
        server.started_pids(2)  # its replacement
        assert server.get("/")[0] == 200
        assert server.stop() == 0
    assert statuses == [200, 200, 200]
    assert first in {int(m[1]) for m in server.found(_EXITING)}


# -- settings ---------------------------------------------------------------------------------


def _gunicorn_cfg(*argv: str) -> GunicornConfig:
    cfg = GunicornConfig()
    parsed = cfg.parser().parse_args([*argv, "app:app"])
    for name, value in vars(parsed).items():
        if value is not None and name in cfg.settings:
            cfg.set(name, value)
    return cfg


def test_gunicorns_settings_are_mapped() -> None:
    cfg = _gunicorn_cfg(
        "--threads", "8", "--keep-alive", "7", "--graceful-timeout", "9",
        "--max-requests", "100", "--max-requests-jitter", "10", "--limit-request-line", "1000",
        "--limit-request-fields", "20", "--limit-request-field_size", "500",
        "--forwarded-allow-ips", "10.0.0.1,10.0.0.2", "--access-logfile", "-",
    )  # fmt: skip
    config = config_from_gunicorn(cfg, "asgi3")
    assert (config.threads, config.timeout_keep_alive, config.timeout_graceful_shutdown) == (
        8,
        7.0,
        9.0,
    )
    assert (config.limit_max_requests, config.limit_max_requests_jitter) == (100, 10)
    assert (config.limit_request_line, config.limit_request_fields) == (1000, 20)
    assert config.limit_request_headers_size == 500 * 20
    assert config.forwarded_allow_ips == "10.0.0.1,10.0.0.2"
    assert config.access_log and config.access_log_format == cfg.access_log_format


def test_gunicorns_zeros_mean_off_or_unlimited() -> None:
    config = config_from_gunicorn(
        _gunicorn_cfg("--keep-alive", "0", "--limit-request-line", "0"), "wsgi"
    )
    assert config.limit_max_requests is None  # gunicorn's default 0: never
    assert config.timeout_keep_alive < 0.1  # keep-alive off: close when idle
    assert config.limit_request_line == Config().limit_request_line
    assert not config.access_log  # no --access-logfile: no access log, as gunicorn
