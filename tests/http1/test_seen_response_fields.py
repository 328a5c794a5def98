"""A thread's seen response fields (writer.SeenResponseFields) never change a response.

The same headers give the same bytes, or the same refusal, with or without the memo,
and nothing that failed a check is ever kept.
"""

import pytest

from pounce_sync.http1 import LocalProtocolError, ParserLimits, ResponseWriter, parse_head
from pounce_sync.http1.writer import SEEN_RESPONSE_FIELDS, SeenResponseFields

REQUEST = parse_head(b"GET / HTTP/1.1\r\nHost: a", ParserLimits())

HEADER_LISTS = [
    [(b"content-type", b"text/plain"), (b"content-length", b"5")],
    [(b"Content-Type", b"text/html"), (b"X-Custom", b"a b"), (b"set-cookie", b"a=1")],
    [[b"content-type", b"text/plain"], [b"x-list", b"1"]],  # lists: not hashable
    [(bytearray(b"x-bytearray"), bytearray(b"v"))],
    [(b"connection", b"close"), (b"cache-control", b"no-store")],
    [(b"x-bad", b"a\r\nb")],
    [(b"x-nul", b"a\0b")],
    [(b"bad name", b"v")],
    [("x-str", "v")],
    [(b"content-length", b"x")],
    [(b"content-type", b"text/plain"), (b"x-bad", b"a\nb")],
]


def response(headers: list, seen: SeenResponseFields | None) -> object:
    writer = ResponseWriter(REQUEST, True, b"server: t\r\n", seen)
    try:
        writer.start(200, headers)
        return writer.body(b"hello", False)
    except LocalProtocolError as exc:
        return ("refused", str(exc))


@pytest.mark.parametrize("headers", HEADER_LISTS)
def test_the_same_bytes_with_and_without_the_memo(headers: list) -> None:
    seen: SeenResponseFields = {}
    for others in HEADER_LISTS:  # the memo filled by every other list first
        response(others, seen)
    for _ in range(2):
        assert response(headers, seen) == response(headers, None)


def test_only_checked_plain_fields_are_kept() -> None:
    seen: SeenResponseFields = {}
    for headers in HEADER_LISTS:
        response(headers, seen)
    assert seen == {
        (b"content-type", b"text/plain"): b"content-type: text/plain\r\n",
        (b"Content-Type", b"text/html"): b"Content-Type: text/html\r\n",
        (b"X-Custom", b"a b"): b"X-Custom: a b\r\n",
        (b"set-cookie", b"a=1"): b"set-cookie: a=1\r\n",
        (b"cache-control", b"no-store"): b"cache-control: no-store\r\n",
    }


def test_a_field_of_a_refused_start_is_not_kept() -> None:
    seen: SeenResponseFields = {}
    assert response([(b"x-ok", b"1"), (b"x-bad", b"a\rb")], seen)[0] == "refused"
    assert seen == {}


def test_the_memo_is_bounded() -> None:
    seen: SeenResponseFields = {}
    for n in range(3 * SEEN_RESPONSE_FIELDS):
        response([(b"x-n", b"%d" % n)], seen)
        assert len(seen) <= SEEN_RESPONSE_FIELDS
    assert seen
