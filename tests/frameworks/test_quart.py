"""Quart served by pounce-sync, answer for answer against uvicorn: pages, JSON, errors,
a WebSocket, and its before/after_serving hooks (the ASGI lifespan) once per worker."""

import json
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

from ..http_client import request
from ..server_process import ServerProcess
from .asgi_apps.reference import (
    assert_same,
    lines_of,
    running_pounce,
    running_uvicorn,
    same_answer,
    stop_gracefully,
)

APP = "frameworks.asgi_apps.quart_app:app"
FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
TIMEOUT = 30.0


@pytest.fixture(scope="module", params=["thread", "process"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    work = tmp_path_factory.mktemp(f"quart-{request.param}")
    with running_pounce(APP, work, "--workers", "2", "--worker-mode", request.param) as srv:
        yield srv


@pytest.fixture(scope="module")
def uvicorn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with running_uvicorn(APP, tmp_path_factory.mktemp("quart-uvicorn")) as srv:
        yield srv


def get(path: str, *fields: str) -> bytes:
    head = "".join(f"{field}\r\n" for field in fields)
    return f"GET {path} HTTP/1.1\r\nHost: test\r\n{head}Connection: close\r\n\r\n".encode()


def post(path: str, body: bytes, content_type: str = "application/json") -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: {content_type}\r\n"
    return f"{head}Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body


@pytest.mark.parametrize(
    "raw",
    [
        get("/"),
        get("/hello/w%C3%B6rld?lang=de"),
        get("/nowhere"),
        get("/", "Accept-Encoding: gzip").replace(b"GET", b"HEAD", 1),
    ],
    ids=["page", "params", "404", "head"],
)
def test_get(server, uvicorn, raw: bytes) -> None:
    method = raw.split(b" ", 1)[0]
    same_answer(server, uvicorn, raw, method=method)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"b": [1, 2], "a": {"x": null}}', "application/json"),
        (b'{"broken": ', "application/json"),  # Quart's 400
        (b"[1, 2]", "application/json"),  # valid JSON, not an object: 422
        (b'{"a": 1}', "text/plain"),  # not declared JSON: get_json() gives None
    ],
    ids=["object", "malformed", "list", "not-json"],
)
def test_json(server, uvicorn, body: bytes, content_type: str) -> None:
    answer = same_answer(server, uvicorn, post("/json", body, content_type), method=b"POST")
    assert answer.status in (200, 400, 422)


def test_method_not_allowed(server, uvicorn) -> None:
    """Werkzeug lists Allow from a set: its order follows each process's hash seed."""
    mine, theirs = request(server, get("/json")), request(uvicorn, get("/json"))
    assert_same(mine, theirs)
    assert sorted(mine.header(b"allow").split(b", ")) == [b"OPTIONS", b"POST"]
    assert sorted(theirs.header(b"allow").split(b", ")) == [b"OPTIONS", b"POST"]


def test_quart_answers_stay_on_the_worker_threads(server) -> None:
    """Quart sends each body as its whole Content-Length with more_body=True, then an empty
    last message: not a stream, so its paths are not sent to the AsyncPool."""
    for _ in range(3):
        thread = json.loads(request(server, get("/runtime")).body)["thread"]
        assert thread.startswith("worker-") and not thread.endswith("-streaming"), thread


def test_the_gil_stays_off_with_quart_imported(server) -> None:
    assert json.loads(request(server, get("/runtime")).body)["gil_enabled"] is (not FREE_THREADED)


@pytest.mark.parametrize("reference", [False, True], ids=["pounce-sync", "uvicorn"])
def test_websocket(server, uvicorn, reference: bool) -> None:
    target = uvicorn if reference else server
    with ws_connect(f"ws://{target.host}:{target.port}/ws?room=1", open_timeout=TIMEOUT) as ws:
        assert json.loads(ws.recv(TIMEOUT)) == {"path": "/ws", "args": {"room": "1"}}
        ws.send("hi")
        assert ws.recv(TIMEOUT) == "echo:hi"
        ws.send(b"\x00\x01" * 40000)
        assert ws.recv(TIMEOUT) == b"\x00\x01" * 40000
        ws.send("bye")
        with pytest.raises(ConnectionClosed):
            ws.recv(TIMEOUT)
    assert (ws.close_code, ws.close_reason) == (1000, "bye")


@pytest.mark.parametrize(("mode", "processes"), [("thread", 1), ("process", 2)])
def test_serving_hooks_run_once_per_worker(tmp_path: Path, mode: str, processes: int) -> None:
    """before_serving / after_serving are Quart's lifespan: once per process, and
    after_serving on SIGTERM. A server of its own, since only a stop shows shutdown."""
    with running_pounce(APP, tmp_path, "--workers", "2", "--worker-mode", mode) as srv:
        pids = {json.loads(request(srv, get("/runtime")).body)["pid"] for _ in range(6)}
        assert stop_gracefully(srv) == 0
    started = sorted(p.name.rsplit("-", 1)[1] for p in tmp_path.glob("quart-startup-*"))
    stopped = sorted(p.name.rsplit("-", 1)[1] for p in tmp_path.glob("quart-shutdown-*"))
    assert len(started) == processes and stopped == started
    assert {str(pid) for pid in pids} <= set(started)
    assert all(lines_of(tmp_path / f"quart-startup-{pid}") == ["started"] for pid in started)
