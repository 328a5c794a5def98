"""ASGI apps the tests serve (imported by the server with --app-dir tests)."""

import asyncio
import json
import os
import threading
import time
from typing import Any

from lifespan_helper import serve_lifespan

Scope = dict[str, Any]


async def _respond(send, status: int, body: bytes, headers=()) -> None:
    await send({"type": "http.response.start", "status": status, "headers": list(headers)})
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _scope_json(scope: Scope) -> bytes:
    def plain(value: Any) -> Any:
        if isinstance(value, bytes):
            return value.decode("latin-1")
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return json.dumps(plain(scope)).encode()


async def app(scope: Scope, receive, send) -> None:
    """A router over small behaviours the tests need, keyed by path."""
    if scope["type"] == "lifespan":
        await serve_lifespan(receive, send)
        return
    path = scope["path"][len(scope.get("root_path", "")) :]
    if path == "/echo":
        body = await _read_body(receive)
        await _respond(send, 200, body, [(b"content-type", b"application/octet-stream")])
    elif path == "/count-body":
        total = 0
        while True:
            message = await receive()
            total += len(message.get("body", b""))
            if message["type"] == "http.disconnect" or not message.get("more_body"):
                break
        await _respond(send, 200, str(total).encode())
    elif path == "/scope":
        await _respond(send, 200, _scope_json(scope), [(b"content-type", b"application/json")])
    elif path == "/sleep":
        time.sleep(float(scope["query_string"] or b"1"))
        await _respond(send, 200, b"slept")
    elif path == "/respond-then-sleep":  # the response is complete before the app returns
        await _respond(send, 200, b"responded")
        time.sleep(float(scope["query_string"] or b"1"))
    elif path == "/async-sleep":
        await asyncio.sleep(float(scope["query_string"] or b"0.1"))
        await _respond(send, 200, b"async slept")
    elif path == "/stream":
        count = int(scope["query_string"] or b"10")
        _record_call(scope)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for i in range(count):
            await send({"type": "http.response.body", "body": b"%d\n" % i, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/pid":
        await _respond(send, 200, str(os.getpid()).encode())
    elif path == "/threads":  # the names of this process's threads, one a line
        await _respond(send, 200, thread_names())
    elif path == "/big":
        size = int(scope["query_string"] or b"1048576")
        await _respond(send, 200, b"x" * size)
    elif path == "/no-body-read":
        await _respond(send, 200, b"ignored your body")
    elif path == "/raise-before":
        raise RuntimeError("boom before start")
    elif path == "/raise-after":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise RuntimeError("boom after start")
    elif path == "/no-response":
        return
    elif path == "/exit-worker":  # sys.exit() in a handler: it ends the thread that ran it
        raise SystemExit(1)
    elif path == "/bad-header":
        await _respond(send, 200, b"x", [(b"x-injected", b"a\r\nset-cookie: evil=1")])
    elif path == "/head":
        await _respond(send, 200, b"twelve bytes")
    elif path == "/status":
        await _respond(send, int(scope["query_string"] or b"200"), b"")
    elif path == "/start-then-read":  # the head waits for the body: a 413 can still replace it
        headers = [(b"content-type", b"text/plain")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": await _read_body(receive)})
    else:
        await _respond(send, 200, b"Hello, world!", [(b"content-type", b"text/plain")])


def _record_call(scope: Scope) -> None:
    """Side effect for the never-run-twice tests: one line per app invocation."""
    path = os.environ.get("POUNCE_TEST_CALL_LOG")
    if path:
        with open(path, "a") as f:
            f.write(scope["path"] + "\n")


state_seen: list = []


async def stateful(scope: Scope, receive, send) -> None:
    """Lifespan stores state; requests see a copy of it."""
    if scope["type"] == "lifespan":
        scope["state"]["greeting"] = "hello from lifespan"
        scope["state"]["counter"] = 0
        await serve_lifespan(receive, send)
        return
    scope["state"]["counter"] += 1  # must not leak into the next request's copy
    await _respond(send, 200, json.dumps(scope["state"]).encode())


async def failing_startup(scope: Scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "database unreachable"})
        return
    await _respond(send, 200, b"never")


async def shutdown_marker(scope: Scope, receive, send) -> None:
    """Writes a line to $POUNCE_TEST_SHUTDOWN_FILE when lifespan shutdown runs."""

    def mark() -> None:
        with open(os.environ["POUNCE_TEST_SHUTDOWN_FILE"], "a") as f:
            f.write("shutdown\n")

    if scope["type"] == "lifespan":
        await serve_lifespan(receive, send, on_shutdown=mark)
        return
    await app(scope, receive, send)


def make_app() -> Any:
    """A factory, for --factory."""

    async def factory_app(scope: Scope, receive, send) -> None:
        if scope["type"] == "http":
            await _respond(send, 200, b"from factory")

    return factory_app


raising_at_import = None


def thread_names() -> bytes:
    """Which threads the server process runs, for tests that look for one by name."""
    return "\n".join(sorted(t.name for t in threading.enumerate())).encode()
