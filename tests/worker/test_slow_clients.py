"""Clients that read slowly, or never, and streams that never end, hold no worker seat.

A response whose last bytes a client has no room for is finished by the AsyncPool
(`PendingWrite`); a response found streaming on the sync path is finished by its
worker while a new thread takes the worker's seat in the poller. Either way the
other connections keep being served: with two workers, two such clients used to
stop the server (for as long as --timeout-write lasted, or for ever).
"""

import http.client
import re
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import pytest

from ..http_client import ResponseReader
from ..server_process import ServerProcess, running_server

BIG = 20_000_000  # far more than any socket buffer holds


def _slow_reader(server: ServerProcess, target: str, rcvbuf: int = 4096) -> socket.socket:
    """A connection with a tiny receive window that asks for `target` and reads nothing."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect((server.host, server.port))
    sock.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % target.encode())
    return sock


@contextmanager
def _slow_readers(server: ServerProcess, target: str, count: int) -> Iterator[list[socket.socket]]:
    with ExitStack() as stack:
        socks = []
        for _ in range(count):
            socks.append(stack.enter_context(_slow_reader(server, target)))
            # One at a time, so that each is accepted by whichever worker is free then
            # (not all by one worker process in one batch), and fills its window.
            time.sleep(0.3)
        yield socks


def _answered(server: ServerProcess, path: str = "/", timeout: float = 10.0) -> bytes:
    """One GET on a new connection; the timeout turns a server that stopped into a failure."""
    conn = http.client.HTTPConnection(server.host, server.port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        assert response.status == 200
        return response.read()
    finally:
        conn.close()


def _metric(server: ServerProcess, name: str) -> int:
    text = _answered(server, "/metrics").decode()
    match = re.search(rf"^{re.escape(name)} (\d+)$", text, re.MULTILINE)
    assert match, text
    return int(match[1])


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_readers_that_never_read_a_big_response_leave_the_workers_free(mode: str) -> None:
    # --timeout-write 60: before, each reader held a worker in sendall for a minute.
    args = ["--workers", "2", "--worker-mode", mode, "--timeout-write", "60", "--no-access-log"]
    with running_server(*args) as server, _slow_readers(server, f"/big?{BIG}", 4):
        for _ in range(20):
            assert _answered(server) == b"Hello, world!"


def test_readers_that_never_read_a_stream_leave_the_workers_free(tmp_path) -> None:
    count = tmp_path / "count"
    target = f"/firehose?chunks={BIG // 65536}&count={count}"
    args = ["--workers", "2", "--timeout-write", "60", "--no-access-log"]
    with (
        running_server(*args, app="apps_streaming:app") as server,
        _slow_readers(server, target, 4),
    ):
        for _ in range(20):
            assert _answered(server, "/plain?n=1") == b"chunk 0\n"


def test_an_endless_stream_on_the_sync_path_does_not_hold_the_only_worker() -> None:
    """No `Accept: text/event-stream`, path not yet known to stream: it starts on the sync path."""
    args = ["--workers", "1", "--no-access-log"]
    with running_server(*args, app="apps_streaming:app") as server:
        stream = http.client.HTTPConnection(server.host, server.port, timeout=10)
        try:
            stream.request("GET", "/feed/sse")
            response = stream.getresponse()
            assert response.getheader("x-thread") == "worker-1"  # it started on the sync path
            assert response.readline() == b"data: 0\n"
            assert _answered(server, "/plain?n=1") == b"chunk 0\n"
            assert _answered(server, "/plain?n=2") == b"chunk 0\nchunk 1\n"
            # The stream goes on, on its worker; the other requests were served meanwhile.
            for _ in range(20):
                line = response.readline()
            assert line.startswith(b"data: ")
        finally:
            stream.close()


def test_a_slow_reader_gets_every_byte_and_keeps_its_connection() -> None:
    size = 8_000_000
    with running_server("--workers", "1", "--metrics-path", "/metrics") as server:
        with _slow_reader(server, f"/big?{size}", rcvbuf=65536) as sock:
            reader = ResponseReader(sock, timeout=30)
            time.sleep(0.5)  # the worker has written what fits and moved on
            assert _answered(server) == b"Hello, world!"
            response = reader.read_response()
            assert response.status == 200
            assert int(response.header(b"content-length")) == size
            assert response.body == b"x" * size
            # Back on the sync side: the same connection serves its next request.
            sock.sendall(b"GET /pid HTTP/1.1\r\nHost: x\r\n\r\n")
            assert reader.read_response().status == 200
        assert _metric(server, 'pounce_handoffs_total{kind="pending_write"}') == 1


def test_a_reader_that_stops_for_good_is_closed_after_the_write_timeout() -> None:
    args = ["--workers", "1", "--timeout-write", "1", "--metrics-path", "/metrics"]
    with running_server(*args) as server, _slow_readers(server, f"/big?{BIG}", 1):
        gauge = 'pounce_pool_connections{kind="pending_write"}'
        assert _metric(server, gauge) == 1
        deadline = time.monotonic() + 15
        while _metric(server, gauge) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _metric(server, gauge) == 0


def _ident(server: ServerProcess) -> bytes:
    return _answered(server, "/ident")


def test_a_wsgi_stream_does_not_hold_the_only_worker(tmp_path) -> None:
    gate = tmp_path / "gate"
    args = ["--workers", "1", "--interface", "wsgi", "--no-access-log"]
    with running_server(*args, app="apps_wsgi:app") as server:
        stream = http.client.HTTPConnection(server.host, server.port, timeout=10)
        try:
            stream.request("GET", f"/stream?gate={gate}")  # waits for `gate` after one block
            response = stream.getresponse()
            assert response.readline() == b"first\n"
            streaming_thread = _ident(server)  # served meanwhile, by the seat's new thread
            gate.touch()
            assert response.read() == b"second\n"
        finally:
            stream.close()
        assert _ident(server) == streaming_thread


def test_a_wsgi_slow_reader_starts_the_async_pool_and_leaves_the_only_worker_free() -> None:
    """A WSGI server has no pool thread until a response's end needs one (PendingWrite)."""
    size = 8_000_000
    args = ["--workers", "1", "--interface", "wsgi", "--metrics-path", "/metrics"]
    with running_server(*args, app="apps_wsgi:app") as server:
        assert b"async-pool" not in _answered(server, "/threads")
        with _slow_reader(server, f"/big?{size}", rcvbuf=65536) as sock:
            reader = ResponseReader(sock, timeout=30)
            deadline = time.monotonic() + 15
            while _metric(server, 'pounce_handoffs_total{kind="pending_write"}') == 0:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            assert _answered(server, "/") == b"hello wsgi"  # the only worker is free
            assert b"async-pool-1" in _answered(server, "/threads")
            response = reader.read_response()
            assert response.body == b"x" * size
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # back on the sync side
            assert reader.read_response().body == b"hello wsgi"


def test_a_whole_wsgi_body_in_an_iterator_keeps_its_worker() -> None:
    """Frameworks return iterators (werkzeug's ClosingIterator) with a Content-Length:
    that is a whole response, not a stream, and needs no new thread."""
    args = ["--workers", "1", "--interface", "wsgi", "--no-access-log"]
    with running_server(*args, app="apps_wsgi:app") as server:
        first = _ident(server)
        assert all(_ident(server) == first for _ in range(5))
        assert _answered(server, "/stream") == b"first\nsecond\n"  # a stream: the seat moves
        assert _ident(server) != first
