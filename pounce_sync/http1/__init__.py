"""The project's HTTP/1.1 codec: sans-I/O, strict, shared by the sync workers and the AsyncPool."""

from .errors import HTTP2Preface, LocalProtocolError, ProtocolError
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
from .parser import ParserLimits, RequestParser, parse_head
from .writer import (
    LAST_CHUNK,
    ResponseWriter,
    encode_chunk,
    encode_fields,
    simple_response,
    status_line,
)

__all__ = [
    "LAST_CHUNK",
    "NEED_DATA",
    "PAUSED",
    "BodyFraming",
    "ConnectionClosed",
    "Data",
    "EndOfMessage",
    "Event",
    "HTTP2Preface",
    "LocalProtocolError",
    "ParserLimits",
    "ProtocolError",
    "Request",
    "RequestParser",
    "ResponseWriter",
    "encode_chunk",
    "encode_fields",
    "parse_head",
    "simple_response",
    "status_line",
]
