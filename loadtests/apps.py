"""Benchmark apps: plain ASGI 3 callables, so every server under test runs identical code.

No framework and no dependencies: what is measured is the server, not the app. Every app
completes the lifespan protocol, because some servers refuse to serve (or log a warning per
start) when an app fails it.

Each app has a WSGI (PEP 3333) twin, `<name>_wsgi`, with the same response bytes, for the
WSGI servers (gunicorn gthread, pounce-sync --interface wsgi).
"""

import json
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Environ = dict[str, Any]
StartResponse = Callable[[str, list[tuple[str, str]]], object]

HELLO_BODY = b"Hello, world!"
BIG_BODY = b"x" * 65536
TEXT = b"text/plain; charset=utf-8"
JSON = b"application/json"


def _start(content_type: bytes, length: int) -> Message:
    """The response head as an ASGI message; built per response so no server can share it."""
    headers = [(b"content-type", content_type), (b"content-length", str(length).encode())]
    return {"type": "http.response.start", "status": 200, "headers": headers}


async def _respond(send: Send, content_type: bytes, body: bytes) -> None:
    await send(_start(content_type, len(body)))
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    """Acknowledge startup and shutdown; the apps hold no resources."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    """Plain text "Hello, world!": the cost of the server's own request path."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    await _respond(send, TEXT, HELLO_BODY)


async def json_app(scope: Scope, receive: Receive, send: Send) -> None:
    """A small JSON document serialised per request, as a real handler would."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    await _respond(send, JSON, json.dumps({"message": "Hello, world!"}).encode())


async def big(scope: Scope, receive: Receive, send: Send) -> None:
    """A 64 KiB body: measures the write path rather than per-request overhead."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    await _respond(send, TEXT, BIG_BODY)


async def upload(scope: Scope, receive: Receive, send: Send) -> None:
    """Read the whole request body and answer with its length: measures the read path."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    size = 0
    more_body = True
    while more_body:
        message = await receive()
        size += len(message.get("body", b""))
        more_body = message.get("more_body", False)
    await _respond(send, TEXT, str(size).encode())


def _wsgi_respond(start_response: StartResponse, content_type: bytes, body: bytes) -> list[bytes]:
    headers = [("Content-Type", content_type.decode()), ("Content-Length", str(len(body)))]
    start_response("200 OK", headers)
    return [body]


def hello_wsgi(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """WSGI twin of `hello`."""
    return _wsgi_respond(start_response, TEXT, HELLO_BODY)


def json_wsgi(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """WSGI twin of `json_app`."""
    return _wsgi_respond(start_response, JSON, json.dumps({"message": "Hello, world!"}).encode())


def big_wsgi(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """WSGI twin of `big`."""
    return _wsgi_respond(start_response, TEXT, BIG_BODY)


def upload_wsgi(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """WSGI twin of `upload`: reads exactly CONTENT_LENGTH bytes, as PEP 3333 asks."""
    remaining = int(environ.get("CONTENT_LENGTH") or 0)
    stream = environ["wsgi.input"]
    size = 0
    while remaining > 0:
        chunk = stream.read(min(remaining, 65536))
        if not chunk:
            break
        size += len(chunk)
        remaining -= len(chunk)
    return _wsgi_respond(start_response, TEXT, str(size).encode())


HOSTILE_CHUNK = b"x" * 65536
HOSTILE_SIZE = 20 * 1024 * 1024  # far more than any socket buffer holds


async def hostile(scope: Scope, receive: Receive, send: Send) -> None:
    """hostile_clients.py: 20 MiB streamed (/stream) or in one message (/whole); else hello."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    path = scope["path"]
    if path == "/whole":
        await _respond(send, TEXT, b"x" * HOSTILE_SIZE)
    elif path == "/stream":
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", TEXT)]}
        )
        for _ in range(HOSTILE_SIZE // len(HOSTILE_CHUNK)):
            await send({"type": "http.response.body", "body": HOSTILE_CHUNK, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    else:
        await _respond(send, TEXT, HELLO_BODY)
