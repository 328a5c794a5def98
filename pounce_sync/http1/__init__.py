"""The project's HTTP/1.1 codec: sans-I/O, strict, shared by the sync workers and the AsyncPool."""

from ._abnf import ORIGIN_FORM
from .errors import ERROR_BODIES, HTTP2Preface, LocalProtocolError, ProtocolError, error_body
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
    CONTINUE_HEAD,
    LAST_CHUNK,
    ResponseWriter,
    encode_chunk,
    encode_fields,
    error_response,
    informational_head,
    simple_response,
    status_line,
    valid_field,
)

__all__ = [
    "CONTINUE_HEAD",
    "ERROR_BODIES",
    "LAST_CHUNK",
    "NEED_DATA",
    "ORIGIN_FORM",
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
    "error_body",
    "error_response",
    "informational_head",
    "parse_head",
    "simple_response",
    "status_line",
    "valid_field",
]
