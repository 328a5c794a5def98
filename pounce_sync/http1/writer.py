"""Sans-I/O response serialisation: the app's status, headers and body in, wire bytes out.

`ResponseWriter` decides the framing once, when the first body message arrives:
Content-Length when the app gave one or the body is complete in one message,
chunked when an HTTP/1.1 response streams, close-delimited on HTTP/1.0.
"""

from collections.abc import Iterable
from http import HTTPStatus

from . import _abnf
from .errors import LocalProtocolError, error_body
from .events import Request
from .field_names import KNOWN_NAMES

_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}
_NO_BODY_STATUSES = frozenset({204, 304})

Header = tuple[bytes, bytes]
# Response fields a worker thread has checked before: (name, value) -> its encoded line.
# Apps send the same fields response after response (content-type, cache-control ...),
# so most need no check; framing fields are never kept. One per thread, like the
# parser's SeenFields, and bounded the same way.
SeenResponseFields = dict[Header, bytes]
SEEN_RESPONSE_FIELDS = 256
SEEN_LINE_MAX = 512  # bytes


_STATUS_LINES = {code: b"HTTP/1.1 %d %s\r\n" % (code, reason) for code, reason in _REASONS.items()}
_FRAMING_FIELDS = frozenset((b"content-length", b"transfer-encoding", b"connection"))


def status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    return line if line is not None else b"HTTP/1.1 %d \r\n" % status


def encode_fields(headers: Iterable[Header]) -> bytes:
    """Header lines as wire bytes, for fields the server adds to every response."""
    return b"".join(b"%s: %s\r\n" % (name, value) for name, value in validate_headers(headers))


def valid_name(name: bytes) -> bool:
    """A token: deleting every token character must leave nothing (one C call)."""
    return bool(name) and not name.translate(None, _abnf.TCHARS)


def valid_field(name: bytes, value: bytes) -> bool:
    """A field an app may send: a token for a name, a value without CR, LF or NUL.

    Anything else could split or smuggle a response, on HTTP/1.1 or through HPACK.
    """
    return valid_name(name) and b"\r" not in value and b"\n" not in value and b"\0" not in value


def validate_headers(headers: Iterable[Header]) -> list[Header]:
    """The fields as bytes; LocalProtocolError at the first that is not `valid_field`."""
    checked = []
    for name, value in headers:
        name, value = as_bytes_field(name, value)
        if not valid_field(name, value):
            raise LocalProtocolError(f"invalid response header {name!r}: {value!r}")
        checked.append((name, value))
    return checked


_BYTES_LIKE = (bytes, bytearray, memoryview)


def as_bytes_field(name: object, value: object) -> Header:
    """A field an app gave as bytes-like objects, as bytes; a str or an int is refused.

    `bytes()` would make a TypeError of a str deep in the writer, and of an int that
    many NUL bytes: the app is told which field is wrong instead.
    """
    if not (isinstance(name, _BYTES_LIKE) and isinstance(value, _BYTES_LIKE)):
        raise LocalProtocolError(
            f"invalid response header {name!r}: {value!r} (names and values must be bytes)"
        )
    return bytes(name), bytes(value)


def encode_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data) if data else b""


LAST_CHUNK = b"0\r\n\r\n"


def informational_head(status: int, headers: Iterable[Header] = ()) -> bytes:
    """A 1xx head (100 Continue, 101 Switching Protocols): no body, no framing fields."""
    if not 100 <= status <= 199:
        raise LocalProtocolError(f"not an informational status: {status}")
    return status_line(status) + encode_fields(headers) + b"\r\n"


CONTINUE_HEAD = informational_head(100)


def error_response(status: int) -> bytes:
    """The server's own close-delimited answer to a request it refuses or cannot serve."""
    return simple_response(status, error_body(status))


def simple_response(status: int, body: bytes, extra: Iterable[Header] = ()) -> bytes:
    """A complete close-delimited error response, used before any app runs."""
    head = [status_line(status)]
    for name, value in (
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", b"%d" % len(body)),
        (b"connection", b"close"),
        *extra,
    ):
        head.append(b"%s: %s\r\n" % (name, value))
    return b"".join(head) + b"\r\n" + body


class ResponseWriter:
    """One response: `start()` then `body()` calls; each `body()` returns bytes to send.

    `default_fields` is a pre-encoded block of header lines (see `encode_fields`)
    sent first, e.g. Server and Date, encoded once a second rather than per response.
    """

    __slots__ = (
        "_content_length",
        "_default_fields",
        "_fields",
        "_framing",
        "_head_only",
        "_keep_alive",
        "_request",
        "_seen",
        "_sent",
        "_status",
        "finished",
    )

    def __init__(
        self,
        request: Request,
        keep_alive: bool,
        default_fields: bytes,
        seen: SeenResponseFields | None = None,
    ) -> None:
        self._request = request
        self._seen = seen
        self._keep_alive = keep_alive
        self._default_fields = default_fields
        self._status = 0
        self._fields: list[bytes] = []  # the app's header lines, encoded
        self._content_length: int | None = None
        self._framing = b""  # b"length", b"chunked", b"close" or b"none"
        self._head_only = request.method == b"HEAD"
        self._sent = 0  # body bytes the app gave, whatever the framing
        self.finished = False

    @property
    def keep_alive(self) -> bool:
        """Whether the connection may carry another request after this response."""
        return self._keep_alive

    def close_after(self) -> None:
        """Ask for `connection: close`; only effective before the head is written."""
        if not self._framing:
            self._keep_alive = False

    @property
    def length_reached(self) -> bool:
        """The body has reached the app's Content-Length: only empty messages may follow.

        Frameworks that send the whole body with `more_body=True` and then an empty last
        message (Quart) are not streaming, though they use two messages.
        """
        return self._framing == b"length" and self._sent == self._content_length

    @property
    def started(self) -> bool:
        return self._status != 0

    @property
    def body_bytes(self) -> int:
        """Body bytes put on the wire, framing excluded: an access log's `B`, as gunicorn's.

        The writer counts the body for Content-Length framing anyway; the shells count
        nothing of their own, so the access log costs nothing per body message.
        """
        return 0 if self._head_only or self._framing == b"none" else self._sent

    def start(self, status: int, headers: Iterable[Header]) -> None:
        if self._status:
            raise LocalProtocolError("response already started")
        if not 200 <= status <= 999:
            raise LocalProtocolError(f"invalid final status {status!r}")
        seen = self._seen
        lines: list[bytes] = []  # the head's lines, seen and new, in order
        fresh: list[bytes] = []  # name, ": ", value, CRLF of each line not seen before
        keep: list[tuple[Header, bytes]] = []  # new lines the memo may keep once checked
        content_length: int | None = None
        close = False
        for field in headers:
            if seen is not None:
                try:
                    line = seen.get(field)
                except TypeError:  # a list, or bytearrays: not hashable, not kept
                    line = None
                if line is not None:
                    lines.append(line)
                    continue
            name, value = field
            plain = type(name) is bytes and type(value) is bytes
            if not plain:
                name, value = as_bytes_field(name, value)
            # A spelling in KNOWN_NAMES is a token; any other name is checked here.
            if name not in KNOWN_NAMES and not valid_name(name):
                raise LocalProtocolError(f"invalid response header {name!r}: {value!r}")
            lname = name.lower()
            if lname not in _FRAMING_FIELDS:
                line = b"%s: %s\r\n" % (name, value)
                lines.append(line)
                fresh += (name, b": ", value, b"\r\n")
                if plain and seen is not None and type(field) is tuple:
                    keep.append((field, line))  # type: ignore[arg-type]
            elif lname == b"content-length":  # checked and kept; the other framing fields are ours
                if content_length is not None or _abnf.DIGITS.fullmatch(value) is None:
                    raise LocalProtocolError(f"invalid Content-Length {value!r}")
                content_length = int(value)
            elif lname == b"connection":
                close = close or value.lower().find(b"close") >= 0  # an app's `close` is honoured
        if fresh:
            # The names are tokens; a value may hold no CR, LF or NUL. Three scans of the
            # new lines: they hold exactly one CR and one LF each, the ones added above.
            block = b"".join(fresh)
            count = len(fresh) // 4
            if block.count(b"\n") != count or block.count(b"\r") != count or block.find(b"\0") >= 0:
                _raise_for_bad_value(fresh)
            if keep:
                _keep_seen(seen, keep)  # type: ignore[arg-type]
        # Nothing is kept from a start() that raised: the app may still send a clean 500.
        self._fields = lines
        self._content_length = content_length
        self._keep_alive = self._keep_alive and not close
        self._status = status

    def body(self, data: bytes, more_body: bool) -> bytes:
        if not (more_body or self._framing):
            status, length = self._status, self._content_length
            if status and status not in _NO_BODY_STATUSES and length in (None, len(data)):
                return self._whole(status, data)
        if not self._status:
            raise LocalProtocolError("body before http.response.start")
        if self.finished:
            raise LocalProtocolError("body after the response was complete")
        out = self._head(data, more_body) if not self._framing else b""
        framing = self._framing
        sent = self._sent + len(data)
        if framing == b"length" and sent > (self._content_length or 0):
            raise LocalProtocolError("response body longer than its Content-Length")
        self._sent = sent
        if not more_body:
            self._finish()
        if self._head_only or framing == b"none":
            return out
        if framing == b"chunked":
            return out + encode_chunk(data) + (b"" if more_body else LAST_CHUNK)
        return out + data if out else data

    def file_frame(self, size: int) -> tuple[bytes, bytes] | None:
        """`size` body bytes the caller writes itself (sendfile), in a body already begun
        with `body(b"", True)`: the framing bytes before and after them, or None where
        no body goes on the wire (HEAD, 204, 304)."""
        if not self._framing or self.finished:
            raise LocalProtocolError("file body outside a response body under way")
        sent = self._sent + size
        if self._framing == b"length" and sent > (self._content_length or 0):
            raise LocalProtocolError("response body longer than its Content-Length")
        self._sent = sent
        if self._head_only or self._framing == b"none":
            return None
        if self._framing == b"chunked" and size:
            return b"%x\r\n" % size, b"\r\n"
        return b"", b""

    def _whole(self, status: int, data: bytes) -> bytes:
        """The common case, the whole body in the first message, with no Content-Length
        from the app or the right one (what frameworks send): what `_head`,
        `_choose_framing` and `_finish` decide, in one call."""
        self._framing = b"length"
        self._content_length = self._sent = len(data)
        self.finished = True
        fields = self._fields
        fields.append(b"content-length: %d\r\n" % self._sent)
        fields.append(_last_line(self._keep_alive, self._request.http_version))
        head = status_line(status) + self._default_fields + b"".join(fields)
        return head if self._head_only else head + data

    def _finish(self) -> None:
        self.finished = True
        if self._framing == b"length" and not self._head_only:
            if self._sent != self._content_length:
                self._keep_alive = False  # the client cannot find the end of this message
        elif self._framing == b"close":
            self._keep_alive = False

    def _choose_framing(self, data: bytes, more_body: bool) -> bytes:
        status = self._status
        if status in _NO_BODY_STATUSES:
            return b"none"
        if self._content_length is not None:
            return b"length"
        if not more_body:
            self._content_length = len(data)
            return b"length"
        if self._head_only:
            return b"none"
        if self._request.http_version == b"1.1":
            return b"chunked"
        return b"close"

    def _head(self, data: bytes, more_body: bool) -> bytes:
        framing = self._framing = self._choose_framing(data, more_body)
        fields = self._fields
        if framing == b"length":
            fields.append(b"content-length: %d\r\n" % self._content_length)
        elif framing == b"chunked":
            fields.append(b"transfer-encoding: chunked\r\n")
        elif framing == b"close":
            self._keep_alive = False
        fields.append(_last_line(self._keep_alive, self._request.http_version))
        return status_line(self._status) + self._default_fields + b"".join(fields)


def _keep_seen(seen: SeenResponseFields, lines: list[tuple[Header, bytes]]) -> None:
    for field, line in lines:
        if len(line) <= SEEN_LINE_MAX:
            if len(seen) >= SEEN_RESPONSE_FIELDS:
                seen.clear()
            seen[field] = line


def _raise_for_bad_value(fields: list[bytes]) -> None:
    """Name the field whose value holds CR, LF or NUL (`fields`: name, ": ", value, CRLF...)."""
    for i in range(0, len(fields), 4):
        name, value = fields[i], fields[i + 2]
        if not valid_field(name, value):
            raise LocalProtocolError(f"invalid response header {name!r}: {value!r}")


def _last_line(keep_alive: bool, http_version: bytes) -> bytes:
    """The Connection field where it is needed, and the blank line that ends the head."""
    if not keep_alive:
        return b"connection: close\r\n\r\n"
    if http_version == b"1.0":
        return b"connection: keep-alive\r\n\r\n"
    return b"\r\n"
