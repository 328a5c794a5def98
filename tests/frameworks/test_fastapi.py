"""FastAPI + pydantic served by pounce-sync, answer for answer against uvicorn.

One pounce-sync server per worker mode (two worker threads, or two worker processes)
and one uvicorn for the module; the lifespan test starts its own, since only a stop
shows shutdown. TLS (HTTP/1.1 and HTTP/2 by ALPN) has a server of its own in auto mode,
whose start-up line says which mode the GIL allowed after FastAPI was imported.
"""

import hashlib
import http.client
import json
import os
import shutil
import sysconfig
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

from ..h2_client import H2Client
from ..http_client import ResponseReader, request
from ..server_process import ServerProcess
from ..tls_server import Certs, client_context, make_certs, running_tls_server
from .asgi_apps.reference import (
    assert_same,
    lines_of,
    running_pounce,
    running_uvicorn,
    same_answer,
    stop_gracefully,
    wait_for,
)

APP = "frameworks.asgi_apps.fastapi_app:app"
FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
OPENSSL = shutil.which("openssl")
PAYLOAD = bytes(range(256)) * 4099  # ~1 MiB served by FileResponse; not a round size
UPLOAD = os.urandom(5 * 1024 * 1024)
TIMEOUT = 30.0
MTIME = 1_700_000_000  # the served file's mtime, so both servers give the same ETag


def make_work_dir(path: Path) -> Path:
    (path / "payload.bin").write_bytes(PAYLOAD)
    os.utime(path / "payload.bin", (MTIME, MTIME))
    return path


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_work_dir(tmp_path_factory.mktemp("fastapi"))


@pytest.fixture(scope="module", params=["thread", "process"])
def server(request: pytest.FixtureRequest, work: Path) -> Iterator[ServerProcess]:
    with running_pounce(APP, work, "--workers", "2", "--worker-mode", request.param) as srv:
        yield srv
    assert "Traceback" not in srv.stderr, srv.stderr


@pytest.fixture(scope="module")
def uvicorn(work: Path) -> Iterator[ServerProcess]:
    with running_uvicorn(APP, work) as srv:
        yield srv


def get(path: str, *fields: str) -> bytes:
    head = "".join(f"{field}\r\n" for field in fields)
    return f"GET {path} HTTP/1.1\r\nHost: test\r\n{head}Connection: close\r\n\r\n".encode()


def post(path: str, body: bytes, content_type: str = "application/json") -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: {content_type}\r\n"
    return f"{head}Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body


# -- parameters, bodies, errors ------------------------------------------------------
@pytest.mark.parametrize(
    "path",
    [
        "/items/5",
        "/items/5?q=hello%20world&limit=3",
        "/items/abc",  # 422: not an int
        "/items/5?limit=many",  # 422: query not an int
        "/items/%C3%A9t%C3%A9?q=%E2%82%AC",  # 422 naming the decoded input
        "/items/5?q=a+b&q=last",  # a repeated query parameter: the last wins
        "/items/0",  # HTTPException with a header of its own
        "/nowhere",  # 404 of the router
    ],
)
def test_path_and_query_parameters(server, uvicorn, path: str) -> None:
    same_answer(server, uvicorn, get(path), b"x-missing")


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"name": "pen", "price": 1.5, "tags": ["a", "b"]}', "application/json"),
        (b'{"name": "", "price": -1}', "application/json"),  # two constraint errors
        (b'{"price": "free", "tags": "x"}', "application/json"),  # missing, wrong types
        (b'{"name": "pen", "price": ', "application/json"),  # malformed JSON
        (b"name=pen&price=1", "application/x-www-form-urlencoded"),  # not JSON at all
        (b"", "application/json"),  # no body
    ],
    ids=["valid", "constraints", "types", "malformed", "form", "empty"],
)
def test_json_post_and_validation_errors(server, uvicorn, body: bytes, content_type: str) -> None:
    answer = same_answer(server, uvicorn, post("/items", body, content_type), method=b"POST")
    assert answer.status in (201, 422)


def test_custom_exception_handler(server, uvicorn) -> None:
    answer = same_answer(server, uvicorn, get("/teapot/earl-grey"))
    assert answer.status == 418
    assert json.loads(answer.body) == {"error": "teapot", "flavour": "earl-grey"}


def test_redirect_with_cookies(server, uvicorn) -> None:
    answer = same_answer(server, uvicorn, get("/login"), b"location", b"set-cookie")
    assert answer.status == 303 and len(answer.header_values(b"set-cookie")) == 2


# -- uploads -------------------------------------------------------------------------
def multipart(data: bytes) -> tuple[bytes, str]:
    boundary = "----pounce" + uuid.uuid4().hex
    parts = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="note"\r\n\r\nfive MiB\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="blob.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    body = parts + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def test_upload_file_of_5_mib(server, uvicorn) -> None:
    body, content_type = multipart(UPLOAD)
    answer = same_answer(server, uvicorn, post("/upload", body, content_type), method=b"POST")
    assert json.loads(answer.body) == {
        "filename": "blob.bin",
        "content_type": "application/octet-stream",
        "size": len(UPLOAD),
        "sha256": hashlib.sha256(UPLOAD).hexdigest(),
        "note": "five MiB",
    }


def test_upload_after_100_continue(server, uvicorn) -> None:
    """The body is held back until the server says 100 Continue, as curl does."""
    body, content_type = multipart(UPLOAD[:300_000])
    head = post("/upload", b"", content_type).replace(b"Content-Length: 0", b"Expect: 100-continue")
    head = head.replace(b"\r\n\r\n", f"\r\nContent-Length: {len(body)}\r\n\r\n".encode())
    answers = []
    for target in (server, uvicorn):
        with target.connect(TIMEOUT) as sock:
            sock.sendall(head)
            reader = ResponseReader(sock)
            assert reader.read_informational(b"POST").status == 100
            sock.sendall(body)
            answers.append(reader.read_response(b"POST"))
    assert_same(*answers)
    assert json.loads(answers[0].body)["size"] == 300_000


def test_upload_file_sent_chunked(server) -> None:
    """The same upload with Transfer-Encoding: chunked, in pieces of uneven sizes."""
    body, content_type = multipart(UPLOAD)
    head = (
        f"POST /upload HTTP/1.1\r\nHost: test\r\nContent-Type: {content_type}\r\n"
        "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    ).encode()
    chunks = b"".join(
        b"%x\r\n%s\r\n" % (len(piece), piece)
        for piece in (body[i : i + 100_003] for i in range(0, len(body), 100_003))
    )
    answer = request(server, head + chunks + b"0\r\n\r\n", b"POST")
    assert answer.status == 200
    assert json.loads(answer.body)["sha256"] == hashlib.sha256(UPLOAD).hexdigest()


# -- streaming and files -------------------------------------------------------------
@pytest.mark.parametrize("accept", ["", "Accept: text/event-stream"], ids=["sync-path", "pool"])
def test_streaming_response(server, uvicorn, accept: str) -> None:
    """Twice: the first time the path may be found streaming on the sync path, then learned."""
    for _ in range(2):
        answer = same_answer(server, uvicorn, get("/stream?n=40", accept))
        assert answer.header(b"transfer-encoding") == b"chunked"
        assert answer.body == b"".join(b"line %d\n" % i for i in range(40))


@pytest.mark.parametrize("accept", ["", "Accept: text/event-stream"], ids=["sync-path", "pool"])
def test_streaming_response_is_not_buffered(server, work: Path, accept: str) -> None:
    """The app holds its second chunk until the test has read the first one."""
    token = uuid.uuid4().hex
    with server.connect(TIMEOUT) as sock:
        sock.sendall(get(f"/stream-gated/{token}", accept))
        reader = ResponseReader(sock)
        assert reader.read_head().status == 200
        assert reader.read_chunk() == b"first\n"
        (work / f"release-{token}").touch()
        assert reader.read_chunk() == b"second\n"
        assert reader.read_chunk() is None


FILE_FIELDS = (b"etag", b"last-modified", b"content-disposition", b"accept-ranges")
FILE_FIELDS += (b"content-range",)


@pytest.mark.parametrize(
    "fields",
    [
        (),
        ("Range: bytes=10-19",),
        ("Range: bytes=-100",),
        ("Range: bytes=1048000-",),
        ("Range: bytes=5000000-6000000",),  # past the end: 416
        ('If-Range: "nope"', "Range: bytes=0-9"),  # If-Range does not match: the whole file
    ],
    ids=["whole", "range", "suffix", "open-end", "unsatisfiable", "if-range"],
)
def test_file_response(server, uvicorn, fields: tuple[str, ...]) -> None:
    same_answer(server, uvicorn, get("/file", *fields), *FILE_FIELDS)


def test_file_response_head(server, uvicorn) -> None:
    raw = get("/file").replace(b"GET", b"HEAD", 1)
    answer = same_answer(server, uvicorn, raw, *FILE_FIELDS, method=b"HEAD")
    assert answer.body == b"" and answer.header(b"content-length") == str(len(PAYLOAD)).encode()


def test_file_response_multiple_ranges(server, uvicorn) -> None:
    """multipart/byteranges: equal but for the boundary, which Starlette draws at random."""
    raw = get("/file", "Range: bytes=0-9, 100-199")
    mine, reference = request(server, raw), request(uvicorn, raw)
    assert mine.status == reference.status == 206

    def boundary(response) -> bytes:
        return response.header(b"content-type").split(b"boundary=")[1]

    ours, theirs = (r.body.replace(boundary(r), b"B") for r in (mine, reference))
    assert ours == theirs
    assert mine.header(b"content-length") == reference.header(b"content-length")


# -- background tasks ----------------------------------------------------------------
def test_background_task_runs_after_the_response_once(server, work: Path) -> None:
    """The task waits for a file the test creates only once it has the response: had the
    server held the response back until the task ended, the test would time out."""
    token = uuid.uuid4().hex
    with server.connect(TIMEOUT) as sock:
        sock.sendall(post(f"/background/{token}", b"").replace(b"Connection: close\r\n", b""))
        reader = ResponseReader(sock)
        answer = reader.read_response(b"POST")
        assert (answer.status, json.loads(answer.body)) == (200, {"queued": token})
        assert lines_of(work / f"background-{token}") == []
        (work / f"release-{token}").touch()
        done = work / f"background-{token}"
        wait_for(lambda: done.exists(), "the background task")
        # The connection serves its next request after the task: it ran exactly once.
        sock.sendall(get("/items/1").replace(b"Connection: close\r\n", b""))
        assert reader.read_response().status == 200
    assert lines_of(done) == ["ran"]


# -- threads, dependencies, GIL ------------------------------------------------------
def test_sync_routes_run_on_anyio_worker_threads(server, uvicorn) -> None:
    """`def` routes and their `def` dependencies run in anyio's thread pool, also when
    the request itself runs on a pounce-sync worker thread; several at once."""
    results: list[dict] = []

    def call() -> None:
        answer = request(server, get("/sync", "X-User: ann"))
        results.append(json.loads(answer.body))

    threads = [threading.Thread(target=call) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    reference = json.loads(request(uvicorn, get("/sync", "X-User: ann")).body)
    assert len(results) == 6
    for result in results:
        assert result["thread"].startswith("AnyIO worker thread")
        assert (result["user"], result["closed"]) == (reference["user"], reference["closed"])
    assert (reference["user"], reference["closed"]) == ("ann", False)


def test_async_routes_with_dependencies(server, uvicorn) -> None:
    mine = json.loads(request(server, get("/async")).body)
    reference = json.loads(request(uvicorn, get("/async")).body)
    assert (mine["user"], mine["closed"]) == (reference["user"], reference["closed"])
    assert mine["gil_enabled"] is (not FREE_THREADED)


def test_requests_run_on_their_worker_threads_loops_not_the_lifespans(server, uvicorn) -> None:
    """A deliberate difference (docs/frameworks.md): uvicorn runs lifespan and requests on
    one loop; here the lifespan has a thread and loop of its own, each worker thread too."""
    assert json.loads(request(uvicorn, get("/state")).body)["lifespan_loop"] is True
    assert json.loads(request(server, get("/state")).body)["lifespan_loop"] is False


def test_the_gil_stays_off_with_fastapi_imported(server) -> None:
    for path in ("/sync", "/async", "/state"):
        assert json.loads(request(server, get(path)).body)["gil_enabled"] is (not FREE_THREADED)


# -- WebSocket -----------------------------------------------------------------------
@pytest.mark.parametrize("reference", [False, True], ids=["pounce-sync", "uvicorn"])
def test_websocket_route(server, uvicorn, reference: bool) -> None:
    target = uvicorn if reference else server
    url = f"ws://{target.host}:{target.port}/ws/lobby?name=ann"
    with ws_connect(url, open_timeout=TIMEOUT, close_timeout=TIMEOUT) as ws:
        assert json.loads(ws.recv(TIMEOUT)) == {"room": "lobby", "name": "ann"}
        for text in ("hi", "é" * 5000):
            ws.send(text)
            assert ws.recv(TIMEOUT) == f"lobby:{text}"
        ws.send("bye")
        with pytest.raises(ConnectionClosed):
            ws.recv(TIMEOUT)
    assert (ws.close_code, ws.close_reason) == (4000, "bye ann")


def test_websocket_client_going_away_reaches_the_app(server, work: Path) -> None:
    name = uuid.uuid4().hex
    url = f"ws://{server.host}:{server.port}/ws/hall?name={name}"
    with ws_connect(url, open_timeout=TIMEOUT, close_timeout=TIMEOUT) as ws:
        ws.recv(TIMEOUT)
    closed = work / f"ws-closed-{name}"
    wait_for(closed.exists, "the app to see the WebSocket close")
    assert lines_of(closed) == ["1000"]


# -- lifespan ------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["thread", "process"])
def test_lifespan_state_startup_and_shutdown_once_per_worker(tmp_path: Path, mode: str) -> None:
    """Thread mode: one process, one lifespan shared by its threads; process mode: one
    lifespan per worker process, each with its own state. Shutdown runs on SIGTERM."""
    work = make_work_dir(tmp_path)
    with running_pounce(APP, work, "--workers", "2", "--worker-mode", mode) as srv:
        states = [json.loads(request(srv, get("/state")).body) for _ in range(8)]
        assert stop_gracefully(srv) == 0
    startups = sorted(p.name.split("-", 1)[1] for p in work.glob("startup-*"))
    shutdowns = sorted(p.name.split("-", 1)[1] for p in work.glob("shutdown-*"))
    assert len(startups) == (1 if mode == "thread" else 2)
    assert shutdowns == startups
    assert all(lines_of(work / f"startup-{s}") == ["started"] for s in startups)
    assert {f"{state['pid']}-{state['boot']}" for state in states} <= set(startups)


# -- TLS: HTTP/1.1 and HTTP/2 --------------------------------------------------------
@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    if OPENSSL is None:
        pytest.skip("the openssl command makes the certificates")
    return make_certs(OPENSSL, tmp_path_factory.mktemp("fastapi-tls"))


@pytest.fixture(scope="module")
def tls_server(certs: Certs, work: Path) -> Iterator[ServerProcess]:
    args = ("--workers", "2", "--worker-mode", "auto")
    with running_tls_server(certs, *args, app=APP, env={"FRAMEWORK_APP_DIR": str(work)}) as srv:
        yield srv


def test_auto_mode_after_importing_fastapi(tls_server) -> None:
    expected = (
        "Worker mode: thread (auto: the GIL is disabled)"
        if FREE_THREADED
        else "Worker mode: process (auto: the GIL is enabled"
    )
    assert expected in tls_server.stderr


def test_tls_http11(tls_server, uvicorn, certs: Certs) -> None:
    connection = http.client.HTTPSConnection(
        tls_server.host, tls_server.port, context=client_context(certs), timeout=TIMEOUT
    )
    connection.request("GET", "/items/7?q=tls")
    answer = connection.getresponse()
    assert answer.status == 200
    assert json.loads(answer.read()) == {"item_id": 7, "q": "tls", "limit": 10}
    body, content_type = multipart(UPLOAD)
    connection.request("POST", "/upload", body, {"Content-Type": content_type})
    answer = connection.getresponse()
    assert json.loads(answer.read())["sha256"] == hashlib.sha256(UPLOAD).hexdigest()
    connection.close()


def test_http2_over_tls(tls_server, uvicorn, certs: Certs) -> None:
    context = client_context(certs)
    context.set_alpn_protocols(["h2"])
    with tls_server.connect_tls(context) as sock:
        assert sock.selected_alpn_protocol() == "h2"
        client = H2Client(sock)
        item = client.get("/items/5?q=h2")
        assert (item.status, json.loads(item.body)) == (200, {"item_id": 5, "q": "h2", "limit": 10})
        bad = b'{"name": "", "price": -1}'
        json_type = (("content-type", "application/json"),)
        stream = client.request("/items", method="POST", headers=json_type, end_stream=False)
        client.send_body(stream, bad)
        invalid = client.response(stream)
        reference = request(uvicorn, post("/items", bad), b"POST")
        assert reference.status == 422
        assert (invalid.status, bytes(invalid.body)) == (reference.status, reference.body)
        streamed = client.get("/stream?n=40")
        assert bytes(streamed.body) == b"".join(b"line %d\n" % i for i in range(40))
        ranged = client.get("/file", headers=(("range", "bytes=10-19"),))
        assert (ranged.status, bytes(ranged.body)) == (206, PAYLOAD[10:20])
