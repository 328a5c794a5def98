"""Streaming responses on the AsyncPool: triggers, one app call, backpressure, keep-alive."""

import http.client
import signal
import socket
import time
from pathlib import Path

import pytest

from ..http_client import ResponseReader
from ..server_process import TESTS_DIR, ServerProcess, running_server
from ..tls_server import Certs, client_context, make_certs, running_tls_server

APP = "apps_streaming:app"
SSE = {"Accept": "text/event-stream"}


def _request(
    conn: http.client.HTTPConnection, path: str, headers: dict[str, str] | None = None
) -> tuple[http.client.HTTPResponse, bytes]:
    conn.request("GET", path, headers=headers or {})
    response = conn.getresponse()
    return response, response.read()


def _first_event(sock: socket.socket) -> bytes:
    """The first chunk of the event stream the server started answering on `sock`."""
    reader = ResponseReader(sock)
    head = reader.read_head()
    assert (head.status, head.header(b"transfer-encoding")) == (200, b"chunked"), head
    return reader.read_chunk()


def _calls(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines() if line.startswith("call ")]


def _wait_for(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.fixture(params=["thread", "process"])
def server(request: pytest.FixtureRequest):
    with running_server("--worker-mode", request.param, "--workers", "2", app=APP) as server:
        yield server


@pytest.mark.parametrize(
    "accept", [b"", b"Accept: text/event-stream\r\n"], ids=["found-streaming", "accept"]
)
def test_a_receive_pending_when_the_response_ends_says_disconnect(
    server: ServerProcess, accept: bytes
) -> None:
    """ASGI: receive() after the response is complete returns http.disconnect; one that
    was already waiting must return it too, or an app that waits for it (Quart) never
    returns: its keep-alive connection would never serve another request."""
    with server.connect(10) as sock:
        reader = ResponseReader(sock)
        for _ in range(3):
            sock.sendall(b"GET /listening HTTP/1.1\r\nHost: t\r\n" + accept + b"\r\n")
            response = reader.read_response()
            assert (response.status, response.body) == (200, b"ab")


def test_a_whole_body_sent_before_an_empty_last_message_is_not_a_stream(
    server: ServerProcess,
) -> None:
    """Its Content-Length reached in the first message: the path is not learned, so the
    requests after it stay on the worker threads instead of all going to the pool."""
    with server.connect(10) as sock:
        reader = ResponseReader(sock)
        for _ in range(3):
            sock.sendall(b"GET /whole-then-empty HTTP/1.1\r\nHost: t\r\n\r\n")
            response = reader.read_response()
            assert (response.status, response.body) == (200, b"whole")
            assert response.header(b"x-thread").startswith(b"worker-"), response.headers


def test_event_stream_runs_on_the_pool_once_and_keeps_the_connection(
    server: ServerProcess, tmp_path: Path
) -> None:
    log = tmp_path / "calls"
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    response, body = _request(conn, f"/sse?n=5&log={log}", SSE)
    assert response.status == 200
    assert response.getheader("transfer-encoding") == "chunked"
    assert response.getheader("x-thread").startswith("async-pool-")
    assert body == b"".join(b"data: %d\n\n" % i for i in range(5))
    port = conn.sock.getsockname()[1]
    # The same connection is back on the sync side: the next request runs on a worker.
    response, body = _request(conn, f"/plain?n=2&log={log}")
    assert conn.sock.getsockname()[1] == port
    assert response.getheader("x-thread").startswith("worker-")
    assert body == b"chunk 0\nchunk 1\n"
    assert len(_calls(log)) == 2
    conn.close()


def test_stream_path_prefix_goes_to_the_pool(tmp_path: Path) -> None:
    log = tmp_path / "calls"
    with running_server("--stream-path", "/feeds", app=APP) as server:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        response, body = _request(conn, f"/feeds/news?log={log}")
        assert response.getheader("x-thread").startswith("async-pool-")
        assert body == b"chunk 0\nchunk 1\nchunk 2\n"
        response, _ = _request(conn, f"/other?log={log}")
        assert response.getheader("x-thread").startswith("worker-")
        conn.close()
    assert len(_calls(log)) == 2


def test_a_path_seen_streaming_is_learned(tmp_path: Path) -> None:
    """The first streaming response is written by the worker; later ones go to the pool."""
    log = tmp_path / "calls"
    with running_server("--workers", "1", "--worker-mode", "thread", app=APP) as server:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        threads = []
        for _ in range(3):
            response, body = _request(conn, f"/learned?log={log}")
            assert body == b"chunk 0\nchunk 1\nchunk 2\n"
            threads.append(response.getheader("x-thread"))
        conn.close()
    assert threads[0].startswith("worker-")
    assert all(name.startswith("async-pool-") for name in threads[1:])
    assert len(_calls(log)) == 3  # one invocation per request, on either side


def test_disconnect_reaches_the_app_promptly(server: ServerProcess, tmp_path: Path) -> None:
    log = tmp_path / "calls"
    with server.connect() as sock:
        sock.sendall(
            b"GET /sse?log=%s HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n"
            % str(log).encode()
        )
        assert _first_event(sock) == b"data: 0\n\n"
    assert _wait_for(lambda: "disconnected" in log.read_text())


def test_slow_reader_backpressures_the_app(server: ServerProcess, tmp_path: Path) -> None:
    """A client that stops reading stalls the app's sends instead of growing a buffer."""
    count = tmp_path / "count"
    total = 2000  # 125 MiB: far more than the kernel's socket buffers hold
    sock = server.connect()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    sock.sendall(
        b"GET /firehose?chunks=%d&count=%s HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n"
        % (total, str(count).encode())
    )
    assert _wait_for(count.exists)
    stalled = []

    def steady() -> bool:
        stalled.append(int(count.read_text() or 0))
        time.sleep(0.5)
        return len(stalled) > 1 and stalled[-1] == stalled[-2]

    assert _wait_for(steady, timeout=30)
    assert stalled[-1] < total
    reader = ResponseReader(sock)
    assert reader.read_head().status == 200
    received = 0
    while (chunk := reader.read_chunk()) is not None:  # to the last chunk
        received += len(chunk)
    sock.close()
    assert received == total * 65536
    assert int(count.read_text()) == total


def test_pipelined_request_after_a_stream_is_answered(server: ServerProcess) -> None:
    with server.connect() as sock:
        sock.sendall(
            b"GET /sse?n=2 HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n"
            b"GET /plain?n=1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        )
        reader = ResponseReader(sock)
        stream, plain = reader.read_response(), reader.read_response()
        reader.read_closed()
    assert (stream.status, stream.body) == (200, b"data: 0\n\ndata: 1\n\n")
    assert (plain.status, plain.body) == (200, b"chunk 0\n")
    assert plain.header(b"transfer-encoding") == b"chunked"


def test_upload_to_a_stream_path_is_read_on_the_pool() -> None:
    with running_server("--stream-path", "/feeds", app=APP) as server:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        conn.request("POST", "/feeds/upload", body=b"z" * 300_000)
        response = conn.getresponse()
        assert response.read() == b"300000"
        assert response.getheader("x-thread").startswith("async-pool-")
        conn.request("POST", "/feeds/upload", body=iter([b"a" * 1000, b"b" * 5]))
        response = conn.getresponse()  # chunked request body this time
        assert response.read() == b"1005"
        conn.close()


def test_full_pool_answers_503(tmp_path: Path) -> None:
    with running_server("--async-backlog", "1", app=APP) as server:
        with server.connect() as first:
            first.sendall(b"GET /sse HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n")
            assert _first_event(first) == b"data: 0\n\n"
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
            response, _ = _request(conn, "/sse", SSE)
            assert response.status == 503
            conn.close()
        # The first stream ended with its client; the pool takes new work again.
        assert _wait_for(lambda: _pool_accepts(server))


def _pool_accepts(server: ServerProcess) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        response, _ = _request(conn, "/sse?n=1", SSE)
        return response.status == 200
    finally:
        conn.close()


def test_shutdown_ends_open_streams_and_exits_cleanly(tmp_path: Path) -> None:
    log = tmp_path / "calls"
    server = ServerProcess(["--port", "0", "--app-dir", str(TESTS_DIR), APP]).wait_listening()
    try:
        sock = server.connect()
        sock.sendall(
            b"GET /sse?log=%s HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n"
            % str(log).encode()
        )
        assert _first_event(sock) == b"data: 0\n\n"
        server.send_signal(signal.SIGTERM)
        assert server.wait_exit(timeout=15) == 0
        assert "disconnected" in log.read_text()  # the app heard about the shutdown
        sock.close()
    finally:
        server.kill()


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs("openssl", tmp_path_factory.mktemp("certs"))


def test_streaming_over_tls_returns_the_connection(certs: Certs, tmp_path: Path) -> None:
    log = tmp_path / "calls"
    with running_tls_server(certs, "--no-http2", app=APP) as server:
        conn = http.client.HTTPSConnection(
            "localhost", server.port, timeout=10, context=client_context(certs)
        )
        response, body = _request(conn, f"/sse?n=3&log={log}", SSE)
        assert response.getheader("x-thread").startswith("async-pool-")
        assert body.count(b"data:") == 3
        port = conn.sock.getsockname()[1]
        response, body = _request(conn, f"/plain?n=1&log={log}")
        assert conn.sock.getsockname()[1] == port
        assert response.getheader("x-thread").startswith("worker-")
        conn.close()
    assert len(_calls(log)) == 2


def test_connections_move_between_pool_and_workers_under_load(server: ServerProcess) -> None:
    """Each connection alternates pool and sync requests, many at once.

    A socket closed twice, or read by two threads, would let descriptor reuse mix
    connections up: every client checks its own answers and its own connection.
    """
    import concurrent.futures

    def client(_: int) -> list[str]:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        problems = []
        port = None
        for round_ in range(8):
            _, body = _request(conn, f"/sse?n={round_ % 3 + 1}", SSE)
            if body != b"".join(b"data: %d\n\n" % i for i in range(round_ % 3 + 1)):
                problems.append(f"sse body {body!r}")
            _, body = _request(conn, "/plain?n=2")
            if body != b"chunk 0\nchunk 1\n":
                problems.append(f"plain body {body!r}")
            port = port or conn.sock.getsockname()[1]
            if conn.sock.getsockname()[1] != port:
                problems.append("reconnected")
        conn.close()
        return problems

    with concurrent.futures.ThreadPoolExecutor(24) as executor:
        results = list(executor.map(client, range(24)))
    assert results == [[]] * 24
    assert "Traceback" not in server.stderr


@pytest.mark.parametrize("mode", [("thread", "2"), ("process", "2")])
def test_metrics_count_handoffs(mode) -> None:
    args = ("--worker-mode", mode[0], "--workers", mode[1], "--metrics-path", "/metrics")
    with running_server(*args, app=APP) as server:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        for _ in range(3):
            response, _ = _request(conn, "/sse?n=1", SSE)
            assert response.status == 200

        def scraped() -> bool:
            _, text = _request(conn, "/metrics")
            return b'pounce_handoffs_total{kind="streaming"} 3' in text

        assert _wait_for(scraped)
        _, text = _request(conn, "/metrics")
        assert b'pounce_pool_connections{kind="streaming"} 0' in text
        assert b"pounce_handoffs_rejected_total 0" in text
        conn.close()
