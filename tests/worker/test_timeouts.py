"""Header-read, body-read and write timeouts, and the concurrency limit.

Real server processes on 127.0.0.1. Nothing asserts on wall-clock durations:
socket timeouts are generous and only turn a hang into a failure.
"""

import select
import socket
import time
from pathlib import Path

import pytest

from ..http_client import Response, ResponseReader, ResponseTruncated, get, get_new
from ..server_process import running_server

TIMEOUT = 30.0
HELLO = (200, b"Hello, world!")
# A request head that takes 30 s to trickle in at one byte per 100 ms.
TRICKLE_HEAD = (
    b"GET /trickle HTTP/1.1\r\nHost: test\r\n"
    + b"".join(b"X-Padding-%02d: %s\r\n" % (i, b"p" * 40) for i in range(5))
    + b"\r\n"
)


def readable(sock: socket.socket, wait: float) -> bool:
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(wait * 1000))


def answer_then_close(reader: ResponseReader) -> Response:
    """The one response the server sends unasked or to a request left unfinished, then its
    close (waited for: the test is that the server gives up on the connection)."""
    response = reader.read_response()
    assert response.header(b"connection") == b"close", response
    reader.read_closed()
    return response


def test_slow_header_trickle_gets_408_at_the_deadline() -> None:
    """Slowloris: one byte per 100 ms. A 408 comes near the 1 s deadline, not at the end."""
    assert len(TRICKLE_HEAD) >= 250
    with running_server("--workers", "1", "--timeout-header-read", "1") as server:
        served_meanwhile = 0
        with server.connect(TIMEOUT) as sock:
            reader = ResponseReader(sock)
            sent = 0
            for byte in TRICKLE_HEAD:
                try:
                    sock.sendall(bytes([byte]))
                except OSError:  # the server answered and closed already
                    break
                sent += 1
                if sent % 5 == 0:  # the only worker is not pinned by the trickler
                    assert get_new(server, f"/meanwhile{sent}") == HELLO
                    served_meanwhile += 1
                if readable(sock, 0.1):
                    break
            response = answer_then_close(reader)
        assert (response.status, response.reason) == (408, b"Request Timeout")
        # ~10 bytes at the deadline; the whole head would have taken 30 s.
        assert sent < len(TRICKLE_HEAD) // 2, (sent, len(TRICKLE_HEAD))
        assert served_meanwhile >= 1
        assert get_new(server) == HELLO


def test_silent_connection_closed_without_response_at_header_deadline() -> None:
    # The keep-alive timeout is far longer than the socket timeout: only the header
    # deadline can close this connection in time.
    with running_server("--timeout-header-read", "1", "--timeout-keep-alive", "300") as server:
        with server.connect(TIMEOUT) as sock:
            assert get_new(server) == HELLO  # others are served meanwhile
            ResponseReader(sock).read_closed()  # closed, and no 408 for nothing sent
        assert get_new(server) == HELLO


def test_partial_second_request_head_gets_408_at_the_header_deadline() -> None:
    """On a keep-alive connection, a started head is held to the header deadline."""
    with running_server("--timeout-header-read", "1", "--timeout-keep-alive", "300") as server:
        with server.connect(TIMEOUT) as sock:
            reader = ResponseReader(sock)
            assert get(reader) == HELLO
            sock.sendall(b"GET /second HTTP/1.1\r\nHost: te")
            response = answer_then_close(reader)  # the keep-alive timeout would be too late
        assert (response.status, response.reason) == (408, b"Request Timeout")
        assert get_new(server) == HELLO


def test_head_completed_in_time_is_served_when_workers_are_busy(tmp_path: Path) -> None:
    """The header deadline is for slow clients: a head completed in time is not a 408.

    The only worker is held (by /hold?5) for longer than the 2 s header deadline
    while a client's second request head sits complete in the socket.
    """
    marker = tmp_path / "holding"
    with running_server(
        "--workers",
        "1",
        "--timeout-header-read",
        "2",
        "--timeout-keep-alive",
        "300",
        "--no-access-log",
        app="apps_extra:hold",
        env={"POUNCE_TEST_HOLD_MARKER": str(marker)},
    ) as server:
        holder = ResponseReader(server.connect(TIMEOUT))  # accepted and parked before `client`
        client = ResponseReader(server.connect(TIMEOUT))
        with holder.sock, client.sock:
            # One send, one read by the worker: it answers the first request and parks
            # the connection with the second head half read (the 2 s header deadline).
            client.sock.sendall(b"GET / HTTP/1.1\r\nHost: test\r\n\r\nGET /second HTTP/1.1\r\nHo")
            response = client.read_response()
            assert (response.status, response.body) == HELLO
            holder.sock.sendall(b"GET /hold?5 HTTP/1.1\r\nHost: test\r\n\r\n")
            for _ in range(3000):  # bounded wait until the worker is held
                if marker.exists():
                    break
                time.sleep(0.01)
            else:
                raise AssertionError("/hold never started")
            client.sock.sendall(b"st: test\r\n\r\n")  # the head is complete, well in time
            response = client.read_response()
            assert (response.status, response.body) == HELLO
            assert holder.read_response().status == 200


@pytest.mark.parametrize(
    "stalled_request",
    [
        b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 100\r\n\r\n0123456789",
        b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n64\r\n01234",
    ],
    ids=["content-length", "chunked"],
)
def test_body_read_timeout_gives_408_and_server_serves_others(stalled_request: bytes) -> None:
    """The body stops after 10 of 100 bytes: 408 after the body-read timeout, then close."""
    with running_server("--workers", "2", "--timeout-body-read", "1") as server:
        with server.connect(TIMEOUT) as sock:
            sock.sendall(stalled_request)
            assert get_new(server) == HELLO  # served while the body stalls
            # A 408 (never the app's truncated echo), then the server closes the connection.
            response = answer_then_close(ResponseReader(sock))
        assert (response.status, response.reason) == (408, b"Request Timeout")
        assert get_new(server) == HELLO


def test_write_timeout_releases_the_only_worker() -> None:
    """A client that stops reading a 50 MB response holds no worker, and is cut off."""
    size = 50_000_000
    with running_server("--workers", "1", "--timeout-write", "1", "--no-access-log") as server:
        stuck = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck.settimeout(TIMEOUT)
        with stuck:
            stuck.connect((server.host, server.port))
            stuck.sendall(b"GET /big?%d HTTP/1.1\r\nHost: test\r\n\r\n" % size)
            # Wait (without reading) until the response has started arriving.
            assert readable(stuck, TIMEOUT)
            # The worker handed the rest of the response to the AsyncPool: a new
            # connection is served at once.
            assert get_new(server, timeout=TIMEOUT) == HELLO
            # No byte taken for longer than the write timeout: the pool abandoned the
            # response, and the connection ends short of 50 MB.
            time.sleep(3)
            with pytest.raises(ResponseTruncated):  # a valid head, part of the body, the close
                ResponseReader(stuck).read_response()
        assert server.proc.poll() is None


def test_concurrency_limit_answers_503_then_recovers() -> None:
    # The limit is per process (as uvicorn's); one process makes the count exact here.
    limit = ("--workers", "2", "--worker-mode", "thread", "--limit-concurrency", "2")
    with running_server(*limit) as server:
        first = ResponseReader(server.connect(TIMEOUT))
        second = ResponseReader(server.connect(TIMEOUT))
        try:
            assert get(first) == HELLO
            assert get(second) == HELLO
            with server.connect(TIMEOUT) as third:
                third.sendall(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
                response = answer_then_close(ResponseReader(third))
            assert (response.status, response.reason) == (503, b"Service Unavailable")
            # The connections under the limit are unaffected.
            assert get(first) == HELLO
        finally:
            first.sock.close()
            second.sock.close()
        # The server notices the two closes on its own time; bounded retries until then.
        for _attempt in range(100):
            answer = get_new(server, timeout=TIMEOUT)
            if answer[0] != 503:
                break
            time.sleep(0.1)
        assert answer == HELLO
