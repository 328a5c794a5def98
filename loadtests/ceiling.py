"""Ceiling: about the fastest hello-world HTTP/1.1 keep-alive responder plain Python can be.

It parses nothing: every b"\\r\\n\\r\\n" seen on a connection is one request, answered with one
canned response, so pipelined requests are each answered. That is only right for requests
without a body, which is all the `hello` scenario sends. Every server's figure can then be
read as a fraction of what this interpreter can do at all on this machine.

    python loadtests/ceiling.py --port 8000 --workers 2
"""

import argparse
import contextlib
import os
import select
import signal
import socket

RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: 13\r\n\r\nHello, world!"
)
END = b"\r\n\r\n"
MAX_PENDING = 65536  # an unterminated head this long is not a benchmark client: drop it


class Conn:
    __slots__ = ("inbuf", "outbuf", "sock", "want_out")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.inbuf = b""
        self.outbuf = b""
        self.want_out = False


def listen(host: str, port: int) -> socket.socket:
    """One listener per process; SO_REUSEPORT lets the kernel spread connections."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def accept_all(listener: socket.socket, poller: select.epoll, conns: dict[int, Conn]) -> None:
    while True:
        try:
            sock, _ = listener.accept()
        except BlockingIOError:
            return
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conns[sock.fileno()] = Conn(sock)
        poller.register(sock.fileno(), select.EPOLLIN)


def read(conn: Conn) -> bool:
    """Queue one response per complete request head; False when the peer is gone."""
    try:
        data = conn.sock.recv(65536)
    except BlockingIOError:
        return True
    except OSError:
        return False
    if not data:
        return False
    buf = conn.inbuf + data
    count = buf.count(END)
    if count:
        conn.outbuf += RESPONSE * count
        buf = buf[buf.rindex(END) + len(END) :]
    conn.inbuf = buf
    return len(buf) < MAX_PENDING


def write(conn: Conn, poller: select.epoll) -> bool:
    """Send what is queued; wait for EPOLLOUT only while the socket buffer is full."""
    try:
        sent = conn.sock.send(conn.outbuf)
    except BlockingIOError:
        sent = 0
    except OSError:
        return False
    conn.outbuf = conn.outbuf[sent:]
    want_out = bool(conn.outbuf)
    if want_out != conn.want_out:
        conn.want_out = want_out
        mask = select.EPOLLIN | select.EPOLLOUT if want_out else select.EPOLLIN
        poller.modify(conn.sock.fileno(), mask)
    return True


def serve(listener: socket.socket) -> None:
    poller = select.epoll()
    poller.register(listener.fileno(), select.EPOLLIN)
    conns: dict[int, Conn] = {}
    while True:
        for fd, events in poller.poll():
            if fd == listener.fileno():
                accept_all(listener, poller, conns)
                continue
            conn = conns[fd]
            alive = read(conn) if events & (select.EPOLLIN | select.EPOLLHUP) else True
            if alive and conn.outbuf:
                alive = write(conn, poller)
            if not alive or events & select.EPOLLERR:
                poller.unregister(fd)
                del conns[fd]
                conn.sock.close()


def run_workers(host: str, port: int, workers: int) -> None:
    """Fork the workers; on SIGTERM or SIGINT stop them and exit."""
    children = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:  # a worker never returns into this loop, whatever happens
            try:
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                serve(listen(host, port))
            finally:
                os._exit(1)
        children.append(pid)

    def stop(signum: int, _frame: object) -> None:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for pid in children:
        os.waitpid(pid, 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    if args.workers <= 1:
        serve(listen(args.host, args.port))
    else:
        run_workers(args.host, args.port, args.workers)


if __name__ == "__main__":
    main()
