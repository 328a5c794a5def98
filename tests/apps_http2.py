"""ASGI apps for the HTTP/2 tests (imported by the server with --app-dir tests).

Paths name behaviours; a query string carries the one argument a behaviour takes
(a size, a delay, or the path of a file the app writes so the test can see it ran).
"""

import asyncio
import json
from pathlib import Path
from typing import Any

from lifespan_helper import serve_lifespan

Scope = dict[str, Any]
Message = dict[str, Any]
CHUNK = 65536


async def _respond(send, status: int, body: bytes, headers=()) -> None:
    start = {"type": "http.response.start", "status": status, "headers": list(headers)}
    await send(start)
    await send({"type": "http.response.body", "body": body})


async def _read_all(receive) -> tuple[int, bool]:
    """(bytes read, whether the client disconnected first)."""
    total = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return total, True
        total += len(message.get("body", b""))
        if not message.get("more_body", False):
            return total, False


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _arg(scope: Scope) -> str:
    return scope["query_string"].decode()


async def _big(scope: Scope, receive, send) -> None:
    """N bytes (default 5 MiB) of a repeating pattern, in 64 KiB body messages."""
    size = int(_arg(scope) or 5 * 1024 * 1024)
    headers = [(b"content-length", str(size).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    pattern = bytes(range(256)) * (CHUNK // 256)
    sent = 0
    while sent < size:
        piece = pattern[: min(CHUNK, size - sent)]
        sent += len(piece)
        await send({"type": "http.response.body", "body": piece, "more_body": sent < size})


async def _gated_count(scope: Scope, receive, send) -> None:
    """Wait for the file named by the query to exist, then count the body (backpressure)."""
    gate = Path(_arg(scope))
    while not gate.exists():
        await asyncio.sleep(0.02)
    total, _ = await _read_all(receive)
    await _respond(send, 200, str(total).encode())


async def _wait_disconnect(scope: Scope, receive, send) -> None:
    """Read the body, then wait for http.disconnect and write the marker file."""
    marker = Path(_arg(scope))
    marker.with_suffix(".started").write_text("started")
    while (await receive())["type"] != "http.disconnect":
        pass
    marker.write_text("disconnected")


async def _trailers(scope: Scope, receive, send) -> None:
    start = {"type": "http.response.start", "status": 200, "trailers": True, "headers": []}
    await send(start)
    await send({"type": "http.response.body", "body": b"part 1, ", "more_body": True})
    await send({"type": "http.response.body", "body": b"part 2"})
    trailers = [(b"x-checksum", b"abc123"), (b"x-rows", b"2")]
    await send({"type": "http.response.trailers", "headers": trailers, "more_trailers": False})


async def _side_effect(scope: Scope, receive, send) -> None:
    """Append one line to the file named by the query: the test counts the runs."""
    with open(_arg(scope), "a") as log:
        log.write(f"{scope['method']} {scope['http_version']}\n")
    await _read_all(receive)
    await _respond(send, 200, b"done")


async def _slow(scope: Scope, receive, send) -> None:
    """Write `<query>.started`, sleep a second, answer: a stream in flight at SIGTERM."""
    Path(_arg(scope) + ".started").write_text("started")
    await asyncio.sleep(1.0)
    await _respond(send, 200, b"slow done")


async def _error_before(scope: Scope, receive, send) -> None:
    raise RuntimeError("boom before the response")


async def _error_after(scope: Scope, receive, send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"partial", "more_body": True})
    raise RuntimeError("boom after the response started")


async def _scope(scope: Scope, receive, send) -> None:
    body = json.dumps(_plain({k: v for k, v in scope.items() if k != "state"})).encode()
    await _respond(send, 200, body, [(b"content-type", b"application/json")])


async def _count(scope: Scope, receive, send) -> None:
    total, _ = await _read_all(receive)
    await _respond(send, 200, str(total).encode())


async def _echo_id(scope: Scope, receive, send) -> None:
    await asyncio.sleep(0.01 * (int(_arg(scope) or 0) % 5))  # answers finish out of order
    await _respond(send, 200, f"stream {_arg(scope)}".encode())


ROUTES = {
    "/big": _big,
    "/gated-count": _gated_count,
    "/wait-disconnect": _wait_disconnect,
    "/trailers": _trailers,
    "/side-effect": _side_effect,
    "/slow": _slow,
    "/error-before": _error_before,
    "/error-after": _error_after,
    "/scope": _scope,
    "/count": _count,
    "/echo-id": _echo_id,
}


async def app(scope: Scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        await serve_lifespan(receive, send)
        return
    handler = ROUTES.get(scope["path"])
    if handler is not None:
        await handler(scope, receive, send)
        return
    await _read_all(receive)
    await _respond(send, 200, b"hello h2", [(b"content-type", b"text/plain")])
