"""Build the ASGI `http` scope from a parsed request head. Pure: no I/O."""

from typing import Any
from urllib.parse import unquote

from pounce_sync.http1 import Request

from .proxy import TrustedProxies, apply_to_scope, resolve

_HTTP_VERSIONS = {b"1.1": "1.1", b"1.0": "1.0", b"2": "2", b"3": "3"}


def split_target(target: bytes) -> tuple[bytes, bytes]:
    """(raw path, query string) for origin-, absolute- and asterisk-form targets."""
    if target[:1] != b"/" and target != b"*":
        # absolute-form: scheme://authority[/path][?query]
        rest = target.split(b"://", 1)[1]
        slash = rest.find(b"/")
        question = rest.find(b"?")
        if slash < 0 or 0 <= question < slash:
            target = b"/" + (rest[question:] if question >= 0 else b"")
        else:
            target = rest[slash:]
    path, _, query = target.partition(b"?")
    return path, query


def build_http_scope(
    request: Request,
    *,
    scheme: str,
    client: tuple[str, int] | None,
    server: tuple[str, int] | None,
    root_path: str,
    state: dict[str, Any] | None,
    extensions: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The scope every protocol starts from; `add_request_context` finishes it."""
    raw_path, query = split_target(request.target)
    path = raw_path.decode("ascii")
    if "%" in path:
        path = unquote(path)
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": _HTTP_VERSIONS[request.http_version],
        "server": server,
        "client": client,
        "scheme": scheme,
        "method": request.method.decode("ascii"),
        "root_path": root_path,
        "path": root_path + path,
        "raw_path": raw_path,
        "query_string": query,
        "headers": list(request.headers),
    }
    if state is not None:
        scope["state"] = state.copy()
    if extensions is not None:
        scope["extensions"] = extensions
    return scope


def add_request_context(
    scope: dict[str, Any],
    request: Request,
    request_id: bytes | None,
    trusted: TrustedProxies | None,
) -> dict[str, Any]:
    """The request ID and what a trusted proxy says: the same step on every protocol.

    `trusted` None: proxy headers are off, or the head names no proxy field.
    """
    if request_id is not None:
        scope["extensions"] = {
            **scope.get("extensions", {}),
            "request_id": {"id": request_id.decode("ascii")},
        }
    if trusted is not None:
        peer = scope["client"][0] if scope["client"] else None
        forwarded = resolve(trusted, peer, request.headers)
        if forwarded is not None:
            apply_to_scope(scope, forwarded)
    return scope


def build_websocket_scope(http_scope: dict[str, Any]) -> dict[str, Any]:
    """The ASGI `websocket` scope for an upgrade request, from its `http` scope.

    Built from the http scope so proxy headers and the request ID apply alike.
    """
    scope = dict(http_scope)
    scope["type"] = "websocket"
    scope["scheme"] = "wss" if http_scope["scheme"] == "https" else "ws"
    del scope["method"]
    subprotocols: list[str] = []
    for name, value in http_scope["headers"]:
        if name == b"sec-websocket-protocol":
            subprotocols += [p.strip() for p in value.decode("latin-1").split(",") if p.strip()]
    scope["subprotocols"] = subprotocols
    extensions = dict(scope.get("extensions") or {})
    extensions["websocket.http.response"] = {}
    scope["extensions"] = extensions
    return scope
