"""Events the request parser produces: frozen, slotted, one screen."""

from dataclasses import dataclass
from enum import Enum


class BodyFraming(Enum):
    NONE = "none"
    LENGTH = "length"
    CHUNKED = "chunked"


@dataclass(frozen=True, slots=True)
class Request:
    """A parsed request head, with the framing decisions already made."""

    method: bytes
    target: bytes
    http_version: bytes  # b"1.1" or b"1.0"
    headers: tuple[tuple[bytes, bytes], ...]  # names lower-cased, values raw
    keep_alive: bool
    expect_continue: bool
    framing: BodyFraming
    content_length: int | None
    upgrade: bytes | None  # lower-cased Upgrade value, if the client asked for one


@dataclass(frozen=True, slots=True)
class Data:
    data: bytes


@dataclass(frozen=True, slots=True)
class EndOfMessage:
    trailers: tuple[tuple[bytes, bytes], ...] = ()


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The client closed cleanly between requests."""


class Sentinel(Enum):
    NEED_DATA = "need-data"  # feed more bytes
    PAUSED = "paused"  # message complete; call start_next_cycle() after responding


NEED_DATA = Sentinel.NEED_DATA
PAUSED = Sentinel.PAUSED

Event = Request | Data | EndOfMessage | ConnectionClosed | Sentinel
