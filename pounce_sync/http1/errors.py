"""Errors the codec raises; each carries the status the server answers with."""


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
