"""WSGI (PEP 3333) on the sync path: real servers on 127.0.0.1, real clients.

The apps are in apps_wsgi.py. Nothing asserts on durations: socket timeouts only
turn a hang into a failure, and a stream is shown to stream by a gate file the
test creates only after the first block arrived.
"""

import http.client
import io
import json
import shutil
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..apps_wsgi import _read_body
from ..http_client import ResponseReader, ResponseTruncated, request
from ..server_process import TESTS_DIR, ServerProcess, exchange, running_server
from ..tls_server import Certs, client_context, make_certs, running_tls_server

TIMEOUT = 30.0
MAX_BODY = 100_000
OPENSSL = shutil.which("openssl")
APP = "apps_wsgi:app"


@pytest.fixture(scope="module", params=["thread", "process"])
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    """Two workers, as threads of one process or as two processes."""
    args = ["--workers", "2", "--worker-mode", request.param, "--no-access-log"]
    args += ["--root-path", "/mount", "--max-body-size", str(MAX_BODY), "--request-id"]
    with running_server(*args, app=APP) as srv:
        srv.mode = request.param  # type: ignore[attr-defined]
        yield srv


def wait_for_log(server: ServerProcess, text: str) -> None:
    """Stderr is read by another thread; the line may lag the response a little."""
    deadline = time.monotonic() + TIMEOUT
    while text not in server.stderr:
        assert time.monotonic() < deadline, f"{text!r} not logged:\n{server.stderr}"
        time.sleep(0.02)


def connect(server: ServerProcess) -> socket.socket:
    return server.connect(TIMEOUT)


def chunks_of(reader: ResponseReader) -> Iterator[bytes]:
    """The chunks of the chunked body being read, as they arrive."""
    while (chunk := reader.read_chunk()) is not None:
        yield chunk


def get_request(path: str, *headers: str, method: str = "GET") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: test", *headers, "", ""]
    return "\r\n".join(lines).encode("latin-1")


def post_request(path: str, body: bytes, *headers: str) -> bytes:
    head = get_request(path, f"Content-Length: {len(body)}", *headers, method="POST")
    return head + body


def chunked_request(path: str, chunks: list[bytes], *headers: str) -> bytes:
    head = get_request(path, "Transfer-Encoding: chunked", *headers, method="POST")
    return head + b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"


def environ_of(server: ServerProcess, raw: bytes) -> dict:
    response = request(server, raw)
    assert response.status == 200, response
    return json.loads(response.body)


# -- the environ ------------------------------------------------------------------------
def test_environ_contents(server: ServerProcess) -> None:
    raw = get_request(
        "/environ/a%20b%2Fc%C3%A9?x=1&y=%20",
        "X-Multi: a",
        "X-Multi: b",
        "Cookie: a=1",
        "Cookie: b=2",
        "Content-Type: text/plain",
        "X_Smuggled: dropped",
        "X-Request-ID: trace-42",
    )
    with connect(server) as sock:
        sock.sendall(raw)
        response = ResponseReader(sock).read_response()
        local_port = sock.getsockname()[1]
    environ = json.loads(response.body)
    assert environ["REQUEST_METHOD"] == "GET"
    assert environ["SCRIPT_NAME"] == "/mount"
    assert environ["PATH_INFO"] == "/environ/a b/c\xc3\xa9"  # bytes decoded as latin-1
    assert environ["QUERY_STRING"] == "x=1&y=%20"
    assert environ["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"]) == ("127.0.0.1", str(server.port))
    assert (environ["REMOTE_ADDR"], environ["REMOTE_PORT"]) == ("127.0.0.1", str(local_port))
    assert environ["HTTP_HOST"] == "test"
    assert environ["HTTP_X_MULTI"] == "a, b"
    assert environ["HTTP_COOKIE"] == "a=1; b=2"
    assert environ["CONTENT_TYPE"] == "text/plain"
    assert "HTTP_CONTENT_TYPE" not in environ and "CONTENT_LENGTH" not in environ
    assert "HTTP_X_SMUGGLED" not in environ
    assert environ["wsgi.version"] == [1, 0]
    assert environ["wsgi.url_scheme"] == "http"
    assert environ["wsgi.multithread"] is True
    assert environ["wsgi.multiprocess"] is (server.mode == "process")  # type: ignore[attr-defined]
    assert environ["wsgi.run_once"] is False
    assert environ["wsgi.input_terminated"] is True
    assert environ["wsgi.input"] == "RequestBody"
    assert environ["wsgi.file_wrapper"] == "FileWrapper"
    assert environ["wsgi.errors"] is True
    assert (
        environ["pounce_sync.request_id"] == "trace-42" == response.header(b"x-request-id").decode()
    )


@pytest.mark.parametrize(
    ("target", "path", "query"),
    [
        ("/environ", "/environ", ""),
        ("/environ/?", "/environ/", ""),
        ("/environ/%41%2f%25?q=%41", "/environ/A/%", "q=%41"),
        ("http://example.com/environ/abs?q=1", "/environ/abs", "q=1"),
    ],
)
def test_path_and_query(server: ServerProcess, target: str, path: str, query: str) -> None:
    environ = environ_of(server, get_request(target))
    assert (environ["PATH_INFO"], environ["QUERY_STRING"]) == (path, query)
    assert environ["RAW_URI"] == target  # the target as sent, as gunicorn offers it


def test_http_1_0_and_content_length(server: ServerProcess) -> None:
    raw = b"POST /environ HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc"
    environ = json.loads(request(server, raw).body)  # and the server closes after it
    assert environ["SERVER_PROTOCOL"] == "HTTP/1.0"
    assert environ["CONTENT_LENGTH"] == "3"


def test_trusted_proxy_headers(server: ServerProcess) -> None:
    raw = get_request(
        "/environ",
        "X-Forwarded-For: 203.0.113.7",
        "X-Forwarded-Proto: https",
        "X-Forwarded-Host: example.com",
    )
    environ = environ_of(server, raw)
    assert environ["REMOTE_ADDR"] == "203.0.113.7"
    assert "REMOTE_PORT" not in environ  # the proxy does not say
    assert environ["wsgi.url_scheme"] == "https"
    assert environ["HTTP_HOST"] == "example.com"


def test_generated_request_id() -> None:
    with running_server("--request-id", "--no-access-log", app=APP) as srv:
        response = request(srv, get_request("/environ"))
    made = response.header(b"x-request-id").decode()
    assert len(made) == 32 and json.loads(response.body)["pounce_sync.request_id"] == made


# -- the request body --------------------------------------------------------------------
BODY = b"ab\ncdef\ng\n\nlast"
CHUNKS = [b"ab\nc", b"def", b"\ng\n", b"\nla", b"st"]  # lines cross chunk boundaries


@pytest.mark.parametrize("how", ["read", "read3", "readline", "readline4", "readlines", "iter"])
@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_body_reading(server: ServerProcess, how: str, framing: str) -> None:
    expected = _read_body({"wsgi.input": io.BytesIO(BODY)}, how)  # a file's behaviour
    if framing == "length":
        raw = post_request(f"/echo?how={how}", BODY)
    else:
        raw = chunked_request(f"/echo?how={how}", CHUNKS)
    response = request(server, raw)
    assert (response.status, response.body) == (200, expected)


def test_large_chunked_upload_with_http_client(server: ServerProcess) -> None:
    blocks = [bytes([n]) * 9_000 for n in range(10)]
    conn = http.client.HTTPConnection(server.host, server.port, timeout=TIMEOUT)
    try:
        conn.request("POST", "/count-body", body=iter(blocks), encode_chunked=True)
        response = conn.getresponse()
        assert (response.status, response.read()) == (200, b"90000")
        conn.request("POST", "/echo", body=b"x" * 50_000)
        response = conn.getresponse()
        assert response.read() == b"x" * 50_000
    finally:
        conn.close()


def test_body_over_the_limit_is_413(server: ServerProcess, tmp_path: Path) -> None:
    log = tmp_path / "calls"
    response = request(server, post_request(f"/count-body?log={log}", b"x" * (MAX_BODY + 1)))
    assert (response.status, response.header(b"connection")) == (413, b"close")
    assert not log.exists()  # Content-Length says it: answered before the app runs
    chunks = [b"x" * 10_000] * (MAX_BODY // 10_000 + 1)
    response = request(server, chunked_request(f"/count-body?log={log}", chunks))
    assert (response.status, response.header(b"connection")) == (413, b"close")  # while read
    assert log.read_text() == "POST /count-body\n"


def test_expect_100_continue_when_the_app_reads(server: ServerProcess) -> None:
    with connect(server) as sock:
        sock.sendall(
            get_request("/echo", "Content-Length: 5", "Expect: 100-continue", method="POST")
        )
        reader = ResponseReader(sock)
        assert reader.read_informational(b"POST").status == 100
        sock.sendall(b"hello")
        response = reader.read_response(b"POST")
        assert (response.status, response.body) == (200, b"hello")
        assert response.header(b"connection") is None  # the connection stays open
        sock.sendall(get_request("/"))
        assert reader.read_response().body == b"hello wsgi"


def test_expect_100_continue_not_sent_when_the_body_is_ignored(server: ServerProcess) -> None:
    raw = get_request("/ignore-body", "Content-Length: 5", "Expect: 100-continue", method="POST")
    response = request(server, raw)
    assert (response.status, response.body) == (200, b"ignored")
    assert response.informational == ()  # no 100 Continue
    assert response.header(b"connection") == b"close"


# -- the response ------------------------------------------------------------------------
def test_write_callable_then_returned_blocks_are_chunked(server: ServerProcess) -> None:
    with connect(server) as sock:
        sock.sendall(get_request("/write"))
        reader = ResponseReader(sock)
        head = reader.read_head()
        assert (head.status, head.header(b"transfer-encoding")) == (200, b"chunked")
        assert list(chunks_of(reader)) == [b"written ", b"then ", b"returned"]


def test_generator_streams_chunked_on_the_worker(server: ServerProcess, tmp_path: Path) -> None:
    """The first block arrives while the app still waits for the gate: it is not buffered.

    Twice on one connection, the second with Accept: text/event-stream: neither is handed
    to the AsyncPool (which would call the WSGI app as ASGI and fail).
    """
    with connect(server) as sock:
        reader = ResponseReader(sock)
        for n, extra in enumerate(["X-Try: 1", "Accept: text/event-stream"]):
            gate = tmp_path / f"gate{n}"
            sock.sendall(get_request(f"/stream?gate={gate}", extra))
            head = reader.read_head()
            assert (head.status, head.header(b"transfer-encoding")) == (200, b"chunked")
            chunks = chunks_of(reader)
            assert next(chunks) == b"first\n"
            assert not gate.exists()
            gate.touch()
            assert list(chunks) == [b"second\n"]


def test_event_stream_request_runs_on_a_sync_worker(server: ServerProcess) -> None:
    response = request(server, get_request("/thread?n=7", "Accept: text/event-stream"))
    assert response.status == 200
    assert response.body.startswith(b"7 worker-")  # a sync worker thread, not async-pool-N


def test_app_content_length_is_kept_without_chunking(server: ServerProcess) -> None:
    response = request(server, get_request("/length"))
    assert (response.status, response.header(b"content-length"), response.body) == (
        200,
        b"12",
        b"fixed length",
    )
    assert response.header(b"transfer-encoding") is None


def test_list_body_gets_a_content_length_and_headers_repeat(server: ServerProcess) -> None:
    response = request(server, get_request("/list"))
    assert (response.status, response.reason, response.body) == (201, b"Created", b"one two three")
    assert response.header(b"content-length") == b"13"
    assert response.header_values(b"x-multi") == [b"a", b"b"]


def test_header_values_lose_whitespace_at_their_ends(server: ServerProcess) -> None:
    """On the wire, not through h11: a client's parser would strip the space itself."""
    raw = exchange(server, get_request("/cookie", "Connection: close"))
    head = raw.partition(b"\r\n\r\n")[0].split(b"\r\n")
    assert b"Set-Cookie: csrftoken=abc" in head
    assert b"X-Padded: padded" in head


def test_204_has_no_body(server: ServerProcess) -> None:
    with connect(server) as sock:
        sock.sendall(get_request("/empty") + get_request("/"))
        reader = ResponseReader(sock)
        assert reader.read_response().status == 204
        assert reader.read_response().body == b"hello wsgi"


def test_file_wrapper(server: ServerProcess) -> None:
    with connect(server) as sock:
        sock.sendall(get_request("/file"))
        reader = ResponseReader(sock)
        assert reader.read_head().header(b"transfer-encoding") == b"chunked"
        chunks = list(chunks_of(reader))
    assert b"".join(chunks) == b"x" * 200_000
    assert max(len(chunk) for chunk in chunks) == 8192


@pytest.mark.parametrize("path", ["/length", "/stream", "/list", "/"])
def test_head_sends_no_body(server: ServerProcess, path: str) -> None:
    with connect(server) as sock:
        sock.sendall(get_request(path, method="HEAD") + get_request("/"))
        reader = ResponseReader(sock)
        head = reader.read_response(b"HEAD")
        assert head.status in (200, 201)
        if path == "/length":
            assert head.header(b"content-length") == b"12"
        assert head.header(b"transfer-encoding") is None
        # The next response follows at once: no body bytes were written for HEAD.
        response = reader.read_response()
        assert (response.status, response.body) == (200, b"hello wsgi")


def test_close_is_called(server: ServerProcess, tmp_path: Path) -> None:
    log = tmp_path / "calls"
    with connect(server) as sock:
        sock.sendall(get_request(f"/close?log={log}"))
        reader = ResponseReader(sock)
        assert reader.read_response().body == b"closing body"
        sock.sendall(get_request("/"))
        assert reader.read_response().body == b"hello wsgi"
    assert log.read_text() == "GET /close\nclosed\n"


def test_connection_close_from_the_app_is_honoured(server: ServerProcess) -> None:
    response = request(server, get_request("/connection-close"))
    assert (response.status, response.body) == (200, b"bye")
    assert response.header(b"connection") == b"close"


# -- failures ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "logged"),
    [
        ("/raise-before", "Boom: before start_response"),
        ("/raise-after-start", "Boom: after start_response, before the body"),
        ("/no-start-response", "body before start_response was called"),
        ("/str-body", "expected a bytes-like object, str found"),  # b"".join of a str
        ("/bad-status", "Invalid response from WSGI application: invalid WSGI status 'OK'"),
    ],
)
def test_failure_before_the_response_is_500(server: ServerProcess, path: str, logged: str) -> None:
    response = request(server, get_request(path))
    assert (response.status, response.body) == (500, b"Internal Server Error\n")
    assert response.header(b"connection") == b"close"
    wait_for_log(server, logged)


def test_failure_mid_stream_closes_without_the_last_chunk(
    server: ServerProcess, tmp_path: Path
) -> None:
    log = tmp_path / "calls"
    with connect(server) as sock:
        sock.sendall(get_request(f"/raise-mid-stream?log={log}"))
        reader = ResponseReader(sock)
        assert reader.read_head().status == 200
        assert reader.read_chunk() == b"partial"
        with pytest.raises(ResponseTruncated):  # no last chunk
            reader.read_chunk()
    assert log.read_text().endswith("closed\n")  # close() ran after the failure too
    wait_for_log(server, "Boom: failed while iterating")


def test_exc_info_before_the_head_replaces_the_response(server: ServerProcess) -> None:
    response = request(server, get_request("/exc-info"))
    assert (response.status, response.body) == (503, b"app error page")


def test_exc_info_after_the_head_reraises(server: ServerProcess) -> None:
    with connect(server) as sock:
        sock.sendall(get_request("/exc-info-after-body"))
        reader = ResponseReader(sock)
        assert reader.read_head().status == 200
        assert reader.read_chunk() == b"partial"
        with pytest.raises(ResponseTruncated):  # no last chunk
            reader.read_chunk()
    wait_for_log(server, "Boom: app failure")


# -- connections ---------------------------------------------------------------------------
def test_keep_alive_and_pipelining(server: ServerProcess) -> None:
    requests = [
        get_request("/thread?n=1"),
        post_request("/echo", b"posted"),
        chunked_request("/echo", [b"chun", b"ked"]),
        get_request("/length", method="HEAD"),
        post_request("/ignore-body", b"unread"),
        get_request("/thread?n=2"),
    ]
    with connect(server) as sock:
        sock.sendall(b"".join(requests))  # all at once: pipelined
        reader = ResponseReader(sock)
        # HEAD's answer is a head alone, whatever its Content-Length says.
        answers = [reader.read_response(b"HEAD" if n == 3 else b"GET") for n in range(6)]
        sock.sendall(get_request("/"))  # and one more after, on the same connection
        answers.append(reader.read_response())
    bodies = [answer.body for answer in answers]
    assert bodies[0].startswith(b"1 ") and bodies[5].startswith(b"2 ")
    assert bodies[1:5] == [b"posted", b"chunked", b"", b"ignored"]
    assert answers[3].header(b"content-length") == b"12"
    assert bodies[6] == b"hello wsgi"


def test_many_concurrent_clients(server: ServerProcess) -> None:
    errors: list[str] = []

    def client(n: int) -> None:
        conn = http.client.HTTPConnection(server.host, server.port, timeout=TIMEOUT)
        try:
            for i in range(20):
                body = f"client {n} request {i}".encode() * (i + 1)
                conn.request("POST", f"/echo?how={'read3' if i % 2 else 'read'}", body=body)
                got = conn.getresponse().read()
                want = b"|".join(body[k : k + 3] for k in range(0, len(body), 3)) if i % 2 else body
                if got != want:
                    errors.append(f"client {n} request {i}: {got[:40]!r}")
        except Exception as exc:
            errors.append(f"client {n}: {exc!r}")
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []


# -- what WSGI apps do not get --------------------------------------------------------------
WEBSOCKET_HEADERS = (
    "Upgrade: websocket",
    "Connection: Upgrade",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version: 13",
)


def test_websocket_upgrade_is_refused_without_calling_the_app(
    server: ServerProcess, tmp_path: Path
) -> None:
    log = tmp_path / "calls"
    with connect(server) as sock:
        sock.sendall(get_request(f"/environ?log={log}", *WEBSOCKET_HEADERS))
        reader = ResponseReader(sock)
        response = reader.read_response(upgrade=True)
        assert response.status == 403
        assert b"cannot take a WebSocket" in response.body
        assert response.header(b"content-type").startswith(b"text/plain")
        assert not log.exists()
        sock.sendall(get_request(f"/?log={log}"))  # the connection keeps serving HTTP
        assert reader.read_response().body == b"hello wsgi"
    assert log.read_text() == "GET /\n"


def test_no_http2_prior_knowledge(server: ServerProcess) -> None:
    assert request(server, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").status == 505


def test_h2c_upgrade_is_served_as_http_1_1(server: ServerProcess) -> None:
    raw = get_request(
        "/thread?n=h2c", "Upgrade: h2c", "Connection: Upgrade, HTTP2-Settings", "HTTP2-Settings: "
    )
    response = request(server, raw)
    assert response.status == 200 and response.body.startswith(b"h2c worker-")


def test_no_lifespan_and_the_interface_is_logged(server: ServerProcess) -> None:
    request(server, get_request("/"))
    assert "lifespan" not in server.stderr.lower()
    assert "Interface: wsgi (auto: a sync callable of two arguments" in server.stderr


# -- serving ------------------------------------------------------------------------------
def test_embedding_api_serves_a_wsgi_app_object() -> None:
    script = str(TESTS_DIR / "embedded_server.py")
    embedded = ServerProcess(["wsgi"], script=script).wait_listening()
    try:
        assert request(embedded, get_request("/")).body == b"embedded wsgi"
        embedded.send_signal(signal.SIGTERM)
        assert embedded.wait_exit(20) == 0
    finally:
        embedded.kill()
    assert "Interface: wsgi (auto: " in embedded.stderr


def test_a_real_flask_app() -> None:
    pytest.importorskip("flask")
    args = ("--no-access-log", "--factory")
    with running_server(*args, app="apps_wsgi:make_flask_app") as srv:
        raw = chunked_request(
            "/form?q=1",
            [b"name=po", b"unce&n=", b"2"],
            "Content-Type: application/x-www-form-urlencoded",
        )
        response = request(srv, raw)
    assert response.status == 200, response
    answer = json.loads(response.body)
    assert answer["form"] == {"name": "pounce", "n": "2"}
    assert answer["url"] == "http://test/form?q=1"


# -- TLS ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    if OPENSSL is None:
        pytest.skip("the openssl command makes the certs")
    return make_certs(OPENSSL, tmp_path_factory.mktemp("tls"))


def test_tls_scheme_and_alpn_offers_only_http_1_1(certs: Certs) -> None:
    with running_tls_server(certs, app=APP) as srv:
        context = client_context(certs)
        context.set_alpn_protocols(["h2", "http/1.1"])
        with srv.connect_tls(context) as tls:
            assert tls.selected_alpn_protocol() == "http/1.1"
            tls.sendall(get_request("/environ"))
            response = ResponseReader(tls).read_response()
    assert response.status == 200
    assert json.loads(response.body)["wsgi.url_scheme"] == "https"
