"""A small ASGI site for the locust profiles: a page, a JSON API, uploads and SSE.

Plain ASGI with no framework, so that what a profile measures is the server. Each
endpoint stands for one kind of real traffic (see loadtests/locustfile.py):

    GET  /                  HTML page (about 1 KiB)     GET  /static/app.css  stylesheet
    GET  /api/items         JSON list                   GET  /api/items/<id>  one item, or 404
    POST /api/items         JSON body -> 201 + item     POST /upload          body -> size, sha256
    GET  /events            Server-Sent Events: `n` events (default 5) 20 ms apart, then ends

    pounce-sync --app-dir loadtests demo_app:app

Items live in memory, per process: in process mode each worker has its own list, so
clients read back only ids that the same response told them.
"""

import asyncio
import hashlib
import itertools
import json
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MAX_UPLOAD = 8 * 1024 * 1024
MAX_EVENTS = 100
EVENT_INTERVAL_S = 0.02
PAGE = (
    b"<!doctype html><html><head><meta charset=utf-8><title>demo</title>"
    b'<link rel=stylesheet href="/static/app.css"></head><body><h1>pounce-sync demo</h1>'
    + b"<p>Lorem ipsum dolor sit amet, consectetur adipiscing elit.</p>" * 14
    + b"</body></html>"
)
CSS = b"body{font-family:sans-serif;margin:2em}h1{color:#345}" * 8
HTML, CSS_TYPE, JSON_TYPE = b"text/html; charset=utf-8", b"text/css", b"application/json"

_items: dict[int, dict[str, Any]] = {i: {"id": i, "name": f"item {i}", "price": i} for i in (1, 2)}
_ids = itertools.count(3)
_items_lock = threading.Lock()  # worker threads run in parallel on a free-threaded build


async def _respond(send: Send, status: int, body: bytes, content_type: bytes) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _json(send: Send, status: int, value: Any) -> None:
    await _respond(send, status, json.dumps(value).encode(), JSON_TYPE)


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None once it grows past `limit`."""
    chunks, size = [], 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def _create_item(receive: Receive, send: Send) -> None:
    body = await _read_body(receive, 64 * 1024)
    try:
        fields = json.loads(body) if body is not None else None
        item = {"name": str(fields["name"]), "price": float(fields["price"])}
    except (ValueError, TypeError, KeyError):
        await _json(send, 400, {"error": "expected JSON {name, price}"})
        return
    with _items_lock:
        item["id"] = next(_ids)
        _items[item["id"]] = item
    await _json(send, 201, item)


async def _get_item(path: str, send: Send) -> None:
    tail = path.removeprefix("/api/items/")
    with _items_lock:
        item = _items.get(int(tail)) if tail.isdigit() else None
    if item is None:
        await _json(send, 404, {"error": "no such item"})
    else:
        await _json(send, 200, item)


async def _list_items(send: Send) -> None:
    with _items_lock:
        latest = sorted(_items)[-20:]
        items = [_items[i] for i in latest]
    await _json(send, 200, {"items": items, "count": len(items)})


async def _upload(receive: Receive, send: Send) -> None:
    body = await _read_body(receive, MAX_UPLOAD)
    if body is None:
        await _json(send, 413, {"error": f"larger than {MAX_UPLOAD} bytes"})
        return
    await _json(send, 200, {"bytes": len(body), "sha256": hashlib.sha256(body).hexdigest()})


async def _events(scope: Scope, send: Send) -> None:
    """A short SSE stream that ends by itself, like a job's progress feed."""
    query = parse_qs(scope["query_string"].decode())
    raw = query.get("n", ["5"])[0]
    count = min(int(raw), MAX_EVENTS) if raw.isdigit() else 5
    headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    for i in range(count):
        event = b'id: %d\nevent: tick\ndata: {"n": %d}\n\n' % (i, i)
        await send({"type": "http.response.body", "body": event, "more_body": True})
        await asyncio.sleep(EVENT_INTERVAL_S)
    await send({"type": "http.response.body", "body": b"event: end\ndata: {}\n\n"})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        await send({"type": message["type"] + ".complete"})
        if message["type"] == "lifespan.shutdown":
            return


async def _route(scope: Scope, receive: Receive, send: Send) -> None:
    method, path = scope["method"], scope["path"]
    if method == "GET" and path == "/":
        await _respond(send, 200, PAGE, HTML)
    elif method == "GET" and path == "/static/app.css":
        await _respond(send, 200, CSS, CSS_TYPE)
    elif method == "GET" and path == "/api/items":
        await _list_items(send)
    elif method == "POST" and path == "/api/items":
        await _create_item(receive, send)
    elif method == "GET" and path.startswith("/api/items/"):
        await _get_item(path, send)
    elif method == "POST" and path == "/upload":
        await _upload(receive, send)
    elif method == "GET" and path == "/events":
        await _events(scope, send)
    else:
        await _json(send, 404, {"error": "not found"})


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
    elif scope["type"] == "http":
        await _route(scope, receive, send)
