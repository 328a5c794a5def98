"""An app that waits in receive() for the client to disconnect, and reports what it saw."""

import threading

_seen: list[str] = []
_lock = threading.Lock()


async def app(scope, receive, send) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/wait":
        await receive()  # the (empty) body
        message = await receive()  # blocks until the client disconnects
        with _lock:
            _seen.append(message["type"].split(".")[-1])
        return
    with _lock:
        body = ",".join(_seen).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})
