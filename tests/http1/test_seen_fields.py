"""A thread's seen field lines (parser.SeenFields) never change what a head parses to.

The memo is an optimisation only: the same head gives the same Request, or the same
refusal, whether its lines were seen before or not, in any order of heads.
"""

import random

import pytest

from pounce_sync.http1 import EndOfMessage, ParserLimits, ProtocolError, Request, parse_head
from pounce_sync.http1.parser import (
    KEEP_PER_HEAD,
    SEEN_LINE_MAX,
    SEEN_LINES,
    RequestParser,
    SeenFields,
)
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
    seen = SeenFields()
    heads = [seed.split(b"\r\n\r\n", 1)[0] for seed in SEEDS] + [BROWSER]
    for _ in range(20_000):
        head = mutate(rng, rng.choice(heads)).split(b"\r\n\r\n", 1)[0]
        assert outcome(head, seen) == outcome(head, None), head
        assert len(seen.fields) <= SEEN_LINES


def test_a_client_s_lines_are_all_kept_after_a_few_requests() -> None:
    seen = SeenFields()
    first = parse_head(BROWSER, LIMITS, seen)
    assert len(seen.fields) == KEEP_PER_HEAD  # a few new lines per head, in order
    assert list(seen.fields) == BROWSER.split(b"\r\n")[1 : 1 + KEEP_PER_HEAD]
    for _ in range(7):
        parse_head(BROWSER, LIMITS, seen)
    assert set(seen.fields) == set(BROWSER.split(b"\r\n")[1:])
    second = parse_head(BROWSER.replace(b"v=1", b"v=2"), LIMITS, seen)
    assert second.headers == first.headers and second.target == b"/item/1?v=2"


def test_a_head_of_new_lines_keeps_only_a_few() -> None:
    seen = SeenFields()
    lines = [b"X-%d: %d" % (n, n) for n in range(20)]
    parse_head(b"\r\n".join([b"GET / HTTP/1.1", b"Host: a", *lines]), LIMITS, seen)
    assert len(seen.fields) == KEEP_PER_HEAD


@pytest.mark.parametrize(
    "line",
    [
        b"Host: 127.0.0.1:8000",
        b"Connection: keep-alive",
        b"Content-Length: 0",
        b"Transfer-Encoding: chunked",
        b"Expect: 100-continue",
        b"Upgrade: websocket",
    ],
)
def test_framing_lines_are_kept_apart_and_still_decide(line: bytes) -> None:
    seen = SeenFields()
    host = b"" if line.startswith(b"Host") else b"Host: a\r\n"
    head = b"GET / HTTP/1.1\r\n" + host + line
    first = parse_head(head, LIMITS, seen)
    assert seen.framing[line] == seen.fields[line]
    assert parse_head(head, LIMITS, seen) == first == parse_head(head, LIMITS)


@pytest.mark.parametrize(
    "line",
    [b"X-Forwarded-For: 1.2.3.4", b"Forwarded: for=1.2.3.4", b"Accept: text/event-stream"],
)
def test_proxy_and_event_stream_lines_are_never_kept(line: bytes) -> None:
    """Their flags are set by the line itself, so it is parsed on every request."""
    seen = SeenFields()
    parse_head(b"GET / HTTP/1.1\r\nHost: a\r\n" + line, LIMITS, seen)
    assert line not in seen.fields


def test_framing_fields_keep_their_order_when_some_were_seen() -> None:
    """The last Upgrade wins, whether it was seen before or not."""
    seen = SeenFields()
    parse_head(b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: a", LIMITS, seen)
    head = b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: b\r\nUpgrade: a"
    assert parse_head(head, LIMITS, seen).upgrade == b"a" == parse_head(head, LIMITS).upgrade
    head = b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: a\r\nUpgrade: b"
    assert parse_head(head, LIMITS, seen).upgrade == b"b" == parse_head(head, LIMITS).upgrade


def test_an_invalid_host_is_refused_and_not_kept() -> None:
    seen = SeenFields()
    for _ in range(2):
        with pytest.raises(ProtocolError) as caught:
            parse_head(b"GET / HTTP/1.1\r\nHost: a b", LIMITS, seen)
        assert caught.value.detail == "invalid Host header"
    assert seen.fields == {} == seen.framing


def test_duplicate_host_is_refused_however_often_seen() -> None:
    seen = SeenFields()
    parse_head(b"GET / HTTP/1.1\r\nHost: a\r\nAccept: */*", LIMITS, seen)
    with pytest.raises(ProtocolError) as caught:
        parse_head(b"GET / HTTP/1.1\r\nHost: a\r\nAccept: */*\r\nHost: b", LIMITS, seen)
    assert caught.value.status == 400


def test_flags_come_from_the_fields_whether_seen_or_not() -> None:
    seen = SeenFields()
    for _ in range(2):
        request = parse_head(
            b"GET / HTTP/1.1\r\nHost: a\r\nAccept: text/event-stream\r\nX-Forwarded-Proto: https",
            LIMITS,
            seen,
        )
        assert request.event_stream and request.forwarded


def test_refused_and_long_lines_are_not_kept() -> None:
    seen = SeenFields()
    long_line = b"X-Long: " + b"a" * SEEN_LINE_MAX
    parse_head(b"GET / HTTP/1.1\r\nHost: a\r\n" + long_line, LIMITS, seen)
    with pytest.raises(ProtocolError):
        parse_head(b"GET / HTTP/1.1\r\nHost: a\r\nBad Name: x", LIMITS, seen)
    assert set(seen.fields) == {b"Host: a"}


def test_the_memo_is_bounded() -> None:
    seen = SeenFields()
    for n in range(3 * SEEN_LINES):
        parse_head(b"GET / HTTP/1.1\r\nHost: a\r\nX-N: %d" % n, LIMITS, seen)
        assert len(seen.fields) <= SEEN_LINES
    assert seen.fields  # cleared when full, then filled again


def test_the_request_parser_uses_the_memo_it_is_given() -> None:
    parser = RequestParser(LIMITS)
    parser.seen = seen = SeenFields()
    for _ in range(8):
        parser.feed(BROWSER + b"\r\n\r\n")
        assert type(parser.next_event()) is Request
        assert parser.next_event() == EndOfMessage()
        parser.start_next_cycle()
    assert b"Accept-Encoding: gzip, br" in seen.fields
