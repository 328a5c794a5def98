"""WSGI apps the tests serve (imported by the server with --app-dir tests).

`?log=<file>` makes a call append a line to that file, so a test can tell
whether, and how often, the app ran; `?gate=<file>` makes a response wait for
that file to exist, so a test decides when a stream goes on.
"""

import io
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs

Environ = dict[str, Any]
StartResponse = Callable[..., Callable[[bytes], None]]
TEXT = [("Content-Type", "text/plain")]


class Boom(Exception):
    """Raised by the failing routes."""


def _query(environ: Environ) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(environ["QUERY_STRING"]).items()}


def _log(path: str | None, line: str) -> None:
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")


def _wait_for(path: str) -> None:
    deadline = time.monotonic() + 20
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.01)


def _environ_json(environ: Environ) -> bytes:
    plain = {k: v for k, v in environ.items() if isinstance(v, (str, bool, int, tuple))}
    plain["wsgi.input"] = type(environ["wsgi.input"]).__name__
    plain["wsgi.file_wrapper"] = environ["wsgi.file_wrapper"].__name__
    plain["wsgi.errors"] = environ["wsgi.errors"] is sys.stderr
    return json.dumps(plain).encode()


def _read_body(environ: Environ, how: str) -> bytes:
    body = environ["wsgi.input"]
    if how == "read3":
        parts = []
        while part := body.read(3):
            parts.append(part)
        return b"|".join(parts)
    if how == "readline":
        return b"|".join(iter(body.readline, b""))
    if how == "readline4":
        return b"|".join(iter(lambda: body.readline(4), b""))
    if how == "readlines":
        return b"|".join(body.readlines())
    if how == "iter":
        return b"|".join(body)
    return body.read()


class ClosingBody:
    """A response iterable whose close() leaves a trace in a file."""

    def __init__(self, blocks: list[bytes], log: str | None, fail: bool = False) -> None:
        self.blocks = blocks
        self.log = log
        self.fail = fail

    def __iter__(self) -> Iterator[bytes]:
        yield from self.blocks
        if self.fail:
            raise Boom("failed while iterating")

    def close(self) -> None:
        _log(self.log, "closed")


def _stream(query: dict[str, str]) -> Iterator[bytes]:
    yield b"first\n"
    if "gate" in query:
        _wait_for(query["gate"])
    yield b""  # empty blocks are skipped
    yield b"second\n"


def _exc_info(environ: Environ, start_response: StartResponse, after_body: bool) -> Any:
    write = start_response("200 OK", TEXT)
    if after_body:
        write(b"partial")
    try:
        raise Boom("app failure")
    except Boom:
        start_response("503 Service Unavailable", TEXT, sys.exc_info())
    return [b"app error page"]


def app(environ: Environ, start_response: StartResponse) -> Any:
    """A router over small behaviours the tests need, keyed by PATH_INFO."""
    query = _query(environ)
    _log(query.get("log"), f"{environ['REQUEST_METHOD']} {environ['PATH_INFO']}")
    path = environ["PATH_INFO"]
    if path == "/environ" or path.startswith("/environ/"):
        start_response("200 OK", [("Content-Type", "application/json")])
        return [_environ_json(environ)]
    if path == "/echo":
        body = _read_body(environ, query.get("how", "read"))
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [body]
    if path == "/count-body":
        total = sum(len(block) for block in iter(lambda: environ["wsgi.input"].read(65536), b""))
        start_response("200 OK", TEXT)
        return [str(total).encode()]
    if path == "/ignore-body":
        start_response("200 OK", TEXT)
        return [b"ignored"]
    if path == "/write":
        write = start_response("200 OK", TEXT)
        write(b"written ")
        write(b"")
        write(bytearray(b"then "))
        return [b"returned"]
    if path == "/stream":
        start_response("200 OK", TEXT)
        return _stream(query)
    if path == "/length":
        start_response("200 OK", [*TEXT, ("Content-Length", "12")])
        return iter([b"fixed ", b"", b"length"])
    if path == "/list":
        start_response("201 Created", [*TEXT, ("X-Multi", "a"), ("X-Multi", "b")])
        return [b"one ", b"two ", b"three"]
    if path == "/empty":
        start_response("204 No Content", [])
        return []
    if path == "/file":
        start_response("200 OK", TEXT)
        return environ["wsgi.file_wrapper"](io.BytesIO(b"x" * 200_000), 8192)
    if path == "/close":
        start_response("200 OK", TEXT)
        return ClosingBody([b"closing ", b"body"], query.get("log"), fail="fail" in query)
    if path == "/raise-before":
        raise Boom("before start_response")
    if path == "/raise-after-start":
        start_response("200 OK", TEXT)
        raise Boom("after start_response, before the body")
    if path == "/raise-mid-stream":
        start_response("200 OK", TEXT)
        return ClosingBody([b"partial"], query.get("log"), fail=True)
    if path == "/exc-info":
        return _exc_info(environ, start_response, after_body=False)
    if path == "/exc-info-after-body":
        return _exc_info(environ, start_response, after_body=True)
    if path == "/no-start-response":
        return [b"nobody started me"]
    if path == "/str-body":
        start_response("200 OK", TEXT)
        return ["not bytes"]
    if path == "/bad-status":
        start_response("OK", TEXT)
        return [b""]
    if path == "/cookie":  # headers as Django's handler gives them: a cookie with a space first
        cookie = SimpleCookie({"csrftoken": "abc"})["csrftoken"].output(header="")
        start_response("200 OK", [*TEXT, ("Set-Cookie", cookie), ("X-Padded", "\t padded \t")])
        return [b"cookie"]
    if path == "/connection-close":
        start_response("200 OK", [*TEXT, ("Connection", "close")])
        return [b"bye"]
    if path == "/threads":  # the names of this process's threads, one a line
        start_response("200 OK", TEXT)
        return ["\n".join(sorted(t.name for t in threading.enumerate())).encode()]
    if path == "/big":  # the whole body in one block: a slow reader's end goes to the pool
        start_response("200 OK", TEXT)
        return [b"x" * int(environ["QUERY_STRING"] or 1048576)]
    if path == "/thread":
        start_response("200 OK", TEXT)
        return [f"{query.get('n', '')} {threading.current_thread().name}".encode()]
    if path == "/ident":  # which thread: a body in an iterator with its length, as Flask's
        body = str(threading.get_ident()).encode()
        start_response("200 OK", [*TEXT, ("Content-Length", str(len(body)))])
        return iter([body])
    start_response("200 OK", TEXT)
    return [b"hello wsgi"]


class FlaskLike:
    """An app object whose __call__(environ, start_response) is sync, as Flask's and Django's."""

    def __call__(self, environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", TEXT)
        return [b"flask-like " + environ["PATH_INFO"].encode("latin-1")]


flask_like = FlaskLike()


def wsgi_with_default(environ: Environ, start_response: StartResponse, extra: Any = None) -> Any:
    """Three positional parameters: auto-detection takes it for ASGI 2; --interface wsgi works."""
    start_response("200 OK", TEXT)
    return [b"explicit wsgi"]


class ASGI2App:
    """ASGI 2: the class is called with the scope, the instance with receive and send."""

    def __init__(self, scope: dict[str, Any]) -> None:
        self.scope = scope

    async def __call__(self, receive: Any, send: Any) -> None:
        if self.scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"asgi2 " + self.scope["raw_path"]})


def make_flask_app() -> Any:
    """A real Flask app (served with --factory where Flask is installed)."""
    import flask

    flask_app = flask.Flask("apps_wsgi")

    @flask_app.post("/form")
    def form() -> Any:
        return {"form": flask.request.form.to_dict(), "url": flask.request.url}

    return flask_app
