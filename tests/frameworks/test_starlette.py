"""Starlette served by pounce-sync, answer for answer against uvicorn.

StaticFiles (ranges, conditional requests, HEAD, directory redirects), server-sent
events with and without `Accept: text/event-stream` (the pool up front, or found
streaming on the sync path), a BaseHTTPMiddleware and a pure ASGI middleware on every
answer, and request.is_disconnected() seeing a client that left. One pounce-sync server
per worker mode and one uvicorn for the module.
"""

import json
import os
import socket
import sysconfig
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..http_client import ResponseReader, request
from ..server_process import ServerProcess
from .asgi_apps.reference import (
    lines_of,
    running_pounce,
    running_uvicorn,
    same_answer,
    wait_for,
)

APP = "frameworks.asgi_apps.starlette_app:app"
FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
TIMEOUT = 30.0
MTIME = 1_700_000_000  # the same mtime for every file: both servers give the same ETags
LAST_MODIFIED = "Tue, 14 Nov 2023 22:13:20 GMT"  # MTIME as an HTTP date
HELLO = b"hello, static world\n"
BIG = os.urandom(3 * 1024 * 1024 + 5)  # several of StaticFiles' 64 KiB body messages
MIDDLEWARE = (b"x-base-middleware", b"x-asgi-middleware")
STATIC = (b"etag", b"last-modified", b"accept-ranges", b"content-range", b"location")


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("starlette")
    files = {
        "static/hello.txt": HELLO,
        "static/big.bin": BIG,
        "static/sub/index.html": b"<h1>index</h1>\n",
        "static/404.html": b"<h1>not here</h1>\n",
    }
    for name, data in files.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_bytes(data)
        os.utime(work / name, (MTIME, MTIME))
    return work


@pytest.fixture(scope="module", params=["thread", "process"])
def server(request: pytest.FixtureRequest, work: Path) -> Iterator[ServerProcess]:
    with running_pounce(APP, work, "--workers", "2", "--worker-mode", request.param) as srv:
        yield srv


@pytest.fixture(scope="module")
def uvicorn(work: Path) -> Iterator[ServerProcess]:
    with running_uvicorn(APP, work) as srv:
        yield srv


def get(path: str, *fields: str, method: str = "GET", close: bool = True) -> bytes:
    head = "".join(f"{field}\r\n" for field in fields) + ("Connection: close\r\n" if close else "")
    return f"{method} {path} HTTP/1.1\r\nHost: test\r\n{head}\r\n".encode()


def post(path: str, body: bytes = b"", close: bool = True) -> bytes:
    head = get(path, f"Content-Length: {len(body)}", method="POST", close=close)
    return head + body


# -- StaticFiles ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "fields"),
    [
        ("/static/hello.txt", ()),
        ("/static/hello.txt", ("Range: bytes=0-4",)),
        ("/static/hello.txt", ("Range: bytes=-6",)),
        ("/static/hello.txt", ("Range: bytes=100-200",)),  # 416
        ("/static/hello.txt", ("Range: lines=1-2",)),  # not a bytes range: 400
        ("/static/hello.txt", ('If-None-Match: "nope"',)),
        ("/static/hello.txt", (f"If-Modified-Since: {LAST_MODIFIED}",)),  # 304
        ("/static/hello.txt", ("If-Modified-Since: Mon, 13 Nov 2023 00:00:00 GMT",)),  # 200
        ("/static/big.bin", ()),
        ("/static/big.bin", ("Range: bytes=1000000-2999999",)),
        ("/static/sub", ()),  # html=True: a redirect to the directory
        ("/static/sub/", ()),
        ("/static/missing.txt", ()),  # html=True: 404.html
        ("/static/../static/hello.txt", ()),
        ("/static/%2e%2e/starlette_app.py", ()),
    ],
)
def test_static_files(server, uvicorn, path: str, fields: tuple[str, ...]) -> None:
    same_answer(server, uvicorn, get(path, *fields), *STATIC, *MIDDLEWARE)


def test_static_file_304_for_its_own_etag(server, uvicorn) -> None:
    etag = request(server, get("/static/hello.txt")).header(b"etag").decode()
    raw = get("/static/hello.txt", f"If-None-Match: {etag}")
    answer = same_answer(server, uvicorn, raw, *STATIC)
    assert (answer.status, answer.body) == (304, b"")


@pytest.mark.parametrize("path", ["/static/hello.txt", "/static/big.bin"])
def test_static_file_head(server, uvicorn, path: str) -> None:
    raw = get(path, method="HEAD")
    answer = same_answer(server, uvicorn, raw, *STATIC, *MIDDLEWARE, method=b"HEAD")
    assert answer.body == b"" and int(answer.header(b"content-length")) > 0


def test_big_static_file_keeps_its_content_length(server, uvicorn) -> None:
    """Sent in many body messages, so it streams: with the app's Content-Length, not
    chunked, on the sync path and then (its path learned) on the AsyncPool."""
    for _ in range(2):
        answer = same_answer(server, uvicorn, get("/static/big.bin"), *STATIC)
        assert answer.body == BIG and answer.header(b"transfer-encoding") is None


def test_static_files_on_one_keep_alive_connection(server) -> None:
    with server.connect(TIMEOUT) as sock:
        reader = ResponseReader(sock)
        for path in ("/static/hello.txt", "/static/big.bin", "/static/hello.txt"):
            sock.sendall(get(path, close=False))
            answer = reader.read_response()
            assert answer.body == (BIG if path.endswith("bin") else HELLO)


# -- server-sent events --------------------------------------------------------------
ACCEPTS = pytest.mark.parametrize(
    "accept", [(), ("Accept: text/event-stream",)], ids=["no-accept", "accept"]
)


@ACCEPTS
def test_server_sent_events(server, uvicorn, accept: tuple[str, ...]) -> None:
    for _ in range(2):  # the second time, a path found streaming goes to the pool up front
        raw = get("/events?n=20", *accept)
        answer = same_answer(server, uvicorn, raw, b"cache-control", *MIDDLEWARE)
        assert answer.header(b"transfer-encoding") == b"chunked"
        assert answer.body.count(b"event: tick\n") == 20


@ACCEPTS
def test_server_sent_events_arrive_one_by_one(server, work: Path, accept: tuple[str, ...]) -> None:
    token = uuid.uuid4().hex
    with server.connect(TIMEOUT) as sock:
        sock.sendall(get(f"/events/gated/{token}", *accept))
        reader = ResponseReader(sock)
        head = reader.read_head()
        assert head.header(b"content-type") == b"text/event-stream; charset=utf-8"
        assert reader.read_chunk() == b"data: first\n\n"
        (work / f"release-{token}").touch()
        assert reader.read_chunk() == b"data: second\n\n"
        assert reader.read_chunk() is None


# -- request.is_disconnected() -------------------------------------------------------
@pytest.mark.parametrize("reference", [False, True], ids=["pounce-sync", "uvicorn"])
def test_is_disconnected_while_the_handler_works(server, uvicorn, work: Path, reference) -> None:
    token = uuid.uuid4().hex
    with (uvicorn if reference else server).connect(TIMEOUT) as sock:
        sock.sendall(post(f"/bare/wait/{token}", b"some body"))
        wait_for((work / f"waiting-{token}").exists, "the handler to start")
    done = work / f"disconnected-{token}"
    wait_for(done.exists, "the app to see the client go")
    assert lines_of(done) == ["before the response"]


@ACCEPTS
def test_is_disconnected_ends_an_endless_stream(server, work: Path, accept) -> None:
    token = uuid.uuid4().hex
    with server.connect(TIMEOUT) as sock:
        sock.sendall(get(f"/bare/events/endless/{token}", *accept))
        reader = ResponseReader(sock)
        assert reader.read_head().status == 200
        events = [reader.read_chunk() for _ in range(3)]
        assert events == [b"data: %d\n\n" % i for i in range(3)]
        sock.shutdown(socket.SHUT_RDWR)
    done = work / f"disconnected-{token}"
    wait_for(done.exists, "the app to see the client go")
    assert lines_of(done)[0].startswith("after ")


def test_is_disconnected_is_false_while_the_client_waits(server, uvicorn) -> None:
    answer = same_answer(server, uvicorn, post("/bare/connected", b"x" * 1000), method=b"POST")
    assert json.loads(answer.body) == {"disconnected": False}


# -- middleware and errors -----------------------------------------------------------
def test_both_middlewares_on_a_plain_answer(server, uvicorn) -> None:
    answer = same_answer(server, uvicorn, post("/echo", b"abc"), *MIDDLEWARE, method=b"POST")
    assert answer.header(b"x-base-middleware") == b"POST /echo"
    assert answer.header(b"x-asgi-middleware") == b"seen"
    assert json.loads(answer.body) == {"length": 3, "method": "POST"}


def test_the_gil_stays_off_with_starlette_imported(server) -> None:
    assert json.loads(request(server, get("/runtime")).body)["gil_enabled"] is (not FREE_THREADED)


def test_an_exception_is_a_500(server, uvicorn) -> None:
    assert same_answer(server, uvicorn, get("/boom")).status == 500
