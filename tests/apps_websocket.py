"""ASGI apps for the WebSocket tests, routed by path (served with --app-dir tests).

`?log=<file>` makes an app append what it saw to that file, one line each
("connect", "disconnect <code> <reason>", ...): the tests read it to learn what
the app received and how many times it ran. Plain HTTP requests get "http ok".
"""

import asyncio
import os
from typing import Any
from urllib.parse import parse_qs

from lifespan_helper import serve_lifespan

Scope = dict[str, Any]


def _params(scope: Scope) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}


class Log:
    """Appends lines to the ?log= file, if the test gave one."""

    def __init__(self, scope: Scope) -> None:
        self.path = _params(scope).get("log")

    def __call__(self, line: str) -> None:
        if self.path:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line + "\n")

    def disconnect(self, message: dict[str, Any]) -> None:
        self(f"disconnect {message['code']} {message.get('reason') or ''}".rstrip())


async def _http(send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"http ok"})


def _echo_of(message: dict[str, Any]) -> dict[str, Any]:
    if message.get("bytes") is not None:
        return {"type": "websocket.send", "bytes": message["bytes"]}
    return {"type": "websocket.send", "text": message["text"]}


async def echo(scope: Scope, receive, send, log: Log) -> None:
    """Echo every message; the Autobahn fuzzing client runs against this one."""
    subprotocols = scope["subprotocols"]
    await send(
        {
            "type": "websocket.accept",
            "subprotocol": subprotocols[-1] if subprotocols else None,
            "headers": [(b"x-app", b"yes")],
        }
    )
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            log.disconnect(message)
            return
        await send(_echo_of(message))


async def command(scope: Scope, receive, send, log: Log) -> None:
    """Echo, except for the text commands `close:<code>:<reason>` and `raise`."""
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            log.disconnect(message)
            return
        text = message.get("text") or ""
        if text == "raise":
            raise RuntimeError("the app failed after accept (on purpose)")
        if text.startswith("close:"):
            _, code, reason = text.split(":", 2)
            await send({"type": "websocket.close", "code": int(code), "reason": reason})
            try:
                await send({"type": "websocket.send", "text": "after close"})
            except OSError as exc:
                log(f"send raised {type(exc).__name__}")
            log.disconnect(await receive())
            return
        await send(_echo_of(message))


async def peek(scope: Scope, receive, send, log: Log) -> None:
    """Wait for the next event before accepting: a client that left gives 1006."""
    log.disconnect(await receive())
    try:
        await send({"type": "websocket.accept"})
    except OSError as exc:
        log(f"accept raised {type(exc).__name__}")


async def deny(scope: Scope, receive, send, log: Log) -> None:
    await send({"type": "websocket.close", "code": 1000})


async def deny_http(scope: Scope, receive, send, log: Log) -> None:
    headers = [(b"content-type", b"text/plain"), (b"x-reason", b"nope")]
    await send({"type": "websocket.http.response.start", "status": 401, "headers": headers})
    await send({"type": "websocket.http.response.body", "body": b"no ", "more_body": True})
    await send({"type": "websocket.http.response.body", "body": b"entry"})


async def bad_subprotocol(scope: Scope, receive, send, log: Log) -> None:
    await send({"type": "websocket.accept", "subprotocol": "never-offered"})


async def error_before(scope: Scope, receive, send, log: Log) -> None:
    raise RuntimeError("the app failed before accept (on purpose)")


async def return_before(scope: Scope, receive, send, log: Log) -> None:
    return


async def hold(scope: Scope, receive, send, log: Log) -> None:
    """Read nothing until the file ?release= exists, then count what came: 'n bytes'."""
    release = _params(scope)["release"]
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": "ready"})
    while not os.path.exists(release):
        await asyncio.sleep(0.02)
    count = total = 0
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect" or message.get("text") == "end":
            break
        count += 1
        total += len(message["bytes"])
    await send({"type": "websocket.send", "text": f"{count} {total}"})


async def flood(scope: Scope, receive, send, log: Log) -> None:
    """Send ?n= binary messages of ?size= bytes, one byte to ?progress= after each."""
    params = _params(scope)
    n, size, progress = int(params["n"]), int(params["size"]), params["progress"]
    await send({"type": "websocket.accept"})
    payload = b"x" * size
    with open(progress, "ab", buffering=0) as f:
        for _ in range(n):
            await send({"type": "websocket.send", "bytes": payload})
            f.write(b".")
    await send({"type": "websocket.send", "text": "done"})


ROUTES = {
    "/echo": echo,
    "/command": command,
    "/peek": peek,
    "/deny": deny,
    "/deny-http": deny_http,
    "/bad-subprotocol": bad_subprotocol,
    "/error-before": error_before,
    "/return-before": return_before,
    "/hold": hold,
    "/flood": flood,
}


async def app(scope: Scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        await serve_lifespan(receive, send)
        return
    if scope["type"] == "http":
        await _http(send)
        return
    log = Log(scope)
    log("connect")
    message = await receive()
    assert message["type"] == "websocket.connect", message
    await ROUTES.get(scope["path"], echo)(scope, receive, send, log)
