"""Malformed and smuggling requests over real sockets: one status, `connection: close`, closed.

The rows are the codec's table (tests/malformed_cases.py); here a real server
must turn each into exactly one error response and close, and keep serving others.
"""

import pytest

from tests.malformed_cases import CASES, SMUGGLED_MARK, request
from tests.server_process import ServerProcess, exchange, read_response

Response = tuple[int, dict[bytes, bytes], bytes]


def split_responses(data: bytes) -> list[Response]:
    """Every Content-Length-framed response in `data`, in order; the rest must be empty."""
    responses = []
    while data:
        head, sep, data = data.partition(b"\r\n\r\n")
        assert sep, f"incomplete response head: {head!r}"
        status_line, *lines = head.split(b"\r\n")
        assert status_line.startswith(b"HTTP/1.1 "), status_line
        headers = {}
        for line in lines:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers[b"content-length"])
        body, data = data[:length], data[length:]
        responses.append((int(status_line.split(b" ")[1]), headers, body))
    return responses


@pytest.mark.parametrize(
    ("raw", "status"), [(c.raw, c.status) for c in CASES], ids=[c.id for c in CASES]
)
def test_malformed_request_gets_one_error_and_a_close(
    server: ServerProcess, raw: bytes, status: int
) -> None:
    out = exchange(server, raw)  # returns once the server closed the connection
    responses = split_responses(out)
    assert [r[0] for r in responses] == [status]
    assert responses[0][1][b"connection"] == b"close"
    assert SMUGGLED_MARK not in out


def test_server_keeps_serving_after_malformed_requests(server: ServerProcess) -> None:
    with server.connect() as sock:
        for _ in range(2):  # keep-alive: the second request on the same connection
            sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            assert read_response(sock)[::2] == (b"HTTP/1.1 200 OK", b"Hello, world!")
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
    out = exchange(server, raw)
    assert [r[0] for r in split_responses(out)] == [400]
    assert out.count(b"HTTP/1.1") == 1
    assert b"/scope" not in out


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
    responses = split_responses(exchange(server, raw))
    assert [(r[0], r[2]) for r in responses] == [(200, lookalike), (200, b"Hello, world!")]


def test_higher_minor_version_is_served_as_http11(server: ServerProcess) -> None:
    # RFC 9110 2.5 and 15.6.6: HTTP/1.2 is processed as HTTP/1.1; 505 is for the major version.
    raw = b"GET / HTTP/1.2\r\nHost: a\r\nConnection: close\r\n\r\n"
    responses = split_responses(exchange(server, raw))
    assert [(r[0], r[2]) for r in responses] == [(200, b"Hello, world!")]
