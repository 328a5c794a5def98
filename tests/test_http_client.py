"""The tests' response reader (http_client.py) against canned bytes on a loopback socket."""

import socket
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from .http_client import ResponseError, ResponseReader, ResponseTruncated, ServerClosed

OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
CHUNKED = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n"


@contextmanager
def peer_sends(wire: bytes, *, close: bool = True) -> Iterator[ResponseReader]:
    """A reader on a loopback connection whose other end sent `wire` (then closed)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname(), timeout=5)
        server, _ = listener.accept()
        with client, server:
            server.sendall(wire)
            if close:
                server.shutdown(socket.SHUT_WR)
            yield ResponseReader(client)


def test_pipelined_responses_head_and_chunked_with_trailers() -> None:
    head = b"HTTP/1.1 200 OK\r\ncontent-length: 12\r\n\r\n"  # HEAD: no body follows
    with peer_sends(OK + head + CHUNKED + b"x-t: 1\r\n\r\n", close=False) as reader:
        assert reader.read_response().body == b"ok"
        assert reader.read_response(b"HEAD").header(b"content-length") == b"12"
        response = reader.read_response()
    assert (response.body, response.trailers) == (b"abcde", [(b"x-t", b"1")])


def test_chunks_one_at_a_time() -> None:
    with peer_sends(CHUNKED + b"\r\n") as reader:
        assert reader.read_head().header(b"transfer-encoding") == b"chunked"
        assert [reader.read_chunk(), reader.read_chunk(), reader.read_chunk()] == [
            b"abc",
            b"de",
            None,
        ]
        reader.read_closed()


def test_100_continue_then_the_response() -> None:
    with peer_sends(b"HTTP/1.1 100 Continue\r\n\r\n" + OK) as reader:
        assert reader.read_informational(b"POST").status == 100
        assert reader.read_response(b"POST").body == b"ok"
    with peer_sends(b"HTTP/1.1 100 Continue\r\n\r\n" + OK) as reader:
        response = reader.read_response(b"POST")
    assert [r.status for r in response.informational] == [100]


def test_101_leaves_the_next_protocol_bytes() -> None:
    with peer_sends(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\n\r\nNEXT") as reader:
        assert reader.read_informational(upgrade=True).status == 101
        assert reader.trailing_data == b"NEXT"


def test_close_delimited_body_and_the_close() -> None:
    with peer_sends(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nto the end") as reader:
        assert reader.read_response().body == b"to the end"
        assert reader.server_closes
        reader.read_closed()


@pytest.mark.parametrize(
    ("wire", "error"),
    [
        pytest.param(b"", ServerClosed, id="closed"),
        pytest.param(OK[:-1], ResponseTruncated, id="short-body"),
        pytest.param(OK[:20], ResponseTruncated, id="short-head"),
        # The last-chunk line, then no end of the trailer section.
        pytest.param(CHUNKED, ResponseTruncated, id="unfinished-chunks"),
        pytest.param(b"HTTP/1.1 OK\r\n\r\n", ResponseError, id="no-status"),
        pytest.param(
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nok",
            ResponseError,
            id="two-lengths",
        ),
        pytest.param(b"HTTP/1.1 200 OK\r\nbad header\r\n\r\n", ResponseError, id="no-colon"),
        # A 101 is valid only when an upgrade was asked for.
        pytest.param(b"HTTP/1.1 101 Switching Protocols\r\n\r\n", ResponseError, id="101"),
    ],
)
def test_what_is_no_whole_response_fails(wire: bytes, error: type[Exception]) -> None:
    with peer_sends(wire) as reader, pytest.raises(error):
        reader.read_response()


def test_bytes_after_a_closing_response_fail() -> None:
    with peer_sends(b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nokX") as r:
        assert r.read_response().body == b"ok"
        with pytest.raises(ResponseError):
            r.read_closed()


def test_unasked_bytes_on_an_idle_connection_fail() -> None:
    with peer_sends(OK) as reader, pytest.raises(ResponseError):
        reader.read_closed()


def test_a_silent_peer_is_a_timeout() -> None:
    with peer_sends(b"HTTP/1.1 200 OK\r\n", close=False) as reader:
        reader.sock.settimeout(0.2)
        with pytest.raises(TimeoutError) as failure:
            reader.read_response()
    assert "HTTP/1.1 200 OK" in "".join(failure.value.__notes__)
