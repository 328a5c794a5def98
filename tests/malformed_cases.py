"""Malformed and smuggling requests, one row a case, with the status the server must answer.

Shared by the codec tests (tests/http1/test_parser.py, fed straight to the parser) and
the wire tests (tests/test_malformed_requests.py, sent to a real server, which must
answer that status with `connection: close` and then close). Every row assumes the
default limits: 8190-byte request line, 65536-byte header block, 100 header fields.

Rows whose error is in the body go to `/echo`, whose app reads the body: a server
only gets to answer 400 for a broken body while the response has not started.
"""

from typing import NamedTuple


class Case(NamedTuple):
    id: str
    raw: bytes
    status: int


def request(*lines: bytes | str, body: bytes = b"", start: bytes = b"GET / HTTP/1.1") -> bytes:
    """A request head from its request line and field lines, CRLF-terminated, then `body`."""
    fields = [line.encode("latin-1") if isinstance(line, str) else line for line in lines]
    return b"\r\n".join([start, *fields]) + b"\r\n\r\n" + body


def post(*lines: bytes | str, body: bytes = b"") -> bytes:
    return request("Host: a", *lines, body=body, start=b"POST /echo HTTP/1.1")


def chunked(body: bytes) -> bytes:
    return post("Transfer-Encoding: chunked", body=body)


def line(start: bytes) -> bytes:
    """A request whose request line is `start`, with a valid Host."""
    return request("Host: a", start=start)


def field(raw_line: bytes) -> bytes:
    """A GET with a valid Host plus one raw field line."""
    return request("Host: a", raw_line)


_VALID_CHUNKS = b"5\r\nhello\r\n0\r\n\r\n"
# If this ever reached the test app, its /scope response would echo the mark back.
SMUGGLED_MARK = b"smuggled-request"
_SMUGGLED = b"GET /scope?%s HTTP/1.1\r\nHost: a\r\n\r\n" % SMUGGLED_MARK
_LONG_TARGET = b"/" + b"a" * 8200
# Ten 7000-byte fields: a 70 kB header block, past the 64 KiB limit but short of
# request-line limit + header limit, so only a check of the complete head catches it.
_BIG_FIELDS = [b"X-Fill-%d: %s" % (i, b"f" * 7000) for i in range(10)]
_MANY_FIELDS = [b"X-F%d: v" % i for i in range(100)]  # plus Host: 101 field lines

FRAMING = [
    Case(
        "cl-and-te", post("Content-Length: 5", "Transfer-Encoding: chunked", body=b"0\r\n\r\n"), 400
    ),
    Case(
        "te-and-cl", post("Transfer-Encoding: chunked", "Content-Length: 5", body=b"0\r\n\r\n"), 400
    ),
    Case(
        "cl-and-te-http10",
        request(
            "Content-Length: 5",
            "Transfer-Encoding: chunked",
            body=b"0\r\n\r\n",
            start=b"POST /echo HTTP/1.0",
        ),
        400,
    ),
    Case(
        "cl-duplicate-different",
        post("Content-Length: 5", "Content-Length: 6", body=b"hello!"),
        400,
    ),
    Case(
        "cl-duplicate-identical", post("Content-Length: 5", "Content-Length: 5", body=b"hello"), 400
    ),
    Case("cl-list-identical", post("Content-Length: 5, 5", body=b"hello"), 400),
    Case("cl-list-trailing-comma", post("Content-Length: 5,", body=b"hello"), 400),
    Case("cl-plus-sign", post("Content-Length: +5", body=b"hello"), 400),
    Case("cl-underscore", post("Content-Length: 0_5", body=b"hello"), 400),
    Case("cl-inner-space", post("Content-Length: 5 5", body=b"hello"), 400),
    Case("cl-negative", post("Content-Length: -1", body=b"hello"), 400),
    Case("cl-hex", post("Content-Length: 0x5", body=b"hello"), 400),
    Case("cl-empty", post("Content-Length: ", body=b"hello"), 400),
    Case("cl-decimal-point", post("Content-Length: 5.0", body=b"hello"), 400),
    Case("cl-letters", post("Content-Length: five", body=b"hello"), 400),
    Case("cl-nineteen-digits", post("Content-Length: 1000000000000000000", body=b"x"), 400),
    Case("te-gzip", post("Transfer-Encoding: gzip", body=_VALID_CHUNKS), 501),
    Case("te-gzip-then-chunked", post("Transfer-Encoding: gzip, chunked", body=_VALID_CHUNKS), 501),
    Case("te-chunked-then-gzip", post("Transfer-Encoding: chunked, gzip", body=_VALID_CHUNKS), 501),
    Case("te-xchunked", post("Transfer-Encoding: xchunked", body=_VALID_CHUNKS), 501),
    Case("te-empty", post("Transfer-Encoding: ", body=_VALID_CHUNKS), 400),
    Case(
        "te-chunked-chunked", post("Transfer-Encoding: chunked, chunked", body=_VALID_CHUNKS), 400
    ),
    Case(
        "te-chunked-two-lines",
        post("Transfer-Encoding: chunked", "Transfer-Encoding: chunked", body=_VALID_CHUNKS),
        400,
    ),
    Case(
        "te-in-http10",
        request("Transfer-Encoding: chunked", body=_VALID_CHUNKS, start=b"POST /echo HTTP/1.0"),
        400,
    ),
]

CHUNKS = [
    Case("chunk-size-not-hex", chunked(b"zz\r\nhello\r\n0\r\n\r\n"), 400),
    Case("chunk-size-negative", chunked(b"-1\r\nhello\r\n0\r\n\r\n"), 400),
    Case("chunk-size-17-hex-digits", chunked(b"1" + b"0" * 16 + b"\r\nhello\r\n0\r\n\r\n"), 400),
    Case("chunk-size-0x-prefix", chunked(b"0x5\r\nhello\r\n0\r\n\r\n"), 400),
    Case("chunk-size-leading-space", chunked(b" 5\r\nhello\r\n0\r\n\r\n"), 400),
    Case("chunk-size-trailing-space", chunked(b"5 \r\nhello\r\n0\r\n\r\n"), 400),
    Case("chunk-size-inner-space", chunked(b"5 0\r\nhello\r\n0\r\n\r\n"), 400),
    Case("chunk-size-empty", chunked(b"\r\nhello\r\n0\r\n\r\n"), 400),
    Case("chunk-size-bare-lf", chunked(b"5\nhello\r\n0\r\n\r\n"), 400),
    Case("chunk-ext-empty-name", chunked(b"5;\r\nhello\r\n0\r\n\r\n"), 400),
    Case("chunk-ext-empty-value", chunked(b"5;a=\r\nhello\r\n0\r\n\r\n"), 400),
    Case("chunk-ext-unterminated-quote", chunked(b'5;a="x\r\nhello\r\n0\r\n\r\n'), 400),
    Case("chunk-ext-space-in-name", chunked(b"5;a b\r\nhello\r\n0\r\n\r\n"), 400),
    Case("chunk-ext-nul", chunked(b"5;a\x00\r\nhello\r\n0\r\n\r\n"), 400),
    Case("chunk-ext-bare-cr", chunked(b"5;a\rb\r\nhello\r\n0\r\n\r\n"), 400),
    Case("chunk-data-longer-than-size", chunked(b"5\r\nhelloXX\r\n0\r\n\r\n"), 400),
    Case("chunk-data-then-bare-lf", chunked(b"5\r\nhello\n0\r\n\r\n"), 400),
    Case("chunk-data-then-bare-cr", chunked(b"5\r\nhello\r0\r\n\r\n"), 400),
    Case("trailer-obs-fold", chunked(b"0\r\nX-T: a\r\n b\r\n\r\n"), 400),
    Case("trailer-nul", chunked(b"0\r\nX-T: a\x00b\r\n\r\n"), 400),
]

HEAD_SYNTAX = [
    Case("obs-fold-space", request("Host: a", "X-A: b", " c"), 400),
    Case("obs-fold-tab", request("Host: a", "X-A: b", "\tc"), 400),
    Case("whitespace-before-first-field", request(" Host: a"), 400),
    Case("bare-lf-after-request-line", b"GET / HTTP/1.1\nHost: a\r\n\r\n", 400),
    Case("bare-cr-after-request-line", b"GET / HTTP/1.1\rHost: a\r\n\r\n", 400),
    Case("bare-cr-in-request-line", line(b"GET /\r HTTP/1.1"), 400),
    Case("bare-lf-between-fields", b"GET / HTTP/1.1\r\nHost: a\nX-A: b\r\n\r\n", 400),
    Case("bare-cr-between-fields", b"GET / HTTP/1.1\r\nHost: a\rX-A: b\r\n\r\n", 400),
    Case("bare-cr-in-value", field(b"X-A: b\rc"), 400),
    Case("bare-lf-in-value", field(b"X-A: b\nc"), 400),
    Case("bare-lf-ends-head", b"GET / HTTP/1.1\r\nHost: a\r\n\n", 400),
    Case("lf-only-head", b"GET / HTTP/1.1\nHost: a\n\n", 400),
    Case("nul-in-field-value", field(b"X-A: b\x00c"), 400),
    Case("nul-in-field-name", field(b"X-\x00A: b"), 400),
    Case("ctl-0x01-in-field-value", field(b"X-A: b\x01c"), 400),
    Case("ctl-vt-in-field-value", field(b"X-A: b\x0bc"), 400),
    Case("ctl-esc-in-field-value", field(b"X-A: b\x1bc"), 400),
    Case("del-in-field-value", field(b"X-A: b\x7fc"), 400),
    Case("ctl-0x01-in-field-name", field(b"X-\x01A: b"), 400),
    Case("nul-in-target", line(b"GET /a\x00b HTTP/1.1"), 400),
    Case("ctl-0x01-in-target", line(b"GET /a\x01b HTTP/1.1"), 400),
    Case("del-in-target", line(b"GET /a\x7fb HTTP/1.1"), 400),
    Case("space-in-target", line(b"GET /a b HTTP/1.1"), 400),
    Case("non-ascii-in-target", line(b"GET /caf\xc3\xa9 HTTP/1.1"), 400),
    Case("space-before-colon", request("Host: a", "X-A : b"), 400),
    Case("tab-before-colon", request("Host: a", "X-A\t: b"), 400),
    Case("space-before-colon-host", request("Host : a"), 400),
    Case("field-name-separator", field(b"X(A): b"), 400),
    Case("field-name-empty", field(b": b"), 400),
    Case("field-without-colon", field(b"X-A b"), 400),
    Case("method-with-paren", line(b"G(T / HTTP/1.1"), 400),
    Case("method-with-ctl", line(b"GET\x01 / HTTP/1.1"), 400),
    Case("method-with-nul", line(b"GE\x00T / HTTP/1.1"), 400),
    Case("method-empty", line(b" / HTTP/1.1"), 400),
    Case("request-line-two-spaces", line(b"GET  / HTTP/1.1"), 400),
    Case("request-line-trailing-space", line(b"GET / HTTP/1.1 "), 400),
    Case("request-line-tabs", line(b"GET\t/\tHTTP/1.1"), 400),
    Case("request-line-no-target", line(b"GET HTTP/1.1"), 400),
    Case("target-no-leading-slash", line(b"GET index.html HTTP/1.1"), 400),
    Case("target-authority-form-for-get", line(b"GET example.com:80 HTTP/1.1"), 400),
    Case("target-asterisk-for-get", line(b"GET * HTTP/1.1"), 400),
    Case("missing-host-http11", request("X-A: b"), 400),
    Case("duplicate-host", request("Host: a", "Host: b"), 400),
    Case("duplicate-host-identical", request("Host: a", "Host: a"), 400),
    Case("host-with-space", request("Host: a b"), 400),
    Case("host-with-slash", request("Host: a/b"), 400),
    Case("host-with-userinfo", request("Host: user@a"), 400),
]

LIMITS = [
    Case("request-line-too-long", line(b"GET " + _LONG_TARGET + b" HTTP/1.1"), 414),
    Case("request-line-too-long-unterminated", b"GET " + _LONG_TARGET, 414),
    Case("header-block-too-large", request("Host: a", *_BIG_FIELDS), 431),
    Case(
        "header-block-too-large-unterminated",
        request("Host: a", *_BIG_FIELDS, b"X-Last: " + b"l" * 8000)[:-4],
        431,
    ),
    Case("too-many-fields", request("Host: a", *_MANY_FIELDS), 431),
]

VERSIONS = [
    Case("http-2.0", line(b"GET / HTTP/2.0"), 505),
    Case("http-3.0", line(b"GET / HTTP/3.0"), 505),
    Case("http-0.9-version", line(b"GET / HTTP/0.9"), 505),
    Case("http-0.9-style-no-version", b"GET /\r\n\r\n", 400),
    Case("http-version-two-digit-minor", line(b"GET / HTTP/1.10"), 400),
    Case("http-version-no-dot", line(b"GET / HTTP/11"), 400),
    Case("http-version-no-minor", line(b"GET / HTTP/1"), 400),
    Case("http-name-lowercase", line(b"GET / http/1.1"), 400),
]

# Each row carries a second, smuggled request after the bad one: the server must
# answer the bad one alone and never let the smuggled bytes reach the application.
SMUGGLING = [
    Case(
        "smuggle-cl-te",
        post("Content-Length: 5", "Transfer-Encoding: chunked", body=b"0\r\n\r\n" + _SMUGGLED),
        400,
    ),
    Case(
        "smuggle-te-cl",
        post("Transfer-Encoding: chunked", "Content-Length: 40", body=b"0\r\n\r\n" + _SMUGGLED),
        400,
    ),
    Case(
        "smuggle-cl-cl",
        post("Content-Length: 0", "Content-Length: %d" % len(_SMUGGLED), body=_SMUGGLED),
        400,
    ),
    Case(
        "smuggle-te-space-before-colon",
        post("Transfer-Encoding : chunked", "Content-Length: 5", body=b"0\r\n\r\n" + _SMUGGLED),
        400,
    ),
    Case(
        "smuggle-te-obs-fold",
        post(
            "Transfer-Encoding: x", " chunked", "Content-Length: 5", body=b"0\r\n\r\n" + _SMUGGLED
        ),
        400,
    ),
    Case(
        "smuggle-te-xchunked",
        post("Transfer-Encoding: xchunked", body=b"0\r\n\r\n" + _SMUGGLED),
        501,
    ),
    Case(
        "smuggle-te-bare-lf-field",
        b"POST /echo HTTP/1.1\r\nHost: a\r\nX-A: b\nTransfer-Encoding: chunked\r\n"
        b"Content-Length: 5\r\n\r\n0\r\n\r\n" + _SMUGGLED,
        400,
    ),
    Case(
        "smuggle-chunk-size-overflow",
        chunked(b"1" + b"0" * 16 + b"\r\nX\r\n0\r\n\r\n" + _SMUGGLED),
        400,
    ),
    Case(
        "smuggle-chunk-ext-bare-lf",
        chunked(b"5;a\nb\r\nhello\r\n0\r\n\r\n" + _SMUGGLED),
        400,
    ),
]

CASES = FRAMING + CHUNKS + HEAD_SYNTAX + LIMITS + VERSIONS + SMUGGLING
