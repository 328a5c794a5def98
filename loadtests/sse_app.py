"""An SSE fan-out app: each subscriber gets an event every `interval` seconds until it leaves."""

import asyncio
from typing import Any
from urllib.parse import parse_qs


async def app(scope: dict[str, Any], receive, send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    query = parse_qs(scope["query_string"].decode())
    interval = float(query.get("interval", ["0.1"])[0])
    limit = int(query.get("n", ["0"])[0]) or None  # n=1: one event, then the end
    headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    gone = asyncio.ensure_future(_disconnected(receive))
    n = 0
    try:
        while not gone.done() and (limit is None or n < limit):
            event = b"id: %d\ndata: tick %d\n\n" % (n, n)
            await send({"type": "http.response.body", "body": event, "more_body": True})
            n += 1
            await asyncio.sleep(interval)
        if limit is not None:
            await send({"type": "http.response.body", "body": b""})
    except OSError:
        pass  # the subscriber left while we were writing
    finally:
        gone.cancel()


async def _disconnected(receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
