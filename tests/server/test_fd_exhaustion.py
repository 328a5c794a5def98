"""Out of descriptors: the server backs off accept, says so once, serves what it has, recovers.

The server runs with RLIMIT_NOFILE 256 and 400 clients connect, each sending a
request at once. The server accepts until accept() fails with EMFILE, answers the
connections it holds, and pauses accepting (rather than spinning on a listener that
stays readable). Once the answered clients close, it accepts the rest and answers
them too. Its log holds one warning for the episode and one line when accepting
works again, not a line per paused attempt.
"""

import resource
import selectors
import socket
import time

from ..server_process import ServerProcess, running_server

SERVER_FDS = 256
CLIENTS = 400
REQUEST = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
DEADLINE_S = 60.0  # only turns a hang into a failure
WARNING = "accept() failed"
RECOVERED = "accepting again, after "


def _low_fd_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (SERVER_FDS, SERVER_FDS))


def _answered(data: bytes) -> bool:
    return data.endswith(b"Hello, world!")


def _read_round(sel: selectors.BaseSelector, got: dict[socket.socket, bytes], wait: float) -> int:
    """Read what is ready within `wait` s; the number of sockets whose answer completed."""
    done = 0
    for key, _ in sel.select(wait):
        sock = key.fileobj
        data = sock.recv(65536)
        got[sock] += data
        if _answered(got[sock]) or not data:
            sel.unregister(sock)
            done += 1
    return done


def test_out_of_descriptors_backs_off_logs_once_and_recovers() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < CLIENTS + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    args = ("--workers", "2", "--worker-mode", "thread", "--no-access-log")
    with running_server(*args, preexec_fn=_low_fd_limit) as server:
        clients = [server.connect() for _ in range(CLIENTS)]
        try:
            _serve_everyone(server, clients)
        finally:
            for sock in clients:
                sock.close()
        assert server.proc.poll() is None
        log = server.stderr
    warnings = log.count(WARNING)
    recoveries = [line for line in log.splitlines() if RECOVERED in line]
    paused = sum(int(line.split(RECOVERED)[1].split()[0]) for line in recoveries)
    assert warnings >= 1, log  # descriptors did run out
    assert len(recoveries) == warnings, log  # each episode: one line out, one line back
    assert paused > warnings, log  # more attempts were paused than lines logged
    assert "Traceback" not in log


def _serve_everyone(server: ServerProcess, clients: list[socket.socket]) -> None:
    sel = selectors.DefaultSelector()
    got = {sock: b"" for sock in clients}
    for sock in clients:
        sock.sendall(REQUEST)
        sel.register(sock, selectors.EVENT_READ)
    deadline = time.monotonic() + DEADLINE_S
    # First the connections the server took before descriptors ran out: answered, kept
    # open, so the server stays out of descriptors for a while and keeps pausing.
    while WARNING not in server.stderr or _read_round(sel, got, 1.0):
        assert time.monotonic() < deadline, "no EMFILE, or answers stopped coming"
        _read_round(sel, got, 0.1)
    first = [sock for sock, data in got.items() if _answered(data)]
    assert 0 < len(first) < CLIENTS  # some served while the rest waited in the backlog
    for sock in first:
        sock.close()  # their descriptors come free on the server: accepting resumes
    while sel.get_map():
        assert time.monotonic() < deadline, f"{len(sel.get_map())} clients never answered"
        _read_round(sel, got, 1.0)
    assert all(_answered(data) for data in got.values())
