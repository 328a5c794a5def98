"""Response serialisation: exact wire bytes from ResponseWriter and its helpers."""

import pytest

from pounce_sync.http1 import (
    LAST_CHUNK,
    LocalProtocolError,
    ParserLimits,
    Request,
    ResponseWriter,
    encode_chunk,
    encode_fields,
    parse_head,
    simple_response,
    status_line,
)

Header = tuple[bytes, bytes]


def make_request(method: bytes = b"GET", version: bytes = b"1.1", *fields: bytes) -> Request:
    head = b"\r\n".join([b"%s / HTTP/%s" % (method, version), b"Host: a", *fields])
    return parse_head(head, ParserLimits())


def writer(
    method: bytes = b"GET",
    version: bytes = b"1.1",
    keep_alive: bool | None = None,
    default_headers: list[Header] | None = None,
) -> ResponseWriter:
    """A writer as the worker makes one: keep-alive from the request unless overridden."""
    fields = [b"Connection: keep-alive"] if version == b"1.0" else []
    request = make_request(method, version, *fields)
    alive = request.keep_alive if keep_alive is None else keep_alive
    return ResponseWriter(request, alive, encode_fields(default_headers or []))


def respond(w: ResponseWriter, status: int, headers: list[Header], *bodies: bytes) -> bytes:
    """start(), then one body() per piece; the last one ends the response."""
    w.start(status, headers)
    out = b""
    for i, body in enumerate(bodies):
        out += w.body(body, more_body=i < len(bodies) - 1)
    assert w.finished
    return out


# -- helpers --------------------------------------------------------------------


def test_status_line() -> None:
    assert status_line(200) == b"HTTP/1.1 200 OK\r\n"
    assert status_line(404) == b"HTTP/1.1 404 Not Found\r\n"
    # Unknown code: the reason phrase is optional, the SP before it is not.
    assert status_line(599) == b"HTTP/1.1 599 \r\n"


def test_encode_chunk() -> None:
    assert encode_chunk(b"hello") == b"5\r\nhello\r\n"
    assert encode_chunk(b"x" * 255) == b"ff\r\n" + b"x" * 255 + b"\r\n"
    assert encode_chunk(b"x" * 4096) == b"1000\r\n" + b"x" * 4096 + b"\r\n"
    # An empty chunk would be the last-chunk and end the body early.
    assert encode_chunk(b"") == b""
    assert LAST_CHUNK == b"0\r\n\r\n"


def test_simple_response() -> None:
    assert simple_response(400, b"Bad Request\n") == (
        b"HTTP/1.1 400 Bad Request\r\n"
        b"content-type: text/plain; charset=utf-8\r\n"
        b"content-length: 12\r\n"
        b"connection: close\r\n"
        b"\r\n"
        b"Bad Request\n"
    )
    assert simple_response(503, b"", [(b"retry-after", b"1")]).endswith(
        b"connection: close\r\nretry-after: 1\r\n\r\n"
    )


# -- framing --------------------------------------------------------------------


def test_content_length_added_for_a_complete_body() -> None:
    w = writer(default_headers=[(b"server", b"pounce-sync"), (b"date", b"D")])
    out = respond(w, 200, [(b"content-type", b"text/plain")], b"hello")
    assert out == (
        b"HTTP/1.1 200 OK\r\n"
        b"server: pounce-sync\r\n"
        b"date: D\r\n"
        b"content-type: text/plain\r\n"
        b"content-length: 5\r\n"
        b"\r\n"
        b"hello"
    )
    assert w.keep_alive is True


def test_app_content_length_matching_a_complete_body_is_sent_once() -> None:
    """What frameworks send: their own Content-Length and the whole body in one message."""
    w = writer(default_headers=[(b"server", b"pounce-sync")])
    out = respond(w, 200, [(b"Content-Length", b"5"), (b"x-a", b"1")], b"hello")
    assert (
        out == b"HTTP/1.1 200 OK\r\nserver: pounce-sync\r\nx-a: 1\r\ncontent-length: 5\r\n\r\nhello"
    )
    assert w.keep_alive is True


def test_empty_complete_body_gets_content_length_zero() -> None:
    assert respond(writer(), 200, [], b"") == b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"


def test_app_content_length_is_kept_while_streaming() -> None:
    w = writer()
    w.start(200, [(b"Content-Length", b"11"), (b"x-a", b"1")])
    assert w.body(b"hello ", more_body=True) == (
        b"HTTP/1.1 200 OK\r\nx-a: 1\r\ncontent-length: 11\r\n\r\nhello "
    )
    assert w.body(b"world", more_body=False) == b"world"
    assert w.finished
    assert w.keep_alive is True


def test_app_content_length_is_kept_on_http10_streaming() -> None:
    w = writer(version=b"1.0")
    out = respond(w, 200, [(b"content-length", b"4")], b"ab", b"cd")
    assert out == b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\nconnection: keep-alive\r\n\r\nabcd"
    assert w.keep_alive is True


def test_chunked_when_streaming_on_http11() -> None:
    w = writer()
    w.start(200, [(b"content-type", b"text/event-stream"), (b"Transfer-Encoding", b"gzip")])
    assert w.body(b"hello", more_body=True) == (
        b"HTTP/1.1 200 OK\r\n"
        b"content-type: text/event-stream\r\n"
        b"transfer-encoding: chunked\r\n"
        b"\r\n"
        b"5\r\nhello\r\n"
    )
    assert w.body(b"", more_body=True) == b""
    assert w.body(b"0123456789abcdef!", more_body=True) == b"11\r\n0123456789abcdef!\r\n"
    assert w.body(b"end", more_body=False) == b"3\r\nend\r\n0\r\n\r\n"
    assert w.keep_alive is True


def test_chunked_stream_ending_with_an_empty_body() -> None:
    w = writer()
    out = respond(w, 200, [], b"", b"a", b"")
    assert out == b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n"
    assert w.keep_alive is True


def test_close_delimited_when_streaming_on_http10() -> None:
    w = writer(version=b"1.0")
    assert w.keep_alive is True
    w.start(200, [])
    assert w.body(b"hello", more_body=True) == b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nhello"
    assert w.keep_alive is False
    assert w.body(b" world", more_body=True) == b" world"
    assert w.body(b"", more_body=False) == b""
    assert w.keep_alive is False


def test_http10_keep_alive_gets_connection_keep_alive() -> None:
    w = writer(version=b"1.0")
    out = respond(w, 200, [], b"hi")
    assert out == b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: keep-alive\r\n\r\nhi"
    assert w.keep_alive is True


def test_http10_without_keep_alive_gets_connection_close() -> None:
    request = make_request(b"GET", b"1.0")
    w = ResponseWriter(request, request.keep_alive, b"")
    out = respond(w, 200, [], b"hi")
    assert out == b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nhi"
    assert w.keep_alive is False


def test_connection_close_when_keep_alive_is_off() -> None:
    w = writer(keep_alive=False)
    out = respond(w, 200, [], b"hi")
    assert out == b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nhi"
    assert w.keep_alive is False


def test_app_connection_close_ends_keep_alive() -> None:
    w = writer()
    out = respond(w, 200, [(b"Connection", b"Close")], b"hi")
    assert out == b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nhi"
    assert w.keep_alive is False


def test_app_connection_keep_alive_cannot_contradict_close() -> None:
    # Connection is hop-by-hop and the server's to decide: one Connection field, "close".
    w = writer(keep_alive=False)
    out = respond(w, 200, [(b"connection", b"keep-alive")], b"hi")
    head = out.split(b"\r\n\r\n")[0].lower()
    assert [ln for ln in head.split(b"\r\n") if ln.startswith(b"connection:")] == [
        b"connection: close"
    ]


# -- HEAD and bodiless statuses ----------------------------------------------------


def test_head_has_the_get_content_length_and_no_body() -> None:
    w = writer(method=b"HEAD")
    assert respond(w, 200, [], b"twelve bytes") == b"HTTP/1.1 200 OK\r\ncontent-length: 12\r\n\r\n"
    assert w.keep_alive is True


def test_head_keeps_the_app_content_length() -> None:
    w = writer(method=b"HEAD")
    out = respond(w, 200, [(b"content-length", b"1000")], b"")
    assert out == b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n"
    assert w.keep_alive is True


def test_head_streaming_sends_no_body_and_no_chunks() -> None:
    w = writer(method=b"HEAD")
    out = respond(w, 200, [], b"abc", b"def", b"")
    assert out == b"HTTP/1.1 200 OK\r\n\r\n"
    assert w.keep_alive is True


@pytest.mark.parametrize(
    ("status", "reason"), [(204, b"No Content"), (304, b"Not Modified")], ids=["204", "304"]
)
def test_bodiless_status_has_no_body_and_no_content_length(status: int, reason: bytes) -> None:
    w = writer()
    out = respond(w, status, [(b"etag", b'"x"')], b"")
    assert out == b'HTTP/1.1 %d %s\r\netag: "x"\r\n\r\n' % (status, reason)
    assert w.keep_alive is True
    w = writer()
    assert respond(w, status, [(b"content-length", b"0")], b"ignored") == (
        b"HTTP/1.1 %d %s\r\n\r\n" % (status, reason)
    )


# -- what the app may not do ----------------------------------------------------------

BAD_HEADERS = [
    pytest.param((b"x-a", b"a\r\nset-cookie: evil=1"), id="crlf-in-value"),
    pytest.param((b"x-a", b"a\rb"), id="cr-in-value"),
    pytest.param((b"x-a", b"a\nb"), id="lf-in-value"),
    pytest.param((b"x-a", b"a\x00b"), id="nul-in-value"),
    pytest.param((b"x-a\r\nset-cookie", b"evil=1"), id="crlf-in-name"),
    pytest.param((b"x\ra", b"v"), id="cr-in-name"),
    pytest.param((b"x\na", b"v"), id="lf-in-name"),
    pytest.param((b"x\x00a", b"v"), id="nul-in-name"),
    pytest.param((b"x a", b"v"), id="space-in-name"),
    pytest.param((b"x:a", b"v"), id="colon-in-name"),
    pytest.param((b"", b"v"), id="empty-name"),
    # Known names skip the token check; their values are still checked.
    pytest.param((b"Set-Cookie", b"a=1\r\nset-cookie: evil=1"), id="crlf-in-known-name-value"),
    pytest.param((b"content-type", b"text/plain\x00"), id="nul-in-known-name-value"),
]


def test_the_error_names_the_bad_field() -> None:
    bad = [(b"x-ok", b"1"), (b"Location", b"/a\nb"), (b"x-later", b"2")]
    with pytest.raises(LocalProtocolError, match=r"b'Location': b'/a\\nb'"):
        writer().start(200, bad)


@pytest.mark.parametrize("bad", BAD_HEADERS)
def test_invalid_app_header_raises_and_writes_nothing(bad: Header) -> None:
    w = writer()
    with pytest.raises(LocalProtocolError):
        w.start(200, [(b"x-ok", b"1"), bad])
    assert not w.started
    with pytest.raises(LocalProtocolError):
        w.body(b"hello", more_body=False)
    # The app may still send a clean response, and the bad header is nowhere in it.
    out = respond(w, 500, [], b"")
    assert out == b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n"


@pytest.mark.parametrize("value", [b"abc", b"-1", b"+5", b"5, 5", b""])
def test_invalid_app_content_length_raises(value: bytes) -> None:
    with pytest.raises(LocalProtocolError):
        writer().start(200, [(b"content-length", value)])


def test_duplicate_app_content_length_raises() -> None:
    with pytest.raises(LocalProtocolError):
        writer().start(200, [(b"content-length", b"5"), (b"Content-Length", b"5")])


@pytest.mark.parametrize("status", [0, 100, 101, 199, 1000])
def test_invalid_final_status_raises(status: int) -> None:
    with pytest.raises(LocalProtocolError):
        writer().start(status, [])


def test_body_longer_than_content_length_raises() -> None:
    w = writer()
    w.start(200, [(b"content-length", b"5")])
    with pytest.raises(LocalProtocolError):
        w.body(b"hello!", more_body=False)


def test_body_longer_than_content_length_over_several_messages_raises() -> None:
    w = writer()
    w.start(200, [(b"content-length", b"5")])
    assert w.body(b"hel", more_body=True).endswith(b"\r\n\r\nhel")
    with pytest.raises(LocalProtocolError):
        w.body(b"lo!", more_body=True)


def test_body_shorter_than_content_length_ends_keep_alive() -> None:
    w = writer()
    out = respond(w, 200, [(b"content-length", b"10")], b"hel", b"lo")
    assert out == b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhello"
    assert w.keep_alive is False


def test_complete_body_shorter_than_content_length_ends_keep_alive() -> None:
    w = writer()
    out = respond(w, 200, [(b"content-length", b"10")], b"hello")
    assert out == b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhello"
    assert w.keep_alive is False


def test_start_twice_raises() -> None:
    w = writer()
    w.start(200, [])
    with pytest.raises(LocalProtocolError):
        w.start(200, [])


def test_body_after_the_response_is_complete_raises() -> None:
    w = writer()
    respond(w, 200, [], b"done")
    with pytest.raises(LocalProtocolError):
        w.body(b"more", more_body=False)


# -- body_bytes: what an access log's B counts ------------------------------------------

BODY_BYTES_CASES = {
    # id: (method, version, status, headers, body messages, body bytes)
    "whole": (b"GET", b"1.1", 200, [], [b"hello"], 5),
    "content-length-streamed": (b"GET", b"1.1", 200, [(b"content-length", b"6")], [b"abc"] * 2, 6),
    "chunked": (b"GET", b"1.1", 200, [], [b"ab", b"cde", b""], 5),
    "close-delimited": (b"GET", b"1.0", 200, [], [b"ab", b"cde"], 5),
    "head-whole": (b"HEAD", b"1.1", 200, [], [b"hello"], 0),
    "head-streamed": (b"HEAD", b"1.1", 200, [], [b"ab", b"cde"], 0),
    "204": (b"GET", b"1.1", 204, [], [b""], 0),
    "304-with-body": (b"GET", b"1.1", 304, [], [b"dropped"], 0),
}


@pytest.mark.parametrize(
    ("method", "version", "status", "headers", "bodies", "expected"),
    list(BODY_BYTES_CASES.values()),
    ids=list(BODY_BYTES_CASES),
)
def test_body_bytes_count_the_body_without_head_or_framing(
    method: bytes,
    version: bytes,
    status: int,
    headers: list[Header],
    bodies: list[bytes],
    expected: int,
) -> None:
    w = writer(method, version)
    respond(w, status, headers, *bodies)
    assert w.body_bytes == expected
