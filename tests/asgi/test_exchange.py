"""One set of ASGI message rules, on every protocol shell.

`HTTPExchange` is unit-tested sans I/O; then each rule is checked over real
sockets on the three shells that stand on it: HTTP/1.1 on a sync worker,
HTTP/1.1 on the pool (a `text/event-stream` request is handed there before the
app runs) and HTTP/2 (prior knowledge, h2's client side).
"""

import http.client
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

import h2.events
import pytest

from pounce_sync.asgi.exchange import (
    AppOutcome,
    HTTPExchange,
    KeepsResponseHeaders,
    MessageOrderError,
    ReceiveStep,
)
from pounce_sync.http1 import ParserLimits, error_body, parse_head

from ..h2_client import H2Client
from ..server_process import ServerProcess, running_server

TIMEOUT = 30.0
START = {"type": "http.response.start", "status": 200}


def _exchange(head: bytes = b"GET / HTTP/1.1\r\nHost: t", limit: int = 0, **kw) -> HTTPExchange:
    return HTTPExchange(parse_head(head, ParserLimits()), limit, **kw)


_UPLOAD = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\nExpect: 100-continue"


# -- sans I/O --------------------------------------------------------------------
def test_receive_reads_the_body_then_waits_then_hears_disconnect() -> None:
    exchange = _exchange(_UPLOAD)
    assert exchange.next_receive() is ReceiveStep.READ_BODY
    assert exchange.request_message(b"12345", True)["more_body"] is True
    assert exchange.next_receive() is ReceiveStep.READ_BODY
    last = exchange.request_message(b"67890", False)
    assert last == {"type": "http.request", "body": b"67890", "more_body": False}
    assert exchange.next_receive() is ReceiveStep.AWAIT_DISCONNECT
    exchange.response_start(START)
    exchange.response_body({"type": "http.response.body"})
    assert exchange.next_receive() is ReceiveStep.DISCONNECT


def test_continue_is_owed_once_and_only_before_a_head() -> None:
    exchange = _exchange(_UPLOAD)
    assert exchange.continue_pending
    assert exchange.continue_due() is True
    assert exchange.continue_due() is False
    assert not exchange.continue_pending

    late = _exchange(_UPLOAD)
    late.response_start(START)
    assert late.continue_due() is True  # the head is not out until the first body message
    late = _exchange(_UPLOAD)
    late.response_start(START)
    late.response_body({"type": "http.response.body", "more_body": True})
    assert late.continue_due() is False  # the final head went first: no 100 after it

    assert _exchange().continue_due() is False  # nobody asked


def test_body_limit_counts_every_piece() -> None:
    exchange = _exchange(_UPLOAD, limit=8)
    assert exchange.within_limit(5)
    assert exchange.within_limit(3)
    assert not exchange.within_limit(1)
    assert _exchange(_UPLOAD, limit=0).within_limit(10**12)  # 0: no limit


def test_abort_answers_only_while_no_head_is_out() -> None:
    exchange = _exchange(_UPLOAD)
    assert exchange.abort(413) is True
    assert (exchange.status, exchange.response_complete) == (413, True)
    assert exchange.next_receive() is ReceiveStep.DISCONNECT
    assert exchange.app_returned() is AppOutcome.GONE

    started = _exchange(_UPLOAD)
    started.response_start(START)
    started.response_body({"type": "http.response.body", "more_body": True})
    assert started.abort(408) is False
    assert started.disconnected and started.status == 200

    assert _exchange(_UPLOAD).abort(None) is False  # the client is gone: nobody to answer


@pytest.mark.parametrize(
    ("messages", "error"),
    [
        ([START, START], "http.response.start sent twice"),
        ([{"type": "http.response.body"}], "http.response.body before http.response.start"),
        (
            [START, {"type": "http.response.body"}, {"type": "http.response.body"}],
            "http.response.body after the response body was complete",
        ),
        ([{"type": "http.response.start", "status": 99}], "invalid response status 99"),
        ([{"type": "http.response.start", "status": "200"}], "invalid response status '200'"),
        ([{"type": "http.response.start", "status": 600}], "invalid response status 600"),
        (
            [START, {"type": "http.response.body"}, {"type": "http.response.trailers"}],
            "unexpected ASGI message type 'http.response.trailers'",
        ),
    ],
)
def test_messages_out_of_order_are_refused(messages: list[dict], error: str) -> None:
    exchange = _exchange()
    *before, last = messages
    for message in before:
        _feed(exchange, message)
    with pytest.raises(MessageOrderError, match=error):
        _feed(exchange, last)


def _feed(exchange: HTTPExchange, message: dict) -> None:
    kind = message["type"]
    if kind == "http.response.start":
        exchange.response_start(message)
    elif kind == "http.response.body":
        exchange.response_body(message)
    elif kind == "http.response.trailers":
        exchange.response_trailers(message)
    else:
        exchange.unexpected(kind)


def test_trailers_follow_the_body_where_offered() -> None:
    exchange = _exchange(trailers_allowed=True)
    exchange.response_start({**START, "trailers": True})
    with pytest.raises(MessageOrderError, match="before the response body was complete"):
        exchange.response_trailers({"type": "http.response.trailers"})
    exchange.response_body({"type": "http.response.body", "body": b"x"})
    assert exchange.body_complete and not exchange.response_complete
    assert exchange.app_returned() is AppOutcome.INCOMPLETE
    headers = [(b"a", b"1")]
    message = {"type": "http.response.trailers", "headers": headers, "more_trailers": True}
    assert exchange.response_trailers(message) == (headers, True)
    assert exchange.response_trailers({"type": "http.response.trailers"}) == ((), False)
    assert exchange.app_returned() is AppOutcome.COMPLETE
    with pytest.raises(MessageOrderError, match="after the last trailers"):
        exchange.response_trailers({"type": "http.response.trailers"})

    unasked = _exchange(trailers_allowed=True)
    unasked.response_start(START)
    unasked.response_body({"type": "http.response.body"})
    with pytest.raises(MessageOrderError, match="without trailers=True"):
        unasked.response_trailers({"type": "http.response.trailers"})


def test_outcome_and_fail() -> None:
    exchange = _exchange()
    assert exchange.app_returned() is AppOutcome.NOT_STARTED
    exchange.response_start(START)
    assert exchange.app_returned() is AppOutcome.INCOMPLETE
    assert exchange.fail() is True  # started, but nothing on the wire yet: a clean 500
    assert exchange.status == 500
    assert exchange.fail() is False

    streaming = _exchange()
    streaming.response_start(START)
    streaming.response_body({"type": "http.response.body", "more_body": True})
    assert streaming.app_returned() is AppOutcome.INCOMPLETE
    assert streaming.fail() is False


class _Shell(HTTPExchange):
    """A shell that only records what it was asked to write."""

    __slots__ = ("written",)

    async def send(self, message: dict) -> None:
        if message["type"] == "http.response.start":
            self.response_start(message)
            self.written = list(message.get("headers", ()))
        else:
            self.response_body(message)


class _KeepingShell(KeepsResponseHeaders, _Shell):
    pass


def _sent(shell: _Shell, message: dict) -> None:
    with pytest.raises(StopIteration):
        shell.send(message).send(None)


def test_kept_response_headers_and_the_shell_both_see_an_iterator_of_headers() -> None:
    head = b"GET / HTTP/1.1\r\nHost: t"
    shell = _KeepingShell(parse_head(head, ParserLimits()), 0)
    assert shell.response_headers == ()
    _sent(shell, {**START, "headers": iter([(b"x-a", b"1")])})
    assert shell.written == [(b"x-a", b"1")]
    assert list(shell.response_headers) == [(b"x-a", b"1")]
    assert shell.fail() is True  # no body yet: the server's 500 replaces the app's head
    assert shell.response_headers == ()


def test_a_shell_without_the_mixin_keeps_nothing() -> None:
    shell = _Shell(parse_head(b"GET / HTTP/1.1\r\nHost: t", ParserLimits()), 0)
    _sent(shell, {**START, "headers": [(b"x-a", b"1")]})
    assert shell.response_headers == ()  # the class attribute every plain shell reads


# -- on the wire, every shell ----------------------------------------------------
@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    complete: bool  # the client got the whole response (no truncation, no reset)


def _http1(server: ServerProcess, path: str, headers: dict[str, str]) -> Answer:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=TIMEOUT)
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        try:
            return Answer(response.status, response.read(), True)
        except http.client.IncompleteRead as exc:
            return Answer(response.status, exc.partial, False)
    finally:
        conn.close()


def _h2(server: ServerProcess, path: str) -> Answer:
    with server.connect(TIMEOUT) as sock:
        response = H2Client(sock).get(path)
    return Answer(response.status, bytes(response.body), response.reset is None)


SHELLS = {
    "sync": lambda server, path: _http1(server, path, {}),
    "pool": lambda server, path: _http1(server, path, {"Accept": "text/event-stream"}),
    "h2": _h2,
}


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with running_server("--worker-mode", "thread", app="apps_exchange:app") as srv:
        yield srv


@pytest.fixture(params=sorted(SHELLS))
def ask(request: pytest.FixtureRequest, server: ServerProcess):
    return lambda path: SHELLS[request.param](server, path)


@pytest.mark.parametrize(
    ("path", "logged"),
    [
        ("/start-then-raise", "Exception in ASGI application"),
        ("/start-twice", "Invalid response from ASGI application: http.response.start sent twice"),
        ("/body-first", "application: http.response.body before http.response.start"),
        ("/unknown-message", "unexpected ASGI message type 'http.response.bogus'"),
    ],
)
def test_a_broken_response_before_any_body_is_a_clean_500(
    ask, server: ServerProcess, path: str, logged: str
) -> None:
    before = server.stderr.count(logged)
    assert ask(path) == Answer(500, error_body(500), True)
    _wait_logged(server, logged, before)


def test_an_unfinished_response_is_cut_off_not_passed_as_whole(ask, server) -> None:
    logged = "ASGI application returned without completing the response"
    before = server.stderr.count(logged)
    answer = ask("/unfinished")
    assert (answer.status, answer.complete) == (200, False)
    assert answer.body == b"partial"
    _wait_logged(server, logged, before)


def test_a_body_after_the_end_leaves_the_response_whole(ask, server) -> None:
    logged = "http.response.body after the response body was complete"
    before = server.stderr.count(logged)
    assert ask("/body-after-end") == Answer(200, b"whole", True)
    _wait_logged(server, logged, before)


def _wait_logged(server: ServerProcess, text: str, before: int) -> None:
    """The server logs `text` once more (stderr is read by a thread: it may lag)."""
    deadline = time.monotonic() + TIMEOUT
    while server.stderr.count(text) <= before:
        assert time.monotonic() < deadline, f"never logged: {text}\n{server.stderr}"
        time.sleep(0.01)


@pytest.mark.parametrize("accept", ["*/*", "text/event-stream"])
def test_http1_continue_still_sent_after_start(server: ServerProcess, accept: str) -> None:
    with server.connect(TIMEOUT) as sock:
        sock.sendall(
            b"POST /start-then-read HTTP/1.1\r\nHost: t\r\nAccept: %s\r\n"
            b"Content-Length: 4\r\nExpect: 100-continue\r\n\r\n" % accept.encode()
        )
        interim = _read_head(sock)
        assert interim.startswith(b"HTTP/1.1 100 ")
        sock.sendall(b"ping")
        response = http.client.HTTPResponse(sock, method="POST")
        response.begin()
        assert (response.status, response.read()) == (200, b"got ping")


def _read_head(sock: socket.socket) -> bytes:
    """Only the 100 Continue head: nothing else may be read before the body is sent."""
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        byte = sock.recv(1)
        assert byte, "the server closed before 100 Continue"
        head += byte
    return head


def test_h2_continue_still_sent_after_start(server: ServerProcess) -> None:
    with server.connect(TIMEOUT) as sock:
        client = H2Client(sock)
        stream_id = client.request(
            "/start-then-read",
            method="POST",
            headers=(("content-length", "4"), ("expect", "100-continue")),
            end_stream=False,
        )
        while not any(
            isinstance(event, h2.events.InformationalResponseReceived) for event in client.pump()
        ):
            pass
        client.send_body(stream_id, b"ping")
        response = client.response(stream_id)
    assert (response.status, bytes(response.body)) == (200, b"got ping")
