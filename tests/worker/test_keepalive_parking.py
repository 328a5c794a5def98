"""Idle keep-alive connections are parked, not pinned to worker threads.

Real server processes on 127.0.0.1; counts are bounded and nothing asserts on
wall-clock durations (socket timeouts only turn a hang into a failure).
"""

import resource
import select
import threading
from collections.abc import Iterator

import pytest

from ..http_client import ResponseReader, ServerClosed, get, get_new
from ..server_process import ServerProcess, running_server

IDLE_CONNECTIONS = 5000
BATCH = 250
SAMPLE = 200
TIMEOUT = 30.0  # generous: only turns a hang into a failure
HELLO = (200, b"Hello, world!")


def request(path: str = "/") -> bytes:
    return b"GET %s HTTP/1.1\r\nHost: test\r\n\r\n" % path.encode()


def status_or_closed(reader: ResponseReader) -> int | None:
    """The status of the next response, or None if the server closed the connection."""
    try:
        return reader.read_response().status
    except ServerClosed:  # closed (EOF) or reset where the response should begin
        return None


def not_idle(readers: list[ResponseReader]) -> list[int]:
    """Indexes of the connections the peer closed or sent unasked bytes on (poll, no wait)."""
    poller = select.poll()
    index = {}
    for i, sock in enumerate(reader.sock for reader in readers):
        poller.register(sock, select.POLLIN | select.POLLRDHUP)
        index[sock.fileno()] = i
    return sorted(index[fd] for fd, _ in poller.poll(0))


def thread_count(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    raise AssertionError("no Threads: line")


@pytest.fixture
def many_files() -> Iterator[int]:
    """Raise this process's open-files soft limit to the hard limit for the test."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    try:
        yield target
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_thousands_of_idle_connections_do_not_pin_workers(many_files: int) -> None:
    if many_files < IDLE_CONNECTIONS + 500:
        pytest.skip(f"open-files hard limit {many_files} is too low for {IDLE_CONNECTIONS}")
    conns: list[ResponseReader] = []
    with running_server(
        "--workers",
        "4",
        "--worker-mode",
        "thread",
        "--no-access-log",
        "--timeout-keep-alive",
        "300",
    ) as server:
        try:
            while len(conns) < IDLE_CONNECTIONS:
                batch = [
                    ResponseReader(server.connect(TIMEOUT))
                    for _ in range(min(BATCH, IDLE_CONNECTIONS - len(conns)))
                ]
                conns.extend(batch)
                for reader in batch:
                    reader.sock.sendall(request())
                for reader in batch:
                    response = reader.read_response()
                    assert (response.status, response.body) == HELLO, response

            # 5,000 idle connections, 4 workers: a new client is still served at once
            # (a design that pins a worker per connection would time out here).
            assert get_new(server, timeout=10.0) == HELLO

            closed = not_idle(conns)
            assert not closed, f"{len(closed)} idle connections were closed, e.g. #{closed[0]}"
            # Parked, not pinned: the server did not grow a thread per connection.
            assert thread_count(server.proc.pid) < 100

            step = IDLE_CONNECTIONS // SAMPLE
            for reader in conns[::step]:
                assert get(reader, "/again") == HELLO
            assert server.proc.poll() is None
        finally:
            for reader in conns:
                reader.sock.close()
        assert "Traceback" not in server.stderr, server.stderr


def test_idle_connection_closed_at_keep_alive_timeout() -> None:
    # The header deadline is far longer than the socket timeout: only the keep-alive
    # timeout can close this connection in time.
    with running_server(
        "--timeout-keep-alive", "1", "--timeout-header-read", "300", "--no-access-log"
    ) as server:
        with server.connect(TIMEOUT) as sock:
            reader = ResponseReader(sock)
            assert get(reader) == HELLO
            # Idle now: the server must close it (no further bytes) after ~1 s.
            reader.read_closed()
        # The server itself carries on.
        assert get_new(server)[0] == 200


def test_request_sent_before_keep_alive_timeout_is_served_when_workers_are_busy() -> None:
    """A request that arrives on a parked connection in time is answered, however late.

    The only worker is busy for longer than the keep-alive timeout; the request
    arrived long before the timeout, so the connection is not idle and must not be
    closed under it.
    """
    with running_server("--workers", "1", "--timeout-keep-alive", "2", "--no-access-log") as server:
        busy = ResponseReader(server.connect(TIMEOUT))  # accepted and parked before `client`
        client = ResponseReader(server.connect(TIMEOUT))
        with busy.sock, client.sock:
            assert get(client) == HELLO  # parked now
            # Both requests go out at once: `busy` is first in the poller's ready list,
            # so the worker sleeps 4 s while `client`'s request waits past its 2 s
            # keep-alive deadline.
            busy.sock.sendall(request("/sleep?4"))
            client.sock.sendall(request("/in-time"))
            assert status_or_closed(client) == 200
            assert busy.read_response().status == 200


def test_keep_alive_connection_reused_before_timeout() -> None:
    """Requests in a row on one connection are served on that same connection."""
    with (
        running_server("--timeout-keep-alive", "30", "--no-access-log") as server,
        server.connect(TIMEOUT) as sock,
    ):
        reader = ResponseReader(sock)
        for i in range(5):
            assert get(reader, f"/n{i}") == HELLO
        assert not not_idle([reader])


class Sleeper(threading.Thread):
    """Sends one request that blocks a worker, records when its response arrives."""

    def __init__(self, server: ServerProcess, path: str) -> None:
        super().__init__(daemon=True)
        self.reader = ResponseReader(server.connect(TIMEOUT + 60))
        self.path = path
        self.done = threading.Event()
        self.result: tuple[int, bytes] | BaseException | None = None

    def run(self) -> None:
        try:
            self.result = get(self.reader, self.path)
        except BaseException as exc:
            self.result = exc
        finally:
            self.done.set()
            self.reader.sock.close()


def test_slow_handler_does_not_delay_others() -> None:
    """A handler in time.sleep(3) holds one of two workers; the other serves everyone else."""
    with running_server("--workers", "2", "--no-access-log") as server:
        sleeper = Sleeper(server, "/sleep?3")
        sleeper.start()
        finished_before_sleeper = []
        for i in range(20):
            assert get_new(server, f"/other{i}") == HELLO
            finished_before_sleeper.append(not sleeper.done.is_set())
        assert all(finished_before_sleeper), finished_before_sleeper
        sleeper.join(TIMEOUT)
        assert sleeper.result == (200, b"slept"), sleeper.result


def test_blocked_handler_does_not_delay_other_connections() -> None:
    """Deterministic variant: the handler blocks until the test releases it.

    Parked keep-alive connections and new ones are all served by the one free worker
    while the other worker is provably stuck inside the application.
    """
    with running_server(
        "--workers",
        "2",
        "--worker-mode",
        "thread",  # the hold app's state is per process
        "--timeout-keep-alive",
        "300",
        "--no-access-log",
        app="apps_extra:hold",
    ) as server:
        parked = [ResponseReader(server.connect(TIMEOUT)) for _ in range(10)]
        try:
            for reader in parked:
                assert get(reader)[0] == 200
            holder = Sleeper(server, "/hold")
            holder.start()
            for _ in range(200):  # until the handler is blocked (bounded)
                if get_new(server, "/holding")[1] == b"1":
                    break
                holder.done.wait(0.05)
            else:
                pytest.fail("the /hold request never reached the application")

            served = 0
            for reader in parked:  # 10 parked keep-alive connections
                assert get(reader, "/parked") == HELLO
                served += 1
            for i in range(10):  # and 10 new ones
                assert get_new(server, f"/new{i}") == HELLO
                served += 1
            assert served == 20
            assert not holder.done.is_set(), holder.result
            assert get_new(server, "/holding")[1] == b"1"

            assert get_new(server, "/release") == (200, b"ok")
            holder.join(TIMEOUT)
            assert holder.result == (200, b"released"), holder.result
        finally:
            for reader in parked:
                reader.sock.close()
