"""WebSocket on the AsyncPool, against wsproto's client side over real sockets.

The apps are in apps_websocket.py; `?log=<file>` makes one write what it received
(and that it ran), which is how a test sees the server side of a close.
"""

import asyncio
import os
import shutil
import signal
import socket
import ssl
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Message,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.extensions import PerMessageDeflate
from wsproto.frame_protocol import CloseReason, FrameProtocol

from ..http_client import get_new, request
from ..server_process import ServerProcess, running_server
from ..tls_server import Certs, client_context, make_certs, running_tls_server

APP = "apps_websocket:app"
TIMEOUT = 30.0  # only turns a hang into a failure
OPENSSL = shutil.which("openssl")


# -- a blocking WebSocket client ---------------------------------------------------------
class Client:
    """wsproto's client side over a blocking socket (plain or TLS)."""

    def __init__(self, sock: socket.socket, *, answer_pings: bool = True) -> None:
        self.sock = sock
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.answer_pings = answer_pings
        self.head = b""  # the raw bytes of the handshake response
        self.received = 0  # raw bytes read from the socket
        self.pings = 0
        self._events: deque[Event] = deque()

    def handshake(self, target: str, early: bytes = b"", **request) -> Event:
        """Send the upgrade request (and `early` bytes with it); the server's answer."""
        self.sock.sendall(self.ws.send(Request(host="localhost", target=target, **request)) + early)
        return self.next_event()

    def next_event(self) -> Event:
        while not self._events:
            data = self.sock.recv(65536)
            self.received += len(data)
            if self.ws.connection is None:
                self.head += data
            self.ws.receive_data(data or None)
            for event in self.ws.events():
                if isinstance(event, Ping):  # answered, or ignored like a dead peer would
                    self.pings += 1
                    if self.answer_pings:
                        self.send(event.response())
                    continue
                self._events.append(event)
        return self._events.popleft()

    def send(self, event: Event) -> None:
        self.sock.sendall(self.ws.send(event))

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.sock.close()

    def message(self) -> str | bytes:
        """The next whole message, whatever its fragments."""
        parts = []
        while True:
            event = self.next_event()
            assert isinstance(event, Message), event
            parts.append(event.data)
            if event.message_finished:
                return "".join(parts) if isinstance(event, TextMessage) else b"".join(parts)

    def echo(self, data: str | bytes) -> str | bytes:
        event = TextMessage(data) if isinstance(data, str) else BytesMessage(data)
        self.send(event)
        return self.message()

    def closed_by_server(self) -> CloseConnection:
        """Wait for the server's Close, answer it, and see the socket end."""
        event = self.next_event()
        assert isinstance(event, CloseConnection), event
        self.send(event.response())
        assert self.sock.recv(1) == b""  # the server hangs up first (RFC 6455 7.1.1)
        self.sock.close()
        return event

    def close(self, code: int = 1000, reason: str | None = None) -> CloseConnection:
        """Start the closing handshake; the server's answer, once it hung up."""
        self.send(CloseConnection(code, reason))
        event = self.next_event()
        assert isinstance(event, CloseConnection), event
        assert self.sock.recv(1) == b""
        self.sock.close()
        return event


def connect(server: ServerProcess, target: str = "/echo", **request) -> Client:
    client = Client(server.connect(TIMEOUT))
    accepted = client.handshake(target, **request)
    assert isinstance(accepted, AcceptConnection), accepted
    return client


def rejection(server: ServerProcess, target: str) -> tuple[RejectConnection, bytes]:
    """The HTTP response that refused the upgrade: its head event and its body."""
    with Client(server.connect(TIMEOUT)) as client:
        event = client.handshake(target)
        assert isinstance(event, RejectConnection), event
        body = b""
        while event.has_body:
            data = client.next_event()
            assert isinstance(data, RejectData)
            body += data.data
            if data.body_finished:
                break
        return event, body


def wait_for(condition: Callable[[], object], timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def log_lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def wait_for_line(path: Path, line: str) -> list[str]:
    wait_for(lambda: line in log_lines(path))
    return log_lines(path)


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with running_server("--workers", "2", app=APP) as srv:
        yield srv
    assert "Unexpected error in the AsyncPool" not in srv.stderr, srv.stderr


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "app.log"


# -- messages, handshake, refusals ------------------------------------------------------
def test_text_and_binary_echo_with_subprotocol_and_headers(server, log) -> None:
    with Client(server.connect(TIMEOUT)) as client:
        accepted = client.handshake(f"/echo?log={log}", subprotocols=["chat", "superchat"])
        assert isinstance(accepted, AcceptConnection)
        assert accepted.subprotocol == "superchat"
        assert (b"x-app", b"yes") in accepted.extra_headers
        head = client.head.lower()
        assert head.startswith(b"http/1.1 101 switching protocols\r\n")
        assert b"\r\nserver: " in head and b"\r\ndate: " in head
        assert b"sec-websocket-extensions" not in head  # no deflate offered, none agreed
        assert client.echo("héllo") == "héllo"
        assert client.echo(b"\x00\xffbin") == b"\x00\xffbin"
        assert client.echo("") == ""
        assert client.echo(b"x" * 200_000) == b"x" * 200_000
        assert client.close(4000, "client bye") == CloseConnection(4000, "client bye")
        assert wait_for_line(log, "disconnect 4000 client bye") == [
            "connect",
            "disconnect 4000 client bye",
        ]
        wait_for(lambda: '"WebSocket /echo?log=' in server.stdout)
        assert f'"WebSocket /echo?log={log}" 101 ' in server.stdout


def test_fragmented_messages_are_reassembled(server) -> None:
    with connect(server) as client:
        client.send(TextMessage("frag", message_finished=False))
        client.send(TextMessage("mented ✓", message_finished=True))
        assert client.message() == "fragmented ✓"
        client.send(BytesMessage(b"ab", message_finished=False))
        client.send(BytesMessage(b"cd", message_finished=True))
        assert client.message() == b"abcd"
        client.close()


def test_frames_sent_right_after_the_request_are_kept(server) -> None:
    early = FrameProtocol(client=True, extensions=[]).send_data("early")
    with Client(server.connect(TIMEOUT)) as client:
        assert isinstance(client.handshake("/echo", early=bytes(early)), AcceptConnection)
        assert client.message() == "early"
        client.close()


def test_close_before_accept_is_403(server, log) -> None:
    event, _ = rejection(server, f"/deny?log={log}")
    assert event.status_code == 403
    assert log_lines(log) == ["connect"]


def test_http_denial_response(server) -> None:
    event, body = rejection(server, "/deny-http")
    assert event.status_code == 401
    headers = dict(event.headers)
    assert headers[b"x-reason"] == b"nope" and b"server" in headers and b"date" in headers
    assert body == b"no entry"


@pytest.mark.parametrize("path", ["/error-before", "/return-before", "/bad-subprotocol"])
def test_app_failing_before_accept_is_500(server, path) -> None:
    event, body = rejection(server, path)
    assert event.status_code == 500
    assert body == b"Internal Server Error\n"


def test_app_exception_after_accept_closes_1011(server) -> None:
    with connect(server, "/command") as client:
        assert client.echo("still fine") == "still fine"
        client.send(TextMessage("raise"))
        assert client.closed_by_server().code == 1011
        wait_for(lambda: "the app failed after accept (on purpose)" in server.stderr)


def test_invalid_handshakes_are_refused_without_the_app(server, log) -> None:
    head = (
        f"GET /echo?log={log} HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    ).encode()
    key = b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    no_key = request(server, head + b"Sec-WebSocket-Version: 13\r\n\r\n", upgrade=True)
    assert no_key.status == 400
    short_key = request(server, head + b"Sec-WebSocket-Key: c2hvcnQ=\r\n\r\n", upgrade=True)
    assert short_key.status == 400
    old = request(server, head + key + b"Sec-WebSocket-Version: 8\r\n\r\n", upgrade=True)
    assert old.status == 426
    assert old.header(b"sec-websocket-version") == b"13"
    assert not log.exists()  # the app never ran


# -- closing -----------------------------------------------------------------------------
def test_app_close_code_and_reason_and_send_after_close_raises(server, log) -> None:
    with connect(server, f"/command?log={log}") as client:
        client.send(TextMessage("close:4001:app bye"))
        assert client.closed_by_server() == CloseConnection(4001, "app bye")
        assert wait_for_line(log, "disconnect 4001 app bye") == [
            "connect",
            "send raised WebSocketClosed",
            "disconnect 4001 app bye",
        ]


def test_client_that_vanishes_gives_1006(server, log) -> None:
    with connect(server, f"/echo?log={log}") as client:
        assert client.echo("hi") == "hi"
        client.sock.close()
        assert wait_for_line(log, "disconnect 1006") == ["connect", "disconnect 1006"]


def test_client_that_vanishes_before_accept_gives_1006(server, log) -> None:
    with server.connect(TIMEOUT) as sock:
        sock.sendall(
            WSConnection(ConnectionType.CLIENT).send(Request("localhost", f"/peek?log={log}"))
        )
    lines = wait_for_line(log, "accept raised WebSocketClosed")
    assert lines == ["connect", "disconnect 1006", "accept raised WebSocketClosed"]


def test_close_without_status_code(server, log) -> None:
    with connect(server, f"/echo?log={log}") as client:
        assert client.close(CloseReason.NO_STATUS_RCVD).code == 1005  # no code: none back
        assert wait_for_line(log, "disconnect 1005")


def test_protocol_error_closes_1002(server, log) -> None:
    with connect(server, f"/echo?log={log}") as client:
        client.sock.sendall(b"\x83\x80abcd")  # a masked frame with reserved opcode 3
        assert client.closed_by_server().code == 1002
        assert wait_for_line(log, "disconnect 1002 Invalid opcode 0x3")


def test_invalid_utf8_closes_1007(server) -> None:
    with connect(server) as client:
        client.sock.sendall(b"\x81\x82\x00\x00\x00\x00\xc3\x28")  # text "\xc3\x28", mask zero
        assert client.closed_by_server().code == 1007


# -- limits, compression, keep-alive -----------------------------------------------------
def test_max_size_closes_1009(log) -> None:
    with (
        running_server("--ws-max-size", "1000", app=APP) as srv,
        connect(srv, f"/echo?log={log}") as client,
    ):
        assert client.echo(b"x" * 1000) == b"x" * 1000
        assert client.echo("é" * 500) == "é" * 500  # 1000 bytes of UTF-8
        client.send(BytesMessage(b"x" * 600, message_finished=False))
        client.send(BytesMessage(b"x" * 401, message_finished=True))
        assert client.closed_by_server().code == 1009
        assert wait_for_line(log, "disconnect 1009 message too big")


def test_per_message_deflate(server) -> None:
    with connect(server, extensions=[PerMessageDeflate()]) as client:
        head = client.head.lower()
        assert b"\r\nsec-websocket-extensions: permessage-deflate" in head
        text = "compressible " * 10_000
        before = client.received
        assert client.echo(text) == text
        assert client.received - before < len(text) // 10  # it came compressed
        assert client.echo(b"\x00" * 100_000) == b"\x00" * 100_000
        client.close()


def test_per_message_deflate_can_be_switched_off() -> None:
    with (
        running_server("--no-ws-per-message-deflate", app=APP) as srv,
        connect(srv, extensions=[PerMessageDeflate()]) as client,
    ):
        assert b"sec-websocket-extensions" not in client.head.lower()
        assert client.echo("plain") == "plain"
        client.close()


def test_ping_keep_alive(log) -> None:
    args = ("--ws-ping-interval", "0.1", "--ws-ping-timeout", "1")
    with running_server(*args, app=APP) as srv:
        with Client(srv.connect(TIMEOUT), answer_pings=False) as silent:
            assert isinstance(silent.handshake(f"/echo?log={log}"), AcceptConnection)
            event = silent.next_event()
            assert silent.pings >= 1
            assert isinstance(event, CloseConnection) and event.code == 1011
        assert wait_for_line(log, "disconnect 1006 ping timeout")
        with connect(srv) as alive:
            while alive.pings < 3:  # pings come while we talk; the client answers them
                assert alive.echo("tick") == "tick"
                time.sleep(0.05)
            alive.close()


def test_pings_without_a_timeout_never_close() -> None:
    args = ("--ws-ping-interval", "0.05", "--ws-ping-timeout", "0")
    with (
        running_server(*args, app=APP) as srv,
        Client(srv.connect(TIMEOUT), answer_pings=False) as client,
    ):
        assert isinstance(client.handshake("/echo"), AcceptConnection)
        while client.pings < 5:
            assert client.echo("tick") == "tick"
            time.sleep(0.05)
        client.close()


def test_shutdown_closes_1001(log) -> None:
    with running_server(app=APP) as srv, connect(srv, f"/echo?log={log}") as client:
        assert client.echo("hi") == "hi"
        srv.send_signal(signal.SIGTERM)
        assert client.closed_by_server().code == 1001
        assert srv.wait_exit(TIMEOUT) == 0
    assert log_lines(log) == ["connect", "disconnect 1001 server shutting down"]


# -- backpressure ------------------------------------------------------------------------
def test_reading_stops_while_the_app_does_not_receive(server, tmp_path) -> None:
    release = tmp_path / "release"
    with connect(server, f"/hold?release={release}") as client:
        assert client.message() == "ready"
        count, size = 768, 65536  # 48 MiB
        frame = client.ws.send(BytesMessage(b"y" * size))
        data = memoryview(frame * count + client.ws.send(TextMessage("end")))
        client.sock.settimeout(2.0)
        sent = 0
        try:
            while sent < len(data):
                sent += client.sock.send(data[sent:])
        except TimeoutError:
            pass  # the server stopped reading: what it holds is bounded
        assert sent < len(data) * 5 // 6
        release.touch()
        client.sock.settimeout(TIMEOUT)
        client.sock.sendall(data[sent:])
        assert client.message() == f"{count} {count * size}"
        client.close()


def test_sending_waits_for_a_client_that_does_not_read(server, tmp_path) -> None:
    progress = tmp_path / "progress"
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    sock.settimeout(TIMEOUT)
    sock.connect((server.host, server.port))
    with Client(sock) as client:
        count, size = 512, 65536  # 32 MiB
        target = f"/flood?n={count}&size={size}&progress={progress}"
        assert isinstance(client.handshake(target), AcceptConnection)
        last = -1
        while (now := progress.stat().st_size if progress.exists() else 0) != last:
            last = now
            time.sleep(0.5)  # until the app's sends stall
        assert last < count // 2
        for _ in range(count):
            assert client.message() == b"x" * size
        assert client.message() == "done"
        assert progress.stat().st_size == count
        client.close()


# -- many at once, worker modes, TLS ---------------------------------------------------
async def _async_echo(port: int, index: int) -> None:
    """One client on asyncio streams: handshake, three echoes, close."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    ws = WSConnection(ConnectionType.CLIENT)
    pending: deque[Event] = deque()

    async def next_event() -> Event:
        while not pending:
            ws.receive_data(await reader.read(65536) or None)
            pending.extend(ws.events())
        return pending.popleft()

    writer.write(ws.send(Request(host="localhost", target="/echo")))
    assert isinstance(await next_event(), AcceptConnection)
    for n in range(3):
        writer.write(ws.send(TextMessage(f"{index}-{n}")))
        event = await next_event()
        assert isinstance(event, TextMessage) and event.data == f"{index}-{n}"
    writer.write(ws.send(CloseConnection(1000)))
    assert isinstance(await next_event(), CloseConnection)
    writer.close()
    await writer.wait_closed()


def test_many_connections_at_once(server) -> None:
    async def main() -> None:
        async with asyncio.timeout(TIMEOUT):
            await asyncio.gather(*(_async_echo(server.port, i) for i in range(200)))

    asyncio.run(main())
    assert get_new(server) == (200, b"http ok")


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_worker_modes_run_the_app_once_per_connection(mode, log) -> None:
    with running_server("--worker-mode", mode, "--workers", "2", app=APP) as srv:
        for i in range(6):
            with connect(srv, f"/echo?log={log}") as client:
                assert client.echo(f"n{i}") == f"n{i}"
                client.close()
        wait_for(lambda: log_lines(log).count("disconnect 1000") == 6)
        assert log_lines(log).count("connect") == 6
        assert get_new(srv) == (200, b"http ok")
        assert srv.stop() == 0
    assert "Traceback" not in srv.stderr, srv.stderr


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    if OPENSSL is None:
        pytest.skip("the openssl command makes the certs")
    return make_certs(OPENSSL, tmp_path_factory.mktemp("tls"))


def test_over_tls(certs, log) -> None:
    context = client_context(certs)
    context.set_alpn_protocols(["http/1.1"])
    with (
        running_tls_server(certs, "--workers", "2", app=APP) as srv,
        Client(srv.connect_tls(context)) as client,
    ):
        assert isinstance(client.handshake(f"/echo?log={log}"), AcceptConnection)
        assert isinstance(client.sock, ssl.SSLSocket)
        assert client.echo("secure") == "secure"
        payload = os.urandom(300_000)
        assert client.echo(payload) == payload
        client.send(TextMessage("x" * 100_000))
        assert client.message() == "x" * 100_000
        assert client.close(4002, "tls bye") == CloseConnection(4002, "tls bye")
        assert wait_for_line(log, "disconnect 4002 tls bye")
    assert "Traceback" not in srv.stderr, srv.stderr
