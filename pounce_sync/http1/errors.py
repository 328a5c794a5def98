"""Errors the codec raises, each with the status the server answers, and those answers' bodies."""

from http import HTTPStatus

# The short text bodies of the responses the server makes itself, on every protocol.
# Spelled out for the statuses the codec and limits produce: HTTPStatus names 413
# differently across Python versions; the rest fall back to its phrase.
ERROR_BODIES = {
    400: b"Bad Request\n",
    408: b"Request Timeout\n",
    413: b"Content Too Large\n",
    414: b"URI Too Long\n",
    431: b"Request Header Fields Too Large\n",
    500: b"Internal Server Error\n",
    501: b"Not Implemented\n",
    503: b"Service Unavailable\n",
    505: b"HTTP Version Not Supported\n",
}


def error_body(status: int) -> bytes:
    body = ERROR_BODIES.get(status)
    return body if body is not None else HTTPStatus(status).phrase.encode("ascii") + b"\n"


class ProtocolError(Exception):
    """The peer broke HTTP/1.1 framing; the connection must close after `status`."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class HTTP2Preface(ProtocolError):
    """The connection opened with HTTP/2's preface (`PRI * HTTP/2.0`): not ours to answer.

    A server that speaks HTTP/2 hands the connection over, with the bytes consumed
    so far being exactly `PRI * HTTP/2.0\r\n\r\n`; one that does not answers 505.
    """

    def __init__(self) -> None:
        super().__init__(505, "HTTP/2 connection preface")


class LocalProtocolError(Exception):
    """The application asked for something HTTP/1.1 cannot put on the wire."""
