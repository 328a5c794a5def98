"""The tests' one HTTP/1.1 response reader: h11's client side over a real socket.

Tests write their requests as raw bytes (often malformed on purpose); every answer
is read here, so each response the server sends is checked by a strict parser that
is not ours. A response h11 rejects fails the test with h11's reason and the bytes
that came last.

h11 frames a response by its request's method (HEAD has no body) and by whether an
upgrade was asked for (a 101 is valid only then), so the reading calls take both.
The request itself is never sent by h11: the reader only tells h11 it was sent.
"""

import socket
from dataclasses import dataclass, field, replace
from typing import Protocol

import h11

Headers = list[tuple[bytes, bytes]]
DEFAULT_TIMEOUT = 10.0  # for a socket that has none: a hang must fail, not block
_TAIL = 2048  # bytes received last, kept for failure messages


class ResponseError(AssertionError):
    """The server's bytes are not what HTTP/1.1 allows here; h11 or the reader says why."""


class ServerClosed(ConnectionError):
    """The server closed (or reset) the connection where a response should begin."""


class ResponseTruncated(ConnectionError):
    """The server closed (or reset) the connection in the middle of a response."""


@dataclass(frozen=True, slots=True)
class Response:
    """One response as h11 read it; header names are lowercase."""

    status: int
    reason: bytes
    http_version: bytes
    headers: Headers
    body: bytes = b""
    trailers: Headers = field(default_factory=list)
    informational: tuple["Response", ...] = ()  # the 1xx responses that came before it

    def header(self, name: bytes) -> bytes | None:
        """The value of a header sent at most once; None if absent. Repeated fails."""
        values = self.header_values(name)
        if len(values) > 1:
            raise ResponseError(f"{name!r} is repeated: {values!r}")
        return values[0] if values else None

    def header_values(self, name: bytes) -> list[bytes]:
        """Every value of `name`, in the order sent."""
        name = name.lower()
        return [value for key, value in self.headers if key == name]


class Stream(Protocol):
    """What the reader needs of a socket (an SSLSocket and tls_server.BIOClient will do)."""

    def sendall(self, data: bytes, /) -> None: ...
    def recv(self, bufsize: int, /) -> bytes: ...
    def gettimeout(self) -> float | None: ...
    def settimeout(self, value: float | None, /) -> None: ...


class ResponseReader:
    """Reads, in order, the responses to the requests a test writes on `sock` itself.

    One reader per connection, for as long as it lasts: h11 keeps what it read past
    one response (a pipelined next one, or the bytes after a 101) for the next call.
    EOF and a reset both count as the server closing; a reset is recorded in `reset`.
    `timeout` (or DEFAULT_TIMEOUT, for a socket without one) is set on the socket.
    """

    def __init__(self, sock: Stream, timeout: float | None = None) -> None:
        if timeout is not None or sock.gettimeout() is None:
            sock.settimeout(DEFAULT_TIMEOUT if timeout is None else timeout)
        self.sock = sock
        self.reset = False
        self._h11 = h11.Connection(h11.CLIENT)
        self._tail = b""

    def read_response(self, method: bytes = b"GET", *, upgrade: bool = False) -> Response:
        """The next final response to a `method` request, after any 1xx (kept with it)."""
        head = self.read_head(method, upgrade=upgrade)
        body, trailers = self._read_body()
        return replace(head, body=body, trailers=trailers)

    def read_head(self, method: bytes = b"GET", *, upgrade: bool = False) -> Response:
        """Like read_response, but the body is left for read_chunk."""
        self._expect(method, upgrade)
        informational = []
        while True:
            event = self._next_event()
            if isinstance(event, h11.Response):
                return _response(event, tuple(informational))
            if isinstance(event, h11.InformationalResponse) and event.status_code != 101:
                informational.append(_response(event))
                continue
            raise ResponseError(f"expected a response, got {event!r}{self._last_bytes()}")

    def read_informational(self, method: bytes = b"GET", *, upgrade: bool = False) -> Response:
        """The next 1xx response (100 Continue, 101 Switching Protocols); a final one fails.

        After a 101 the rest of the connection is not HTTP/1.1: see `trailing_data`.
        """
        self._expect(method, upgrade)
        event = self._next_event()
        if not isinstance(event, h11.InformationalResponse):
            raise ResponseError(f"expected a 1xx response, got {event!r}{self._last_bytes()}")
        return _response(event)

    def read_chunk(self) -> bytes | None:
        """The next whole chunk of a chunked body being read; None after the last one."""
        data = b""
        while True:
            event = self._next_event()
            if isinstance(event, h11.EndOfMessage) and not data:
                return None
            if not isinstance(event, h11.Data):
                raise ResponseError(f"expected a chunk, got {event!r}{self._last_bytes()}")
            data += event.data
            if event.chunk_end:
                return data

    def read_closed(self) -> None:
        """The server closes the connection next, with no byte more than it already sent."""
        event = self._next_event()
        if not isinstance(event, h11.ConnectionClosed):
            raise ResponseError(f"expected the server to close, got {event!r}")

    @property
    def server_closes(self) -> bool:
        """The last response ends the connection (connection: close, HTTP/1.0, EOF body)."""
        return self._h11.their_state in (h11.MUST_CLOSE, h11.CLOSED)

    @property
    def trailing_data(self) -> bytes:
        """The bytes received after a 101's head: the switched-to protocol's first bytes."""
        return self._h11.trailing_data[0]

    def _expect(self, method: bytes, upgrade: bool) -> None:
        """Tell h11 that a request is out, unless the one answered by a 1xx still is."""
        conn = self._h11
        if conn.their_state is h11.SEND_RESPONSE:
            return
        if conn.their_state is h11.SEND_BODY:
            raise ResponseError("the last response's body is still unread")
        if conn.states == {h11.CLIENT: h11.DONE, h11.SERVER: h11.DONE}:
            conn.start_next_cycle()
        if conn.our_state is not h11.IDLE:  # the last response ended the connection
            raise ResponseError(f"no further response can come in state {conn.states}")
        headers = [(b"host", b"test")]
        if upgrade:
            headers += [(b"connection", b"upgrade"), (b"upgrade", b"test")]
        conn.send(h11.Request(method=method, target=b"/", headers=headers))
        conn.send(h11.EndOfMessage())

    def _read_body(self) -> tuple[bytes, Headers]:
        chunks = []
        while True:
            event = self._next_event()
            if isinstance(event, h11.EndOfMessage):
                return b"".join(chunks), list(event.headers)
            if not isinstance(event, h11.Data):
                raise ResponseError(f"expected body data, got {event!r}{self._last_bytes()}")
            chunks.append(event.data)

    def _next_event(self) -> h11.Event:
        while True:
            state = self._h11.their_state
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as exc:
                raise self._failure(exc, state) from exc
            if event is h11.NEED_DATA:
                self._receive()
            elif event is h11.PAUSED:
                raise ResponseError(f"unasked bytes after a response: {self.trailing_data[:200]!r}")
            else:
                return event

    def _receive(self) -> None:
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            self.reset, data = True, b""
        except TimeoutError as exc:
            exc.add_note(f"no whole response within {self.sock.gettimeout()} s{self._last_bytes()}")
            raise
        self._tail = (self._tail + data)[-_TAIL:]
        self._h11.receive_data(data)

    def _failure(self, exc: h11.RemoteProtocolError, state: object) -> Exception:
        pending, closed = self._h11.trailing_data
        if closed and state is h11.SEND_RESPONSE and not pending:
            return ServerClosed(f"the server closed instead of answering{self._last_bytes()}")
        if closed:
            return ResponseTruncated(f"the server closed mid-response: {exc}{self._last_bytes()}")
        return ResponseError(f"h11 rejects the response: {exc}{self._last_bytes()}")

    def _last_bytes(self) -> str:
        return f"; the last bytes received: {self._tail!r}" if self._tail else "; nothing received"


def _response(
    event: h11.Response | h11.InformationalResponse, informational: tuple[Response, ...] = ()
) -> Response:
    return Response(
        event.status_code,
        event.reason,
        event.http_version,
        list(event.headers),
        informational=informational,
    )


class Connectable(Protocol):
    def connect(self, timeout: float = ...) -> socket.socket: ...


def request(
    server: Connectable,
    raw: bytes,
    method: bytes = b"GET",
    *,
    timeout: float = 30.0,
    upgrade: bool = False,
) -> Response:
    """`raw` on a new connection and the one response to it (the timeout only turns a
    hang into a failure). If that response ends the connection, the server must close
    it with nothing more."""
    with server.connect(timeout) as sock:
        sock.sendall(raw)
        reader = ResponseReader(sock)
        response = reader.read_response(method, upgrade=upgrade)
        if reader.server_closes:
            reader.read_closed()
    return response


def get(reader: ResponseReader, path: str = "/") -> tuple[int, bytes]:
    """One GET on the reader's open keep-alive connection: (status, body)."""
    reader.sock.sendall(b"GET %s HTTP/1.1\r\nHost: test\r\n\r\n" % path.encode())
    response = reader.read_response()
    return response.status, response.body


def get_new(server: Connectable, path: str = "/", timeout: float = 30.0) -> tuple[int, bytes]:
    """One GET on a new connection (the timeout only turns a hang into a failure)."""
    with server.connect(timeout) as sock:
        return get(ResponseReader(sock), path)
