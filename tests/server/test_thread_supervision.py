"""Thread mode: a worker thread whose loop dies is replaced, within the restart budget."""

import time

from ..http_client import request
from ..server_process import exchange, running_server

THREADS = ("--worker-mode", "thread", "--no-access-log")


def _crash(srv) -> None:
    try:
        exchange(srv, b"GET /exit-worker HTTP/1.1\r\nHost: t\r\n\r\n", timeout=5)
    except OSError:
        pass  # the dying worker never answers; its socket may simply hang up


def _wait_for_log(srv, text: str) -> None:
    deadline = time.monotonic() + 20
    while text not in srv.stderr:
        assert time.monotonic() < deadline, srv.stderr
        time.sleep(0.05)


def test_dead_worker_thread_is_replaced() -> None:
    with running_server("--workers", "2", *THREADS) as srv:
        _crash(srv)
        _wait_for_log(srv, "died; starting a new one")
        for _ in range(20):
            ok = request(srv, b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            assert (ok.status, ok.body) == (200, b"Hello, world!")
        assert srv.stop() == 0
    assert "worker thread worker-" in srv.stderr
    assert "died; starting a new one" in srv.stderr


def test_thread_restart_budget_exhausted_exits_non_zero() -> None:
    with running_server("--workers", "1", *THREADS) as srv:
        for restarts in range(5):
            _crash(srv)
            deadline = time.monotonic() + 20
            while srv.stderr.count("died; starting a new one") <= restarts:
                assert time.monotonic() < deadline, srv.stderr
                time.sleep(0.05)
        _crash(srv)
        code = srv.wait_exit(30)
    assert code == 1
    assert "5 restarts within 60s already, shutting down" in srv.stderr
    assert "worker thread worker-1 died" in srv.stderr
