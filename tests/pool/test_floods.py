"""HTTP/2 floods and WebSocket abuse are bounded: the connection ends, others are served.

Each attack runs over a real socket against a live server, built from h2's and
wsproto's client sides or, where those refuse to misbehave, from raw frames:

* rapid reset (CVE-2023-44487): HEADERS then RST_STREAM, over and over: GOAWAY
  ENHANCE_YOUR_CALM once the client resets more streams than it lets finish;
* SETTINGS and PING floods from a client that never reads: the server stops reading
  once its write queue is full (so what it holds is bounded), and the write timeout
  ends the connection;
* CONTINUATION flood (CVE-2024-27316): h2 holds at most 64 CONTINUATION frames of a
  header block, then GOAWAY PROTOCOL_ERROR;
* HPACK bomb (one big field in the dynamic table, referenced a thousand times with a
  byte each): decoding stops at twice the header-list limit, GOAWAY ENHANCE_YOUR_CALM;
* WebSocket: a frame that announces more than --ws-max-size is closed with 1009
  before it has all arrived; a message of endless empty fragments is closed with 1009
  once it has more than MAX_FRAGMENTS.

After each attack a normal client is served on a new connection.
"""

import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import hpack
import pytest
from h2.errors import ErrorCodes
from hyperframe.frame import ContinuationFrame, HeadersFrame, PingFrame, SettingsFrame
from wsproto.events import CloseConnection

from async_pool.http2 import RESET_ALLOWANCE
from async_pool.websocket import MAX_FRAGMENTS

from ..h2_client import H2Client
from ..server_process import ServerProcess, running_server
from .test_websocket import TIMEOUT, Client, connect

FLOOD_BYTES = 64 * 1024 * 1024  # far more than every buffer between client and server


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    args = ("--workers", "2", "--no-access-log", "--timeout-write", "1", "--ws-max-size", "65536")
    with running_server(*args, app="apps_websocket:app") as srv:
        yield srv


@pytest.fixture(scope="module")
def h2_server() -> Iterator[ServerProcess]:
    with running_server("--workers", "2", "--no-access-log", "--timeout-write", "1") as srv:
        yield srv


@contextmanager
def h2_client(server: ServerProcess) -> Iterator[H2Client]:
    with server.connect(TIMEOUT) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client = H2Client(sock)
        client.pump()  # the server's SETTINGS
        yield client


def assert_served_over_h2(server: ServerProcess) -> None:
    with h2_client(server) as client:
        response = client.get("/")
        assert (response.status, bytes(response.body)) == (200, b"Hello, world!")


def test_rapid_reset_gets_goaway_enhance_your_calm(h2_server: ServerProcess) -> None:
    with h2_client(h2_server) as client:
        for _ in range(4 * RESET_ALLOWANCE):
            stream_id = client.request("/", flush=False)
            client.conn.reset_stream(stream_id, ErrorCodes.CANCEL)
            try:
                client.flush()
            except OSError:
                break  # the server closed: what it sent last is still in our buffer
        terminated = client.wait_terminated()
        assert terminated.error_code == ErrorCodes.ENHANCE_YOUR_CALM
    assert_served_over_h2(h2_server)


def test_an_honest_client_may_reset_streams(h2_server: ServerProcess) -> None:
    """Cancels mixed with answered requests, as a browser makes them, never trip it."""
    with h2_client(h2_server) as client:
        for _ in range(RESET_ALLOWANCE + 100):
            cancelled = client.request("/async-sleep?0.05")  # still running when reset
            client.conn.reset_stream(cancelled, ErrorCodes.CANCEL)
            assert client.get("/").status == 200
        assert client.terminated is None


def _flood_without_reading(server: ServerProcess, frame: bytes) -> int:
    """Send `frame` over and over, never reading; the bytes sent once the server closed."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(TIMEOUT)
        sock.connect((server.host, server.port))
        H2Client(sock)  # preface and SETTINGS
        batch = frame * (65536 // len(frame))
        sent = 0
        try:
            while sent < FLOOD_BYTES:
                sock.sendall(batch)
                sent += len(batch)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return sent


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param(SettingsFrame(0).serialize(), id="settings"),
        pytest.param(PingFrame(0, opaque_data=b"12345678").serialize(), id="ping"),
    ],
)
def test_control_frame_flood_from_a_client_that_never_reads(
    h2_server: ServerProcess, frame: bytes
) -> None:
    sent = _flood_without_reading(h2_server, frame)
    assert sent < FLOOD_BYTES  # the server stopped reading, then closed
    assert_served_over_h2(h2_server)


def test_continuation_flood_gets_goaway(h2_server: ServerProcess) -> None:
    encoder = hpack.Encoder()
    block = encoder.encode([(":method", "GET"), (":scheme", "http"), (":path", "/")])
    frames = [HeadersFrame(1, data=block).serialize()]  # no END_HEADERS
    filler = ContinuationFrame(1, data=encoder.encode([("x-a", "b" * 1000)])).serialize()
    with h2_client(h2_server) as client:
        try:
            for _ in range(10_000):
                frames.append(filler)
                if len(frames) >= 100:
                    client.sock.sendall(b"".join(frames))
                    frames.clear()
        except (BrokenPipeError, ConnectionResetError):
            pass
        terminated = client.wait_terminated()
        assert terminated.error_code == ErrorCodes.PROTOCOL_ERROR
    assert_served_over_h2(h2_server)


def test_hpack_bomb_gets_goaway_enhance_your_calm(h2_server: ServerProcess) -> None:
    encoder = hpack.Encoder()
    fields = [(":method", "GET"), (":scheme", "http"), (":authority", "a"), (":path", "/")]
    block = encoder.encode([*fields, ("x-bomb", "v" * 4000)])  # x-bomb is now index 62
    block += bytes([0x80 | 62]) * 1000  # a thousand one-byte references: 4 MB decoded
    frame = HeadersFrame(1, data=block, flags=["END_HEADERS", "END_STREAM"])
    with h2_client(h2_server) as client:
        client.sock.sendall(frame.serialize())
        terminated = client.wait_terminated()
        assert terminated.error_code == ErrorCodes.ENHANCE_YOUR_CALM
    assert_served_over_h2(h2_server)


# -- WebSocket -------------------------------------------------------------------------

_MASK = b"\x00\x00\x00\x00"  # a zero mask leaves the payload as it is


def _frame_head(opcode: int, fin: bool, length: int) -> bytes:
    first = (0x80 if fin else 0) | opcode
    if length < 126:
        return bytes([first, 0x80 | length]) + _MASK
    return bytes([first, 0x80 | 127]) + struct.pack("!Q", length) + _MASK


def _close_code(client: Client) -> int:
    event = client.next_event()
    while not isinstance(event, CloseConnection):
        event = client.next_event()
    return event.code


def assert_served_over_websocket(server: ServerProcess) -> None:
    with connect(server) as client:
        assert client.echo("still here") == "still here"


def test_websocket_frame_announcing_too_much_is_closed_1009(server: ServerProcess) -> None:
    with connect(server) as client:
        announced = 1 << 30  # 1 GiB; the limit here is 64 KiB
        client.sock.sendall(_frame_head(0x2, True, announced) + b"\x00" * 65536 * 2)
        assert _close_code(client) == 1009
    assert_served_over_websocket(server)


def test_websocket_fragment_flood_is_closed_1009(server: ServerProcess) -> None:
    with connect(server) as client:
        empty = _frame_head(0x0, False, 0)  # a continuation frame with no payload
        client.sock.sendall(_frame_head(0x2, False, 0))
        stop = threading.Event()

        def flood() -> None:
            try:
                for _ in range((MAX_FRAGMENTS + 1000) // 1000):
                    if stop.is_set():
                        return
                    client.sock.sendall(empty * 1000)
            except OSError:
                pass

        sender = threading.Thread(target=flood)
        sender.start()
        try:
            assert _close_code(client) == 1009
        finally:
            stop.set()
            sender.join(TIMEOUT)
    assert_served_over_websocket(server)


def test_a_message_in_many_fragments_below_the_cap_is_received(server: ServerProcess) -> None:
    with connect(server) as client:
        parts = [b"x"] * 1000
        raw = _frame_head(0x2, False, 1) + b"x"
        raw += b"".join(_frame_head(0x0, False, 1) + p for p in parts[1:-1])
        raw += _frame_head(0x0, True, 1) + b"x"
        client.sock.sendall(raw)
        assert client.message() == b"x" * 1000
