"""Extra ASGI apps for the keep-alive and timeout tests (served as `apps_extra:NAME`)."""

import os
import threading
from typing import Any

from lifespan_helper import serve_lifespan

Scope = dict[str, Any]

# Set by a request to /release; a request to /hold blocks its worker thread until then.
_released = threading.Event()
_holding = 0  # requests blocked in /hold right now
_holding_lock = threading.Lock()
HOLD_LIMIT = 60.0  # a forgotten /release must not wedge a worker forever


async def _respond(send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": body})


async def hold(scope: Scope, receive, send) -> None:
    """/hold?SECONDS blocks its worker thread (no await) until /release or SECONDS pass.

    /holding counts the requests blocked now; /thread names the thread serving it.
    If $POUNCE_TEST_HOLD_MARKER names a file, /hold appends a line to it once it is
    blocking, for tests whose only worker is the one being held.
    """
    if scope["type"] == "lifespan":
        await serve_lifespan(receive, send)
        return
    path = scope["path"]
    if path == "/hold":
        global _holding
        limit = float(scope["query_string"] or HOLD_LIMIT)
        with _holding_lock:
            _holding += 1
        marker = os.environ.get("POUNCE_TEST_HOLD_MARKER")
        if marker:
            with open(marker, "a") as f:
                f.write("holding\n")
        try:
            released = _released.wait(limit)
        finally:
            with _holding_lock:
                _holding -= 1
        await _respond(send, 200, b"released" if released else b"hold limit reached")
    elif path == "/holding":
        await _respond(send, 200, b"%d" % _holding)
    elif path == "/release":
        _released.set()
        await _respond(send, 200, b"ok")
    elif path == "/thread":  # which worker thread served this request
        await _respond(send, 200, threading.current_thread().name.encode())
    else:
        await _respond(send, 200, b"Hello, world!")


async def scope_mutator(scope: Scope, receive, send) -> None:
    """Answers with the scope it got as JSON, then changes every part of it it can.

    A server that reuses anything of one request's scope for the next would show the
    changes in the next answer.
    """
    if scope["type"] == "lifespan":
        await serve_lifespan(receive, send, lambda: scope["state"].update(counter=0))
        return
    import json

    seen = {k: v for k, v in scope.items() if k not in ("client", "server")}
    seen["headers"] = [[n.decode(), v.decode()] for n, v in scope["headers"]]
    seen["raw_path"] = scope["raw_path"].decode()
    seen["query_string"] = scope["query_string"].decode()
    body = json.dumps(seen, sort_keys=True).encode()
    scope["headers"].append((b"x-added", b"1"))
    scope["asgi"]["mutated"] = True
    scope["state"]["counter"] += 1
    scope["path"] = "/changed"
    scope["extra"] = 1
    await _respond(send, 200, body)


_thread_marks = threading.local()
_fresh_threads = 0  # anyio worker threads that ran a function for the first time
_fresh_lock = threading.Lock()


def _mark_thread() -> int:
    """Runs in an anyio worker thread; counts the threads that were new to it."""
    global _fresh_threads
    if not getattr(_thread_marks, "seen", False):
        _thread_marks.seen = True
        with _fresh_lock:
            _fresh_threads += 1
    return _fresh_threads


async def to_thread(scope: Scope, receive, send) -> None:
    """What a sync Starlette/FastAPI route does: the handler runs via anyio.to_thread.

    The body is how many distinct worker threads anyio has used so far.
    """
    if scope["type"] == "lifespan":
        await serve_lifespan(receive, send)
        return
    import anyio.to_thread

    fresh = await anyio.to_thread.run_sync(_mark_thread)
    await _respond(send, 200, b"%d" % fresh)
