"""A thread's seen field lines (parser.SeenFields) never change what a head parses to.

The memo is an optimisation only: the same head gives the same Request, or the same
refusal, whether its lines were seen before or not, in any order of heads.
"""

import random

import pytest

from pounce_sync.http1 import ParserLimits, ProtocolError, Request, parse_head
from pounce_sync.http1.parser import SEEN_LINE_MAX, SEEN_LINES, RequestParser, SeenFields
from tests.fuzz_mutations import SEEDS, mutate, seed_from_env

LIMITS = ParserLimits()

BROWSER = (
    b"GET /item/1?v=1 HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nConnection: keep-alive\r\n"
    b'sec-ch-ua: "Chromium";v="143"\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\n'
    b"Accept: text/html,*/*;q=0.8\r\nAccept-Encoding: gzip, br\r\nCookie: a=1"
)


def outcome(head: bytes, seen: SeenFields | None) -> object:
    try:
        return parse_head(head, LIMITS, seen)
    except ProtocolError as exc:
        return ("refused", exc.status, exc.detail)


def test_mutated_heads_parse_the_same_with_and_without_seen_lines() -> None:
    """One memo across 20,000 heads, valid and broken, in a seeded random order."""
    rng = random.Random(seed_from_env())
    seen: SeenFields = {}
    heads = [seed.split(b"\r\n\r\n", 1)[0] for seed in SEEDS] + [BROWSER]
    for _ in range(20_000):
        head = mutate(rng, rng.choice(heads)).split(b"\r\n\r\n", 1)[0]
        assert outcome(head, seen) == outcome(head, None), head
        assert len(seen) <= SEEN_LINES


def test_a_seen_line_is_taken_as_it_was_parsed() -> None:
    seen: SeenFields = {}
    first = parse_head(BROWSER, LIMITS, seen)
    assert b"User-Agent: Mozilla/5.0 (X11; Linux x86_64)" in seen
    second = parse_head(BROWSER.replace(b"v=1", b"v=2"), LIMITS, seen)
    assert second.headers == first.headers and second.target == b"/item/1?v=2"


@pytest.mark.parametrize(
    "line",
    [
        b"Host: 127.0.0.1:8000",
        b"Connection: keep-alive",
        b"Content-Length: 0",
        b"Transfer-Encoding: chunked",
        b"Expect: 100-continue",
        b"Upgrade: websocket",
        b"X-Forwarded-For: 1.2.3.4",
        b"Forwarded: for=1.2.3.4",
        b"Accept: text/event-stream",
    ],
)
def test_lines_that_decide_something_are_never_kept(line: bytes) -> None:
    """Framing, proxy and event-stream fields are looked at on every request."""
    seen: SeenFields = {}
    host = b"" if line.startswith(b"Host") else b"Host: a\r\n"
    parse_head(b"GET / HTTP/1.1\r\n" + host + line, LIMITS, seen)
    assert line not in seen


def test_duplicate_host_is_refused_however_often_seen() -> None:
    seen: SeenFields = {}
    parse_head(b"GET / HTTP/1.1\r\nHost: a\r\nAccept: */*", LIMITS, seen)
    with pytest.raises(ProtocolError) as caught:
        parse_head(b"GET / HTTP/1.1\r\nHost: a\r\nAccept: */*\r\nHost: b", LIMITS, seen)
    assert caught.value.status == 400


def test_flags_come_from_the_fields_whether_seen_or_not() -> None:
    seen: SeenFields = {}
    for _ in range(2):
        request = parse_head(
            b"GET / HTTP/1.1\r\nHost: a\r\nAccept: text/event-stream\r\nX-Forwarded-Proto: https",
            LIMITS,
            seen,
        )
        assert request.event_stream and request.forwarded


def test_refused_and_long_lines_are_not_kept() -> None:
    seen: SeenFields = {}
    long_line = b"X-Long: " + b"a" * SEEN_LINE_MAX
    parse_head(b"GET / HTTP/1.1\r\nHost: a\r\n" + long_line, LIMITS, seen)
    with pytest.raises(ProtocolError):
        parse_head(b"GET / HTTP/1.1\r\nHost: a\r\nBad Name: x", LIMITS, seen)
    assert seen == {}


def test_the_memo_is_bounded() -> None:
    seen: SeenFields = {}
    for n in range(3 * SEEN_LINES):
        parse_head(b"GET / HTTP/1.1\r\nHost: a\r\nX-N: %d" % n, LIMITS, seen)
        assert len(seen) <= SEEN_LINES
    assert seen  # cleared when full, then filled again


def test_the_request_parser_uses_the_memo_it_is_given() -> None:
    parser = RequestParser(LIMITS)
    parser.seen = seen = {}
    parser.feed(BROWSER + b"\r\n\r\n")
    event = parser.next_event()
    assert type(event) is Request
    assert b"Accept-Encoding: gzip, br" in seen
