"""One worker thread's reactor: parks idle connections so they never pin a worker.

Each worker thread waits on an epoll set of its own (shape (c) in docs/architecture.md),
and `Reactors` spreads connections across the sets and moves ready ones away from a
worker stuck in a long request. Connections are registered level-triggered once and
never re-armed: only one thread ever waits on a set, so nobody else can be woken for
them, and one wait hands the worker up to 64 ready connections. Listening sockets are
in every set with EPOLLEXCLUSIVE, so a new connection wakes one idle worker.

Ownership rule: a parked connection is in `_parked`; whoever removes it under
the lock (the worker in `claim`, the reaper in `pop_expired` or `take_ready`,
shutdown in `drain`) owns it. The entry is added *before* the descriptor is
registered, so a wake-up can never find its connection missing. A connection is
registered in at most one set, its `home`; other threads may park into a set
(epoll_ctl is thread-safe), only its worker waits on it.

Draining, a keep-alive connection is not closed at once: the last response on it
promised keep-alive, so its client may be sending the next request right now, and
closing would lose that request (the keep-alive close race). It stays parked for
DRAIN_GRACE instead; a request that arrives meanwhile is answered with
`connection: close`, and the reaper closes the connections that stayed silent.
"""

import contextlib
import os
import select
import socket
import threading
import time
from dataclasses import dataclass

from .connection import Connection

_READ = select.EPOLLIN
_WRITE = select.EPOLLOUT
_BATCH = 64  # ready connections one wait hands the worker
_LISTEN = select.EPOLLIN | select.EPOLLEXCLUSIVE
# Seconds a keep-alive connection stays parked once draining began. A busy client's
# next request follows its last response within milliseconds; one second covers a
# loaded machine too, and keeps a rolling restart of N processes about N seconds long.
DRAIN_GRACE = 1.0


@dataclass(frozen=True, slots=True)
class Expired:
    connection: Connection
    status: int | None  # answer with this status before closing (408), or close silently


def has_input(conn: Connection) -> bool:
    """Bytes or EOF wait, so the connection's armed event brings a worker.

    A TLS connection is never parked with decrypted bytes inside OpenSSL (see
    TLSConnection), so peeking at its socket's raw records is the whole answer.
    """
    if conn.wants_write:
        return False  # armed for writability (a TLS handshake step): input wakes nobody
    try:
        conn.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return False
    except OSError:
        return True  # an error is news a worker must see
    return True


Parked = tuple[Connection, float, int | None]  # (connection, deadline, status on expiry)


class IdlePoller:
    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._lock = threading.Lock()
        self._parked: dict[int, Parked] = {}  # fd -> its entry
        # Draining: (grace, graceful deadline) that cap keep-alive parking (begin_drain).
        self._drain: tuple[float, float] | None = None
        self._wake_fd = os.eventfd(0, os.EFD_NONBLOCK)
        self._epoll.register(self._wake_fd, _READ)

    # -- the worker ------------------------------------------------------------
    def wait(self, timeout: float) -> list[tuple[int, int]]:
        return self._epoll.poll(timeout, _BATCH)

    def park(
        self,
        conn: Connection,
        deadline: float,
        expire_status: int | None = None,
        *,
        writable: bool = False,
    ) -> None:
        """Park `conn` until it is readable (writable: a TLS handshake step) or `deadline`.

        Draining, a keep-alive connection's deadline is capped (see begin_drain).
        """
        events = _WRITE if writable else _READ
        if conn.home is not self and conn.home is not None:
            conn.home.forget(conn)  # moving to this set: out of the other first
        with self._lock:
            if self._drain is not None and _is_keep_alive(conn, expire_status):
                deadline = min(deadline, _grace_deadline(*self._drain))
            self._parked[conn.fd] = (conn, deadline, expire_status)
        try:
            armed = conn.registered
            if not armed:
                conn.registered = events
                conn.home = self
                self._epoll.register(conn.fd, events)
            elif armed != events:
                conn.registered = events
                self._epoll.modify(conn.fd, events)
        except OSError:
            pass  # shutdown drained and closed it between the two steps

    def claim(self, fd: int) -> Connection | None:
        with self._lock:
            entry = self._parked.pop(fd, None)
        return None if entry is None else entry[0]

    def forget(self, conn: Connection) -> None:
        """Drop a connection its owner holds from this epoll set (to the AsyncPool, or moving)."""
        if conn.registered:
            conn.registered = 0
            conn.home = None
            with contextlib.suppress(OSError, ValueError):
                self._epoll.unregister(conn.fd)

    def take_ready(self) -> list[tuple[Parked, bool]]:
        """Another thread takes the parked connections with input waiting: (entry, writable).

        For `Reactors.rebalance`, while this set's worker is stuck in a long request.
        The caller owns the connections and parks them elsewhere, out of this set.
        """
        ready = self._epoll.poll(0, _BATCH)
        with self._lock:
            # None: the wake fd, a listener, or a connection its worker claimed first.
            taken = [self._parked.pop(fd, None) for fd, _ in ready]
        moved = []
        for entry in filter(None, taken):
            conn = entry[0]
            writable = conn.registered == _WRITE
            self.forget(conn)
            moved.append((entry, writable))
        return moved

    # -- listeners -------------------------------------------------------------
    def add_listener(self, sock: socket.socket) -> None:
        """Level-triggered and exclusive: while connections wait, some worker is woken.

        EPOLLEXCLUSIVE keeps one listening socket shared by the sets of several worker
        threads and processes from waking every one of them for each connection.
        """
        try:
            self._epoll.register(sock.fileno(), _LISTEN)
        except (OSError, ValueError):
            pass  # already registered, or closed by shutdown meanwhile

    def remove_listener(self, sock: socket.socket) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._epoll.unregister(sock.fileno())

    # -- reaper and shutdown ---------------------------------------------------
    def pop_expired(self, now: float) -> list[Expired]:
        """Take the connections whose deadline passed.

        Parking stays a dict store; the reaper pays instead, scanning a snapshot a few
        times a second outside the lock (about 1 ms per 5,000 parked connections).
        """
        with self._lock:
            snapshot = list(self._parked.items())
        # A connection with bytes (or EOF) waiting is not idle: its request arrived in
        # time and only waits for a free worker, which its armed event will bring.
        due = [(fd, entry) for fd, entry in snapshot if entry[1] <= now and not has_input(entry[0])]
        expired = []
        if due:
            with self._lock:
                for fd, entry in due:
                    if self._parked.get(fd) is entry:  # not claimed or re-parked meanwhile
                        del self._parked[fd]
                        expired.append(Expired(entry[0], entry[2]))
        return expired

    def begin_drain(self, until: float, grace: float = DRAIN_GRACE) -> None:
        """Keep-alive connections stay parked for `grace` more seconds at most, not past `until`.

        Not closed at once: a busy client's next request may be on the wire already
        (see the module docstring). Those parked now and those parked later are capped
        alike; the reaper closes them when the cap passes, unless input waits.
        """
        with self._lock:
            self._drain = (grace, until)
            cap = _grace_deadline(grace, until)
            for fd, (conn, deadline, status) in self._parked.items():
                if deadline > cap and _is_keep_alive(conn, status):
                    self._parked[fd] = (conn, cap, status)

    def drain(self) -> list[Connection]:
        """Take every parked connection (shutdown)."""
        with self._lock:
            conns = [entry[0] for entry in self._parked.values()]
            self._parked.clear()
        return conns

    @property
    def parked_count(self) -> int:
        return len(self._parked)

    def wake_all(self) -> None:
        """Make the worker's wait() return, now and from now on (shutdown)."""
        os.eventfd_write(self._wake_fd, 1)

    def close(self) -> None:
        self._epoll.close()
        os.close(self._wake_fd)


def _is_keep_alive(conn: Connection, expire_status: int | None) -> bool:
    """Parked between requests: not before the first one (a new connection or a TLS
    handshake), nor in the middle of a request head (those expire with a 408)."""
    return expire_status is None and conn.requests > 0


def _grace_deadline(grace: float, until: float) -> float:
    return min(time.monotonic() + grace, until)
