"""Socket ownership across a handoff: after submit(), only the AsyncPool touches the socket.

A sync worker and a real AsyncPool run in this process over a real loopback
connection whose server side is a `RecordingSocket`: a socket.socket that notes
which thread called recv, send and close. For each kind of handoff, every call
after the pool's first one must come from a pool thread, and the socket must be
closed exactly once.
"""

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import h2.connection
import h2.events
import pytest
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Request, TextMessage

from async_pool import AsyncPool
from pounce_sync.config import Config
from pounce_sync.http1 import ParserLimits
from pounce_sync.worker.connection import Connection
from pounce_sync.worker.context import ServeContext
from pounce_sync.worker.coroutine_driver import make_driver
from pounce_sync.worker.idle_poller import IdlePoller
from pounce_sync.worker.reactors import Reactors
from pounce_sync.worker.streaming_paths import StreamingPaths
from pounce_sync.worker.sync_worker import SyncWorker

from ..http_client import ResponseReader

TIMEOUT = 10.0
WORKER_THREAD = "sync-worker-under-test"


class RecordingSocket(socket.socket):
    """A real socket that records (thread name, operation) for each I/O call and close."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[tuple[str, str]] = []

    def _note(self, op: str) -> None:
        self.calls.append((threading.current_thread().name, op))

    def recv(self, *args: Any) -> bytes:
        self._note("recv")
        return super().recv(*args)

    def send(self, *args: Any) -> int:
        self._note("send")
        return super().send(*args)

    def sendall(self, *args: Any) -> None:
        self._note("sendall")
        super().sendall(*args)

    def close(self) -> None:
        self._note("close")
        super().close()


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """SSE over HTTP/1.1 and HTTP/2, and a WebSocket echo."""
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "text": message["text"]})
    headers = [(b"content-type", b"text/event-stream")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    for n in range(3):
        await send({"type": "http.response.body", "body": b"data: %d\n\n" % n, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


@contextmanager
def worker_and_pool() -> Iterator[tuple[SyncWorker, AsyncPool, IdlePoller]]:
    config = Config(access_log=False, ws_ping_interval=0)
    pool = AsyncPool(app, config, state=None, trusted_proxies=None, resume=None)
    pool.start()
    reactors = Reactors(1)
    poller = reactors.for_seat(0)
    ctx = ServeContext(
        config=config,
        app=app,
        reactors=reactors,
        listeners={},
        lifespan_state=None,
        pool=pool,
        streaming_paths=StreamingPaths(()),
    )
    worker = SyncWorker(ctx)
    worker._driver = make_driver("eager")
    try:
        yield worker, pool, poller
    finally:
        pool.stop(5.0)
        worker._driver.close()
        poller.close()


@contextmanager
def recorded_connection(
    poller: IdlePoller,
) -> Iterator[tuple[socket.socket, RecordingSocket, Connection]]:
    """A loopback connection; the server side is recorded and parked with the poller."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname(), timeout=TIMEOUT)
        accepted, peer = listener.accept()
    server_side = RecordingSocket(fileno=accepted.detach())
    conn = Connection(server_side, peer, server_side.getsockname(), "http", ParserLimits())
    poller.park(conn, time.monotonic() + TIMEOUT)
    try:
        yield client, server_side, conn
    finally:
        client.close()
        if server_side.fileno() != -1:  # a failed test may leave it open
            socket.socket.close(server_side)


def serve_once(worker: SyncWorker, poller: IdlePoller) -> None:
    """What a worker thread does for one readiness event, on a thread of that name."""

    def run() -> None:
        for fd, _ in poller.wait(TIMEOUT):
            worker.dispatch(fd)

    thread = threading.Thread(target=run, name=WORKER_THREAD)
    thread.start()
    thread.join(TIMEOUT)
    assert not thread.is_alive()


def wait_closed(sock: RecordingSocket) -> None:
    deadline = time.monotonic() + TIMEOUT
    while sock.fileno() != -1 and time.monotonic() < deadline:
        time.sleep(0.01)


def assert_pool_owned(sock: RecordingSocket) -> None:
    calls = list(sock.calls)
    first_pool = next(i for i, (thread, _) in enumerate(calls) if thread.startswith("async-pool"))
    before, after = calls[:first_pool], calls[first_pool:]
    assert {thread for thread, _ in before} <= {WORKER_THREAD}, before
    assert all(thread.startswith("async-pool") for thread, _ in after), after
    assert [op for _, op in calls].count("close") == 1, calls


def read_until_eof(client: socket.socket) -> bytes:
    chunks = []
    while chunk := client.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_streaming_request_belongs_to_the_pool_after_the_handoff() -> None:
    with worker_and_pool() as (worker, _, poller), recorded_connection(poller) as (client, sock, _):
        client.sendall(
            b"GET /events HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n"
            b"Connection: close\r\n\r\n"
        )
        serve_once(worker, poller)
        reader = ResponseReader(client)
        response = reader.read_response()
        reader.read_closed()
        wait_closed(sock)
    assert (response.status, response.body) == (200, b"data: 0\n\ndata: 1\n\ndata: 2\n\n")
    assert_pool_owned(sock)


def test_websocket_belongs_to_the_pool_after_the_handoff() -> None:
    ws = WSConnection(ConnectionType.CLIENT)
    with worker_and_pool() as (worker, _, poller), recorded_connection(poller) as (client, sock, _):
        client.sendall(ws.send(Request(host="t", target="/ws")))
        serve_once(worker, poller)
        events: list[Any] = []
        while not any(isinstance(e, AcceptConnection) for e in events):
            ws.receive_data(client.recv(65536))
            events += list(ws.events())
        client.sendall(ws.send(TextMessage(data="ping")))
        while not any(isinstance(e, TextMessage) for e in events):
            ws.receive_data(client.recv(65536))
            events += list(ws.events())
        client.sendall(ws.send(CloseConnection(code=1000)))
        read_until_eof(client)
        wait_closed(sock)
    assert [e.data for e in events if isinstance(e, TextMessage)] == ["ping"]
    assert_pool_owned(sock)


def test_http2_connection_belongs_to_the_pool_after_the_handoff() -> None:
    h2c = h2.connection.H2Connection()
    with worker_and_pool() as (worker, _, poller), recorded_connection(poller) as (client, sock, _):
        h2c.initiate_connection()
        stream = h2c.get_next_available_stream_id()
        headers = [(":method", "GET"), (":path", "/"), (":scheme", "http"), (":authority", "t")]
        h2c.send_headers(stream, headers, end_stream=True)
        client.sendall(h2c.data_to_send())
        serve_once(worker, poller)
        body = b""
        ended = False
        while not ended:
            for event in h2c.receive_data(client.recv(65536)):
                if isinstance(event, h2.events.DataReceived):
                    body += event.data
                    h2c.acknowledge_received_data(len(event.data), stream)
                ended = ended or isinstance(event, h2.events.StreamEnded)
            client.sendall(h2c.data_to_send())
        h2c.close_connection()
        client.sendall(h2c.data_to_send())
        read_until_eof(client)
        wait_closed(sock)
    assert body == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"
    assert_pool_owned(sock)


@pytest.mark.parametrize("kind", ["sse", "websocket"])
def test_the_worker_never_closes_what_it_handed_off(kind: str) -> None:
    """The worker returns from dispatch with the socket open and unregistered."""
    with (
        worker_and_pool() as (worker, _, poller),
        recorded_connection(poller) as (client, sock, conn),
    ):
        if kind == "sse":
            client.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n")
        else:
            client.sendall(WSConnection(ConnectionType.CLIENT).send(Request(host="t", target="/")))
        serve_once(worker, poller)
        worker_calls = [op for thread, op in sock.calls if thread == WORKER_THREAD]
        assert "close" not in worker_calls
        assert conn.registered == 0  # out of the workers' epoll set
        assert poller.parked_count == 0
