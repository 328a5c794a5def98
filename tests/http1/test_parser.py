"""The sans-I/O request parser: exact events in, exact errors out, checked against h11."""

import h11
import pytest

from pounce_sync.http1 import (
    NEED_DATA,
    PAUSED,
    BodyFraming,
    ConnectionClosed,
    Data,
    EndOfMessage,
    Event,
    ParserLimits,
    ProtocolError,
    Request,
    RequestParser,
    parse_head,
)
from tests.malformed_cases import CASES, Case

GET = b"GET /path?q=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t\r\n\r\n"
POST = b"POST /form HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
CHUNKED = (
    b"POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5;name=value\r\nhello\r\n"
    b'6 ; quoted = "a \\"b\\"" ;flag\r\n world\r\n'
    b"A\r\n0123456789\r\n"
    b"0;last\r\nX-Checksum: abc\r\nX-Other:  1 \r\n\r\n"
)


def request(**overrides) -> Request:
    """The Request a plain `GET / HTTP/1.1` with `Host: a` parses to, with overrides."""
    fields = {
        "method": b"GET",
        "target": b"/",
        "http_version": b"1.1",
        "headers": ((b"host", b"a"),),
        "keep_alive": True,
        "expect_continue": False,
        "framing": BodyFraming.NONE,
        "content_length": None,
        "upgrade": None,
    }
    return Request(**{**fields, **overrides})


def drain(parser: RequestParser) -> list[Event]:
    """Events until the parser needs data; PAUSED starts the next cycle, as a server would."""
    events: list[Event] = []
    while True:
        event = parser.next_event()
        if event is NEED_DATA:
            return events
        events.append(event)
        if event is PAUSED:
            parser.start_next_cycle()
        elif type(event) is ConnectionClosed:
            return events


def events_of(raw: bytes, eof: bool = False) -> list[Event]:
    parser = RequestParser()
    parser.feed(raw)
    if eof:
        parser.feed(b"")
    return drain(parser)


def events_bytewise(raw: bytes) -> list[Event]:
    parser = RequestParser()
    events: list[Event] = []
    for i in range(len(raw)):
        parser.feed(raw[i : i + 1])
        events += drain(parser)
    return events


def merge_data(events: list[Event]) -> list[Event]:
    """Join adjacent Data events: how a body is split into Data is not part of the contract."""
    merged: list[Event] = []
    for event in events:
        if type(event) is Data and merged and type(merged[-1]) is Data:
            merged[-1] = Data(merged[-1].data + event.data)
        else:
            merged.append(event)
    return merged


# -- exact events ---------------------------------------------------------------


def test_get() -> None:
    assert events_of(GET) == [
        request(
            target=b"/path?q=1",
            headers=((b"host", b"example.com"), (b"user-agent", b"t")),
        ),
        EndOfMessage(),
        PAUSED,
    ]


def test_field_names_lowered_values_raw_and_ows_stripped() -> None:
    raw = b"GET / HTTP/1.1\r\nHOST: a\r\nX-Mixed:\t VaLuE \xe9\t \r\nX-Empty:\r\n\r\n"
    (req, *_) = events_of(raw)
    assert req.headers == ((b"host", b"a"), (b"x-mixed", b"VaLuE \xe9"), (b"x-empty", b""))


def test_post_with_content_length() -> None:
    assert events_of(POST) == [
        request(
            method=b"POST",
            target=b"/form",
            headers=((b"host", b"a"), (b"content-length", b"5")),
            framing=BodyFraming.LENGTH,
            content_length=5,
        ),
        Data(b"hello"),
        EndOfMessage(),
        PAUSED,
    ]


@pytest.mark.parametrize("value", [b"0", b"000"])
def test_content_length_zero_has_no_body(value: bytes) -> None:
    raw = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %s\r\n\r\n" % value
    req, *rest = events_of(raw)
    assert (req.framing, req.content_length) == (BodyFraming.NONE, 0)
    assert rest == [EndOfMessage(), PAUSED]


def test_content_length_leading_zeros_and_ows() -> None:
    raw = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \t007 \r\n\r\nseven!!"
    req, *rest = events_of(raw)
    assert (req.framing, req.content_length) == (BodyFraming.LENGTH, 7)
    assert rest == [Data(b"seven!!"), EndOfMessage(), PAUSED]


def test_chunked_with_extensions_and_trailers() -> None:
    assert events_of(CHUNKED) == [
        request(
            method=b"POST",
            target=b"/upload",
            headers=((b"host", b"a"), (b"transfer-encoding", b"chunked")),
            framing=BodyFraming.CHUNKED,
        ),
        Data(b"hello"),
        Data(b" world"),
        Data(b"0123456789"),
        EndOfMessage(trailers=((b"x-checksum", b"abc"), (b"x-other", b"1"))),
        PAUSED,
    ]


def test_chunked_coding_name_is_case_insensitive() -> None:
    raw = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n0\r\n\r\n"
    req, *rest = events_of(raw)
    assert req.framing is BodyFraming.CHUNKED
    assert rest == [EndOfMessage(), PAUSED]


def test_pipelined_requests_in_one_feed() -> None:
    parser = RequestParser()
    parser.feed(GET + POST + CHUNKED)
    first = [parser.next_event(), parser.next_event()]
    assert first == [events_of(GET)[0], EndOfMessage()]
    # Paused until the response is done: the next request stays in the buffer.
    assert parser.next_event() is PAUSED
    assert parser.next_event() is PAUSED
    assert parser.buffered == POST + CHUNKED
    parser.start_next_cycle()
    assert drain(parser) == events_of(POST) + events_of(CHUNKED)
    assert not parser.has_buffered_data


def test_byte_by_byte_gives_the_same_events() -> None:
    stream = b"\r\n" + GET + POST + b"\r\n" + CHUNKED + GET
    whole = events_of(stream)
    assert [type(e) for e in whole].count(Request) == 4
    assert merge_data(events_bytewise(stream)) == merge_data(whole)


@pytest.mark.parametrize(
    ("version", "connection", "keep_alive"),
    [
        (b"1.1", None, True),
        (b"1.1", b"close", False),
        (b"1.1", b"Upgrade, CLOSE", False),
        (b"1.1", b"keep-alive", True),
        (b"1.0", None, False),
        (b"1.0", b"keep-alive", True),
        (b"1.0", b"Keep-Alive", True),
        (b"1.0", b"foo , keep-alive", True),
        (b"1.0", b"keep-alive, close", False),
        (b"1.0", b"close", False),
    ],
)
def test_keep_alive_rules(version: bytes, connection: bytes | None, keep_alive: bool) -> None:
    fields = b"Host: a\r\n" + (b"Connection: %s\r\n" % connection if connection else b"")
    (req, *_) = events_of(b"GET / HTTP/%s\r\n%s\r\n" % (version, fields))
    assert req.http_version == version
    assert req.keep_alive is keep_alive


def test_connection_tokens_from_several_field_lines() -> None:
    raw = b"GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n"
    assert events_of(raw)[0].keep_alive is False


def test_http10_needs_no_host() -> None:
    (req, *_) = events_of(b"GET / HTTP/1.0\r\n\r\n")
    assert req == request(http_version=b"1.0", headers=(), keep_alive=False)


def test_empty_host_is_valid() -> None:
    # RFC 9112 3.2: a client with no authority sends Host with an empty value.
    (req, *_) = events_of(b"GET / HTTP/1.1\r\nHost:\r\n\r\n")
    assert req.headers == ((b"host", b""),)


@pytest.mark.parametrize(
    ("version", "expect_continue"), [(b"1.1", True), (b"1.0", False)], ids=["1.1", "1.0"]
)
def test_expect_continue_only_on_http11(version: bytes, expect_continue: bool) -> None:
    raw = b"POST / HTTP/%s\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n"
    (req, *_) = events_of(raw % version)
    assert req.expect_continue is expect_continue


def test_upgrade_is_lowered() -> None:
    raw = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: WebSocket\r\n\r\n"
    assert events_of(raw)[0].upgrade == b"websocket"


@pytest.mark.parametrize(
    ("method", "target"),
    [
        (b"GET", b"http://example.com/a?b=c"),
        (b"GET", b"HTTPS://EXAMPLE.COM"),
        (b"OPTIONS", b"*"),
        (b"get", b"/lowercase-method-is-a-token"),
        (b"M-SEARCH", b"/%7Euser;p=1?q=a/b#frag"),
    ],
)
def test_target_forms(method: bytes, target: bytes) -> None:
    raw = b"%s %s HTTP/1.1\r\nHost: a\r\n\r\n" % (method, target)
    assert events_of(raw)[0] == request(method=method, target=target)


def test_leading_empty_lines_are_ignored() -> None:
    assert events_of(b"\r\n\r\n\r\n" + GET) == events_of(GET)


def test_higher_minor_version_is_served_as_http11() -> None:
    # RFC 9110 2.5: a recipient SHOULD process a higher minor version of a major
    # version it implements as the highest minor it conforms to; 505 is about the
    # major version (RFC 9110 15.6.6).
    (req, *_) = events_of(b"GET / HTTP/1.2\r\nHost: a\r\n\r\n")
    assert req.http_version == b"1.1"
    assert req.keep_alive is True


# -- end of input ----------------------------------------------------------------


def test_eof_before_any_request_is_connection_closed() -> None:
    assert events_of(b"", eof=True) == [ConnectionClosed()]


def test_eof_after_empty_lines_is_connection_closed() -> None:
    assert events_of(b"\r\n\r\n", eof=True) == [ConnectionClosed()]


def test_eof_between_requests_is_connection_closed() -> None:
    assert events_of(GET + POST, eof=True) == [
        *events_of(GET),
        *events_of(POST),
        ConnectionClosed(),
    ]


def test_eof_is_seen_only_after_the_next_cycle_starts() -> None:
    parser = RequestParser()
    parser.feed(GET)
    parser.feed(b"")
    assert [parser.next_event(), parser.next_event()] == [events_of(GET)[0], EndOfMessage()]
    assert parser.next_event() is PAUSED
    parser.start_next_cycle()
    assert parser.next_event() == ConnectionClosed()


@pytest.mark.parametrize(
    "raw",
    [
        b"G",
        b"GET / HTTP/1.1",
        b"GET / HTTP/1.1\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\n\r",
        b"\r\nGET",
    ],
)
def test_eof_inside_a_head_is_a_protocol_error(raw: bytes) -> None:
    with pytest.raises(ProtocolError) as info:
        events_of(raw, eof=True)
    assert info.value.status == 400


def _upto(marker: bytes, extra: int = 0) -> bytes:
    """CHUNKED cut just before `marker`, plus `extra` bytes of it."""
    end = CHUNKED.index(marker) + extra
    return CHUNKED[:end]


_ALL_CHUNKS = [Data(b"hello"), Data(b" world"), Data(b"0123456789")]


@pytest.mark.parametrize(
    ("raw", "before"),
    [
        pytest.param(POST[:-5], [], id="length-body-empty"),
        pytest.param(POST[:-2], [Data(b"hel")], id="length-body-partial"),
        pytest.param(_upto(b"5;"), [], id="chunk-size-line-empty"),
        pytest.param(_upto(b"5;", 7), [], id="chunk-size-line-partial"),
        pytest.param(_upto(b"5;", 4), [], id="chunk-size-line-before-lf"),
        pytest.param(_upto(b"hello"), [], id="chunk-data-empty"),
        pytest.param(_upto(b"hello", 3), [Data(b"hel")], id="chunk-data-partial"),
        pytest.param(_upto(b"\r\n6 ;"), [Data(b"hello")], id="chunk-crlf-missing"),
        pytest.param(_upto(b"\r\n6 ;", 1), [Data(b"hello")], id="chunk-crlf-partial"),
        pytest.param(_upto(b"X-Checksum"), _ALL_CHUNKS, id="trailers-empty"),
        pytest.param(CHUNKED[:-2], _ALL_CHUNKS, id="trailers-partial"),
        pytest.param(CHUNKED[:-1], _ALL_CHUNKS, id="trailers-before-last-lf"),
    ],
)
def test_eof_inside_a_body_is_a_protocol_error(raw: bytes, before: list[Event]) -> None:
    parser = RequestParser()
    parser.feed(raw)
    parser.feed(b"")
    assert type(parser.next_event()) is Request
    seen = []
    with pytest.raises(ProtocolError) as info:
        while True:
            seen.append(parser.next_event())
    assert info.value.status == 400
    assert seen == before


# -- start_next_cycle --------------------------------------------------------------


def test_start_next_cycle_before_the_body_is_read_raises() -> None:
    parser = RequestParser()
    parser.feed(POST)
    assert type(parser.next_event()) is Request
    with pytest.raises(RuntimeError):
        parser.start_next_cycle()
    assert parser.next_event() == Data(b"hello")
    assert parser.next_event() == EndOfMessage()
    parser.start_next_cycle()
    assert parser.next_event() is NEED_DATA


def test_start_next_cycle_before_any_request_raises() -> None:
    with pytest.raises(RuntimeError):
        RequestParser().start_next_cycle()


def test_an_error_in_a_pipelined_request_comes_after_the_good_one() -> None:
    parser = RequestParser()
    parser.feed(GET + b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
    assert [parser.next_event(), parser.next_event(), parser.next_event()] == [
        *events_of(GET)[:2],
        PAUSED,
    ]
    parser.start_next_cycle()
    with pytest.raises(ProtocolError) as info:
        parser.next_event()
    assert info.value.status == 400


# -- parse_head and limits ------------------------------------------------------------


def test_parse_head() -> None:
    head = b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3"
    assert parse_head(head, ParserLimits()) == request(
        method=b"POST",
        target=b"/x",
        headers=((b"host", b"a"), (b"content-length", b"3")),
        framing=BodyFraming.LENGTH,
        content_length=3,
    )


def test_request_line_limit_is_inclusive() -> None:
    limits = ParserLimits(max_request_line=20)
    ok = b"GET /aaaaaa HTTP/1.1"  # 20 bytes
    assert parse_head(ok + b"\r\nHost: a", limits).target == b"/aaaaaa"
    too_long = b"GET /aaaaaaa HTTP/1.1"
    for head in (too_long + b"\r\nHost: a", too_long):
        with pytest.raises(ProtocolError) as info:
            parse_head(head, limits)
        assert info.value.status == 414


def test_field_count_limit() -> None:
    limits = ParserLimits(max_headers=3)
    assert len(parse_head(b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2", limits).headers) == 3
    with pytest.raises(ProtocolError) as info:
        parse_head(b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3", limits)
    assert info.value.status == 431


def test_header_block_limit_applies_to_a_complete_head() -> None:
    limits = ParserLimits(max_header_bytes=1024)
    parser = RequestParser(limits)
    parser.feed(b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"b" * 900 + b"\r\n\r\n")
    assert type(parser.next_event()) is Request
    parser = RequestParser(limits)
    parser.feed(b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"b" * 1100 + b"\r\n\r\n")
    with pytest.raises(ProtocolError) as info:
        parser.next_event()
    assert info.value.status == 431


def test_header_block_limit_when_the_head_arrives_in_pieces() -> None:
    # The parser may reject as soon as it sees the block is too large, or when the
    # head completes; it must not accept it.
    parser = RequestParser(ParserLimits(max_header_bytes=1024))
    parser.feed(b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: ")
    assert parser.next_event() is NEED_DATA
    with pytest.raises(ProtocolError) as info:
        parser.feed(b"b" * 1100)
        assert parser.next_event() is NEED_DATA
        parser.feed(b"\r\n\r\n")
        parser.next_event()
    assert info.value.status == 431


def test_header_block_limit_bounds_an_unterminated_head() -> None:
    limits = ParserLimits(max_request_line=100, max_header_bytes=1024)
    parser = RequestParser(limits)
    parser.feed(b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"b" * 1200)
    with pytest.raises(ProtocolError) as info:
        parser.next_event()
    assert info.value.status == 431


# -- the malformed table --------------------------------------------------------------


def first_error(feeds: list[bytes]) -> ProtocolError | None:
    parser = RequestParser()
    try:
        for data in feeds:
            parser.feed(data)
            drain(parser)
    except ProtocolError as exc:
        return exc
    return None


@pytest.mark.parametrize(
    ("raw", "status"), [(c.raw, c.status) for c in CASES], ids=[c.id for c in CASES]
)
def test_malformed(raw: bytes, status: int) -> None:
    error = first_error([raw])
    assert error is not None, "accepted"
    assert error.status == status, error.detail
    if len(raw) < 16384:  # byte-by-byte rescans the buffer: quadratic, keep it small
        error = first_error([raw[i : i + 1] for i in range(len(raw))])
        assert error is not None and error.status == status, "fed byte by byte"


def test_malformed_table_ids_are_unique() -> None:
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids))
    assert all(isinstance(case, Case) for case in CASES)


# -- agreement with h11 ---------------------------------------------------------------

_VALID_CHUNKED = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
VALID = [
    pytest.param(GET, id="get"),
    pytest.param(POST, id="post-content-length"),
    # h11 takes no whitespace before a chunk extension's ";" (RFC 9112 allows BWS there).
    pytest.param(CHUNKED.replace(b"6 ; quoted = ", b"6;quoted="), id="chunked-ext-trailers"),
    pytest.param(
        _VALID_CHUNKED
        + b"".join(b"%x\r\n%s\r\n" % (n, b"z" * n) for n in (1, 15, 16, 255, 4096))
        + b"0\r\n\r\n",
        id="chunked-sizes",
    ),
    pytest.param(b"GET / HTTP/1.0\r\n\r\n", id="http10"),
    pytest.param(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", id="http10-keep-alive"),
    pytest.param(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", id="asterisk-form"),
    pytest.param(
        b"GET http://example.com:8080/p?q HTTP/1.1\r\nHost: example.com:8080\r\n\r\n",
        id="absolute-form",
    ),
    pytest.param(
        b"DELETE /item/1 HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", id="content-length-0"
    ),
    pytest.param(
        b"PUT /f HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
        b"Content-Length: 2\r\n\r\n{}",
        id="put-json",
    ),
    pytest.param(
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Obs: caf\xe9\r\nX-Tabs:\tv\t\r\n"
        b"Cookie: a=1; b=2\r\nX-Empty:\r\n\r\n",
        id="field-values",
    ),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nAccept: a\r\nAccept: b\r\n\r\n", id="repeated"),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
        id="expect-continue",
    ),
]


def parse_with_h11(raw: bytes) -> tuple:
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(raw)
    req = conn.next_event()
    body, event = b"", conn.next_event()
    while type(event) is h11.Data:
        body += event.data
        event = conn.next_event()
    assert type(event) is h11.EndOfMessage
    headers = [(bytes(n), bytes(v)) for n, v in req.headers]
    trailers = [(bytes(n), bytes(v)) for n, v in event.headers]
    return req.method, req.target, req.http_version, headers, body, trailers


def parse_with_ours(raw: bytes) -> tuple:
    req, *rest, end, paused = events_of(raw)
    assert paused is PAUSED
    body = b"".join(e.data for e in rest)
    return req.method, req.target, req.http_version, list(req.headers), body, list(end.trailers)


@pytest.mark.parametrize("raw", VALID)
def test_agrees_with_h11(raw: bytes) -> None:
    assert parse_with_ours(raw) == parse_with_h11(raw)


def test_empty_list_elements_in_transfer_encoding_are_ignored() -> None:
    request = parse_head(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: , chunked,", ParserLimits()
    )
    assert request.framing is BodyFraming.CHUNKED


def test_bare_lf_scan_resumes_where_it_stopped() -> None:
    parser = RequestParser()
    for byte in b"GET / HTTP/1.1\r\nHost: a\r\nX: 1":
        parser.feed(bytes([byte]))
        assert parser.next_event() is NEED_DATA
    parser.feed(b"\n")
    with pytest.raises(ProtocolError) as info:
        parser.next_event()
    assert info.value.status == 400


def test_http2_preface_is_its_own_error() -> None:
    """The preface is refused like any HTTP/2 request line (505), but recognisably."""
    from pounce_sync.http1 import HTTP2Preface, RequestParser

    parser = RequestParser()
    parser.feed(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
    with pytest.raises(HTTP2Preface) as raised:
        parser.next_event()
    assert raised.value.status == 505
    assert parser.buffered == b"SM\r\n\r\n"
    other = RequestParser()
    other.feed(b"GET / HTTP/2.0\r\nHost: x\r\n\r\n")
    with pytest.raises(ProtocolError) as raised_other:
        other.next_event()
    assert type(raised_other.value) is ProtocolError and raised_other.value.status == 505


# -- repeated heads on one connection ----------------------------------------------


def test_each_head_is_parsed_on_its_own() -> None:
    """No memo of the last head (it paid only for byte-identical heads, see docs/benchmarks.md)."""
    again = GET.replace(b"User-Agent: t", b"User-Agent: u")
    parser = RequestParser()
    parser.feed(GET + GET + again + b"GET /x HTTP/1.1\r\n\r\n")
    first, second, third = (drain_one(parser) for _ in range(3))
    assert second == first
    assert third.headers[1] == (b"user-agent", b"u")
    with pytest.raises(ProtocolError):  # an invalid head after valid ones is still refused
        parser.next_event()


def drain_one(parser: RequestParser) -> Request:
    """The next request, with its (empty) body read and the cycle restarted."""
    event = parser.next_event()
    assert type(event) is Request
    assert parser.next_event() == EndOfMessage()
    parser.start_next_cycle()
    return event


@pytest.mark.parametrize(
    ("field", "forwarded"),
    [
        (b"X-FORWARDED-FOR: 1.2.3.4", True),
        (b"x-Forwarded-proto: https", True),
        (b"Forwarded: for=1.2.3.4", True),
        (b"Accept: */*", False),
    ],
)
def test_forwarded_flag_finds_proxy_fields_in_any_case(field: bytes, forwarded: bool) -> None:
    head = b"GET / HTTP/1.1\r\nHost: a\r\n" + field
    assert parse_head(head, ParserLimits()).forwarded is forwarded
