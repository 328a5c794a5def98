"""Request/response behaviour of the sync path, seen from real HTTP clients."""

import http.client
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from ..http_client import ResponseReader, request
from ..server_process import ServerProcess, read_until_closed, running_server


@contextmanager
def _client(server: ServerProcess) -> Iterator[http.client.HTTPConnection]:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        yield conn
    finally:
        conn.close()


def test_get_with_http_client(server: ServerProcess) -> None:
    with _client(server) as conn:
        conn.request("GET", "/")
        response = conn.getresponse()
        assert response.status == 200
        assert response.read() == b"Hello, world!"
        assert response.getheader("content-length") == "13"
        assert response.getheader("server") == "pounce-sync"
        assert response.getheader("date", "").endswith(" GMT")


def test_keep_alive_reuses_one_connection(server: ServerProcess) -> None:
    ports = set()
    with _client(server) as conn:
        for i in range(20):
            conn.request("POST", "/echo", body=b"ping %d" % i)
            response = conn.getresponse()
            assert response.read() == b"ping %d" % i
            ports.add(conn.sock.getsockname()[1])
    assert len(ports) == 1


def test_pipelining_ten_requests_in_one_packet(server: ServerProcess) -> None:
    requests = b"".join(
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\nreq-%d"
        % (len(b"req-%d" % i), i)
        for i in range(10)
    )
    with server.connect() as sock:
        sock.sendall(requests)
        reader = ResponseReader(sock)
        bodies = [reader.read_response().body for _ in range(10)]
    assert bodies == [b"req-%d" % i for i in range(10)]


def test_chunked_request_body_with_trailers(server: ServerProcess) -> None:
    raw = (
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-trailer: yes\r\n\r\n"
    )
    response = request(server, raw)
    assert (response.status, response.body) == (200, b"hello world")


def test_expect_100_continue_sent_when_app_reads_body(server: ServerProcess) -> None:
    with server.connect() as sock:
        sock.sendall(
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        )
        reader = ResponseReader(sock)
        assert reader.read_informational().status == 100
        sock.sendall(b"hello")
        response = reader.read_response()
    assert (response.status, response.body) == (200, b"hello")


def test_expect_100_continue_not_sent_when_app_ignores_body(server: ServerProcess) -> None:
    raw = (
        b"POST /no-body-read HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
        b"Expect: 100-continue\r\n\r\n"
    )
    response = request(server, raw)
    assert response.status == 200
    assert response.informational == ()  # no 100 Continue
    # The body never came, so the connection cannot be reused: the server closes it.
    assert response.header(b"connection") == b"close"


def test_unread_body_is_drained_for_keep_alive(server: ServerProcess) -> None:
    with server.connect() as sock:
        reader = ResponseReader(sock)
        sock.sendall(b"POST /no-body-read HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello")
        assert reader.read_response().body == b"ignored your body"
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert reader.read_response().body == b"Hello, world!"


def test_head_has_content_length_and_no_body(server: ServerProcess) -> None:
    with server.connect() as sock:
        sock.sendall(b"HEAD /head HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n")
        reader = ResponseReader(sock)
        head = reader.read_response(b"HEAD")
        # The next bytes after the HEAD response's head are the second response, no body
        # between: h11 would reject body bytes as a malformed second response.
        second = reader.read_response()
    assert (head.status, head.header(b"content-length")) == (200, b"12")
    assert (second.status, second.body) == (200, b"Hello, world!")


@pytest.mark.parametrize("status", [204, 304])
def test_no_body_statuses(server: ServerProcess, status: int) -> None:
    with server.connect() as sock:
        sock.sendall(
            b"GET /status?%d HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n" % status
        )
        reader = ResponseReader(sock)
        first = reader.read_response()
        second = reader.read_response()
    assert first.status == status
    assert first.header(b"content-length") is None
    assert second.body == b"Hello, world!"


def test_http10_closes_unless_keep_alive_asked(server: ServerProcess) -> None:
    with server.connect() as sock:
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        reader = ResponseReader(sock)
        response = reader.read_response()
        reader.read_closed()
    assert (response.http_version, response.status) == (b"1.1", 200)
    assert response.body == b"Hello, world!"
    with server.connect() as sock:
        reader = ResponseReader(sock)
        sock.sendall(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        assert reader.read_response().header(b"connection") == b"keep-alive"
        sock.sendall(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        assert reader.read_response().body == b"Hello, world!"


def test_http10_streaming_response_is_close_delimited(server: ServerProcess) -> None:
    response = request(server, b"GET /stream?3 HTTP/1.0\r\n\r\n")
    assert response.header(b"transfer-encoding") is None
    assert response.header(b"content-length") is None
    assert response.body == b"0\n1\n2\n"


def test_connection_close_is_honoured(server: ServerProcess) -> None:
    response = request(server, b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert response.body == b"Hello, world!"
    assert response.header(b"connection") == b"close"  # and `request` saw the server close


def test_header_injection_from_app_never_reaches_the_wire(server: ServerProcess) -> None:
    response = request(server, b"GET /bad-header HTTP/1.1\r\nHost: t\r\n\r\n")
    assert response.status == 500
    assert b"evil" not in b"".join(name + value for name, value in response.headers)
    assert b"evil" not in response.body


def test_server_keeps_serving_after_a_client_vanishes(server: ServerProcess) -> None:
    for _ in range(5):
        sock = server.connect()
        sock.sendall(b"GET /big?4000000 HTTP/1.1\r\nHost: t\r\n\r\n")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()  # RST with most of the response unread
    with _client(server) as conn:
        conn.request("GET", "/")
        assert conn.getresponse().read() == b"Hello, world!"


def test_date_and_server_headers_can_be_turned_off() -> None:
    with running_server("--no-date-header", "--no-server-header") as srv:
        response = request(srv, b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert response.header(b"date") is None
    assert response.header(b"server") is None


def test_access_log_names_the_worker_thread() -> None:
    with running_server("--workers", "2") as srv:
        request(srv, b"GET /scope?q HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        srv.stop()
    lines = [line for line in srv.stdout_lines if '"GET /scope?q HTTP/1.1" 200' in line]
    assert len(lines) == 1
    assert "[worker-" in lines[0]


def test_no_access_log() -> None:
    with running_server("--no-access-log") as srv:
        request(srv, b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        srv.stop()
    assert "GET / HTTP/1.1" not in srv.stdout


def test_many_concurrent_clients_each_get_their_own_answer(server: ServerProcess) -> None:
    import concurrent.futures

    def one(i: int) -> bytes:
        out = []
        with _client(server) as conn:
            for j in range(10):
                conn.request("POST", "/echo", body=b"%d-%d" % (i, j))
                out.append(conn.getresponse().read())
        return b",".join(out)

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        results = list(pool.map(one, range(32)))
    assert results == [b",".join(b"%d-%d" % (i, j) for j in range(10)) for i in range(32)]


def test_streamed_read_until_closed_helper_sanity(server: ServerProcess) -> None:
    with server.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        assert read_until_closed(sock).endswith(b"Hello, world!")
