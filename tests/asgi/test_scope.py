"""The ASGI http scope, unit-tested and as an app receives it over a real socket."""

import json

import pytest

from pounce_sync.asgi.scope import build_http_scope, split_target
from pounce_sync.http1 import ParserLimits, parse_head

from ..http_client import ResponseReader, request
from ..server_process import ServerProcess, running_server


@pytest.mark.parametrize(
    ("target", "path", "query"),
    [
        (b"/a/b?x=1&y=2", b"/a/b", b"x=1&y=2"),
        (b"/", b"/", b""),
        (b"/only?", b"/only", b""),
        (b"http://example.com/p?q", b"/p", b"q"),
        (b"http://example.com", b"/", b""),
        (b"http://example.com?q=1", b"/", b"?q=1"[1:]),
        (b"*", b"*", b""),
    ],
)
def test_split_target(target: bytes, path: bytes, query: bytes) -> None:
    assert split_target(target) == (path, query)


def _scope(head: bytes, **kwargs) -> dict:
    request = parse_head(head, ParserLimits())
    defaults = dict(
        scheme="http", client=("1.2.3.4", 5), server=("127.0.0.1", 80), root_path="", state=None
    )
    return build_http_scope(request, **{**defaults, **kwargs})


def test_scope_fields() -> None:
    scope = _scope(b"GET /caf%C3%A9/a%2Fb?x=%20 HTTP/1.1\r\nHost: h\r\nX-Thing: V")
    assert scope["type"] == "http"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert scope["http_version"] == "1.1"
    assert scope["method"] == "GET"
    assert scope["path"] == "/café/a/b"
    assert scope["raw_path"] == b"/caf%C3%A9/a%2Fb"
    assert scope["query_string"] == b"x=%20"
    assert scope["headers"] == [(b"host", b"h"), (b"x-thing", b"V")]
    assert scope["client"] == ("1.2.3.4", 5)
    assert scope["server"] == ("127.0.0.1", 80)
    assert "state" not in scope


def test_root_path_prefixes_path() -> None:
    scope = _scope(b"GET /x HTTP/1.1\r\nHost: h", root_path="/api")
    assert scope["root_path"] == "/api"
    assert scope["path"] == "/api/x"
    assert scope["raw_path"] == b"/x"


def test_state_is_a_shallow_copy() -> None:
    state = {"db": object()}
    scope = _scope(b"GET / HTTP/1.1\r\nHost: h", state=state)
    assert scope["state"] == state and scope["state"] is not state
    assert scope["state"]["db"] is state["db"]


def test_scope_over_the_wire(server: ServerProcess) -> None:
    response = request(
        server,
        b"GET /scope?a=1 HTTP/1.0\r\nHost: h\r\nX-Upper-Case: Keep\r\n\r\n",
    )
    scope = json.loads(response.body)
    assert scope["http_version"] == "1.0"
    assert scope["scheme"] == "http"
    assert scope["server"] == ["127.0.0.1", server.port]
    assert scope["client"][0] == "127.0.0.1"
    assert ["x-upper-case", "Keep"] in scope["headers"]
    assert scope["query_string"] == "a=1"
    assert scope["state"] == {}


def test_root_path_flag() -> None:
    with running_server("--root-path", "/mount") as srv:
        response = request(srv, b"GET /scope HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    scope = json.loads(response.body)
    assert scope["root_path"] == "/mount"
    assert scope["path"] == "/mount/scope"


def test_lifespan_state_reaches_requests_as_a_copy() -> None:
    with running_server(app="apps:stateful") as srv:
        bodies = [
            request(srv, b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").body
            for _ in range(3)
        ]
    for body in bodies:
        # each request saw counter 0 and incremented its own copy to 1
        assert json.loads(body) == {"greeting": "hello from lifespan", "counter": 1}


def test_a_repeated_head_gets_a_fresh_scope_each_time() -> None:
    """Nothing an app changed in one request's scope may show in the next."""
    head = b"GET /same?x=1 HTTP/1.1\r\nHost: h\r\n\r\n"
    with running_server(app="apps_extra:scope_mutator") as srv, srv.connect(10.0) as sock:
        reader = ResponseReader(sock)
        bodies = []
        for _ in range(3):
            sock.sendall(head)
            bodies.append(json.loads(reader.read_response().body))
    assert bodies[0] == bodies[1] == bodies[2]
    assert bodies[0]["path"] == "/same" and "extra" not in bodies[0]
    assert bodies[0]["state"] == {"counter": 0}
    assert bodies[0]["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert ["x-added", "1"] not in bodies[0]["headers"]
