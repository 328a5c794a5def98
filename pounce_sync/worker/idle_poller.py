"""Parks idle connections so they never pin a worker thread.

One epoll set is shared by all worker threads (shape (b) in docs/architecture.md). Every
connection is armed with EPOLLONESHOT, so a readiness event wakes exactly one
worker, and that worker owns the connection until it parks it again. Listening
sockets are level-triggered, so accepting needs no re-arming. There is no
user-space queue between the poller and the workers.

With a single worker thread (process mode's default shape, or `--workers 1`),
nobody else can be woken for a connection, so connections are registered
level-triggered once and never re-armed, and one wait returns a batch of ready
connections: two system calls fewer per request (`epoll_ctl`, most `epoll_wait`).

Ownership rule: a parked connection is in `_parked`; whoever removes it under
the lock (a worker in `claim`, the reaper in `pop_expired`, shutdown in
`drain`) owns it. The entry is added *before* the descriptor is re-armed, so a
wake-up can never find its connection missing.

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

_ONESHOT_IN = select.EPOLLIN | select.EPOLLONESHOT
_ONESHOT_OUT = select.EPOLLOUT | select.EPOLLONESHOT
_LEVEL_IN = select.EPOLLIN
_LEVEL_OUT = select.EPOLLOUT
_BATCH = 64  # ready connections one wait hands a single worker
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


class IdlePoller:
    def __init__(self, single_worker: bool = False) -> None:
        """`single_worker`: exactly one worker thread waits here (see the module docstring)."""
        self._single_worker = single_worker
        self._read_events = _LEVEL_IN if single_worker else _ONESHOT_IN
        self._write_events = _LEVEL_OUT if single_worker else _ONESHOT_OUT
        self._max_events = _BATCH if single_worker else 1
        self._epoll = select.epoll()
        self._lock = threading.Lock()
        # fd -> (connection, deadline, status to answer on expiry)
        self._parked: dict[int, tuple[Connection, float, int | None]] = {}
        # Draining: (grace, graceful deadline) that cap keep-alive parking (begin_drain).
        self._drain: tuple[float, float] | None = None
        self._wake_fd = os.eventfd(0, os.EFD_NONBLOCK)
        self._epoll.register(self._wake_fd, _LEVEL_IN)

    # -- workers ---------------------------------------------------------------
    def wait(self, timeout: float) -> list[tuple[int, int]]:
        return self._epoll.poll(timeout, self._max_events)

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
        events = self._write_events if writable else self._read_events
        with self._lock:
            if self._drain is not None and _is_keep_alive(conn, expire_status):
                deadline = min(deadline, _grace_deadline(*self._drain))
            self._parked[conn.fd] = (conn, deadline, expire_status)
        try:
            armed = conn.registered
            if not armed:
                conn.registered = events
                self._epoll.register(conn.fd, events)
            elif armed != events or not self._single_worker:  # EPOLLONESHOT disarmed it
                conn.registered = events
                self._epoll.modify(conn.fd, events)
        except OSError:
            pass  # shutdown drained and closed it between the two steps

    def claim(self, fd: int) -> Connection | None:
        with self._lock:
            entry = self._parked.pop(fd, None)
        return None if entry is None else entry[0]

    def forget(self, conn: Connection) -> None:
        """Drop a connection a worker owns from the epoll set: it leaves for the AsyncPool."""
        if conn.registered:
            conn.registered = 0
            with contextlib.suppress(OSError, ValueError):
                self._epoll.unregister(conn.fd)

    # -- listeners -------------------------------------------------------------
    def add_listener(self, sock: socket.socket) -> None:
        """Level-triggered and exclusive: while connections wait, some worker is woken.

        EPOLLEXCLUSIVE keeps one listening socket shared by several worker processes
        from waking every process's epoll for each connection.
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
        """Make every worker's wait() return, now and from now on (shutdown)."""
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
