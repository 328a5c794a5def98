"""The `browser` scenario's heads: what lua/browser.lua makes wrk send, recorded by a small
server on loopback, against loadtests/browser_head.py and the project's own parser."""

import shutil
import socket
import sys
import threading
from pathlib import Path

import pytest

from pounce_sync.http1 import ParserLimits, parse_head

LOADTESTS = Path(__file__).resolve().parents[2] / "loadtests"
if str(LOADTESTS) not in sys.path:
    sys.path.append(str(LOADTESTS))  # appended: the harness's module names shadow nothing

import browser_head  # noqa: E402
import scenarios  # noqa: E402
import wrk  # noqa: E402

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
BROWSER = scenarios.BY_NAME["browser"]


class RecordingServer:
    """Answers every request head with a canned keep-alive response and keeps the head."""

    def __init__(self) -> None:
        self.heads: list[bytes] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        buf = b""
        with sock:
            try:
                while data := sock.recv(65536):
                    buf += data
                    while (end := buf.find(b"\r\n\r\n")) >= 0:
                        head, buf = buf[: end + 4], buf[end + 4 :]
                        with self._lock:
                            self.heads.append(head)
                        sock.sendall(RESPONSE)
            except ConnectionError:
                pass  # wrk resets its connections when its time is up

    def close(self) -> None:
        self._listener.close()


def _request_no(head: bytes) -> tuple[int, int]:
    """(wrk thread, counter) from the target's `v=<thread>-<n>`."""
    target = head.split(b" ", 2)[1]
    thread, _, n = target.rpartition(b"v=")[2].partition(b"-")
    return int(thread), int(n)


@pytest.mark.skipif(shutil.which(wrk.WRK) is None, reason="wrk is not installed")
def test_every_request_wrk_sends_is_distinct_and_matches_browser_head() -> None:
    server = RecordingServer()
    try:
        load = wrk.WrkLoad(threads=2, connections=4, duration_s=1)
        argv = wrk.command(f"http://127.0.0.1:{server.port}/", load, BROWSER)
        report = wrk.parse(wrk.run(argv, load.duration_s))
    finally:
        server.close()
    heads = list(server.heads)
    assert report.requests > 0 and len(heads) >= report.requests
    assert len(set(heads)) == len(heads)  # no head repeats, on any connection
    targets = [head.split(b" ", 2)[1] for head in heads]
    cookies = [parse_head(head[:-4], ParserLimits()).headers[-1] for head in heads]
    assert len(set(targets)) == len(heads)
    assert len(set(cookies)) == len(heads)
    assert {name for name, _ in cookies} == {b"cookie"}
    host = f"127.0.0.1:{server.port}"
    assert all(head == browser_head.head(host, *_request_no(head)) for head in heads)
    assert {_request_no(head)[0] for head in heads} == {1, 2}  # both wrk threads, told apart


def test_the_head_is_browser_sized_and_parses_cleanly() -> None:
    head = browser_head.head("127.0.0.1:8000", 1, 123_456)
    assert 580 <= len(head) <= 660
    request = parse_head(head[:-4], ParserLimits())
    assert len(request.headers) == browser_head.FIELDS == 11
    assert (request.method, request.keep_alive, request.framing.value) == (b"GET", True, "none")
    assert not request.forwarded and not request.event_stream and request.upgrade is None
    assert dict(request.headers)[b"host"] == b"127.0.0.1:8000"


def test_target_and_cookie_change_from_one_request_to_the_next() -> None:
    one, two = (browser_head.head("h", 1, n) for n in (41, 42))
    first, second = (parse_head(h[:-4], ParserLimits()) for h in (one, two))
    assert first.target != second.target
    assert dict(first.headers)[b"cookie"] != dict(second.headers)[b"cookie"]
    assert browser_head.head("h", 2, 41) != one  # another wrk thread, another head


def test_the_scenario_drives_the_hello_app_with_the_script() -> None:
    assert (BROWSER.app, BROWSER.wsgi_app, BROWSER.load) == ("apps:hello", "apps:hello_wsgi", "wrk")
    argv = wrk.command("http://127.0.0.1:1/", wrk.WrkLoad(1, 64, 2), BROWSER)
    assert argv[argv.index("-s") + 1] == str(LOADTESTS / "lua" / "browser.lua")
    assert {"browser", "hello", "hello-varied"} <= set(scenarios.BY_NAME)
