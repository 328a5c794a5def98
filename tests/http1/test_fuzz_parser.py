"""Fuzzing the sans-I/O request parser: mutations, random split points, and h11 as a peer.

Bounded by count, never by time, and seeded: tests/fuzz_mutations.DEFAULT_SEED unless
POUNCE_FUZZ_SEED says otherwise; POUNCE_FUZZ_COUNT scales the mutation run. A failure
names the seed and the input, so it can be replayed.

Invariants, for every input:

* only ProtocolError (the parser's own error) escapes, never another exception;
* no hang: the events a parser returns are bounded by the bytes it was fed, and a
  Data event is never empty;
* the parse does not depend on how the bytes arrive: fed whole, in random pieces, or
  byte by byte, the events (body Data joined) and the verdict are the same. A head
  that arrives in pieces and holds two defects (say a bare LF and a size limit) is
  refused for whichever shows first, so here the statuses of two refusals may
  differ; the one-defect rows of tests/malformed_cases.py and test_smuggling.py pin
  each status for every split. Either way the server answers one error and closes.

On a corpus of valid-looking requests the parser also agrees with h11 on accept or
reject, except for the shapes in DELIBERATE, where we are stricter (or, for BWS before
a chunk extension, RFC 9112 is and h11 is not); tests/http1/test_smuggling.py shows
each of those one by one.
"""

import itertools
import os
import random
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from types import ModuleType

import h11
import pytest
from hypothesis import given, seed, settings
from hypothesis import strategies as st

from pounce_sync.http1 import (
    NEED_DATA,
    PAUSED,
    ConnectionClosed,
    Data,
    Event,
    ParserLimits,
    ProtocolError,
    RequestParser,
)
from pounce_sync.http1._abnf import TCHARS
from tests.fuzz_mutations import SEEDS, mutate, seed_from_env, split_points
from tests.server_process import ServerProcess, running_server

FUZZ_SEED = seed_from_env()
MUTATED_INPUTS = int(os.environ.get("POUNCE_FUZZ_COUNT", 200_000))
AGREEMENT_INPUTS = 20_000
# The defaults, and limits small enough that mutations reach every limit's check.
LIMITS = (ParserLimits(), ParserLimits(max_request_line=40, max_header_bytes=120, max_headers=4))

Outcome = tuple[tuple[Event, ...], int | str]  # events, then a status or how it ended


def parse(feeds: list[bytes], limits: ParserLimits, eof: bool) -> Outcome:
    """Feed the pieces in order (then EOF), draining events after each, as a server does."""
    parser = RequestParser(limits)
    events: list[Event] = []
    budget = 8 + 4 * sum(map(len, feeds))  # events are bounded by bytes: no spinning
    pieces = [piece for piece in feeds if piece]  # b"" is how EOF is fed
    if eof:
        pieces.append(b"")
    try:
        for piece in pieces:
            parser.feed(piece)
            while (event := parser.next_event()) is not NEED_DATA:
                budget -= 1
                assert budget > 0, "the parser keeps returning events without new bytes"
                if type(event) is Data:
                    assert event.data, "an empty Data event"
                    if events and type(events[-1]) is Data:
                        event = Data(events[-1].data + event.data)
                        events.pop()
                events.append(event)
                if event is PAUSED:
                    parser.start_next_cycle()
                elif type(event) is ConnectionClosed:
                    return tuple(events), "closed"
    except ProtocolError as exc:
        return tuple(events), exc.status
    return tuple(events), "need-data"


def same_verdict(whole: Outcome, split: Outcome) -> bool:
    """Same events, and the same ending, where two refusals count as the same."""
    refused = isinstance(whole[1], int) and isinstance(split[1], int)
    return whole[0] == split[0] and (whole[1] == split[1] or refused)


def _replay(data: bytes) -> str:
    return f"seed {FUZZ_SEED}, input {data!r}"


def test_mutated_requests_keep_every_invariant() -> None:
    rng = random.Random(FUZZ_SEED)
    for _ in range(MUTATED_INPUTS):
        data = mutate(rng, rng.choice(SEEDS))
        limits = rng.choice(LIMITS)
        eof = rng.random() < 0.3
        try:
            whole = parse([data], limits, eof)
            pieces = split_points(rng, data, rng.randint(2, 6))
            split = parse(pieces, limits, eof)
            assert same_verdict(whole, split), f"{split} at {list(map(len, pieces))}"
            if len(data) < 200 and rng.random() < 0.02:
                bytewise = parse([data[i : i + 1] for i in range(len(data))], limits, eof)
                assert same_verdict(whole, bytewise), f"{bytewise} byte by byte"
        except Exception as exc:
            raise AssertionError(f"{exc!r} for {_replay(data)}") from exc


# -- agreement with h11 on valid-looking requests -------------------------------------

# Shapes where we and h11 part on purpose: tag -> why (and which of us accepts).
DELIBERATE = {
    "cl-repeated-same": "h11 folds identical Content-Length values; we refuse (smuggling shape)",
    "obs-fold": "h11 unfolds obs-fold; RFC 9112 5.2 lets a server refuse it, and we do",
    "bare-lf": "h11 takes a bare LF as a line end; RFC 9112 2.2 lets a server refuse it",
    "chunk-size-17-digits": "we read at most 16 hex digits (64 bits); h11 takes leading zeros",
    "bws-before-chunk-ext": "RFC 9112 7.1.1 allows BWS before ';', h11 refuses it; we accept",
    "ctl-in-value": "h11 takes any byte but NUL and whitespace in a field value; RFC 9110 5.5 "
    "allows no CTL, and we refuse them",
    "te-in-http10": "RFC 9112 6.1: Transfer-Encoding in HTTP/1.0 is faulty framing; h11 "
    "reads the chunks",
    "trailer-forbidden": "RFC 9110 6.5.1: framing and routing fields in a trailer; h11 takes them",
}

_NAMES = (b"Accept", b"User-Agent", b"X-Custom", b"cookie", b"X-Forwarded-For", b"If-None-Match")
_VALUES = (b"*/*", b"a=1; b=2", b"caf\xe9", b"x  y", b"", b'W/"e"', b"1.2.3.4, 5.6.7.8")
_BYTES_TO_INSERT = (b"\x00", b"\x01", b"\x7f", b"\xe9", b" ", b"\t", b"(", b":", b"@")
_TRAILER_NAMES = (b"X-Sum", b"Content-Length", b"Host", b"Server-Timing")
_FORBIDDEN_IN_TRAILER = {b"content-length", b"host"}


class Corpus:
    """Valid-looking requests, each with the tags of what was done to it."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.tags: set[str] = set()

    def request(self) -> bytes:
        rng, self.tags = self.rng, set()
        version = rng.choice((b"1.1", b"1.1", b"1.0"))
        fields = [b"Host: example.com"] if version == b"1.1" or rng.random() < 0.5 else []
        for _ in range(rng.randint(0, 4)):
            fields.append(self._field())
        body, framing = self._body(version)
        at = rng.randrange(len(fields) + 1)
        fields[at:at] = framing
        method = rng.choice((b"GET", b"POST", b"PUT", b"DELETE", b"PATCH"))
        target = rng.choice((b"/", b"/a/b?c=d", b"/%20x", b"http://example.com/p"))
        head = b"%s %s HTTP/%s\r\n" % (method, target, version) + b"".join(
            f + b"\r\n" for f in fields
        )
        return self._line_ends(head + b"\r\n") + body

    def _field(self) -> bytes:
        rng = self.rng
        name = bytearray(rng.choice(_NAMES))
        value = bytearray(rng.choice(_VALUES))
        if rng.random() < 0.2:
            at, byte = rng.randrange(len(name)), rng.choice(_BYTES_TO_INSERT)
            name[at:at] = byte
            if at == 0 and byte in (b" ", b"\t"):
                self.tags.add("obs-fold")  # a line that starts with whitespace folds
        if rng.random() < 0.2:
            at, byte = rng.randrange(len(value) + 1), rng.choice(_BYTES_TO_INSERT)
            value[at:at] = byte
            if byte in (b"\x01", b"\x7f"):
                self.tags.add("ctl-in-value")
        ows = rng.choice((b"", b" ", b"\t", b"  "))
        field = bytes(name) + b":" + ows + bytes(value) + rng.choice((b"", b" ", b"\t"))
        if rng.random() < 0.05:
            field += b"\r\n folded"
            self.tags.add("obs-fold")
        return field

    def _body(self, version: bytes) -> tuple[bytes, list[bytes]]:
        rng = self.rng
        kind = rng.choice(("none", "length", "chunked"))
        if kind == "none":
            return b"", []
        payload = rng.randbytes(rng.randint(0, 40))
        if kind == "length":
            value = b"0" * rng.choice((0, 0, 2)) + b"%d" % len(payload)
            if rng.random() < 0.1:
                value = rng.choice((b"%s, %s", b"%s,%s")) % (value, value)
                self.tags.add("cl-repeated-same")
            elif rng.random() < 0.1:
                value = rng.choice((b"+", b"-", b"0x", b" ")) + value
            return payload, [b"Content-Length: " + value]
        if version == b"1.0":
            self.tags.add("te-in-http10")
        te = rng.choice((b"chunked", b"Chunked", b"chunked", b"gzip, chunked", b"identity"))
        return self._chunks(payload), [b"Transfer-Encoding: " + te]

    def _chunks(self, payload: bytes) -> bytes:
        rng, out, i = self.rng, [], 0
        while i < len(payload):
            n = rng.randint(1, len(payload) - i)
            size = b"%x" % n if rng.random() < 0.5 else b"%X" % n
            zeros = rng.choice((0, 0, 1, 16 - len(size), 17 - len(size)))
            if zeros + len(size) > 16:
                self.tags.add("chunk-size-17-digits")
            out.append(b"0" * zeros + size + self._extension() + b"\r\n")
            out.append(payload[i : i + n] + b"\r\n")
            i += n
        out.append(b"0" + self._extension() + b"\r\n")
        if rng.random() < 0.3:
            name = rng.choice(_TRAILER_NAMES)
            if name.lower() in _FORBIDDEN_IN_TRAILER:
                self.tags.add("trailer-forbidden")
            out.append(name + b": 1\r\n")
        return b"".join(out) + b"\r\n"

    def _extension(self) -> bytes:
        rng = self.rng
        if rng.random() < 0.7:
            return b""
        ext = rng.choice((b";a", b";a=b", b';a="q z"', b";a=b;c"))
        if rng.random() < 0.1:
            self.tags.add("bws-before-chunk-ext")
            return b" " + ext
        return ext

    def _line_ends(self, head: bytes) -> bytes:
        """Now and then one CRLF of the head becomes a bare LF."""
        if self.rng.random() < 0.05:
            self.tags.add("bare-lf")
            ends = [i for i in range(len(head)) if head.startswith(b"\r\n", i)]
            i = self.rng.choice(ends)
            return head[:i] + head[i + 1 :]
        return head


def ours_accepts(raw: bytes) -> bool:
    parser = RequestParser()
    parser.feed(raw)
    try:
        while (event := parser.next_event()) is not PAUSED:
            assert event is not NEED_DATA, "a complete corpus request left the parser waiting"
    except ProtocolError:
        return False
    return True


def h11_accepts(raw: bytes) -> bool:
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(raw)
    try:
        while type(event := conn.next_event()) is not h11.EndOfMessage:
            assert event is not h11.NEED_DATA, "a complete corpus request left h11 waiting"
    except h11.RemoteProtocolError:
        return False
    return True


def test_agrees_with_h11_on_valid_looking_requests() -> None:
    corpus = Corpus(random.Random(FUZZ_SEED))
    seen: dict[str, int] = dict.fromkeys(DELIBERATE, 0)
    accepted = 0
    for _ in range(AGREEMENT_INPUTS):
        raw = corpus.request()
        ours, theirs = ours_accepts(raw), h11_accepts(raw)
        accepted += ours
        deliberate = corpus.tags & DELIBERATE.keys()
        for tag in deliberate:
            seen[tag] += ours != theirs
        if not deliberate:
            assert ours == theirs, f"ours {ours}, h11 {theirs}: {_replay(raw)}"
    # Both verdicts must be common, and every listed difference must really occur.
    assert AGREEMENT_INPUTS * 0.2 < accepted < AGREEMENT_INPUTS * 0.8
    assert all(seen.values()), seen


# -- structured shapes (hypothesis) --------------------------------------------------

_SETTINGS = settings(max_examples=200, deadline=None, database=None)
_FIELD_VALUE_BYTES = bytes([0x09, *range(0x20, 0x7F), *range(0x80, 0x100)])
_H11_REFUSES = b"\x00\x0b\x0c\r"  # a bare LF is a line end to h11: DELIBERATE["bare-lf"]
_CTLS = bytes([*range(0x00, 0x09), *range(0x0A, 0x20), 0x7F])
_framing_names = {"host", "content-length", "transfer-encoding", "connection", "expect", "upgrade"}
names = st.text(alphabet=TCHARS.decode(), min_size=1, max_size=24).filter(
    lambda n: n.lower() not in _framing_names
)
values = st.binary(max_size=40).map(
    lambda b: bytes(_FIELD_VALUE_BYTES[x % len(_FIELD_VALUE_BYTES)] for x in b).strip(b" \t")
)


def _get(fields: list[tuple[str, bytes]]) -> bytes:
    lines = b"".join(b"%s: %s\r\n" % (n.encode(), v) for n, v in fields)
    return b"GET / HTTP/1.1\r\nHost: a\r\n" + lines + b"\r\n"


def _h11_head(raw: bytes) -> list[tuple[bytes, bytes]]:
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(raw)
    return [(bytes(n), bytes(v)) for n, v in conn.next_event().headers]


@seed(FUZZ_SEED)
@_SETTINGS
@given(st.lists(st.tuples(names, values), max_size=20), st.integers(min_value=1))
def test_valid_fields_parse_as_h11_reads_them(fields: list[tuple[str, bytes]], cut: int) -> None:
    raw = _get(fields)
    events, outcome = parse([raw], ParserLimits(), eof=False)
    request = events[0]
    assert outcome == "need-data" and events[1:] == (_END_AND_PAUSED)
    expected = [(b"host", b"a"), *((n.lower().encode(), v) for n, v in fields)]
    assert list(request.headers) == expected == _h11_head(raw)
    cut %= len(raw)
    assert parse([raw[:cut], raw[cut:]], ParserLimits(), eof=False) == (events, outcome)


@seed(FUZZ_SEED)
@_SETTINGS
@given(names, values, st.integers(min_value=0), st.sampled_from(_CTLS))
def test_a_control_byte_in_a_field_is_400(name: str, value: bytes, at: int, ctl: int) -> None:
    at %= len(value) + 1
    bad = value[:at] + bytes([ctl]) + value[at:]
    raw = _get([(name, bad)])
    assert parse([raw], ParserLimits(), eof=False)[1] == 400
    if bytes([ctl]) in _H11_REFUSES:  # DELIBERATE["ctl-in-value"]: h11 takes the others
        assert not h11_accepts(raw)


@seed(FUZZ_SEED)
@_SETTINGS
@given(
    st.lists(st.binary(min_size=1, max_size=300), max_size=8),
    st.booleans(),
    st.integers(min_value=0, max_value=3),
    st.lists(st.integers(min_value=1), max_size=4),
)
def test_chunked_bodies_of_any_sizes(
    chunks: list[bytes], upper: bool, zeros: int, cuts: list[int]
) -> None:
    form = b"%X" if upper else b"%x"
    body = b"".join(b"0" * zeros + form % len(c) + b"\r\n" + c + b"\r\n" for c in chunks)
    raw = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + body + b"0\r\n\r\n"
    events, outcome = parse([raw], ParserLimits(), eof=False)
    data = b"".join(chunks)
    assert events[1:] == ((Data(data),) if data else ()) + _END_AND_PAUSED
    assert outcome == "need-data" and h11_accepts(raw)
    points = sorted({c % len(raw) for c in cuts} | {0, len(raw)})
    pieces = [raw[a:b] for a, b in itertools.pairwise(points)]
    assert parse(pieces, ParserLimits(), eof=False) == (events, outcome)


_HEX = "0123456789abcdefABCDEF"


@seed(FUZZ_SEED)
@_SETTINGS
@given(
    st.text(alphabet=_HEX + " \t;=x-+_gG\r\n\x00", max_size=20).filter(lambda s: "\r\n" not in s)
)
def test_chunk_size_lines_follow_the_grammar(size: str) -> None:
    raw = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    raw += size.encode("latin-1") + b"\r\n"
    valid_size = 1 <= len(size) <= 16 and all(c in _HEX for c in size)
    _, outcome = parse([raw], ParserLimits(), eof=False)
    if valid_size:
        assert outcome == "need-data"  # waiting for the chunk (or the trailers)
    else:
        assert outcome in (400, "need-data")  # an extension may be valid: ";a" waits
        if ";" not in size:
            assert outcome == 400


_END_AND_PAUSED: tuple[Event, ...] = parse([SEEDS[0]], ParserLimits(), eof=False)[0][1:]


# -- defects the fuzzer found, pinned ------------------------------------------------

_SMALL = ParserLimits(max_request_line=20, max_header_bytes=40, max_headers=4)


def test_a_cr_after_a_request_line_of_full_length_is_not_yet_too_long() -> None:
    line = b"GET /" + b"a" * 6 + b" HTTP/1.1"  # 20 bytes: at the limit, which is allowed
    raw = line + b"\r\nHost: a\r\n\r\n"
    whole = parse([raw], _SMALL, eof=False)
    assert whole[1] == "need-data" and whole[0][0].target == b"/aaaaaa"
    assert parse([raw[:21], raw[21:]], _SMALL, eof=False) == whole  # the CR came alone


def test_a_head_of_full_size_arriving_without_its_last_lf_is_not_yet_too_large() -> None:
    fields = b"\r\nX: " + b"v" * 35  # the header block after the request line: 40 bytes
    raw = b"GET /aaaaaa HTTP/1.0" + fields + b"\r\n\r\n"  # both at their limits
    whole = parse([raw], _SMALL, eof=False)
    assert whole[1] == "need-data" and whole[0][0].headers == ((b"x", b"v" * 35),)
    assert parse([raw[:-1], raw[-1:]], _SMALL, eof=False) == whole
    over = b"GET /aaaaaa HTTP/1.0" + fields + b"v\r\n\r\n"  # one byte more is over
    assert parse([over], _SMALL, eof=False)[1] == 431


# -- on the wire: loadtests/fuzz_wire.py with a tiny count ---------------------------

_LOADTESTS = Path(__file__).resolve().parents[2] / "loadtests"


@pytest.fixture(scope="module")
def fuzz_wire() -> ModuleType:
    if str(_LOADTESTS) not in sys.path:
        sys.path.append(str(_LOADTESTS))  # appended: the harness's names shadow nothing
    import fuzz_wire

    return fuzz_wire


@pytest.fixture(scope="module")
def wire_server() -> Iterator[ServerProcess]:
    args = ("--workers", "2", "--no-access-log", "--app-dir", str(_LOADTESTS))
    with running_server(*args, app="fuzz_wire:app") as srv:
        yield srv


def test_wire_fuzz_answers_match_the_parser(
    fuzz_wire: ModuleType, wire_server: ServerProcess
) -> None:
    figures = fuzz_wire.fuzz(wire_server.port, FUZZ_SEED, connections=2, requests=40)
    assert figures["mismatches"] == 0, figures["first_mismatches"]
    assert figures["inputs"] == 80 and figures["normal_request_after"] == 200
    assert sum(figures["statuses"].values()) >= 80 - figures["skipped_handoffs"]
    assert wire_server.proc.poll() is None and "Traceback" not in wire_server.stderr


def test_wire_fuzz_sees_a_desync(
    fuzz_wire: ModuleType, wire_server: ServerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check can fail: a prediction that misses the pipelined marker is caught."""
    real = fuzz_wire.expect

    def one_answer_short(data: bytes):
        expected = real(data)
        return replace(expected, answers=expected.answers[:-1], error=None)

    monkeypatch.setattr(fuzz_wire, "expect", one_answer_short)
    figures = fuzz_wire.fuzz(wire_server.port, FUZZ_SEED, connections=1, requests=20)
    assert figures["mismatches"] > 0
