"""Test app for HTTP/3: echo, streaming, trailers, and a stream that waits for its client."""

import asyncio
import hashlib
import json
from typing import Any

Scope = dict[str, Any]
# Streams waiting in /hold, so a test can see when the app noticed a client leave.
GONE: list[str] = []


async def _respond(send, status: int, body: bytes, headers=()) -> None:
    await send({"type": "http.response.start", "status": status, "headers": list(headers)})
    await send({"type": "http.response.body", "body": body})


async def _echo(scope: Scope, receive, send) -> None:
    digest, size = hashlib.sha256(), 0
    while True:
        message = await receive()
        body = message.get("body", b"")
        digest.update(body)
        size += len(body)
        if not message.get("more_body"):
            break
    await _respond(send, 200, f"{size} {digest.hexdigest()}".encode())


async def _stream(scope: Scope, receive, send) -> None:
    """Ten chunks, each sent on its own after a turn of the loop."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    for i in range(10):
        await send({"type": "http.response.body", "body": b"chunk %d\n" % i, "more_body": True})
        await asyncio.sleep(0.01)
    await send({"type": "http.response.body", "body": b""})


async def _big(scope: Scope, receive, send) -> None:
    size = int(scope["query_string"] or b"1048576")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    block = bytes(range(256)) * 256
    sent = 0
    while sent < size:
        piece = block[: min(len(block), size - sent)]
        sent += len(piece)
        await send({"type": "http.response.body", "body": piece, "more_body": sent < size})


async def _hold(scope: Scope, receive, send) -> None:
    """Start a response, then wait for the client to go; say so on /gone."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"started\n", "more_body": True})
    message = await receive()
    while message["type"] != "http.disconnect":
        message = await receive()
    GONE.append(scope["path"])


async def _slow(scope: Scope, receive, send) -> None:
    await asyncio.sleep(float(scope["query_string"] or b"0.5"))
    await _respond(send, 200, b"slow done")


async def _trailers(scope: Scope, receive, send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [], "trailers": True})
    await send({"type": "http.response.body", "body": b"body"})
    await send({"type": "http.response.trailers", "headers": [(b"x-checksum", b"abc")]})


async def _scope(scope: Scope, receive, send) -> None:
    info = {k: scope[k] for k in ("http_version", "scheme", "method", "path", "query_string")}
    info["query_string"] = info["query_string"].decode()
    info["headers"] = [[n.decode(), v.decode()] for n, v in scope["headers"]]
    await _respond(send, 200, json.dumps(info).encode())


async def _typed(scope: Scope, receive, send) -> None:
    await _respond(send, 200, b"typed", [(b"content-type", b"text/plain")])


ROUTES = {
    "/typed": _typed,
    "/echo": _echo,
    "/stream": _stream,
    "/big": _big,
    "/hold": _hold,
    "/slow": _slow,
    "/trailers": _trailers,
    "/scope": _scope,
}


async def app(scope: Scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            done = message["type"].replace(".startup", ".startup.complete")
            done = done.replace(".shutdown", ".shutdown.complete")
            await send({"type": done})
            if message["type"] == "lifespan.shutdown":
                return
    if scope["path"] == "/gone":
        await _respond(send, 200, ",".join(GONE).encode())
        return
    handler = ROUTES.get(scope["path"])
    if handler is None:
        await _respond(send, 200, b"hello h3")
        return
    await handler(scope, receive, send)
