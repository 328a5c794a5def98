"""HTTP/2 on the AsyncPool: the h2 library's client side and curl against a real server.

Prior knowledge, h2c upgrade and ALPN h2; flow control both ways; resets, trailers,
limits, GOAWAY on drain and when idle. Every client runs over a real socket on
127.0.0.1; nothing asserts on wall-clock durations (timeouts only turn hangs into
failures).
"""

import json
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import h2.settings
import pytest
from h2.errors import ErrorCodes
from hpack import Decoder
from hyperframe.frame import DataFrame, Frame, GoAwayFrame, HeadersFrame, RstStreamFrame

from ..h2_client import H2Client, Response
from ..http_client import ResponseReader, request
from ..server_process import ServerProcess, running_server
from ..tls_server import Certs, client_context, make_certs, running_tls_server

CURL = shutil.which("curl")
OPENSSL = shutil.which("openssl")
APP = "apps_http2:app"
TIMEOUT = 30.0
FIVE_MB = 5 * 1024 * 1024
PATTERN = bytes(range(256))
needs_curl = pytest.mark.skipif(CURL is None, reason="needs the curl command")


Connect = Callable[..., H2Client]


@pytest.fixture
def connect() -> Iterator[Connect]:
    """Prior knowledge: the client preface first, on a fresh connection closed after the test."""
    clients: list[H2Client] = []

    def open_client(server: ServerProcess, settings: dict[int, int] | None = None) -> H2Client:
        clients.append(H2Client(server.connect(TIMEOUT), settings))
        return clients[-1]

    yield open_client
    for client in clients:
        client.sock.close()


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    assert CURL is not None
    command = [CURL, "-sS", "--max-time", str(TIMEOUT), "-w", "\n%{http_version}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT + 10)


def wait_until(condition: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


# -- servers ----------------------------------------------------------------------
@pytest.fixture(scope="module", params=["thread", "process"])
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    """Two workers: threads in one process, or two processes, each with its pool."""
    with running_server("--workers", "2", "--worker-mode", request.param, app=APP) as srv:
        yield srv
    # The error apps' tracebacks are expected; nothing of the server's own is.
    assert "Unexpected error" not in srv.stderr and "never retrieved" not in srv.stderr


@pytest.fixture(scope="module")
def limited() -> Iterator[ServerProcess]:
    """Small limits, to see each enforced."""
    args = ["--h2-max-concurrent-streams", "3", "--h2-max-header-list-size", "4096"]
    args += ["--max-body-size", "100000", "--timeout-keep-alive", "1", "--no-access-log"]
    with running_server(*args, app=APP) as srv:
        yield srv


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    if OPENSSL is None:
        pytest.skip("the openssl command makes the certificates")
    return make_certs(OPENSSL, tmp_path_factory.mktemp("h2-tls"))


# -- the three ways in ------------------------------------------------------------
def test_prior_knowledge_scope(server: ServerProcess, connect: Connect) -> None:
    client = connect(server)
    headers = (("x-test", "yes"), ("cookie", "a=1"), ("cookie", "b=2"))
    response = client.get("/scope?a=1", headers=headers)
    assert response.status == 200
    assert response.headers[b"server"] == b"pounce-sync" and b"date" in response.headers
    scope = json.loads(response.body)
    assert scope["http_version"] == "2" and scope["scheme"] == "http"
    assert scope["method"] == "GET" and scope["path"] == "/scope"
    assert scope["raw_path"] == "/scope" and scope["query_string"] == "a=1"
    assert scope["headers"][0] == ["host", "h2.test"]  # from :authority
    assert ["x-test", "yes"] in scope["headers"]
    assert ["cookie", "a=1; b=2"] in scope["headers"]  # RFC 9113 8.2.3: joined again
    assert not any(name.startswith(":") for name, _ in scope["headers"])
    assert scope["extensions"] == {"http.response.trailers": {}}
    assert scope["client"][0] == "127.0.0.1" and scope["server"][1] == server.port


@needs_curl
def test_curl_prior_knowledge(server: ServerProcess) -> None:
    done = curl("--http2-prior-knowledge", f"http://127.0.0.1:{server.port}/")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "hello h2\n2"


@needs_curl
def test_h2c_upgrade_with_curl_runs_the_app_once(server: ServerProcess, tmp_path: Path) -> None:
    log = tmp_path / "runs"
    done = curl("--http2", f"http://127.0.0.1:{server.port}/side-effect?{log}")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "done\n2"
    assert log.read_text() == "GET 2\n"


def test_h2c_upgrade_with_h2_client(server: ServerProcess) -> None:
    """The upgrade request is stream 1; its answer comes over HTTP/2 after the 101."""
    with server.connect(TIMEOUT) as sock:
        client = H2Client(sock, start=False)
        settings = client.conn.initiate_upgrade_connection()
        sock.sendall(
            b"GET /scope HTTP/1.1\r\nHost: h2.test\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            b"Upgrade: h2c\r\nHTTP2-Settings: %s\r\n\r\n" % settings
        )
        reader = ResponseReader(sock)
        assert reader.read_informational(upgrade=True).status == 101
        client.flush()  # the client preface
        client.responses[1] = Response()
        client.receive(reader.trailing_data)  # what came with the 101
        response = client.response(1)
        assert response.status == 200
        assert b'"http_version": "2"' in response.body
        assert b'"upgrade"' not in response.body and b'"http2-settings"' not in response.body
        assert client.get("/").body == b"hello h2"  # and the connection goes on


def test_h2c_upgrade_with_bad_settings_is_refused(server: ServerProcess) -> None:
    raw = (
        b"GET / HTTP/1.1\r\nHost: h2.test\r\nConnection: Upgrade, HTTP2-Settings\r\n"
        b"Upgrade: h2c\r\nHTTP2-Settings: AAAA\r\n\r\n"  # 3 bytes: no whole setting
    )
    assert request(server, raw, upgrade=True).status == 400


@needs_curl
def test_alpn_h2_over_tls(certs: Certs) -> None:
    with running_tls_server(certs, "--workers", "2", app=APP) as srv:
        done = curl("--http2", "--cacert", certs.ca, f"https://localhost:{srv.port}/")
        assert done.returncode == 0, done.stderr
        assert done.stdout == "hello h2\n2"
        context = client_context(certs)
        context.set_alpn_protocols(["h2"])
        with srv.connect_tls(context) as tls:
            assert tls.selected_alpn_protocol() == "h2"
            client = H2Client(tls)
            assert b'"scheme": "https"' in client.get("/scope").body
            assert len(client.get("/big?300000").body) == 300000


@needs_curl
def test_no_http2_turns_it_off(certs: Certs) -> None:
    with running_server("--no-http2", "--no-access-log", app=APP) as srv:
        assert request(srv, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").status == 505
        done = curl("--http2", f"http://127.0.0.1:{srv.port}/")
        assert done.stdout == "hello h2\n1.1"  # the upgrade is ignored
    with running_tls_server(certs, "--no-http2", app=APP) as srv:
        done = curl("--http2", "--cacert", certs.ca, f"https://localhost:{srv.port}/")
        assert done.stdout == "hello h2\n1.1"  # ALPN picks http/1.1


# -- many streams, each app run once -----------------------------------------------
def test_many_concurrent_streams_on_one_connection(server: ServerProcess, connect: Connect) -> None:
    client = connect(server)
    ids = {client.request(f"/echo-id?{n}", flush=False): n for n in range(60)}
    client.flush()
    for stream_id, n in ids.items():
        response = client.response(stream_id)
        assert response.status == 200 and response.body == f"stream {n}".encode()


def test_app_runs_exactly_once_per_stream(
    server: ServerProcess, tmp_path: Path, connect: Connect
) -> None:
    log = tmp_path / "runs"
    client = connect(server)
    ids = [
        client.request(f"/side-effect?{log}", method="POST", end_stream=False) for _ in range(20)
    ]
    for stream_id in ids:
        client.send_body(stream_id, b"x" * 1000)
    assert all(client.response(stream_id).body == b"done" for stream_id in ids)
    assert log.read_text() == "POST 2\n" * 20


# -- flow control ------------------------------------------------------------------
def test_upload_waits_for_the_app(server: ServerProcess, tmp_path: Path, connect: Connect) -> None:
    """No WINDOW_UPDATE for the stream until the app reads; then 5 MiB stream through."""
    gate = tmp_path / "gate"
    client = connect(server)
    stream_id = client.request(f"/gated-count?{gate}", method="POST", end_stream=False)
    sent = 0
    while room := client.conn.local_flow_control_window(stream_id):
        chunk = min(room, client.conn.max_outbound_frame_size)
        client.conn.send_data(stream_id, b"u" * chunk)
        client.flush()
        sent += chunk
    assert sent == 65535  # the stream's initial window: the connection's is larger
    client.sock.settimeout(0.5)  # a server that credits unread data would do it by now
    events: list[h2.events.Event] = []
    try:
        while True:
            events += client.pump()
    except TimeoutError:
        pass
    client.sock.settimeout(TIMEOUT)
    assert not [e for e in events if isinstance(e, h2.events.WindowUpdated) and e.stream_id]
    gate.write_text("go")
    client.send_body(stream_id, b"u" * (FIVE_MB - sent))
    assert client.response(stream_id).body == str(FIVE_MB).encode()


def test_large_response_to_a_slow_reader(server: ServerProcess, connect: Connect) -> None:
    """A small window opened a little at a time: h2 would raise if the server overran it."""
    settings = {h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 16384}
    client = connect(server, settings)
    client.auto_ack = False
    stream_id = client.request("/big")
    response = client.responses[stream_id]
    while not response.done:
        for event in client.pump():
            if isinstance(event, h2.events.DataReceived):
                time.sleep(0.0005)  # a reader slower than the writer
                length = event.flow_controlled_length
                client.conn.acknowledge_received_data(length, stream_id)
        client.flush()
    assert response.status == 200 and len(response.body) == FIVE_MB
    assert response.body == PATTERN * (FIVE_MB // 256)


# -- resets, disconnects, errors, trailers ------------------------------------------
def test_reset_stream_gives_the_app_http_disconnect(
    server: ServerProcess, tmp_path: Path, connect: Connect
) -> None:
    marker = tmp_path / "marker"
    client = connect(server)
    stream_id = client.request(f"/wait-disconnect?{marker}")
    wait_until(marker.with_suffix(".started").exists, "the app to start")
    client.conn.reset_stream(stream_id, ErrorCodes.CANCEL)
    client.flush()
    wait_until(marker.exists, "the app to see http.disconnect")
    assert client.get("/").body == b"hello h2"  # the other streams carry on


def test_connection_loss_disconnects_every_stream(
    server: ServerProcess, tmp_path: Path, connect: Connect
) -> None:
    markers = [tmp_path / f"marker{n}" for n in range(3)]
    client = connect(server)
    for marker in markers:
        client.request(f"/wait-disconnect?{marker}")
    for marker in markers:
        wait_until(marker.with_suffix(".started").exists, "the apps to start")
    client.sock.close()
    for marker in markers:
        wait_until(marker.exists, "every app to see http.disconnect")


def test_trailers(server: ServerProcess, connect: Connect) -> None:
    response = connect(server).get("/trailers", headers=(("te", "trailers"),))
    assert response.status == 200 and response.body == b"part 1, part 2"
    assert response.trailers == {b"x-checksum": b"abc123", b"x-rows": b"2"}


def test_head_gets_the_headers_only(server: ServerProcess, connect: Connect) -> None:
    client = connect(server)
    response = client.response(client.request("/big", method="HEAD"))
    assert response.status == 200 and response.body == b""
    assert response.headers[b"content-length"] == str(FIVE_MB).encode()


def test_app_errors(server: ServerProcess, connect: Connect) -> None:
    client = connect(server)
    before = client.get("/error-before")
    assert before.status == 500 and before.body == b"Internal Server Error\n"
    after = client.get("/error-after")
    assert after.status == 200 and after.reset == ErrorCodes.INTERNAL_ERROR
    assert client.get("/").body == b"hello h2"
    wait_until(lambda: server.stderr.count("Exception in ASGI application") >= 2, "the log")


def test_access_log_line(server: ServerProcess, connect: Connect) -> None:
    connect(server).get("/scope?logged")
    wait_until(lambda: '"GET /scope?logged HTTP/2" 200 ' in server.stdout, "the access line")


# -- limits --------------------------------------------------------------------------
def test_settings_are_what_the_client_sees(limited: ServerProcess, connect: Connect) -> None:
    client = connect(limited)
    while h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS not in client.server_settings:
        client.pump()
    assert client.server_settings[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS] == 3
    assert client.server_settings[h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE] == 4096
    assert client.server_settings[h2.settings.SettingCodes.MAX_FRAME_SIZE] == 16384


def test_max_concurrent_streams_enforced(limited: ServerProcess, connect: Connect) -> None:
    """A fourth open stream, sent before the client read the limit, ends the connection."""
    client = connect(limited)
    for _ in range(4):
        client.request("/count", method="POST", end_stream=False)
    terminated = client.wait_terminated()
    assert terminated.error_code == ErrorCodes.PROTOCOL_ERROR


def test_header_list_too_big(limited: ServerProcess, connect: Connect) -> None:
    client = connect(limited)
    assert client.get("/", headers=(("x-big", "b" * 6000),)).status == 431
    assert client.get("/").status == 200  # only that stream was refused
    client.request("/", headers=(("x-huge", "h" * 9000),))  # over twice the advertised size
    assert client.wait_terminated().error_code == ErrorCodes.ENHANCE_YOUR_CALM


def test_body_too_large(limited: ServerProcess, connect: Connect) -> None:
    client = connect(limited)
    declared = client.request(
        "/count", method="POST", headers=(("content-length", "200000"),), end_stream=False
    )
    assert client.response(declared).status == 413
    streamed = client.request("/count", method="POST", end_stream=False)
    response = client.responses[streamed]
    while not response.status:  # send while the windows allow, until the server answers
        room = client.conn.local_flow_control_window(streamed)
        if room:
            client.conn.send_data(streamed, b"s" * min(room, 16384))
            client.flush()
        else:
            client.pump()
    assert client.response(streamed).status == 413


def test_idle_connection_gets_goaway(limited: ServerProcess, connect: Connect) -> None:
    client = connect(limited)
    assert client.get("/").status == 200
    assert client.wait_terminated().error_code == ErrorCodes.NO_ERROR
    assert client.sock.recv(65536) == b""  # and the server closed it


def test_protocol_error_gets_goaway(limited: ServerProcess, connect: Connect) -> None:
    client = connect(limited)
    frame = HeadersFrame(2, flags=["END_HEADERS", "END_STREAM"])  # even: not a client's id
    frame.data = client.conn.encoder.encode([(":method", "GET"), (":path", "/")])
    client.sock.sendall(frame.serialize())
    assert client.wait_terminated().error_code == ErrorCodes.PROTOCOL_ERROR


# -- graceful shutdown -----------------------------------------------------------------
def _frames(sock: socket.socket) -> Iterator[Frame]:
    """Raw frames: the h2 client refuses anything after a GOAWAY, so these are parsed here."""
    buffer = b""
    while True:
        while len(buffer) < 9 or len(buffer) < 9 + int.from_bytes(buffer[:3], "big"):
            data = sock.recv(65536)
            if not data:
                return
            buffer += data
        frame, length = Frame.parse_frame_header(memoryview(buffer[:9]))
        frame.parse_body(memoryview(buffer[9 : 9 + length]))
        buffer = buffer[9 + length :]
        yield frame


def test_sigterm_sends_goaway_and_lets_the_stream_finish(tmp_path: Path, connect: Connect) -> None:
    marker = tmp_path / "slow"
    with running_server("--no-access-log", app=APP) as srv:
        client = connect(srv)
        client.request(f"/slow?{marker}")
        wait_until(Path(f"{marker}.started").exists, "the app to start")
        srv.send_signal(signal.SIGTERM)
        decoder, seen, body = Decoder(), [], b""
        for frame in _frames(client.sock):
            if isinstance(frame, GoAwayFrame):
                seen.append(("goaway", frame.last_stream_id, frame.error_code))
                if len(seen) == 1:
                    client.request("/")  # after the GOAWAY: refused, safe to retry
            elif isinstance(frame, HeadersFrame):
                status = dict(decoder.decode(frame.data))[":status"]
                seen.append(("headers", frame.stream_id, status))
            elif isinstance(frame, DataFrame):
                body += frame.data
            elif isinstance(frame, RstStreamFrame):
                seen.append(("rst", frame.stream_id, frame.error_code))
        assert seen[0] == ("goaway", 1, 0)
        assert ("rst", 3, ErrorCodes.REFUSED_STREAM) in seen
        assert ("headers", 1, "200") in seen and body == b"slow done"
        assert seen[-1] == ("goaway", 1, 0)  # the last one, once no stream was left
        assert srv.wait_exit(TIMEOUT) == 0


@needs_curl
def test_sigterm_with_curl_in_flight(tmp_path: Path) -> None:
    marker = tmp_path / "slow"
    with running_server("--workers", "2", "--worker-mode", "process", app=APP) as srv:
        url = f"http://127.0.0.1:{srv.port}/slow?{marker}"
        assert CURL is not None
        command = [CURL, "-sS", "--http2-prior-knowledge", "--max-time", str(TIMEOUT), url]
        with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as proc:
            wait_until(Path(f"{marker}.started").exists, "the app to start")
            srv.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=TIMEOUT)
        assert proc.returncode == 0 and out == "slow done"
        assert srv.wait_exit(TIMEOUT) == 0


@needs_curl
def test_health_fails_over_http2_during_drain_delay() -> None:
    args = ("--health-path", "/healthz", "--drain-delay", "3")
    with running_server(*args, app=APP) as srv:
        url = f"http://127.0.0.1:{srv.port}/healthz"
        done = curl("--http2-prior-knowledge", url)
        assert done.stdout == "ok\n\n2", done.stderr
        srv.send_signal(signal.SIGTERM)
        wait_until(
            lambda: curl("--http2-prior-knowledge", url).stdout == "draining\n\n2",
            "health to answer 503 over HTTP/2",
        )
        assert srv.wait_exit(20) == 0
