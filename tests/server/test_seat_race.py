"""Requests already queued when the workers start: one that streams at once moves its
worker off its seat (Server._detach), which must find that seat even while the other
worker threads are still being started."""

import socket

import pytest

from ..http_client import ResponseReader
from ..server_process import TESTS_DIR, ServerProcess

CLIENTS = 16


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_streaming_requests_queued_before_the_workers_start(mode: str) -> None:
    """The listening socket is made here (as systemd's socket activation does) and the
    clients' streaming requests wait in its backlog before the server even starts."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=CLIENTS)
    clients = [socket.create_connection(listener.getsockname(), timeout=30) for _ in range(CLIENTS)]
    for client in clients:
        client.sendall(b"GET /chunks?n=2 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    args = ["--fd", str(listener.fileno()), "--app-dir", str(TESTS_DIR), "--no-access-log"]
    args += ["--worker-mode", mode, "--workers", "8" if mode == "thread" else "2"]
    args += (
        ["--threads", "4", "apps_streaming:app"] if mode == "process" else ["apps_streaming:app"]
    )
    server = ServerProcess(args, pass_fds=(listener.fileno(),))
    try:
        for client in clients:
            response = ResponseReader(client).read_response()
            assert (response.status, response.body) == (200, b"chunk 0\nchunk 1\n")
    finally:
        server.kill()
        listener.close()
        for client in clients:
            client.close()
    assert "Traceback" not in server.stderr, server.stderr
