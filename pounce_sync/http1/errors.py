"""Errors the codec raises; each carries the status the server answers with."""


class ProtocolError(Exception):
    """The peer broke HTTP/1.1 framing; the connection must close after `status`."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class LocalProtocolError(Exception):
    """The application asked for something HTTP/1.1 cannot put on the wire."""
