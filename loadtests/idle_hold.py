"""Idle keep-alive connections held open against a server while wrk loads it.

One thread, plain sockets and a selector: a client that holds connections, not a load
generator. Each connection sends one GET and reads its response, then stays idle. Servers
close idle connections after their keep-alive timeout (uvicorn: 5 s, gunicorn: 2 s), so each
connection sends another GET about every `interval_s`, the connections' turns spread evenly
over that interval, and a connection the server closed is reopened at its next turn. The
counts say how many were open at a given moment and how many had to be reopened.
"""

import re
import selectors
import socket
import threading
import time
from dataclasses import dataclass

_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.I)
_CHUNKED = re.compile(rb"\r\ntransfer-encoding:[^\r\n]*chunked", re.I)
_HEAD_END = b"\r\n\r\n"
CONNECT_TIMEOUT_S = 1.0  # for a reopen inside the keeper loop, which it holds up meanwhile


def _chunked_end(buf: bytes, pos: int) -> int | None:
    """Where a chunked body starting at `pos` ends (trailers included), None if incomplete."""
    while True:
        line_end = buf.find(b"\r\n", pos)
        if line_end < 0:
            return None
        size = int(buf[pos:line_end].split(b";")[0], 16)  # ValueError if it is no size
        if size == 0:
            end = buf.find(_HEAD_END, line_end)
            return None if end < 0 else end + len(_HEAD_END)
        pos = line_end + 2 + size + 2
        if pos > len(buf):
            return None


def take_response(buf: bytes) -> tuple[int, int] | None:
    """(status, length in bytes) of the first complete response in `buf`; None if incomplete.

    Bodies are framed by Content-Length or chunked encoding; a response with neither is
    taken as having no body (all the benchmark apps send Content-Length). ValueError if
    `buf` does not start with an HTTP/1.x response.
    """
    end = buf.find(_HEAD_END)
    if end < 0:
        return None
    head = buf[:end]
    parts = head.split(b"\r\n", 1)[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise ValueError(f"not an HTTP/1.x response: {head[:60]!r}")
    body = end + len(_HEAD_END)
    if length := _CONTENT_LENGTH.search(head):
        total = body + int(length.group(1))
        return (int(parts[1]), total) if len(buf) >= total else None
    if _CHUNKED.search(head):
        total_or_none = _chunked_end(buf, body)
        return None if total_or_none is None else (int(parts[1]), total_or_none)
    return int(parts[1]), body


@dataclass(frozen=True, slots=True)
class IdleCounts:
    """A snapshot of the holder's counters; all but `open` count since the holder started."""

    open: int  # connections open now
    reopened: int  # connections opened again after the server closed them
    closed_by_server: int  # seen as end of stream or a reset, on reading or on sending
    responses: int
    bad_responses: int  # status >= 400, or bytes that are no HTTP/1.x response
    connect_errors: int
    late: int  # turns skipped because the previous response had not come yet
    cycles: int  # turns taken for every connection


@dataclass(frozen=True, slots=True)
class IdleResult:
    """What the results file keeps for one measured run."""

    target: int  # connections the holder tried to keep open
    open_start: int  # open when the measured run started
    open_end: int  # open when it ended
    reopened: int  # during the measured run
    closed_by_server: int  # during the measured run
    responses: int  # during the measured run
    late: int  # during the measured run
    reopened_total: int  # from the first connection on, warm-up included
    closed_by_server_total: int
    bad_responses: int  # from the first connection on
    connect_errors: int

    @classmethod
    def between(cls, target: int, start: IdleCounts, end: IdleCounts) -> "IdleResult":
        return cls(
            target=target,
            open_start=start.open,
            open_end=end.open,
            reopened=end.reopened - start.reopened,
            closed_by_server=end.closed_by_server - start.closed_by_server,
            responses=end.responses - start.responses,
            late=end.late - start.late,
            reopened_total=end.reopened,
            closed_by_server_total=end.closed_by_server,
            bad_responses=end.bad_responses,
            connect_errors=end.connect_errors,
        )


class _Conn:
    __slots__ = ("answered", "buf", "sock", "waiting")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""
        self.waiting = False  # a request is out and its response has not fully come
        self.answered = False  # at least one response came


class IdleHolder:
    """`count` keep-alive connections to host:port, opened and kept open by one thread.

    The thread opens each connection at its first turn, so the connections are opened spread
    over one interval as well, and none waits longer than an interval for its next request
    however slowly the server accepts. Call start, then wait_open; close always (it stops the
    thread and closes every socket).
    """

    def __init__(
        self, host: str, port: int, count: int, path: str = "/", interval_s: float = 2.0
    ) -> None:
        self.address = (host, port)
        self.count, self.interval_s = count, interval_s
        self.request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
        self.conns: list[_Conn | None] = [None] * count
        self._ever_open = [False] * count
        self._selector = selectors.DefaultSelector()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._keep, name="idle-hold", daemon=True)
        self._reopened = self._closed_by_server = self._responses = 0
        self._bad = self._connect_errors = self._late = self._cycles = 0
        self.error: Exception | None = None  # what stopped the thread, if not close()

    def counts(self) -> IdleCounts:
        return IdleCounts(
            open=sum(conn is not None for conn in self.conns),
            reopened=self._reopened,
            closed_by_server=self._closed_by_server,
            responses=self._responses,
            bad_responses=self._bad,
            connect_errors=self._connect_errors,
            late=self._late,
            cycles=self._cycles,
        )

    def start(self) -> None:
        self._thread.start()

    def wait_open(self, timeout_s: float) -> int:
        """Wait for the first turn of every connection and its first response; how many are
        open then. At most `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self._thread.is_alive():
            if self._cycles >= 1 and all(c is None or c.answered for c in self.conns):
                break
            time.sleep(0.05)
        return self.counts().open

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5 + CONNECT_TIMEOUT_S)
        for index in range(self.count):
            self._drop(index)
        self._selector.close()

    def _open(self, index: int) -> bool:
        try:
            sock = socket.create_connection(self.address, timeout=CONNECT_TIMEOUT_S)
        except OSError:
            self._connect_errors += 1
            return False
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = self.conns[index] = _Conn(sock)
        self._selector.register(sock, selectors.EVENT_READ, index)
        self._send(index, conn)
        return True

    def _send(self, index: int, conn: _Conn) -> None:
        if conn.waiting:
            self._late += 1
            return
        try:
            conn.sock.send(self.request)  # a few dozen bytes: the socket buffer has room
        except OSError:  # reset by the server, found out on sending
            self._closed_by_server += 1
            self._drop(index)
            return
        conn.waiting = True

    def _drop(self, index: int) -> None:
        conn = self.conns[index]
        if conn is None:
            return
        self.conns[index] = None
        self._selector.unregister(conn.sock)
        conn.sock.close()

    def _readable(self, index: int) -> None:
        conn = self.conns[index]
        if conn is None:
            return
        try:
            data = conn.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._closed_by_server += 1
            self._drop(index)
            return
        conn.buf += data
        self._take_responses(index, conn)

    def _take_responses(self, index: int, conn: _Conn) -> None:
        while conn.buf:
            try:
                taken = take_response(conn.buf)
            except ValueError:
                self._bad += 1
                self._drop(index)
                return
            if taken is None:
                return
            status, length = taken
            conn.buf = conn.buf[length:]
            conn.waiting, conn.answered = False, True
            self._responses += 1
            self._bad += status >= 400

    def _poll(self, timeout: float) -> None:
        for key, _ in self._selector.select(timeout):
            self._readable(key.data)

    def _turn(self, index: int) -> None:
        conn = self.conns[index]
        if conn is not None:
            self._send(index, conn)
        elif self._open(index):
            self._reopened += self._ever_open[index]
            self._ever_open[index] = True

    def _keep(self) -> None:
        try:
            self._take_turns()
        except Exception as exc:  # kept for the harness to report; the counts stop here
            self.error = exc

    def _take_turns(self) -> None:
        """Turns for the connections in order, `interval_s / count` apart, until stopped."""
        step = self.interval_s / self.count
        index, due = 0, time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            if due < now - self.interval_s:
                due = now  # fell a whole interval behind (a starved machine): no burst
            while due <= now and not self._stop.is_set():
                self._turn(index)
                index, due = (index + 1) % self.count, due + step
                self._cycles += index == 0
            self._poll(max(0.0, min(due - time.monotonic(), 0.05)))
