"""An app that waits in receive() for the client to disconnect, and reports what it saw."""

import asyncio
import threading

import anyio

_seen: list[str] = []
_lock = threading.Lock()
POLLS = 3000  # /poll gives up after this many 10 ms polls


async def app(scope, receive, send) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/wait":
        await receive()  # the (empty) body
        message = await receive()  # blocks until the client disconnects
        _note(message["type"].split(".")[-1])
        return
    if scope["path"] == "/poll":
        await receive()  # the (empty) body
        _note("polled " + await _poll(receive))
        return
    with _lock:
        body = ",".join(_seen).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


async def _poll(receive) -> str:
    """Starlette's request.is_disconnected(), in a loop: a receive() cancelled at once."""
    for _ in range(POLLS):
        message = {}
        with anyio.CancelScope() as scope:
            scope.cancel()
            message = await receive()
        if message.get("type") == "http.disconnect":
            return "disconnect"
        await asyncio.sleep(0.01)
    return "nothing"


def _note(seen: str) -> None:
    with _lock:
        _seen.append(seen)
