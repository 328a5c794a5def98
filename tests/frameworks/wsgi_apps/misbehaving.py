"""Apps that break the rules, ASGI and WSGI, one route per way (test_misbehaving_apps.py).

Each route is named for what it does wrong; `/ok` answers 200, so a test can show the
worker still serves after each one.
"""

import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

Environ = dict[str, Any]
StartResponse = Callable[..., Callable[[bytes], None]]
TEXT = [("Content-Type", "text/plain")]


class AppBug(Exception):
    """What the failing routes raise: its message is looked for in the server's log."""


# -- ASGI ------------------------------------------------------------------------------
def _start(status: Any = 200, headers: Any = ((b"content-type", b"text/plain"),)) -> dict:
    return {"type": "http.response.start", "status": status, "headers": list(headers)}


def _body(body: bytes, more_body: bool = False) -> dict:
    return {"type": "http.response.body", "body": body, "more_body": more_body}


ASGI_STARTS: dict[str, dict] = {
    "/status-99": _start(99),
    "/status-1000": _start(1000),
    "/status-str": _start("200"),
    "/header-crlf": _start(headers=[(b"x-injected", b"a\r\nset-cookie: evil=1")]),
    "/header-str": _start(headers=[("x-text", "not bytes")]),
    "/header-bad-name": _start(headers=[(b"bad name", b"v")]),
}


async def asgi_app(scope: dict, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/raise-before-start":
        raise AppBug("asgi raised before http.response.start")
    if path == "/raise-mid-body":
        await send(_start())
        await send(_body(b"partial", more_body=True))
        raise AppBug("asgi raised mid-body")
    if path == "/body-before-start":
        await send(_body(b"no head yet"))
        return
    if path == "/never-responds":
        return
    if path in ASGI_STARTS:
        await send(ASGI_STARTS[path])
        await send(_body(b"should not be seen"))
        return
    await send(_start())
    await send(_body(b"ok"))


# -- WSGI ------------------------------------------------------------------------------
class NoClose:
    """An iterable with no close(): PEP 3333 makes close() optional."""

    def __iter__(self) -> Iterator[bytes]:
        yield b"no "
        yield b"close"


class RaisingClose:
    """An iterable whose close() raises after the whole body went out."""

    def __init__(self) -> None:
        self.blocks = [b"closing ", b"raises"]

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.blocks)

    def close(self) -> None:
        raise AppBug("wsgi close() raised")


def _mid_body() -> Iterator[bytes]:
    yield b"partial"
    raise AppBug("wsgi raised mid-body")


WSGI_STATUSES = {"/status-99": "99 Too Small", "/status-1000": "1000 Too Big", "/status-int": 200}
WSGI_HEADERS: dict[str, list[Any]] = {
    "/header-crlf": [("X-Injected", "a\r\nSet-Cookie: evil=1")],
    "/header-bytes": [(b"X-Bytes", b"not str")],
    "/header-bad-name": [("Bad Name", "v")],
}


def wsgi_app(environ: Environ, start_response: StartResponse) -> Any:
    path = environ["PATH_INFO"]
    if path == "/raise-before-start":
        raise AppBug("wsgi raised before start_response")
    if path == "/raise-mid-body":
        start_response("200 OK", TEXT)
        return _mid_body()
    if path == "/body-before-start":
        return [b"no head yet"]
    if path == "/never-responds":
        return []
    if path == "/returns-none":
        start_response("200 OK", TEXT)
        return None
    if path in WSGI_STATUSES:
        start_response(WSGI_STATUSES[path], TEXT)
        return [b"should not be seen"]
    if path in WSGI_HEADERS:
        start_response("200 OK", TEXT + WSGI_HEADERS[path])
        return [b"should not be seen"]
    if path == "/start-twice":
        start_response("200 OK", TEXT)
        start_response("201 Created", TEXT)
        return [b"should not be seen"]
    if path == "/exc-info-after-head":
        start_response("200 OK", TEXT)
        return _exc_info_after_head(start_response)
    if path == "/file-shorter-than-length":  # a real file: sent with sendfile(2)
        start_response("200 OK", [*TEXT, ("Content-Length", str(os.path.getsize(__file__) + 100))])
        return environ["wsgi.file_wrapper"](open(__file__, "rb"))  # the wrapper closes it
    if path == "/no-close":
        start_response("200 OK", TEXT)
        return NoClose()
    if path == "/close-raises":
        start_response("200 OK", TEXT)
        return RaisingClose()
    start_response("200 OK", TEXT)
    return [b"ok"]


def _exc_info_after_head(start_response: StartResponse) -> Iterator[bytes]:
    """The head is out with the first block; then the app fails and asks to replace it."""
    yield b"partial"
    try:
        raise AppBug("wsgi failed after its head was sent")
    except AppBug:
        start_response("500 Internal Server Error", TEXT, sys.exc_info())
    yield b"never sent"
