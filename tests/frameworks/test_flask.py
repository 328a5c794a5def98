"""Flask on pounce-sync (thread and process mode) side by side with gunicorn.

The app is wsgi_apps/flask_app.py. Each test asks pounce-sync in both modes and
gunicorn the same thing and compares what matters: status, body, the headers Flask
sets. Streams are shown to stream by a gate file the test creates only after the
first block arrived; sendfile(2) by a file whose every read through Python is logged.
"""

import hashlib
import http.client
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..http_client import ResponseReader, request
from ..server_process import TESTS_DIR, ServerProcess, running_server
from .wsgi_apps import reference

APP = "frameworks.wsgi_apps.flask_app:app"
TIMEOUT = 30.0
FILE_SIZE = 3 * 1024 * 1024 + 17  # more than a socket buffer, and not a round number
# gthread: gunicorn's worker with keep-alive (its sync worker closes after each response).
GUNICORN_ARGS = ("--worker-class", "gthread", "--threads", "2")
COMPARED_FILE_HEADERS = (b"content-type", b"content-length", b"etag", b"last-modified")


@pytest.fixture(scope="module")
def data_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("flask") / "data.bin"
    path.write_bytes(os.urandom(FILE_SIZE))
    return path


@pytest.fixture(scope="module")
def servers(data_file: Path) -> Iterator[dict[str, ServerProcess]]:
    """pounce-sync with two worker threads, with two worker processes, and gunicorn gthread."""
    env = {"FLASK_TEST_DATA_FILE": str(data_file)}
    args = ("--workers", "2", "--no-access-log")
    with (
        running_server(*args, "--worker-mode", "thread", app=APP, env=env) as threads,
        running_server(*args, "--worker-mode", "process", app=APP, env=env) as processes,
        reference.gunicorn(APP, TESTS_DIR, *GUNICORN_ARGS, env=env) as gunicorn,
    ):
        yield {"thread": threads, "process": processes, "gunicorn": gunicorn}


def post(path: str, body: bytes, content_type: str) -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: {content_type}\r\n"
    return head.encode() + b"Content-Length: %d\r\n\r\n" % len(body) + body


def get(path: str, *headers: str, method: str = "GET") -> bytes:
    return "\r\n".join([f"{method} {path} HTTP/1.1", "Host: test", *headers, "", ""]).encode()


def answers(servers: dict[str, ServerProcess], raw: bytes, method: bytes = b"GET") -> dict:
    return {name: request(server, raw, method) for name, server in servers.items()}


def test_urlencoded_form(servers: dict[str, ServerProcess]) -> None:
    body = b"name=pounce&tag=a&tag=b%20c&empty="
    got = answers(servers, post("/form", body, "application/x-www-form-urlencoded"))
    want = {"form": {"name": ["pounce"], "tag": ["a", "b c"], "empty": [""]}, "files": {}}
    for name, response in got.items():
        assert (response.status, json.loads(response.body)) == (200, want), name


def test_multipart_form_with_a_file(servers: dict[str, ServerProcess]) -> None:
    upload = os.urandom(200_000)
    boundary = "pounceBoundary7MA4YWxk"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="title"\r\n\r\nhello\r\n'.encode(),
        f"--{boundary}\r\nContent-Disposition: form-data; "
        f'name="doc"; filename="doc.bin"\r\nContent-Type: application/x-thing\r\n\r\n'.encode()
        + upload
        + b"\r\n",
        f"--{boundary}--\r\n".encode(),
    ]
    raw = post("/form", b"".join(parts), f"multipart/form-data; boundary={boundary}")
    doc = {"filename": "doc.bin", "type": "application/x-thing"}
    doc["sha256"] = hashlib.sha256(upload).hexdigest()
    want = {"form": {"title": ["hello"]}, "files": {"doc": doc}}
    for name, response in answers(servers, raw).items():
        assert (response.status, json.loads(response.body)) == (200, want), name


def test_send_file_by_path(servers: dict[str, ServerProcess], data_file: Path) -> None:
    got = answers(servers, get("/file"))
    expected = data_file.read_bytes()
    for name, response in got.items():
        assert (response.status, response.body == expected) == (200, True), name
    fields = {name: [r.header(h) for h in COMPARED_FILE_HEADERS] for name, r in got.items()}
    assert fields["thread"] == fields["process"] == fields["gunicorn"]
    assert fields["thread"][1] == str(FILE_SIZE).encode()


def test_send_file_goes_through_sendfile_not_python_reads(
    servers: dict[str, ServerProcess], data_file: Path, tmp_path: Path
) -> None:
    """wsgi.file_wrapper on a real file: the kernel copies it, Python never reads it.

    TracingFile logs every read, readinto and readall made on it; served by iterating
    the wrapper (as pounce-sync did before it used sendfile) it logs hundreds. Flask
    gives no Content-Length for a file object, so the body is one chunk.
    """
    expected = data_file.read_bytes()
    for name, server in servers.items():
        log = tmp_path / f"reads-{name}"
        log.touch()
        response = request(server, get(f"/traced-file?log={log}"))
        assert (response.status, response.body == expected) == (200, True), name
        assert response.header(b"transfer-encoding") == b"chunked", name
        response = request(server, get(f"/traced-file?log={log}&offset=1000"))
        assert (response.status, response.body == expected[1000:]) == (200, True), name
        assert log.read_text() == "", f"{name} read the file in Python"


def test_send_file_head_and_range(servers: dict[str, ServerProcess]) -> None:
    for name, server in servers.items():
        with server.connect(TIMEOUT) as sock:
            sock.sendall(get("/file", method="HEAD") + get("/file", "Range: bytes=10-19"))
            reader = ResponseReader(sock)
            head = reader.read_response(b"HEAD")
            assert (head.status, head.header(b"content-length")) == (200, str(FILE_SIZE).encode())
            ranged = reader.read_response()
            assert (ranged.status, len(ranged.body)) == (206, 10), name
            assert ranged.header(b"content-range") == f"bytes 10-19/{FILE_SIZE}".encode()


def test_streaming_generator(servers: dict[str, ServerProcess], tmp_path: Path) -> None:
    """The first block arrives while the generator waits for the gate: it is not buffered."""
    for name, server in servers.items():
        gate = tmp_path / f"gate-{name}"
        with server.connect(TIMEOUT) as sock:
            sock.sendall(get(f"/stream?gate={gate}"))
            reader = ResponseReader(sock)
            head = reader.read_head()
            assert (head.status, head.header(b"transfer-encoding")) == (200, b"chunked"), name
            assert reader.read_chunk() == b"first /stream\n"
            assert not gate.exists()
            gate.touch()
            assert reader.read_chunk() == b"second\n"
            assert reader.read_chunk() is None


@pytest.mark.parametrize("framing", ["chunked", "length"])
def test_request_stream_reads_an_upload(servers: dict[str, ServerProcess], framing: str) -> None:
    blocks = [os.urandom(50_000) for _ in range(8)]
    whole = b"".join(blocks)
    want = {"bytes": len(whole), "sha256": hashlib.sha256(whole).hexdigest(), "reads": True}
    for name, server in servers.items():
        conn = http.client.HTTPConnection(server.host, server.port, timeout=TIMEOUT)
        try:
            if framing == "chunked":
                conn.request("POST", "/upload", body=iter(blocks), encode_chunked=True)
            else:
                conn.request("POST", "/upload", body=whole)
            response = conn.getresponse()
            assert (response.status, json.loads(response.read())) == (200, want), name
        finally:
            conn.close()


def test_custom_404_handler(servers: dict[str, ServerProcess]) -> None:
    want = {"error": "custom not found", "path": "/nowhere"}
    for name, response in answers(servers, get("/nowhere")).items():
        assert (response.status, json.loads(response.body)) == (404, want), name


def test_custom_500_handler_and_the_logged_traceback(servers: dict[str, ServerProcess]) -> None:
    """Flask answers with its handler and logs the traceback itself (to wsgi.errors' side)."""
    for name, response in answers(servers, get("/boom")).items():
        assert (response.status, json.loads(response.body)) == (
            500,
            {"error": "custom server error"},
        )
        assert response.header(b"connection") != b"close", name  # Flask answered: kept open
    for name, server in servers.items():
        deadline = time.monotonic() + TIMEOUT
        while "RuntimeError: flask view failed on purpose" not in server.stderr:
            assert time.monotonic() < deadline, f"{name} logged no traceback:\n{server.stderr}"
            time.sleep(0.02)
        assert "Exception on /boom [GET]" in server.stderr


def test_worker_threads_serve_the_app_in_thread_mode(servers: dict[str, ServerProcess]) -> None:
    response = request(servers["thread"], get("/thread"))
    assert json.loads(response.body)["thread"].startswith("worker-")


def test_gil_stays_off_on_a_free_threaded_build(servers: dict[str, ServerProcess]) -> None:
    """On 3.13t, importing Flask and Werkzeug leaves the GIL off in the serving process."""
    if getattr(sys, "_is_gil_enabled", lambda: True)():
        pytest.skip("a GIL build: nothing to learn (CI's 3.13t leg runs this)")
    assert json.loads(request(servers["thread"], get("/thread")).body)["gil"] is False
