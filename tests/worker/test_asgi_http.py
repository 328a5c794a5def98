"""The ASGI receive/send bridge on the sync path: bodies, streaming, disconnects, errors."""

import os
import socket
import time
from pathlib import Path

from ..server_process import ServerProcess, exchange, read_response, running_server


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
        status, _, body = read_response(sock)
    assert status == b"HTTP/1.1 200 OK"
    assert int(body) == total
    growth_mib = (max(peak, _rss_kib(server.proc.pid)) - before) / 1024
    assert growth_mib < 8, f"server grew by {growth_mib:.1f} MiB while receiving 50 MiB"


def test_body_over_limit_by_content_length_gets_413_without_running_the_app(tmp_path) -> None:
    log = tmp_path / "calls"
    with running_server("--max-body-size", "1000", env={"POUNCE_TEST_CALL_LOG": str(log)}) as srv:
        response = exchange(
            srv, b"POST /stream HTTP/1.1\r\nHost: t\r\nContent-Length: 1001\r\n\r\n" + b"x" * 1001
        )
        assert response.startswith(b"HTTP/1.1 413 ")
        # chunked: the limit is enforced while the app reads
        raw = b"POST /count-body HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        raw += b"400\r\n" + b"y" * 1024 + b"\r\n0\r\n\r\n"
        assert exchange(srv, raw).startswith(b"HTTP/1.1 413 ")
        ok = exchange(
            srv,
            b"POST /echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 3\r\n\r\nabc",
        )
        assert ok.startswith(b"HTTP/1.1 200 ") and ok.endswith(b"abc")
    assert not log.exists()


def test_app_streaming_a_thousand_chunks_is_called_exactly_once(tmp_path) -> None:
    log = tmp_path / "calls"
    with running_server(env={"POUNCE_TEST_CALL_LOG": str(log)}) as srv, srv.connect() as sock:
        for _ in range(3):
            sock.sendall(b"GET /stream?1000 HTTP/1.1\r\nHost: t\r\n\r\n")
            body = _read_chunked(sock)
            assert body == b"".join(b"%d\n" % i for i in range(1000))
    assert log.read_text().splitlines() == ["/stream"] * 3


def _read_chunked(sock: socket.socket) -> bytes:
    f = sock.makefile("rb")
    status = f.readline()
    assert status.startswith(b"HTTP/1.1 200")
    headers = {}
    while (line := f.readline()) != b"\r\n":
        name, _, value = line.partition(b":")
        headers[name.lower()] = value.strip()
    assert headers[b"transfer-encoding"] == b"chunked"
    body = b""
    while True:
        size = int(f.readline().split(b";")[0], 16)
        if size == 0:
            assert f.readline() == b"\r\n"
            return body
        body += f.read(size)
        assert f.read(2) == b"\r\n"


def test_exception_before_response_gives_500(server: ServerProcess) -> None:
    response = exchange(server, b"GET /raise-before HTTP/1.1\r\nHost: t\r\n\r\n")
    assert response.startswith(b"HTTP/1.1 500 ")


def test_exception_after_response_started_closes_connection(server: ServerProcess) -> None:
    response = exchange(server, b"GET /raise-after HTTP/1.1\r\nHost: t\r\n\r\n")
    assert response.startswith(b"HTTP/1.1 200 ")
    assert b"partial" in response
    assert not response.endswith(b"0\r\n\r\n")  # no last-chunk: the client sees truncation


def test_app_returning_without_response_gives_500(server: ServerProcess) -> None:
    response = exchange(server, b"GET /no-response HTTP/1.1\r\nHost: t\r\n\r\n")
    assert response.startswith(b"HTTP/1.1 500 ")


def test_app_that_really_awaits_runs_on_the_threads_loop(server: ServerProcess) -> None:
    with server.connect() as sock:
        for _ in range(3):
            sock.sendall(b"GET /async-sleep?0.01 HTTP/1.1\r\nHost: t\r\n\r\n")
            assert read_response(sock)[2] == b"async slept"


def test_receive_after_body_waits_for_client_disconnect() -> None:
    """An app polling receive() for disconnect learns of it when the client goes away."""
    with running_server(app="apps_disconnect:app") as srv:
        sock = srv.connect()
        sock.sendall(b"GET /wait HTTP/1.1\r\nHost: t\r\n\r\n")
        time.sleep(0.3)
        sock.close()
        with srv.connect() as other:
            other.sendall(b"GET /seen HTTP/1.1\r\nHost: t\r\n\r\n")
            deadline = time.monotonic() + 10
            while True:
                _status, _, body = read_response(other)
                if body == b"disconnect" or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
                other.sendall(b"GET /seen HTTP/1.1\r\nHost: t\r\n\r\n")
    assert body == b"disconnect"
