"""Malformed and smuggling requests over real sockets: one status, `connection: close`, closed.

The rows are the codec's table (tests/malformed_cases.py); here a real server
must turn each into exactly one error response and close, and keep serving others.
"""

import pytest

from tests.http_client import Response, ResponseReader
from tests.malformed_cases import CASES, SMUGGLED_MARK, request
from tests.server_process import ServerProcess


def responses_until_closed(server: ServerProcess, raw: bytes) -> list[Response]:
    """Every response to `raw` on a new connection, up to the one that ends it; then the
    server must close with nothing more (no second answer, no stray bytes)."""
    with server.connect() as sock:
        sock.sendall(raw)
        reader = ResponseReader(sock)
        responses = [reader.read_response()]
        while not reader.server_closes:
            responses.append(reader.read_response())
        reader.read_closed()
    return responses


@pytest.mark.parametrize(
    ("raw", "status"), [(c.raw, c.status) for c in CASES], ids=[c.id for c in CASES]
)
def test_malformed_request_gets_one_error_and_a_close(
    server: ServerProcess, raw: bytes, status: int
) -> None:
    (response,) = responses_until_closed(server, raw)
    assert response.status == status
    assert response.header(b"connection") == b"close"
    assert SMUGGLED_MARK not in response.body


def test_server_keeps_serving_after_malformed_requests(server: ServerProcess) -> None:
    with server.connect() as sock:
        reader = ResponseReader(sock)
        for _ in range(2):  # keep-alive: the second request on the same connection
            sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            response = reader.read_response()
            assert (response.status, response.body) == (200, b"Hello, world!")
    assert "Traceback" not in server.stderr


def test_cl_te_with_a_smuggled_request_gets_one_response(server: ServerProcess) -> None:
    smuggled = b"GET /scope HTTP/1.1\r\nHost: a\r\n\r\n"
    raw = request(
        "Host: a",
        "Content-Length: %d" % (5 + len(smuggled)),
        "Transfer-Encoding: chunked",
        body=b"0\r\n\r\n" + smuggled,
        start=b"POST /echo HTTP/1.1",
    )
    (response,) = responses_until_closed(server, raw)
    assert response.status == 400
    assert b"/scope" not in response.body


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_body_that_looks_like_a_request_is_only_a_body(
    server: ServerProcess, framing: str
) -> None:
    lookalike = b"GET /scope HTTP/1.1\r\nHost: a\r\n\r\n"
    if framing == "chunked":
        field, body = (
            "Transfer-Encoding: chunked",
            b"%x\r\n%s\r\n0\r\n\r\n" % (len(lookalike), lookalike),
        )
    else:
        field, body = "Content-Length: %d" % len(lookalike), lookalike
    raw = request("Host: a", field, body=body, start=b"POST /echo HTTP/1.1")
    raw += b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    responses = responses_until_closed(server, raw)
    assert [(r.status, r.body) for r in responses] == [(200, lookalike), (200, b"Hello, world!")]


def test_higher_minor_version_is_served_as_http11(server: ServerProcess) -> None:
    # RFC 9110 2.5 and 15.6.6: HTTP/1.2 is processed as HTTP/1.1; 505 is for the major version.
    raw = b"GET / HTTP/1.2\r\nHost: a\r\nConnection: close\r\n\r\n"
    responses = responses_until_closed(server, raw)
    assert [(r.status, r.body) for r in responses] == [(200, b"Hello, world!")]
