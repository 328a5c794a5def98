"""The ASGI receive/send bridge on the sync path: bodies, streaming, disconnects, errors."""

import os
import time
from pathlib import Path

import pytest

from ..http_client import ResponseReader, ResponseTruncated, get_new, request
from ..server_process import ServerProcess, running_server


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_fifty_megabyte_chunked_upload_is_streamed_not_buffered(server: ServerProcess) -> None:
    chunk = os.urandom(64 * 1024)
    total = 50 * 1024 * 1024
    before = _rss_kib(server.proc.pid)
    peak = before
    with server.connect(30) as sock:
        sock.sendall(b"POST /count-body HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        sent = 0
        while sent < total:
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sent += len(chunk)
            if sent % (5 * 1024 * 1024) == 0:
                peak = max(peak, _rss_kib(server.proc.pid))
        sock.sendall(b"0\r\n\r\n")
        response = ResponseReader(sock).read_response(b"POST")
    assert response.status == 200
    assert int(response.body) == total
    growth_mib = (max(peak, _rss_kib(server.proc.pid)) - before) / 1024
    assert growth_mib < 8, f"server grew by {growth_mib:.1f} MiB while receiving 50 MiB"


def test_body_over_limit_by_content_length_gets_413_without_running_the_app(tmp_path) -> None:
    log = tmp_path / "calls"
    with running_server("--max-body-size", "1000", env={"POUNCE_TEST_CALL_LOG": str(log)}) as srv:
        response = request(
            srv, b"POST /stream HTTP/1.1\r\nHost: t\r\nContent-Length: 1001\r\n\r\n" + b"x" * 1001
        )
        assert response.status == 413
        # chunked: the limit is enforced while the app reads
        raw = b"POST /count-body HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        raw += b"400\r\n" + b"y" * 1024 + b"\r\n0\r\n\r\n"
        assert request(srv, raw).status == 413
        ok = request(
            srv,
            b"POST /echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 3\r\n\r\nabc",
        )
        assert (ok.status, ok.body) == (200, b"abc")
    assert not log.exists()


def test_app_streaming_a_thousand_chunks_is_called_exactly_once(tmp_path) -> None:
    log = tmp_path / "calls"
    with running_server(env={"POUNCE_TEST_CALL_LOG": str(log)}) as srv, srv.connect() as sock:
        reader = ResponseReader(sock)
        for _ in range(3):
            sock.sendall(b"GET /stream?1000 HTTP/1.1\r\nHost: t\r\n\r\n")
            response = reader.read_response()
            assert (response.status, response.header(b"transfer-encoding")) == (200, b"chunked")
            assert response.body == b"".join(b"%d\n" % i for i in range(1000))
    assert log.read_text().splitlines() == ["/stream"] * 3


def test_exception_before_response_gives_500(server: ServerProcess) -> None:
    assert request(server, b"GET /raise-before HTTP/1.1\r\nHost: t\r\n\r\n").status == 500


def test_exception_after_response_started_closes_connection(server: ServerProcess) -> None:
    with server.connect() as sock:
        sock.sendall(b"GET /raise-after HTTP/1.1\r\nHost: t\r\n\r\n")
        reader = ResponseReader(sock)
        assert reader.read_head().status == 200
        assert reader.read_chunk() == b"partial"
        with pytest.raises(ResponseTruncated):  # no last-chunk: the client sees truncation
            reader.read_chunk()


def test_app_returning_without_response_gives_500(server: ServerProcess) -> None:
    assert request(server, b"GET /no-response HTTP/1.1\r\nHost: t\r\n\r\n").status == 500


def test_app_that_really_awaits_runs_on_the_threads_loop(server: ServerProcess) -> None:
    with server.connect() as sock:
        reader = ResponseReader(sock)
        for _ in range(3):
            sock.sendall(b"GET /async-sleep?0.01 HTTP/1.1\r\nHost: t\r\n\r\n")
            assert reader.read_response().body == b"async slept"


def test_an_app_polling_with_cancelled_receives_sees_the_client_go() -> None:
    """Starlette's request.is_disconnected() calls receive() in a scope cancelled before
    it starts, so receive() never suspends long enough for the loop to watch the socket:
    a client already gone must be said without waiting."""
    with running_server(app="apps_disconnect:app") as srv:
        with srv.connect() as sock:
            sock.sendall(b"GET /poll HTTP/1.1\r\nHost: t\r\n\r\n")
        deadline = time.monotonic() + 20
        while (body := get_new(srv, "/seen")[1]) != b"polled disconnect":
            assert body == b"" and time.monotonic() < deadline, body
            time.sleep(0.05)


def test_receive_after_body_waits_for_client_disconnect() -> None:
    """An app polling receive() for disconnect learns of it when the client goes away."""
    with running_server(app="apps_disconnect:app") as srv:
        sock = srv.connect()
        sock.sendall(b"GET /wait HTTP/1.1\r\nHost: t\r\n\r\n")
        time.sleep(0.3)
        sock.close()
        with srv.connect() as other:
            reader = ResponseReader(other)
            other.sendall(b"GET /seen HTTP/1.1\r\nHost: t\r\n\r\n")
            deadline = time.monotonic() + 10
            while True:
                body = reader.read_response().body
                if body == b"disconnect" or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
                other.sendall(b"GET /seen HTTP/1.1\r\nHost: t\r\n\r\n")
    assert body == b"disconnect"
