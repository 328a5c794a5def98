"""Request smuggling shapes: our verdict, h11's verdict, and a live server's answer.

One row a shape. `status` is what the server must answer (then close the connection),
or ACCEPT for a shape RFC 9112 calls valid, which must be served as one request. The
codec is checked whole and byte by byte; h11 (a strict parser that is not ours) must
reach the same verdict unless the row names h11's answer and says why we differ.
On the wire each row is followed by a pipelined request that must never be answered
as part of the bad one: after a rejection nothing more comes back, after an accepted
shape it is answered on its own.

The shapes tests/malformed_cases.py already holds (CL+TE, duplicate CL, obs-fold,
bare CR/LF in the head, whitespace before the colon...) are not repeated here.
"""

from collections.abc import Iterator
from typing import NamedTuple

import h11
import pytest

from pounce_sync.http1 import NEED_DATA, PAUSED, ProtocolError, RequestParser
from tests.http_client import ResponseReader
from tests.malformed_cases import SMUGGLED_MARK, chunked, post, request
from tests.server_process import ServerProcess, running_server

ACCEPT = 0  # the verdict of a parser that took the whole message
INCOMPLETE = -1  # the verdict of a parser still waiting for bytes the message announced


class Shape(NamedTuple):
    id: str
    raw: bytes
    status: int  # ACCEPT or the status the server answers before it closes
    h11: int | None = None  # h11's verdict where it differs from ours
    why: str = ""  # why we differ from h11 on purpose


_BODY = b"5\r\nhello\r\n0\r\n\r\n"


def _te(value: str) -> bytes:
    return post(f"Transfer-Encoding: {value}", body=_BODY)


_H11_LENIENT_EXT = "h11 does not check chunk extensions; RFC 9112 7.1.1 gives their grammar"
_H11_OBS_FOLD = "h11 unfolds obs-fold; RFC 9112 5.2 lets a server reject it, and we do"

SHAPES = [
    # -- Transfer-Encoding variants ------------------------------------------------
    Shape("te-chunked-identity", _te("chunked, identity"), 501),
    Shape("te-identity", _te("identity"), 501),
    Shape("te-identity-chunked", _te("identity, chunked"), 501),
    Shape("te-quoted-chunked", _te('"chunked"'), 501),
    Shape("te-chunked-with-parameter", _te("chunked;q=1"), 501),
    Shape("te-chunked-vertical-tab", _te("chunked\x0b"), 400),
    Shape("te-chunked-nul-inside", _te("chun\x00ked"), 400),
    # Trailing OWS belongs to the field line, not the value (RFC 9110 5.5): valid.
    Shape("te-chunked-trailing-space", _te("chunked "), ACCEPT),
    Shape("te-chunked-trailing-tab", _te("chunked\t"), ACCEPT),
    Shape("te-chunked-uppercase", _te("CHUNKED"), ACCEPT),
    Shape(
        "te-chunked-then-identity-two-lines",
        post("Transfer-Encoding: chunked", "Transfer-Encoding: identity", body=_BODY),
        501,
    ),
    Shape(
        "te-chunked-comma-chunked",
        _te("chunked , chunked"),
        400,
        h11=501,
        why="chunked twice is a framing error (RFC 9112 7), not an unknown coding",
    ),
    Shape(
        "te-identity-in-http10",
        request("Transfer-Encoding: identity", body=_BODY, start=b"POST /echo HTTP/1.0"),
        400,
        h11=501,
        why="RFC 9112 6.1: Transfer-Encoding in HTTP/1.0 means faulty framing, whatever coding",
    ),
    Shape(
        "te-identity-and-cl",
        post("Transfer-Encoding: identity", "Content-Length: 5", body=b"hello"),
        400,
        h11=501,
        why="CL with TE is rejected before the coding is looked at (RFC 9112 6.3 rule 3)",
    ),
    # -- Content-Length ------------------------------------------------------------
    Shape(
        "cl-list-1-1",
        post("Content-Length: 1, 1", body=b"x"),
        400,
        h11=ACCEPT,
        why="RFC 9112 6.3 allows folding identical values; a smuggling shape, so we refuse",
    ),
    Shape(
        "cl-twice-same",
        post("Content-Length: 1", "Content-Length: 1", body=b"x"),
        400,
        h11=ACCEPT,
        why="as cl-list-1-1",
    ),
    Shape("cl-leading-zeros", post("Content-Length: 0005", body=b"hello"), ACCEPT),
    Shape("cl-tab-ows", post("Content-Length:\t5\t", body=b"hello"), ACCEPT),
    Shape(
        "cl-twenty-digits",
        post("Content-Length: 99999999999999999999", body=b"x"),
        400,
        h11=INCOMPLETE,
        why="more than 18 digits cannot be a real length; h11 has no bound and waits",
    ),
    Shape(
        "cl-obs-fold",
        post("Content-Length:", " 5", body=b"hello"),
        400,
        h11=ACCEPT,
        why=_H11_OBS_FOLD,
    ),
    # -- chunk-size lines -----------------------------------------------------------
    Shape("chunk-size-0x-alone", chunked(b"0x\r\n\r\n"), 400),
    Shape("chunk-size-bare-cr", chunked(b"5\rhello\r\n0\r\n\r\n"), 400),
    Shape("last-chunk-bare-lf", chunked(b"5\r\nhello\r\n0\n\r\n"), 400),
    Shape(
        "chunk-size-space-between-digits", chunked(b"1 0\r\n" + b"x" * 16 + b"\r\n0\r\n\r\n"), 400
    ),
    Shape(
        "chunk-size-17-digits-leading-zeros",
        chunked(b"0" * 16 + b"5\r\nhello\r\n0\r\n\r\n"),
        400,
        h11=ACCEPT,
        why="at most 16 hex digits, so the size never needs more than 64 bits to read",
    ),
    Shape("chunk-size-line-4-kib-of-zeros", chunked(b"0" * 5000 + b"5\r\nhello\r\n0\r\n\r\n"), 400),
    Shape(
        "chunk-line-over-4-kib",
        chunked(b"5;a=" + b"b" * 5000 + b"\r\nhello\r\n0\r\n\r\n"),
        400,
        h11=ACCEPT,
        why="a chunk-size line is bounded at 4 KiB; h11 bounds only its whole buffer",
    ),
    # -- chunk extensions -----------------------------------------------------------
    Shape("chunk-ext-quoted-ok", chunked(b'5;a="b c"\r\nhello\r\n0\r\n\r\n'), ACCEPT),
    Shape(
        "chunk-ext-bws-before-semicolon",
        chunked(b"5 ;a=b\r\nhello\r\n0\r\n\r\n"),
        ACCEPT,
        h11=400,
        why="RFC 9112 7.1.1 allows BWS before ';'; h11 does not",
    ),
    Shape(
        "chunk-ext-nul-in-quoted",
        chunked(b'5;a="b\x00"\r\nhello\r\n0\r\n\r\n'),
        400,
        h11=ACCEPT,
        why=_H11_LENIENT_EXT,
    ),
    Shape(
        "chunk-ext-two-semicolons",
        chunked(b"5;;\r\nhello\r\n0\r\n\r\n"),
        400,
        ACCEPT,
        _H11_LENIENT_EXT,
    ),
    Shape(
        "chunk-ext-value-without-name",
        chunked(b"5;=b\r\nhello\r\n0\r\n\r\n"),
        400,
        h11=ACCEPT,
        why=_H11_LENIENT_EXT,
    ),
    # -- trailers -------------------------------------------------------------------
    Shape("trailer-plain-field", chunked(b"5\r\nhello\r\n0\r\nX-Sum: 1\r\n\r\n"), ACCEPT),
    Shape("trailer-bare-cr", chunked(b"0\r\nX-Sum: 1\r2\r\n\r\n"), 400),
    Shape(
        "trailer-bare-lf",
        chunked(b"0\r\nX-Sum: 1\n\r\n"),
        400,
        h11=ACCEPT,
        why="h11 takes bare LF line ends; RFC 9112 2.2 lets a server refuse them",
    ),
    Shape("trailer-space-before-colon", chunked(b"0\r\nX-Sum : 1\r\n\r\n"), 400),
    *(
        Shape(
            f"trailer-forbidden-{name.lower()}",
            chunked(b"0\r\n%s: %s\r\n\r\n" % (name.encode(), value)),
            400,
            h11=ACCEPT,
            why="RFC 9110 6.5.1: framing, routing and connection fields have no place in "
            "trailers; h11 passes them on",
        )
        for name, value in [
            ("Content-Length", b"5"),
            ("Transfer-Encoding", b"chunked"),
            ("Host", b"b"),
            ("Connection", b"close"),
            ("Upgrade", b"websocket"),
            ("Trailer", b"X-Sum"),
        ]
    ),
]

DELIBERATE_DIFFERENCES = {s.id: s.why for s in SHAPES if s.h11 is not None}


def our_verdict(feeds: list[bytes]) -> int:
    parser = RequestParser()
    try:
        for data in feeds:
            parser.feed(data)
            while (event := parser.next_event()) is not NEED_DATA:
                if event is PAUSED:
                    return ACCEPT
    except ProtocolError as exc:
        return exc.status
    return INCOMPLETE


def h11_verdict(raw: bytes) -> int:
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(raw)
    try:
        while (event := conn.next_event()) is not h11.NEED_DATA:
            if type(event) is h11.EndOfMessage:
                return ACCEPT
    except h11.RemoteProtocolError as exc:
        return exc.error_status_hint
    return INCOMPLETE


_IDS = [s.id for s in SHAPES]


def test_shape_ids_are_unique_and_differences_explained() -> None:
    assert len(set(_IDS)) == len(_IDS)
    assert all(s.why for s in SHAPES if s.h11 is not None)


@pytest.mark.parametrize("shape", SHAPES, ids=_IDS)
def test_parser_verdict(shape: Shape) -> None:
    assert our_verdict([shape.raw]) == shape.status
    assert our_verdict([shape.raw[i : i + 1] for i in range(len(shape.raw))]) == shape.status


@pytest.mark.parametrize("shape", SHAPES, ids=_IDS)
def test_h11_verdict(shape: Shape) -> None:
    expected = shape.status if shape.h11 is None else shape.h11
    assert h11_verdict(shape.raw) == expected


_NEXT = b"GET /scope?%s HTTP/1.1\r\nHost: a\r\n\r\n" % SMUGGLED_MARK


@pytest.mark.parametrize("shape", SHAPES, ids=_IDS)
def test_server_answer(server: ServerProcess, shape: Shape) -> None:
    with server.connect() as sock:
        sock.sendall(shape.raw + _NEXT)
        reader = ResponseReader(sock)
        first = reader.read_response()
        if shape.status == ACCEPT:
            assert (first.status, first.body) == (200, b"hello")
            second = reader.read_response()
            assert second.status == 200 and SMUGGLED_MARK in second.body
            return
        assert first.status == shape.status
        assert first.header(b"connection") == b"close"
        assert SMUGGLED_MARK not in first.body
        assert reader.server_closes
        reader.read_closed()


# Lengths the parser takes as well formed but past the body limit (--max-body-size):
# 413 before the body (Content-Length) or as soon as the body read passes it (chunked).
OVERSIZED = [
    pytest.param(post("Content-Length: 999999999999999999", body=b"x"), id="cl-18-digits"),
    pytest.param(chunked(b"FFFFFFFFFFFFFFFF\r\n" + b"x" * 4096), id="chunk-size-16-hex-digits"),
]


@pytest.fixture(scope="module")
def small_body_server() -> Iterator[ServerProcess]:
    with running_server("--workers", "2", "--no-access-log", "--max-body-size", "1024") as srv:
        yield srv


@pytest.mark.parametrize("raw", OVERSIZED)
def test_oversized_lengths_get_413(small_body_server: ServerProcess, raw: bytes) -> None:
    assert our_verdict([raw]) == INCOMPLETE  # the parser waits for the announced body
    with small_body_server.connect() as sock:
        sock.sendall(raw)
        reader = ResponseReader(sock)
        response = reader.read_response()
        assert response.status == 413
        assert response.header(b"connection") == b"close"
        reader.read_closed()
