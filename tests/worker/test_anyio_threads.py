"""Sync routes of Starlette and FastAPI run through anyio.to_thread.run_sync, whose
worker threads live as long as the task the loop was started for. Each worker thread's
loop (and each AsyncPool loop) runs under a root task of its own, so those threads
serve request after request instead of being started and stopped for each one."""

import pytest

from ..http_client import ResponseReader
from ..server_process import running_server

REQUESTS = 20
TIMEOUT = 10.0


def _get(reader: ResponseReader, fields: bytes) -> bytes:
    reader.sock.sendall(b"GET / HTTP/1.1\r\nHost: test\r\n" + fields + b"\r\n")
    response = reader.read_response()
    assert response.status == 200
    return response.body


@pytest.mark.parametrize(
    ("args", "fields"),
    [
        (("--coroutine-driver", "eager"), b""),
        (("--coroutine-driver", "loop"), b""),
        ((), b"Accept: text/event-stream\r\n"),  # to the AsyncPool before the app runs
    ],
    ids=["sync-path-eager", "sync-path-loop", "async-pool"],
)
def test_anyio_worker_threads_outlive_each_request(args: tuple[str, ...], fields: bytes) -> None:
    with running_server("--workers", "1", *args, app="apps_extra:to_thread") as server:
        reader = ResponseReader(server.connect(TIMEOUT))
        try:
            fresh = [_get(reader, fields) for _ in range(REQUESTS)]
        finally:
            reader.sock.close()
    # One anyio worker thread did all of it (a thread per request: 1, 2, ... 20).
    assert fresh == [b"1"] * REQUESTS, fresh
