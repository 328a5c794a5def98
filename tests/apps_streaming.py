"""ASGI apps for the streaming-handoff tests: each says which thread served it.

Sync workers are named worker-N, the AsyncPool's loop threads async-pool-N. A
`log` query parameter names a file that gets one line per app invocation, so
tests can count how often the app ran.
"""

import asyncio
import threading
from typing import Any
from urllib.parse import parse_qs

from lifespan_helper import serve_lifespan

Scope = dict[str, Any]


def _params(scope: Scope) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}


def _note(params: dict[str, str], text: str) -> None:
    if "log" in params:
        with open(params["log"], "a") as f:
            f.write(text + "\n")


async def app(scope: Scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        await serve_lifespan(receive, send)
        return
    params = _params(scope)
    thread = threading.current_thread().name
    _note(params, f"call {scope['path']} {thread}")
    path = scope["path"]
    if path.endswith("/sse"):
        await _sse(params, receive, send, thread)
    elif path.endswith("/firehose"):
        await _firehose(params, send)
    elif path.endswith("/upload"):
        await _upload(receive, send, thread)
    elif path.endswith("/listening"):
        await _listening(receive, send)
    elif path.endswith("/whole-then-empty"):
        await _whole_then_empty(send, thread)
    else:
        await _chunks(int(params.get("n", "3")), send, thread)


async def _chunks(n: int, send, thread: str) -> None:
    headers = [(b"content-type", b"text/plain"), (b"x-thread", thread.encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    for i in range(n):
        await send({"type": "http.response.body", "body": b"chunk %d\n" % i, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def _sse(params: dict[str, str], receive, send, thread: str) -> None:
    """Events every 10 ms until the client leaves (or `n` events were sent)."""
    headers = [(b"content-type", b"text/event-stream"), (b"x-thread", thread.encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    gone = asyncio.ensure_future(_wait_disconnect(receive))
    limit = int(params.get("n", "0")) or None
    sent = 0
    while not gone.done() and (limit is None or sent < limit):
        try:
            await send(
                {"type": "http.response.body", "body": b"data: %d\n\n" % sent, "more_body": True}
            )
        except OSError:
            break
        sent += 1
        await asyncio.sleep(0.01)
    if gone.done():
        _note(params, "disconnected")
        return
    gone.cancel()
    await send({"type": "http.response.body", "body": b""})


async def _wait_disconnect(receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _firehose(params: dict[str, str], send) -> None:
    """64 KiB chunks as fast as the client takes them; progress goes to `count`."""
    total = int(params["chunks"])
    chunk = b"x" * 65536
    await send({"type": "http.response.start", "status": 200, "headers": []})
    for i in range(total):
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
        with open(params["count"], "w") as f:
            f.write(str(i + 1))
    await send({"type": "http.response.body", "body": b""})


async def _upload(receive, send, thread: str) -> None:
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    headers = [(b"x-thread", thread.encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"%d" % size, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def _listening(receive, send) -> None:
    """Quart's shape: a task waits in receive() for http.disconnect while the response
    is sent, and the app returns only once that task has its answer."""
    listener = asyncio.ensure_future(_wait_disconnect(receive))
    await asyncio.sleep(0)  # the listener is in receive() before the response starts
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"a", "more_body": True})
    await send({"type": "http.response.body", "body": b"b"})
    await listener


async def _whole_then_empty(send, thread: str) -> None:
    """Quart's shape: the whole body (its Content-Length) with more_body=True, then b""."""
    headers = [(b"content-length", b"5"), (b"x-thread", thread.encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"whole", "more_body": True})
    await send({"type": "http.response.body", "body": b""})
