"""Server lifecycle: graceful shutdown on SIGINT/SIGTERM, forced exit on a second signal,
and which threads a server runs."""

import json
import signal
import socket
import time

import pytest

from ..http_client import ResponseReader, get_new
from ..server_process import TESTS_DIR, ServerProcess, exchange, running_server


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_graceful_shutdown_finishes_the_request_in_flight(signum: int) -> None:
    with running_server("--workers", "2") as srv:
        idle = ResponseReader(srv.connect())
        idle.sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        idle.read_response()  # now parked as an idle keep-alive connection
        busy = ResponseReader(srv.connect())
        busy.sock.sendall(b"GET /sleep?1 HTTP/1.1\r\nHost: t\r\n\r\n")
        time.sleep(0.2)
        srv.send_signal(signum)
        response = busy.read_response()
        assert (response.status, response.body) == (200, b"slept")
        assert response.header(b"connection") == b"close"
        busy.read_closed()
        idle.read_closed()  # idle connections are closed at once
        assert not busy.reset and not idle.reset  # closed, not reset
        assert srv.wait_exit() == 0
        idle.sock.close()
        busy.sock.close()
    with pytest.raises(OSError):
        socket.create_connection((srv.host, srv.port), timeout=2).close()


def test_drain_timeout_bounds_shutdown() -> None:
    with running_server("--timeout-graceful-shutdown", "1") as srv:
        sock = srv.connect()
        sock.sendall(b"GET /sleep?60 HTTP/1.1\r\nHost: t\r\n\r\n")
        time.sleep(0.2)
        srv.send_signal(signal.SIGTERM)
        assert srv.wait_exit(timeout=15) == 0
        sock.close()
    assert "did not finish within 1.0s" in srv.stderr


def test_second_signal_forces_exit() -> None:
    with running_server() as srv:
        sock = srv.connect()
        sock.sendall(b"GET /sleep?60 HTTP/1.1\r\nHost: t\r\n\r\n")
        time.sleep(0.2)
        srv.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        srv.send_signal(signal.SIGINT)
        assert srv.wait_exit(timeout=15) != 0
        sock.close()
    assert "second signal" in srv.stderr


def test_unix_domain_socket(tmp_path) -> None:
    path = tmp_path / "app.sock"
    argv = ["--uds", str(path), "--app-dir", str(TESTS_DIR), "apps:app"]
    srv = ServerProcess(argv).wait_listening()
    try:
        assert srv.unix_path == str(path)
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(10)
            sock.connect(str(path))
            sock.sendall(b"GET /scope HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            reader = ResponseReader(sock)
            response = reader.read_response()
            reader.read_closed()
        assert response.status == 200
        assert json.loads(response.body)["client"] is None
        assert srv.stop() == 0
    finally:
        srv.kill()
    assert not path.exists()


def test_exchange_helper_against_closed_server_raises() -> None:
    with running_server() as srv:
        srv.stop()
        with pytest.raises(OSError):
            exchange(srv, b"GET / HTTP/1.0\r\n\r\n", timeout=2)


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_connections_waiting_in_the_accept_queue_are_served_on_shutdown(mode: str) -> None:
    """In process mode the supervisor's copy of the socket used to keep the queue alive
    until every worker had exited, and then reset it."""
    workers = 1 if mode == "thread" else 2
    with running_server("--workers", str(workers), "--worker-mode", mode) as srv:
        busy = []
        for _ in range(workers):
            reader = ResponseReader(srv.connect())
            reader.sock.sendall(b"GET /sleep?1 HTTP/1.1\r\nHost: t\r\n\r\n")
            busy.append(reader)
            time.sleep(0.2)  # asleep in the app: that worker accepts nothing more
        queued = ResponseReader(srv.connect())
        queued.sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        time.sleep(0.1)
        srv.send_signal(signal.SIGTERM)
        slept = [reader.read_response().body for reader in busy]
        second = queued.read_response()
        for reader in [*busy, queued]:
            reader.sock.close()
        assert srv.wait_exit(20) == 0
    assert slept == [b"slept"] * workers
    assert (second.status, second.body) == (200, b"Hello, world!")
    assert second.header(b"connection") == b"close"


def test_pipelined_request_behind_one_in_flight_at_shutdown_is_answered() -> None:
    """The first response promised keep-alive before the drain began: the request
    behind it gets an answer (with `connection: close`), not a reset."""
    with running_server() as srv:
        with srv.connect() as sock:
            sock.sendall(
                b"GET /respond-then-sleep?1 HTTP/1.1\r\nHost: t\r\n\r\n"
                b"GET /scope HTTP/1.1\r\nHost: t\r\n\r\n"
            )
            time.sleep(0.3)
            srv.send_signal(signal.SIGTERM)
            reader = ResponseReader(sock)
            first, second = reader.read_response(), reader.read_response()
            reader.read_closed()
        assert (first.status, second.status) == (200, 200)
        assert second.header(b"connection") == b"close"
        assert json.loads(second.body)["path"] == "/scope"  # the second response is whole
        assert srv.wait_exit(20) == 0


# -- the AsyncPool: started for an ASGI app; for a WSGI app only when a handoff needs it ----


def _thread_names(srv: ServerProcess) -> list[str]:
    """The threads of the process that answered: Python 3.11 and 3.13 give the kernel no
    thread names (every /proc/PID/task/*/comm says python), so the app lists them."""
    status, body = get_new(srv, "/threads")
    assert status == 200
    return body.decode().split("\n")


def _pool_threads(names: list[str]) -> list[str]:
    return [name for name in names if name.startswith("async-pool")]


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_a_wsgi_server_runs_no_async_pool_thread(mode: str) -> None:
    """Nor does anything miss one: health, metrics and a graceful stop."""
    args = ["--interface", "wsgi", "--workers", "2", "--worker-mode", mode]
    args += ["--health-path", "/health", "--metrics-path", "/metrics"]
    with running_server(*args, app="apps_wsgi:app") as srv:
        for _ in range(3):  # in process mode, whichever worker process answers
            names = _thread_names(srv)
            assert "worker-1" in names and _pool_threads(names) == [], names
        assert get_new(srv, "/health") == (200, b"ok\n")
        status, metrics = get_new(srv, "/metrics")
        assert status == 200 and b'pounce_handoffs_total{kind="pending_write"} 0' in metrics
        assert srv.stop() == 0
    assert "Traceback" not in srv.stderr, srv.stderr


def test_an_asgi_server_runs_its_async_pool_threads_from_the_start() -> None:
    with running_server("--async-threads", "2") as srv:
        assert _pool_threads(_thread_names(srv)) == ["async-pool-1", "async-pool-2"]
        assert srv.stop() == 0
