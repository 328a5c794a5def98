"""Apps for tests/test_uvicorn_habits.py and the gunicorn worker class, routed by path.

/env?name=X     the variable X of the serving process's environment ("<unset>" if none)
/at-import      $HABITS_AT_IMPORT as it was when this module was imported
/pid            the serving process's pid
/together       "together" once a second request to it is in the app at the same time,
                "alone" if none comes within 30 s (two worker threads, or one)
/gil            "True" or "False": whether the serving process runs with the GIL
/slow?s=N       answers after N seconds (a request in flight during a stop or reload);
                "slow <pid>" goes to $HABITS_SLOW_LOG first, so a test knows it started
/stream?n=N     N chunks, the last after the response started (a streaming response)
websocket       echoes every text message

$HABITS_LIFESPAN_LOG names a file that gets "startup <pid>" and "shutdown <pid>" lines
from the lifespan protocol, one per worker process.
"""

import asyncio
import os
import sys
import threading
from typing import Any
from urllib.parse import parse_qs

Scope = dict[str, Any]
AT_IMPORT = os.environ.get("HABITS_AT_IMPORT", "<unset>")
_PAIR = threading.Barrier(2, timeout=30)


def _params(scope: Scope) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}


def _log(line: str, variable: str = "HABITS_LIFESPAN_LOG") -> None:
    path = os.environ.get(variable)
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"{line} {os.getpid()}\n")


async def _lifespan(receive, send) -> None:
    while True:
        message = await receive()
        kind = message["type"].rpartition(".")[2]  # startup / shutdown
        _log(kind)
        await send({"type": f"lifespan.{kind}.complete"})
        if kind == "shutdown":
            return


async def _text(send, body: str, status: int = 200) -> None:
    headers = [(b"content-type", b"text/plain")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body.encode()})


async def _stream(send, n: int) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    for i in range(n):
        await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": b"chunk %d\n" % i, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def _websocket(receive, send) -> None:
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": "echo: " + message["text"]})


async def app(scope: Scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] == "websocket":
        await _websocket(receive, send)
        return
    path, params = scope["path"].removeprefix(scope.get("root_path", "")), _params(scope)
    if path == "/env":
        await _text(send, os.environ.get(params["name"], "<unset>"))
    elif path == "/at-import":
        await _text(send, AT_IMPORT)
    elif path == "/pid":
        await _text(send, str(os.getpid()))
    elif path == "/together":
        try:
            _PAIR.wait()  # blocks this worker thread: the point is to need another
            await _text(send, "together")
        except threading.BrokenBarrierError:
            _PAIR.reset()
            await _text(send, "alone")
    elif path == "/gil":
        await _text(send, str(getattr(sys, "_is_gil_enabled", lambda: True)()))
    elif path == "/slow":
        _log("slow", "HABITS_SLOW_LOG")
        await asyncio.sleep(float(params.get("s", "1")))
        await _text(send, "slow done")
    elif path == "/stream":
        await _stream(send, int(params.get("n", "3")))
    else:
        await _text(send, "habits ok")


def wsgi_app(environ: dict[str, Any], start_response) -> list[bytes]:
    """The same /pid and plain answer for WSGI."""
    body = str(os.getpid()).encode() if environ["PATH_INFO"] == "/pid" else b"wsgi ok"
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]
