"""The app `lifecycle.py` loads: a short answer naming the process, an endless event
stream and a WebSocket echo, so that plain requests and long-lived streams share one
server through a restart."""

import asyncio
import os
from typing import Any


async def app(scope: dict[str, Any], receive, send) -> None:
    kind = scope["type"]
    if kind == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    if kind == "websocket":
        await _echo(receive, send)
    elif scope["path"] == "/events":
        await _events(receive, send)
    else:
        pid = str(os.getpid()).encode()  # a forked worker is not the process that imported us
        headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(pid))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": pid})


async def _events(receive, send) -> None:
    headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    gone = asyncio.ensure_future(_disconnected(receive))
    try:
        n = 0
        while not gone.done():
            await send(
                {"type": "http.response.body", "body": b"data: %d\n\n" % n, "more_body": True}
            )
            n += 1
            await asyncio.wait([gone], timeout=0.2)
        await send({"type": "http.response.body", "body": b""})
    except OSError:
        pass
    finally:
        gone.cancel()


async def _disconnected(receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _echo(receive, send) -> None:
    while True:
        message = await receive()
        if message["type"] == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif message["type"] == "websocket.receive":
            await send({"type": "websocket.send", "text": message.get("text") or ""})
        else:
            return
