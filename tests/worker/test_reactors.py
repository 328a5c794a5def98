"""One epoll set per worker seat: connections spread over the seats, and none is held
hostage by a worker stuck in a long request (pounce_sync/worker/reactors.py)."""

import socket
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from pounce_sync.http1 import ParserLimits
from pounce_sync.worker.connection import Connection
from pounce_sync.worker.reactors import Reactors

from ..http_client import ResponseReader, get
from ..server_process import running_server

TIMEOUT = 10.0


@dataclass
class FakeSeat:
    """What rebalance reads of a worker: the two counters a SyncWorker keeps."""

    busy: bool
    requests_served: int


@contextmanager
def loopback_pairs(count: int) -> Iterator[list[tuple[socket.socket, Connection]]]:
    """`count` real TCP connections: (client socket, server-side Connection)."""
    pairs = []
    with socket.create_server(("127.0.0.1", 0)) as listener:
        for _ in range(count):
            client = socket.create_connection(listener.getsockname(), timeout=TIMEOUT)
            accepted, peer = listener.accept()
            conn = Connection(accepted, peer, accepted.getsockname(), "http", ParserLimits())
            pairs.append((client, conn))
    try:
        yield pairs
    finally:
        for client, conn in pairs:
            client.close()
            conn.sock.close()


def ready_fds(reactors: Reactors, seat: int) -> set[int]:
    return {fd for fd, _ in reactors.for_seat(seat).wait(0)}


def test_rebalance_moves_ready_connections_off_a_stuck_seat() -> None:
    reactors = Reactors(2)
    stuck, free = reactors.for_seat(0), reactors.for_seat(1)
    try:
        with loopback_pairs(4) as pairs:
            deadline = time.monotonic() + 60
            for _, conn in pairs:
                stuck.park(conn, deadline)
            for client, _ in pairs[:3]:  # three have a request waiting, one is idle
                client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            time.sleep(0.05)  # the bytes cross loopback
            seats = [FakeSeat(busy=True, requests_served=7), FakeSeat(False, 0)]
            assert reactors.rebalance(seats) == 0  # first look: nothing to compare with
            assert reactors.rebalance(seats) == 3  # still busy, nothing served since
            moved = {conn.fd for _, conn in pairs[:3]}
            assert all(conn.home is free for _, conn in pairs[:3])
            assert pairs[3][1].home is stuck  # idle: it stays home
            assert ready_fds(reactors, 1) == moved
            assert not ready_fds(reactors, 0) & moved
            assert {free.claim(fd) for fd in moved} == {conn for _, conn in pairs[:3]}
            assert stuck.parked_count == 1
    finally:
        reactors.close()


def test_rebalance_leaves_working_and_idle_seats_alone() -> None:
    reactors = Reactors(2)
    try:
        with loopback_pairs(2) as pairs:
            for _, conn in pairs:
                reactors.for_seat(0).park(conn, time.monotonic() + 60)
            for client, _ in pairs:
                client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            time.sleep(0.05)
            working = FakeSeat(busy=True, requests_served=1)
            idle = FakeSeat(busy=False, requests_served=5)
            for served in range(2, 6):  # busy, but finishing requests between looks
                working.requests_served = served
                assert reactors.rebalance([working, FakeSeat(False, 0)]) == 0
            for _ in range(3):  # not busy: it is about to take them itself
                assert reactors.rebalance([idle, FakeSeat(False, 0)]) == 0
            both_stuck = [FakeSeat(True, 1), FakeSeat(True, 1)]
            reactors.rebalance(both_stuck)
            assert reactors.rebalance(both_stuck) == 0  # nowhere to move them
            assert all(conn.home is reactors.for_seat(0) for _, conn in pairs)
    finally:
        reactors.close()


def test_new_connections_spread_over_the_worker_seats() -> None:
    """Each new connection is parked in the next seat's set in turn, whichever worker
    accepted it; its later requests are served by that seat's worker."""
    with running_server(
        "--workers", "2", "--worker-mode", "thread", "--no-access-log", app="apps_extra:hold"
    ) as server:
        readers = [ResponseReader(server.connect(TIMEOUT)) for _ in range(20)]
        try:
            for reader in readers:
                assert get(reader, "/thread")[0] == 200
            later = Counter(get(reader, "/thread")[1] for reader in readers)
        finally:
            for reader in readers:
                reader.sock.close()
    assert set(later) == {b"worker-1", b"worker-2"}, later
    assert min(later.values()) >= 5, later
