"""Server lifecycle: graceful shutdown on SIGINT/SIGTERM, forced exit on a second signal."""

import signal
import socket
import time

import pytest

from ..server_process import (
    TESTS_DIR,
    ServerProcess,
    exchange,
    read_response,
    read_until_closed,
    running_server,
)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_graceful_shutdown_finishes_the_request_in_flight(signum: int) -> None:
    with running_server("--workers", "2") as srv:
        idle = srv.connect()
        idle.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        read_response(idle)  # now parked as an idle keep-alive connection
        busy = srv.connect()
        busy.sendall(b"GET /sleep?1 HTTP/1.1\r\nHost: t\r\n\r\n")
        time.sleep(0.2)
        srv.send_signal(signum)
        status, headers, body = read_response(busy)
        assert (status, body) == (b"HTTP/1.1 200 OK", b"slept")
        assert headers[b"connection"] == b"close"
        assert busy.recv(1) == b""
        assert idle.recv(1) == b""  # idle connections are closed at once
        assert srv.wait_exit() == 0
        idle.close()
        busy.close()
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
            data = read_until_closed(sock)
        assert data.startswith(b"HTTP/1.1 200 ")
        assert b'"client": null' in data
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
            sock = srv.connect()
            sock.sendall(b"GET /sleep?1 HTTP/1.1\r\nHost: t\r\n\r\n")
            busy.append(sock)
            time.sleep(0.2)  # asleep in the app: that worker accepts nothing more
        queued = srv.connect()
        queued.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        time.sleep(0.1)
        srv.send_signal(signal.SIGTERM)
        slept = [read_response(sock)[2] for sock in busy]
        second = read_response(queued)
        for sock in [*busy, queued]:
            sock.close()
        assert srv.wait_exit(20) == 0
    assert slept == [b"slept"] * workers
    assert second[0] == b"HTTP/1.1 200 OK" and second[2] == b"Hello, world!"
    assert second[1][b"connection"] == b"close"


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
            data = read_until_closed(sock)
        assert data.count(b"HTTP/1.1 200 OK") == 2, data
        assert data.rstrip().endswith(b"}")  # the second, /scope, response is complete
        assert srv.wait_exit(20) == 0
