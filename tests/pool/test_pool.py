"""The AsyncPool's loop threads: started by start(), or by the first handoff, never after
shutdown began. A real pool in this process writes a PendingWrite to a loopback client."""

import socket
import threading
from typing import Any

from async_pool import AsyncPool, ClientSocket, PendingWrite
from pounce_sync.config import Config

from ..server_process import read_until_closed

TIMEOUT = 10.0


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    raise AssertionError("a PendingWrite runs no application")


def _pool() -> AsyncPool:
    config = Config(access_log=False)
    return AsyncPool(app, config, state=None, trusted_proxies=None, resume=None)


def _pool_threads() -> int:
    """Loop threads alive in this process (another test's pool may still be ending)."""
    return sum(t.name.startswith("async-pool") for t in threading.enumerate())


def _pending_write(data: bytes) -> tuple[socket.socket, PendingWrite]:
    """A loopback connection whose server side ends with `data` to write, then closes."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname(), timeout=TIMEOUT)
        accepted, peer = listener.accept()
    accepted.setblocking(False)
    conn = ClientSocket(accepted, peer, accepted.getsockname(), "http")
    return client, PendingWrite(conn, memoryview(data), False, b"")


def test_the_first_handoff_starts_the_loops_of_a_pool_nobody_started() -> None:
    before = _pool_threads()
    pool = _pool()
    assert _pool_threads() == before
    client, handoff = _pending_write(b"the end of a response")
    try:
        assert pool.submit(handoff) is True
        assert _pool_threads() == before + 1
        assert read_until_closed(client) == b"the end of a response"
    finally:
        client.close()
        pool.stop(5.0)


def test_a_pool_stopped_before_any_handoff_starts_no_loop_and_refuses_one() -> None:
    before = _pool_threads()
    pool = _pool()
    pool.stop(1.0)  # a WSGI server's drain when no client was slow
    client, handoff = _pending_write(b"never written")
    try:
        assert pool.submit(handoff) is False  # the worker writes it itself
        pool.start()
        assert _pool_threads() == before
    finally:
        client.close()
        handoff.conn.sock.close()
