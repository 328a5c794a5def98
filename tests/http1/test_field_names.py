"""The known-name fast path gives exactly what the field grammar gives, for every line."""

import itertools

import pytest

from pounce_sync.http1 import ParserLimits, ProtocolError, _abnf, parse_head
from pounce_sync.http1.field_names import KNOWN_NAMES
from pounce_sync.http1.parser import _field, _parse_fields


def test_every_known_spelling_is_a_token() -> None:
    for spelling in KNOWN_NAMES:
        assert spelling and spelling.translate(None, _abnf.TCHARS) == b"", spelling
    assert {b"User-Agent", b"user-agent", b"sec-ch-ua", b"Sec-Fetch-Mode"} <= KNOWN_NAMES


NAMES = [b"Host", b"host", b"HOST", b"X-Custom", b"x-custom", b"Sec-CH-UA", b"Accept", b"a"]
SEPARATORS = [b": ", b":", b":  ", b":\t", b": \t", b" :", b" : ", b""]
VALUES = [b"v", b"a: b", b"", b" ", b"x ", b"x\t", b"x y", b"\xff", b":", b": x"]


@pytest.mark.parametrize("name", NAMES)
def test_known_name_path_agrees_with_the_grammar(name: bytes) -> None:
    """Every name x separator x value: the same fields, or both refuse with the same status."""
    for sep, value in itertools.product(SEPARATORS, VALUES):
        line = name + sep + value
        assert _outcome(_split_fields, line) == _outcome(_grammar, line), line


def _split_fields(lines: list[bytes]) -> tuple:
    return tuple(map(_field, lines))


def _grammar(lines: list[bytes]) -> tuple:
    return _parse_fields(lines, ParserLimits())


def _outcome(parse, line: bytes) -> object:
    try:
        return parse([line])
    except ProtocolError as exc:
        return ("error", exc.status, exc.detail)


@pytest.mark.parametrize(
    "field",
    [b"Host: a\x00b", b"Host: a\x7fb", b"Host: a\rb", b"Ho\x01st: x", b"Host: a\nb"],
)
def test_a_control_byte_anywhere_takes_the_checked_path(field: bytes) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_head(b"GET / HTTP/1.1\r\n" + field, ParserLimits())
    assert caught.value.status == 400


def test_a_browser_head_parses_the_same_on_both_paths() -> None:
    lines = [
        b"Host: shop.example.com",
        b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0.0.0",
        b"Accept: text/html,*/*;q=0.8",
        b'sec-ch-ua: "Chromium";v="131"',
        b"Cookie: session=abc; theme=dark",
        b"X-Unknown-Thing: 1",
        b"Connection: keep-alive",
    ]
    assert _split_fields(lines) == _grammar(lines)
    request = parse_head(b"\r\n".join([b"GET /p?q=1 HTTP/1.1", *lines]), ParserLimits())
    assert request.headers == _grammar(lines)
    assert request.keep_alive and not request.forwarded
