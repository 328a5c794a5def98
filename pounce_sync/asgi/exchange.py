"""The ASGI rules of one HTTP request and its response, sans I/O.

Each protocol shell subclasses `HTTPExchange`: HTTP/1.1 on a sync worker
(`pounce_sync.worker.asgi_http.HTTPCycle`), HTTP/1.1 on the pool
(`async_pool.http1_stream.StreamingExchange`) and one HTTP/2 or HTTP/3 stream
(`async_pool.pool_stream.PoolStream`). The exchange says what a `receive()` must
do next, counts the body against the limit, decides when 100 Continue is owed, and
checks every `send()` message against ASGI's order (start, body..., then trailers);
the shell only reads, writes and waits. hypercorn's protocol classes
sit over h11 and h2 the same way.
"""

import enum
import logging
from collections.abc import Sequence
from typing import Any

from pounce_sync.http1 import BodyFraming, LocalProtocolError, Request

error_log = logging.getLogger("pounce_sync.error")

Message = dict[str, Any]
ResponseHeaders = Sequence[Sequence[bytes]]
"""The app's response headers as it gave them: (name, value) pairs of bytes."""


class MessageOrderError(RuntimeError):
    """The app sent an ASGI message out of order, or one this protocol does not carry."""


class ReceiveStep(enum.Enum):
    """What the shell's `receive()` does next."""

    DISCONNECT = "return http.disconnect now"
    READ_BODY = "read the next piece of the request body"
    AWAIT_DISCONNECT = "the body is all read: wait until the client goes or the response ends"


class AppOutcome(enum.Enum):
    """The state of the response when the app returned."""

    COMPLETE = enum.auto()
    GONE = enum.auto()  # the client left first: nothing is left to answer or to log
    NOT_STARTED = enum.auto()
    INCOMPLETE = enum.auto()

    def log(self) -> None:
        """Say what the app got wrong, if anything (one line: no traceback to give)."""
        if self is NOT_STARTED:
            error_log.error("ASGI application returned without starting a response")
        elif self is INCOMPLETE:
            error_log.error("ASGI application returned without completing the response")


# The members as module globals, for the methods below and for the shells: an Enum
# member looked up through its class goes through the metaclass on every request
# (measured with callgrind on 3.11).
DISCONNECT = ReceiveStep.DISCONNECT
READ_BODY = ReceiveStep.READ_BODY
AWAIT_DISCONNECT = ReceiveStep.AWAIT_DISCONNECT
COMPLETE = AppOutcome.COMPLETE
GONE = AppOutcome.GONE
NOT_STARTED = AppOutcome.NOT_STARTED
INCOMPLETE = AppOutcome.INCOMPLETE


def log_app_error(exc: BaseException) -> None:
    """How every shell reports an app that raised: a broken rule in one line, else a traceback."""
    if isinstance(exc, (LocalProtocolError, MessageOrderError)):
        error_log.error("Invalid response from ASGI application: %s", exc)
    else:
        error_log.error("Exception in ASGI application", exc_info=exc)


class HTTPExchange:
    """The state of one request/response that every shell shares, and the rules over it.

    `status` is the response's status once known: the app's, or the server's own
    answer (413, 408, 500). `head_sent` is true once a response head went to the
    wire, after which the server cannot answer anything else.
    """

    __slots__ = (
        "body_complete",
        "body_done",
        "continue_sent",
        "disconnected",
        "head_sent",
        "max_body_size",
        "received",
        "request",
        "response_complete",
        "status",
        "trailers_allowed",
        "trailers_wanted",
    )

    # Kept only by a shell with KeepsResponseHeaders mixed in (the access format shows
    # a response header); every other shell reads this empty class attribute.
    response_headers: ResponseHeaders = ()

    def __init__(
        self, request: Request, max_body_size: int, trailers_allowed: bool = False
    ) -> None:
        self.request = request
        self.max_body_size = max_body_size  # 0: no limit
        self.trailers_allowed = trailers_allowed  # the scope offers http.response.trailers
        self.received = 0  # request body bytes so far
        self.body_done = False  # the app has had the body's last message
        self.continue_sent = False  # 100 Continue is sent, or no longer owed
        self.disconnected = False
        self.status = 0
        self.head_sent = False
        self.trailers_wanted = False
        self.body_complete = False  # the last http.response.body was sent
        self.response_complete = False  # ... and the trailers, if any

    # -- receive ---------------------------------------------------------------
    def next_receive(self) -> ReceiveStep:
        if self.disconnected or self.response_complete:
            return DISCONNECT
        if self.body_done:
            return AWAIT_DISCONNECT
        return READ_BODY

    def continue_due(self) -> bool:
        """The app waits for a body its client may hold back for `100 Continue`.

        True once, if no response head is out yet: then the shell sends the 100.
        Called only when the shell has no body bytes to give.
        """
        if self.continue_sent or not self.request.expect_continue:
            return False
        self.continue_sent = True
        return not self.head_sent

    @property
    def continue_pending(self) -> bool:
        """The client may still hold its body back for a 100 Continue the app never asked for."""
        request = self.request
        return (
            request.expect_continue
            and request.framing is not BodyFraming.NONE
            and not self.continue_sent
            and not self.body_done
        )

    def within_limit(self, size: int) -> bool:
        """Count `size` more body bytes; False once they pass the body limit (answer 413)."""
        self.received += size
        limit = self.max_body_size
        return not limit or self.received <= limit

    def request_message(self, body: bytes, more_body: bool) -> Message:
        if not more_body:
            self.body_done = True
        return {"type": "http.request", "body": body, "more_body": more_body}

    def abort(self, status: int | None) -> bool:
        """The body cannot be read on: the app hears disconnect from now on.

        True if the shell should answer `status` itself (no head was sent yet);
        None means the client is gone and nobody is there to answer.
        """
        self.disconnected = True
        if status is None or self.head_sent:
            return False
        self.status = status
        self.head_sent = self.response_complete = True
        return True

    # -- send ------------------------------------------------------------------
    def response_start(self, message: Message) -> int:
        """Check `http.response.start` and take its status; the shell encodes the headers."""
        if self.status:
            raise MessageOrderError("http.response.start sent twice")
        status = message["status"]
        if type(status) is not int or not 200 <= status <= 599:
            raise MessageOrderError(f"invalid response status {status!r}")
        if self.trailers_allowed:
            self.trailers_wanted = bool(message.get("trailers", False))
        self.status = status
        return status

    def response_body(self, message: Message) -> tuple[bytes, bool]:
        """Check `http.response.body`; its body and more_body, for the shell to write."""
        if not self.status:
            raise MessageOrderError("http.response.body before http.response.start")
        if self.body_complete:
            raise MessageOrderError("http.response.body after the response body was complete")
        more_body = message.get("more_body", False)
        self.head_sent = True
        if not more_body:
            self.body_complete = True
            self.response_complete = not self.trailers_wanted
        return message.get("body", b""), more_body

    def response_trailers(self, message: Message) -> tuple[Any, bool]:
        """Check `http.response.trailers`; its headers and more_trailers."""
        if not self.trailers_allowed:
            self.unexpected(message["type"])
        if not self.trailers_wanted:
            raise MessageOrderError("http.response.trailers without trailers=True in the start")
        if not self.body_complete:
            raise MessageOrderError("http.response.trailers before the response body was complete")
        if self.response_complete:
            raise MessageOrderError("http.response.trailers after the last trailers")
        more_trailers = message.get("more_trailers", False)
        if not more_trailers:
            self.response_complete = True
        return message.get("headers", ()), more_trailers

    def unexpected(self, kind: object) -> None:
        raise MessageOrderError(f"unexpected ASGI message type {kind!r} on an http connection")

    # -- after the app -----------------------------------------------------------
    def fail(self) -> bool:
        """The app raised or broke a rule: True if the shell should still answer 500."""
        if self.disconnected or self.head_sent:
            return False
        self.status = 500
        self.head_sent = self.response_complete = True
        return True

    def app_returned(self) -> AppOutcome:
        if self.disconnected:
            return GONE
        if not self.status:
            return NOT_STARTED
        if not self.response_complete:
            return INCOMPLETE
        return COMPLETE


class KeepsResponseHeaders:
    """Mixed in before a shell: keeps the app's response headers for the access log.

    Only when the access format shows one (`%({name}o)s`), decided once when the
    format is compiled: the shells of other servers keep nothing and pay nothing.
    Headers are kept once the shell accepted the start, and dropped again when the
    server answers in the app's place (413, 500...), whose head never carried them.
    """

    __slots__ = ()

    async def send(self, message: Message) -> None:
        if message["type"] != "http.response.start":
            await super().send(message)  # type: ignore[misc]
            return
        headers = message.get("headers", ())
        if type(headers) is not list and type(headers) is not tuple:
            headers = list(headers)  # an iterator is read once: by the shell, from this copy
            message = {**message, "headers": headers}
        await super().send(message)  # type: ignore[misc]
        self.response_headers = headers

    def abort(self, status: int | None) -> bool:
        answered: bool = super().abort(status)  # type: ignore[misc]
        if answered:
            self.response_headers = ()
        return answered

    def fail(self) -> bool:
        answered: bool = super().fail()  # type: ignore[misc]
        if answered:
            self.response_headers = ()
        return answered
