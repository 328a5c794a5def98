"""Apps for `pounce-sync bench`: plain ASGI callables with no dependencies.

`hello` measures the server's own request path; `cpu` adds a fixed amount of pure-Python
work per request, so that worker threads can only run it in parallel when the GIL is off.
Both answer `RUNTIME_PATH` with the interpreter facts of the process that serves them,
because an import in the app can re-enable the GIL of a free-threaded build: asking the
interpreter separately (`python -c`) would not see that.
"""

import json
import sys
import sysconfig
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from pounce_sync.server.runtime import gil_enabled

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

RUNTIME_PATH = "/_bench/runtime"
CPU_ITERATIONS = 20_000  # about 1 ms on CPython 3.11, 1.3 ms on 3.13t (2026 test VM)
HELLO_BODY = b"Hello, world!"
TEXT = b"text/plain; charset=utf-8"


def sum_of_squares(n: int) -> int:
    """The CPU-bound work: a plain loop, so no C function releases the GIL meanwhile."""
    total = 0
    for i in range(n):
        total += i * i
    return total


def runtime_facts() -> dict[str, Any]:
    return {
        "python": sys.version.split()[0],
        "free_threaded_build": bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
        "gil_enabled": gil_enabled(),
    }


async def _respond(send: Send, body: bytes, content_type: bytes = TEXT) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    """Acknowledge startup and shutdown: the apps hold no resources."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _answer_runtime(send: Send) -> None:
    await _respond(send, json.dumps(runtime_facts()).encode(), b"application/json")


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    """Plain text "Hello, world!": the cost of the server itself."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
    elif scope["path"] == RUNTIME_PATH:
        await _answer_runtime(send)
    else:
        await _respond(send, HELLO_BODY)


async def cpu(scope: Scope, receive: Receive, send: Send) -> None:
    """About 1 ms of pure-Python work per request, then its result as text."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
    elif scope["path"] == RUNTIME_PATH:
        await _answer_runtime(send)
    else:
        await _respond(send, str(sum_of_squares(CPU_ITERATIONS)).encode())
