"""Sans-I/O HTTP/1.1 request parser: bytes in (`feed`), events out (`next_event`).

Strict by default (RFC 9112): anything that could let two parsers disagree on
where a message ends is a `ProtocolError` carrying the status to answer with.
The parser never touches a socket, so the sync workers and the AsyncPool share it.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from . import _abnf
from .errors import HTTP2Preface, ProtocolError
from .events import (
    NEED_DATA,
    PAUSED,
    BodyFraming,
    ConnectionClosed,
    Data,
    EndOfMessage,
    Event,
    Request,
)
from .field_names import KNOWN_NAMES

_MAX_CHUNK_LINE = 4096
_END = EndOfMessage()
# The fields the parser reads itself (framing, connection handling); every other
# field is passed through untouched.
_FRAMING_FIELDS = frozenset(
    (b"host", b"content-length", b"transfer-encoding", b"connection", b"expect", b"upgrade")
)
# RFC 9110 6.5.1: fields that steer framing, routing or the connection have no place
# in a trailer; a peer that merged them into the head would see a different message.
_FORBIDDEN_TRAILERS = _FRAMING_FIELDS | frozenset((b"te", b"trailer", b"keep-alive"))
_EVENT_STREAM = b"text/event-stream"
_CRLF = b"\r\n"
# Globals: an Enum member looked up through its class costs a metaclass call per request.
_NO_BODY, _LENGTH, _CHUNKED = BodyFraming.NONE, BodyFraming.LENGTH, BodyFraming.CHUNKED
_KEEP_ALIVE: frozenset[bytes] = frozenset((b"keep-alive",))
_NO_TOKENS: frozenset[bytes] = frozenset()


@dataclass(frozen=True, slots=True)
class ParserLimits:
    max_request_line: int = 8190
    max_header_bytes: int = 65536  # the header block after the request line
    max_headers: int = 100


Field = tuple[bytes, bytes]
Headers = tuple[Field, ...]
SEEN_LINES = 512  # entries; a full memo is cleared, so a client of unique lines costs little
SEEN_LINE_MAX = 512  # bytes: longer lines (big cookies) are parsed every time
KEEP_PER_HEAD = 2  # new lines kept per head (SeenFields.keep)
# The proxy fields asgi/proxy.py reads: a head with one is marked `forwarded`.
_PROXY_FIELDS = frozenset(
    (b"forwarded", b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host")
)
# The fields whose values the parser reads: a new line with one of these names makes it
# look at every field of the head (_looked_at); seen lines hold none but framing ones.
_LOOKED_AT = _FRAMING_FIELDS | _PROXY_FIELDS | frozenset((b"accept",))
_FIELD_BYTES = _abnf.FIELD_LINE_BYTES


class SeenFields:
    """Field lines a worker thread has parsed before: line -> (name, value).

    Clients send the same lines request after request (User-Agent, Accept, Host,
    sec-ch-ua ...; HPACK exists for the same reason), so most lines of a head are
    found here and need no work. Only valid lines are kept, and never proxy or
    event-stream fields (their flags are set by the lines that carry them, parsed
    every time). The framing fields the parser reads are kept apart as well, so that
    `parse_head` finds them among the seen lines without a loop of its own.

    One per thread, never shared: on 3.13t a dict read by threads other than the one
    that made it costs far more (docs/benchmarks.md, "A free-threading trap").
    """

    __slots__ = ("fields", "framing")

    def __init__(self) -> None:
        self.fields: dict[bytes, Field] = {}
        self.framing: dict[bytes, Field] = {}  # the framing lines of `fields`

    def keep(
        self, lines: list[bytes], fields: list[Field], new: Iterable[int], bad_host: bool
    ) -> None:
        """Remember up to KEEP_PER_HEAD new lines of a head that parsed, but no proxy or
        event-stream field (their flags come from the lines themselves), no invalid Host.

        A few per head: a client's lines are all kept after a few requests, and a client
        whose every line is new pays for a few dict stores, not for a dozen.
        """
        kept = self.fields
        room = KEEP_PER_HEAD
        for position in new:
            line = lines[position]
            field = fields[position]
            name = field[0]
            if name in _LOOKED_AT:
                if name in _FRAMING_FIELDS:
                    if bad_host and name == b"host":
                        continue
                elif name != b"accept" or field[1].find(_EVENT_STREAM) >= 0:
                    continue
            if len(line) > SEEN_LINE_MAX:
                continue
            if len(kept) >= SEEN_LINES:
                kept.clear()
                self.framing.clear()
            kept[line] = field
            if name in _FRAMING_FIELDS:
                self.framing[line] = field
            room -= 1
            if not room:
                return


def _parse_fields(lines: list[bytes], limits: ParserLimits) -> Headers:
    if len(lines) > limits.max_headers:
        raise ProtocolError(431, "too many header fields")
    return tuple([_checked_field(line) for line in lines])


def _checked_field(line: bytes) -> tuple[bytes, bytes]:
    """One field line matched against the grammar: (lower-cased name, value without OWS)."""
    m = _abnf.FIELD_LINE.fullmatch(line)
    if m is None:
        raise ProtocolError(400, _field_error(line))
    return m[1].lower(), m[2]


def _field_error(line: bytes) -> str:
    if line[:1] in (b" ", b"\t"):
        return "obsolete line folding is not allowed"
    if b"\r" in line or b"\n" in line:
        return "bare CR or LF in the request head"
    if b":" in line and line.split(b":", 1)[0].rstrip(b" \t") != line.split(b":", 1)[0]:
        return "whitespace before the colon in a header field"
    return "invalid header field"


def _content_length(values: list[bytes]) -> int:
    if len(values) != 1:
        raise ProtocolError(400, "duplicate Content-Length")
    if _abnf.DIGITS.fullmatch(values[0]) is None:
        raise ProtocolError(400, "invalid Content-Length")
    return int(values[0])


def _transfer_codings(values: list[bytes], http_version: bytes) -> None:
    """Accept only a single, final `chunked`; RFC 9112 6.1 and 6.3."""
    if http_version == b"1.0":
        raise ProtocolError(400, "Transfer-Encoding in an HTTP/1.0 request")
    # RFC 9110 5.6.1: empty list elements are ignored.
    codings = [c for v in values for c in (c.strip().lower() for c in v.split(b",")) if c]
    if any(c != b"chunked" for c in codings):
        raise ProtocolError(501, "unsupported Transfer-Encoding")
    if codings != [b"chunked"]:
        raise ProtocolError(400, "invalid Transfer-Encoding")


def _check_target(method: bytes, target: bytes) -> None:
    first = target[:1]
    if first == b"/":
        return
    if target == b"*":
        if method != b"OPTIONS":
            raise ProtocolError(400, "asterisk-form is only valid for OPTIONS")
        return
    if target.lower().startswith((b"http://", b"https://")):
        return
    raise ProtocolError(400, "invalid request target")


def _parse_request_line(line: bytes, limits: ParserLimits) -> tuple[bytes, bytes, bytes]:
    if len(line) > limits.max_request_line:
        raise ProtocolError(414, "request line too long")
    m = _abnf.REQUEST_LINE.fullmatch(line)
    if m is None:
        if b"\r" in line or b"\n" in line:
            raise ProtocolError(400, "bare CR or LF in the request head")
        raise ProtocolError(400, "invalid request line")
    method, target, major, minor = m.groups()
    if line == b"PRI * HTTP/2.0":
        raise HTTP2Preface
    if major != b"1":
        raise ProtocolError(505, "HTTP version not supported")
    _check_target(method, target)
    # RFC 9110 2.5: a higher minor version is served as the highest one we implement.
    return method, target, b"1.0" if minor == b"0" else b"1.1"


def parse_head(head: bytes, limits: ParserLimits, seen: SeenFields | None = None) -> Request:
    """Turn a complete request head (without its final CRLF CRLF) into a Request.

    `seen`: the lines this thread parsed before (SeenFields); a line found there is
    taken as it is, every other line is checked and parsed here.
    """
    lines = head.split(b"\r\n")
    request_line = lines.pop(0)
    method, target, version = _parse_request_line(request_line, limits)
    if len(head) - len(request_line) > limits.max_header_bytes:
        raise ProtocolError(431, "request header block too large")
    count = len(lines)
    if count > limits.max_headers:
        raise ProtocolError(431, "too many header fields")
    if seen is None or not seen.fields:
        fields: list[Field | None] = [None] * count
        misses = count
    else:  # one C-level pass over the lines
        fields = list(map(seen.fields.get, lines))
        misses = fields.count(None)
    # Few new lines are checked one by one; more, with one C scan of the whole head:
    # deleting every byte a field line may hold must leave exactly the CRLFs between
    # the lines (no CTL, no bare CR or LF).
    all_valid = misses > 2 and head.translate(None, _abnf.FIELD_LINE_BYTES) == _CRLF * count
    looked_at = bad_host = False
    new = range(count) if misses == count else _missing(fields, misses)
    for position in new:
        line = lines[position]
        # A name in KNOWN_NAMES is a token by construction: with `: ` and only bytes a
        # field line may hold, the line needs no regex; any other is matched to the grammar.
        name, sep, value = line.partition(b": ")
        if sep and name in KNOWN_NAMES and (all_valid or not line.translate(None, _FIELD_BYTES)):
            field = fields[position] = (name.lower(), value.strip(b" \t"))  # no copy without OWS
        else:
            field = fields[position] = _checked_field(line)
        if field[0] in _LOOKED_AT:
            looked_at = True
            if field[0] == b"host" and _abnf.HOST.fullmatch(field[1]) is None:
                bad_host = True  # refused by _build_request, after the count of Hosts
    headers: Headers = tuple(fields)  # type: ignore[arg-type]  # every None was filled
    if looked_at:  # a new line the parser reads: look at every field, in order
        framing, event_stream, forwarded = _looked_at(headers)
    else:  # the seen lines hold no proxy or event-stream field; their framing ones:
        framing = list(filter(None, map(seen.framing.get, lines))) if seen else []
        event_stream = forwarded = False
    if seen is not None and misses:
        seen.keep(lines, fields, new, bad_host)  # type: ignore[arg-type]
    return _build_request(
        method, target, version, headers, framing, event_stream, forwarded, bad_host
    )


def _missing(fields: list[Field | None], misses: int) -> list[int]:
    """The positions of the `misses` Nones in `fields`."""
    positions = []
    position = -1
    for _ in range(misses):
        position = fields.index(None, position + 1)
        positions.append(position)
    return positions


def _looked_at(headers: Headers) -> tuple[list[Field], bool, bool]:
    """The framing fields in order, whether Accept names an event stream, and whether
    a proxy field is there."""
    framing = []
    event_stream = forwarded = False
    for field in headers:
        name = field[0]
        if name in _LOOKED_AT:
            if name in _FRAMING_FIELDS:
                framing.append(field)
            elif name == b"accept":
                event_stream = event_stream or field[1].find(_EVENT_STREAM) >= 0
            else:
                forwarded = True
    return framing, event_stream, forwarded


def _field(line: bytes) -> Field:
    """One field line on its own: (lower-cased name, value without OWS), or ProtocolError."""
    name, sep, value = line.partition(b": ")
    if sep and name in KNOWN_NAMES and not line.translate(None, _FIELD_BYTES):
        return name.lower(), value.strip(b" \t")
    return _checked_field(line)


def _build_request(
    method: bytes,
    target: bytes,
    version: bytes,
    headers: Headers,
    framing_fields: list[Field],
    event_stream: bool = False,
    forwarded: bool = False,
    bad_host: bool = False,
) -> Request:
    """The framing decisions; `bad_host`: a Host value did not match the grammar."""
    cl_values: list[bytes] | None = None  # made only when the field is there
    te_values: list[bytes] | None = None
    hosts = 0
    connection = b""
    expect = b""
    upgrade = None
    for name, value in framing_fields:
        if name == b"host":
            hosts += 1
        elif name == b"content-length":
            cl_values = (cl_values or []) + (value.split(b",") if b"," in value else [value])
        elif name == b"transfer-encoding":
            te_values = (te_values or []) + [value]
        elif name == b"connection":
            connection += b"," + value.lower()
        elif name == b"expect":
            expect = value.lower()
        elif name == b"upgrade":
            upgrade = value.lower()
    if hosts > 1 or (hosts == 0 and version == b"1.1"):
        raise ProtocolError(400, "missing or duplicate Host header")
    if bad_host:
        raise ProtocolError(400, "invalid Host header")
    framing, length = _NO_BODY, None
    if te_values:
        if cl_values:
            raise ProtocolError(400, "both Content-Length and Transfer-Encoding")
        _transfer_codings(te_values, version)
        framing = _CHUNKED
    elif cl_values:
        length = _content_length(cl_values)
        framing = _LENGTH if length else _NO_BODY
    if connection == b",keep-alive":  # what browsers send
        tokens = _KEEP_ALIVE
    else:
        tokens = frozenset(t.strip() for t in connection.split(b",")) if connection else _NO_TOKENS
    if version == b"1.1":
        keep_alive = b"close" not in tokens
    else:
        keep_alive = b"keep-alive" in tokens and b"close" not in tokens
    # Positional, in field order: Request(...) with keywords cost 1.3 us against 0.4 us.
    return _new_request(
        Request,
        (
            method,
            target,
            version,
            headers,
            keep_alive,
            version == b"1.1" and expect == b"100-continue",  # expect_continue
            framing,
            length,
            upgrade,
            event_stream,
            forwarded,
        ),
    )


_new_request = tuple.__new__


class RequestParser:
    """One connection's request stream: head, body, then pause until the response is done."""

    def __init__(self, limits: ParserLimits | None = None) -> None:
        self.limits = limits or ParserLimits()
        # Immutable bytes: in the common case a read holds exactly one request and
        # `feed` just keeps a reference; consuming is slicing, never a memmove.
        self._buf = b""
        self._eof = False
        self._state: Callable[[], Event] = self._read_head
        self._remaining = 0  # body bytes left in the current length-framed message or chunk
        self._scanned = 0  # head bytes already checked for a bare LF
        # The serving thread's SeenFields, set by whoever serves the connection; None:
        # every line is parsed.
        self.seen: SeenFields | None = None

    # -- input -----------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        """Add bytes from the peer; b"" means the peer closed its side."""
        if data:
            self._buf = self._buf + data if self._buf else data
        else:
            self._eof = True

    @property
    def buffered(self) -> bytes:
        """Bytes received but not yet turned into events (used by handoffs)."""
        return self._buf

    @property
    def has_buffered_data(self) -> bool:
        return bool(self._buf)

    def start_next_cycle(self) -> None:
        """Called once the response to the current request is complete."""
        if self._state != self._paused:
            raise RuntimeError("start_next_cycle() before the request body was read")
        self._state = self._read_head

    # -- output ----------------------------------------------------------------
    def next_event(self) -> Event:
        return self._state()

    def _paused(self) -> Event:
        return PAUSED

    def _read_head(self) -> Event:
        buf = self._buf
        if not buf:
            return ConnectionClosed() if self._eof else NEED_DATA
        if buf[:2] == b"\r\n":
            # RFC 9112 2.2: ignore empty lines received before the request line.
            start = 2
            while buf[start : start + 2] == b"\r\n":
                start += 2
            buf = self._buf = buf[start:]
            self._scanned = max(0, self._scanned - start)
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return self._incomplete_head()
        head = buf[:end]
        self._buf = buf[end + 4 :]
        self._scanned = 0
        request = parse_head(head, self.limits, self.seen)
        self._start_body(request)
        return request

    def _incomplete_head(self) -> Event:
        buf = self._buf
        limits = self.limits
        line_end = buf.find(b"\r\n")
        # A CR last may be the first half of the line's CRLF: it does not count yet.
        if line_end < 0 and len(buf) - (buf[-1:] == b"\r") > limits.max_request_line:
            raise ProtocolError(414, "request line too long")
        if line_end > limits.max_request_line:
            raise ProtocolError(414, "request line too long")
        # Resume the bare-LF scan where it stopped: a byte-at-a-time client must not make
        # every read rescan the whole head.
        if _abnf.BARE_LF.search(buf, max(0, self._scanned - 1)) is not None:
            raise ProtocolError(400, "bare LF in the request head")
        self._scanned = len(buf)
        # + 3: the first three bytes of the CRLF CRLF that would end a head of full size.
        if len(buf) > limits.max_request_line + limits.max_header_bytes + 3:
            raise ProtocolError(431, "request header block too large")
        if self._eof:
            if buf:
                raise ProtocolError(400, "connection closed inside the request head")
            return ConnectionClosed()
        return NEED_DATA

    def _start_body(self, request: Request) -> None:
        if request.framing is _LENGTH:
            self._remaining = request.content_length or 0
            self._state = self._read_length_body
        elif request.framing is _CHUNKED:
            self._state = self._read_chunk_size
        else:
            self._state = self._end_of_message

    def _end_of_message(self) -> Event:
        self._state = self._paused
        return _END

    def _read_length_body(self) -> Event:
        if self._remaining == 0:
            return self._end_of_message()
        buf = self._buf
        if not buf:
            if self._eof:
                raise ProtocolError(400, "connection closed inside the request body")
            return NEED_DATA
        n = min(self._remaining, len(buf))
        data, self._buf = (buf, b"") if n == len(buf) else (buf[:n], buf[n:])
        self._remaining -= n
        return Data(data)

    def _read_chunk_size(self) -> Event:
        buf = self._buf
        end = buf.find(b"\r\n", 0, _MAX_CHUNK_LINE)
        if end < 0:
            return self._need_line("chunk size line")
        m = _abnf.CHUNK_SIZE_LINE.fullmatch(buf, 0, end)
        if m is None:
            raise ProtocolError(400, "invalid chunk size line")
        size = int(m[1], 16)
        self._buf = buf[end + 2 :]
        if size == 0:
            self._state = self._read_trailers
            return self._read_trailers()
        self._remaining = size
        self._state = self._read_chunk_data
        return self._read_chunk_data()

    def _need_line(self, what: str) -> Event:
        buf = self._buf
        if len(buf) >= _MAX_CHUNK_LINE or _abnf.BARE_LF.search(buf) is not None:
            raise ProtocolError(400, f"invalid {what}")
        if self._eof:
            raise ProtocolError(400, "connection closed inside the request body")
        return NEED_DATA

    def _read_chunk_data(self) -> Event:
        buf = self._buf
        if not buf:
            if self._eof:
                raise ProtocolError(400, "connection closed inside the request body")
            return NEED_DATA
        n = min(self._remaining, len(buf))
        data, self._buf = (buf, b"") if n == len(buf) else (buf[:n], buf[n:])
        self._remaining -= n
        if self._remaining == 0:
            self._state = self._read_chunk_end
        return Data(data)

    def _read_chunk_end(self) -> Event:
        buf = self._buf
        if len(buf) < 2:
            if self._eof:
                raise ProtocolError(400, "connection closed inside the request body")
            if buf and buf != b"\r"[: len(buf)]:
                raise ProtocolError(400, "chunk data not followed by CRLF")
            return NEED_DATA
        if buf[:2] != b"\r\n":
            raise ProtocolError(400, "chunk data not followed by CRLF")
        self._buf = buf[2:]
        self._state = self._read_chunk_size
        return self._read_chunk_size()

    def _read_trailers(self) -> Event:
        buf = self._buf
        if buf[:2] == b"\r\n":
            self._buf = buf[2:]
            self._state = self._paused
            return _END
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > self.limits.max_header_bytes:
                raise ProtocolError(431, "trailer section too large")
            if _abnf.BARE_LF.search(buf) is not None:
                raise ProtocolError(400, "bare LF in the trailer section")
            if self._eof:
                raise ProtocolError(400, "connection closed inside the request body")
            return NEED_DATA
        if end > self.limits.max_header_bytes:
            raise ProtocolError(431, "trailer section too large")
        lines = buf[:end].split(b"\r\n")
        self._buf = buf[end + 4 :]
        trailers = _parse_fields(lines, self.limits)
        if any(name in _FORBIDDEN_TRAILERS for name, _ in trailers):
            raise ProtocolError(400, "a trailer field that is not allowed in trailers")
        self._state = self._paused
        return EndOfMessage(trailers)
