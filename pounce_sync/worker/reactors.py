"""One idle poller per worker thread, and what the server does across all of them.

Each worker seat has its own epoll set (`IdlePoller`): no lock or re-arming between
a connection's requests, and one wait hands the worker a batch of ready connections
(shape (c) in docs/architecture.md, measured against the shared one-shot set in
docs/benchmarks.md). Two things a shared set gave for free are done here instead:

- Spreading: a worker parks the connections it accepts into the seats' sets in
  turn (`home_for_new`), so one wake-up of the listener does not leave one seat
  with all the clients.
- No hostages: a seat whose worker has been in the same request since the last
  look (`rebalance`, called by the reaper every REBALANCE_INTERVAL) has its ready
  connections moved to the other seats' sets, whose workers serve them. A slow
  handler therefore delays the ready requests of its set by one interval at most
  (plus the other workers' own queue), never for as long as it runs.
"""

import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from .connection import Connection, Home
from .idle_poller import Expired, IdlePoller

# Seconds between the reaper's looks at the seats: how long a slow handler can hold the
# ready requests of its set. Each look is one epoll_wait(0) per stuck seat, none otherwise.
REBALANCE_INTERVAL = 0.05


class Seat(Protocol):
    """What `rebalance` reads of a seat's worker (SyncWorker), without locks."""

    busy: bool
    requests_served: int


@dataclass(frozen=True)
class VacantSeat:
    """A seat whose thread ended (retired or died) and is not replaced yet: stuck."""

    busy: bool = True
    requests_served: int = -1


VACANT_SEAT = VacantSeat()


class Reactors:
    def __init__(self, seats: int) -> None:
        self.pollers = tuple(IdlePoller() for _ in range(max(1, seats)))
        self._turn = 0  # server-side parking in turn (home_for_new), under _lock
        self._lock = threading.Lock()
        self._closed = False  # drained: nothing is moved any more
        # Each seat's requests_served at the last rebalance; only the reaper thread calls it.
        self._last_seen: list[int | None] = [None] * len(self.pollers)

    def for_seat(self, seat: int) -> IdlePoller:
        return self.pollers[seat % len(self.pollers)]

    def home_for_new(self) -> IdlePoller:
        """The set a connection with no home goes to: each in turn (server-side callers)."""
        with self._lock:
            self._turn += 1
            return self.for_seat(self._turn)

    def park(
        self,
        conn: Connection,
        deadline: float,
        expire_status: int | None = None,
        *,
        writable: bool = False,
    ) -> None:
        """Park where `conn` lives, or, new to the sync path, in the next set in turn."""
        home: Home = conn.home or self.home_for_new()
        home.park(conn, deadline, expire_status, writable=writable)

    def forget(self, conn: Connection) -> None:
        if conn.home is not None:
            conn.home.forget(conn)

    # -- no hostages -----------------------------------------------------------------
    def rebalance(self, seats: Sequence[Seat]) -> int:
        """Move ready connections off the sets of workers stuck in one request; how many.

        Stuck: busy now, and no request finished since the last call. The others are
        free; each moved connection goes to the next free set in turn. Nothing moves
        with a single seat, or when every worker is stuck.
        """
        if len(self.pollers) < 2 or len(seats) != len(self.pollers):
            return 0
        stuck = []
        for index, seat in enumerate(seats):
            served = seat.requests_served
            if seat.busy and self._last_seen[index] == served:
                stuck.append(index)
            self._last_seen[index] = served
        free = [self.pollers[i] for i in range(len(self.pollers)) if i not in stuck]
        if not stuck or not free:
            return 0
        moved = 0
        with self._lock:  # against drain(): a connection is never between two sets then
            if self._closed:
                return 0
            for index in stuck:
                for (conn, deadline, status), writable in self.pollers[index].take_ready():
                    free[moved % len(free)].park(conn, deadline, status, writable=writable)
                    moved += 1
        return moved

    # -- across every set ------------------------------------------------------------
    def add_listener(self, sock: socket.socket) -> None:
        for poller in self.pollers:
            poller.add_listener(sock)

    def remove_listener(self, sock: socket.socket) -> None:
        for poller in self.pollers:
            poller.remove_listener(sock)

    def pop_expired(self, now: float) -> list[Expired]:
        return [expired for poller in self.pollers for expired in poller.pop_expired(now)]

    def begin_drain(self, until: float) -> None:
        for poller in self.pollers:
            poller.begin_drain(until)

    def drain(self) -> list[Connection]:
        with self._lock:
            self._closed = True
            return [conn for poller in self.pollers for conn in poller.drain()]

    @property
    def parked_count(self) -> int:
        return sum(poller.parked_count for poller in self.pollers)

    def wake_all(self) -> None:
        for poller in self.pollers:
            poller.wake_all()

    def close(self) -> None:
        for poller in self.pollers:
            poller.close()
