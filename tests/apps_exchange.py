"""ASGI apps that break (or lean on) the message rules, served over every protocol shell.

Imported by the server with --app-dir tests. Each path is one rule of
`pounce_sync.asgi.exchange`; the tests check that HTTP/1.1 on a sync worker,
HTTP/1.1 on the pool and HTTP/2 answer it alike.
"""

from typing import Any

from lifespan_helper import serve_lifespan

Scope = dict[str, Any]
START = {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/a")]}


async def _start_then_raise(scope: Scope, receive, send) -> None:
    await send(START)
    raise RuntimeError("boom after start, before any body")


async def _start_twice(scope: Scope, receive, send) -> None:
    await send(START)
    await send(START)


async def _body_first(scope: Scope, receive, send) -> None:
    await send({"type": "http.response.body", "body": b"too soon"})


async def _start_then_read(scope: Scope, receive, send) -> None:
    """Start first, read the body after: a held-back body still gets its 100 Continue."""
    await send(START)
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    await send({"type": "http.response.body", "body": b"got " + body})


async def _unfinished(scope: Scope, receive, send) -> None:
    await send(START)
    await send({"type": "http.response.body", "body": b"partial", "more_body": True})


async def _body_after_end(scope: Scope, receive, send) -> None:
    await send(START)
    await send({"type": "http.response.body", "body": b"whole"})
    await send({"type": "http.response.body", "body": b"extra"})


async def _unknown_message(scope: Scope, receive, send) -> None:
    await send({"type": "http.response.bogus"})


ROUTES = {
    "/start-then-raise": _start_then_raise,
    "/start-twice": _start_twice,
    "/body-first": _body_first,
    "/start-then-read": _start_then_read,
    "/unfinished": _unfinished,
    "/body-after-end": _body_after_end,
    "/unknown-message": _unknown_message,
}


async def app(scope: Scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        await serve_lifespan(receive, send)
        return
    await ROUTES[scope["path"]](scope, receive, send)
