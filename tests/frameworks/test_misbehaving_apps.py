"""Apps that break the ASGI or WSGI rules: each gets a 500 or a cut connection, a log line,
and the worker serves on, in thread mode and in process mode.

tests/worker/test_wsgi.py and tests/asgi/test_exchange.py already hold the WSGI failures
of the first kind (raise before and after start_response, a body before it, a str body,
a status without a code, exc_info) and the ASGI message-order rules in thread mode. The
cases here are the ones they lack, and each one here also checks what they do not: that
an exception is logged with its traceback, a broken rule in a line naming it, and that the
same worker processes still answer the next request on a new connection.
"""

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ..http_client import ResponseReader, ResponseTruncated, request
from ..server_process import ServerProcess, running_server
from .wsgi_apps import reference

TIMEOUT = 30.0
APPS = {
    "asgi": "frameworks.wsgi_apps.misbehaving:asgi_app",
    "wsgi": "frameworks.wsgi_apps.misbehaving:wsgi_app",
}
TRACEBACK = "Traceback (most recent call last)"
WORKER_REPLACED = ("starting a new one", "restarting it")


@dataclass(frozen=True)
class Case:
    """One misbehaviour: what the client gets (500, cut or whole) and what is logged."""

    path: str
    # "500": a clean 500 and a close; "cut": head and a chunk sent, then the close;
    # "cut-length": fewer bytes than the Content-Length, then the close; "whole": 200.
    answer: str
    logged: str
    traceback: bool = False  # an exception of the app's: logged with its traceback


ASGI_CASES = [
    Case("/raise-before-start", "500", "AppBug: asgi raised before http.response.start", True),
    Case("/raise-mid-body", "cut", "AppBug: asgi raised mid-body", True),
    Case("/never-responds", "500", "ASGI application returned without starting a response"),
    Case("/status-99", "500", "invalid response status 99"),
    Case("/status-1000", "500", "invalid response status 1000"),
    Case("/status-str", "500", "invalid response status '200'"),
    Case("/header-crlf", "500", "invalid response header b'x-injected'"),
    Case("/header-str", "500", "invalid response header 'x-text'"),
    Case("/header-bad-name", "500", "invalid response header b'bad name'"),
]
WSGI_CASES = [
    Case("/raise-before-start", "500", "AppBug: wsgi raised before start_response", True),
    Case("/never-responds", "500", "body before start_response was called"),
    Case("/returns-none", "500", "'NoneType' object is not iterable", True),
    Case("/status-99", "500", "invalid WSGI status '99 Too Small'"),
    Case("/status-1000", "500", "invalid WSGI status '1000 Too Big'"),
    Case("/status-int", "500", "invalid WSGI status 200"),
    Case("/header-crlf", "500", "invalid response header b'X-Injected'"),
    Case("/header-bytes", "500", "WSGI response headers must be pairs of str"),
    Case("/header-bad-name", "500", "invalid response header b'Bad Name'"),
    Case("/start-twice", "500", "start_response called a second time without exc_info", True),
    Case("/exc-info-after-head", "cut", "AppBug: wsgi failed after its head was sent", True),
    Case("/close-raises", "whole", "AppBug: wsgi close() raised", True),
    Case("/file-shorter-than-length", "cut-length", "the file ended after"),
]


@pytest.fixture(scope="module", params=["thread", "process"])
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def servers(mode: str) -> Iterator[dict[str, ServerProcess]]:
    """The ASGI and the WSGI app, each on a server of two workers in `mode`."""
    args = ("--workers", "2", "--worker-mode", mode, "--no-access-log")
    with (
        running_server(*args, app=APPS["asgi"]) as asgi,
        running_server(*args, app=APPS["wsgi"]) as wsgi,
    ):
        yield {"asgi": asgi, "wsgi": wsgi}


def worker_pids(server: ServerProcess, mode: str) -> set[int]:
    """The processes that run the app: the server itself, or its worker processes."""
    pid = server.proc.pid
    if mode == "thread":
        return {pid}
    return {int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def wait_logged(server: ServerProcess, text: str, before: int) -> None:
    """`text` is logged once more than `before` (stderr is read by a thread: it may lag)."""
    deadline = time.monotonic() + TIMEOUT
    while server.stderr.count(text) <= before:
        assert time.monotonic() < deadline, f"never logged: {text}\n{server.stderr}"
        time.sleep(0.01)


def get(path: str) -> bytes:
    return b"GET %s HTTP/1.1\r\nHost: test\r\n\r\n" % path.encode()


def check_answer(server: ServerProcess, case: Case) -> None:
    if case.answer == "500":
        response = request(server, get(case.path))  # and the server closes after it
        assert (response.status, response.body) == (500, b"Internal Server Error\n")
        assert response.header(b"connection") == b"close"
        assert b"evil" not in b"".join(value for _, value in response.headers)
        return
    if case.answer == "cut-length":  # fewer bytes than the Content-Length, then the close
        assert outcome(server, case.path) == "cut"
        return
    with server.connect(TIMEOUT) as sock:
        sock.sendall(get(case.path))
        reader = ResponseReader(sock)
        head = reader.read_head()
        assert head.status == 200
        if case.answer == "cut":
            assert reader.read_chunk() == b"partial"
            with pytest.raises(ResponseTruncated):  # no last chunk: the client sees the cut
                reader.read_chunk()
        else:  # the body was whole when the app failed; the connection closes after it
            body = b"".join(iter(reader.read_chunk, None))
            assert body == b"closing raises"
            reader.read_closed()


def serves_on(server: ServerProcess, pids: set[int], mode: str) -> None:
    """The next request on a new connection gets 200, from a worker that was there before."""
    response = request(server, get("/ok"))
    assert (response.status, response.body) == (200, b"ok")
    assert worker_pids(server, mode) == pids
    assert not any(text in server.stderr for text in WORKER_REPLACED), server.stderr


@pytest.mark.parametrize("case", ASGI_CASES, ids=lambda case: case.path)
def test_asgi_app_that_misbehaves(servers: dict[str, ServerProcess], mode: str, case: Case) -> None:
    check(servers["asgi"], mode, case)


@pytest.mark.parametrize("case", WSGI_CASES, ids=lambda case: case.path)
def test_wsgi_app_that_misbehaves(servers: dict[str, ServerProcess], mode: str, case: Case) -> None:
    check(servers["wsgi"], mode, case)


def check(server: ServerProcess, mode: str, case: Case) -> None:
    pids = worker_pids(server, mode)
    logged_before = server.stderr.count(case.logged)
    tracebacks_before = server.stderr.count(TRACEBACK)
    check_answer(server, case)
    wait_logged(server, case.logged, logged_before)
    if case.traceback:
        wait_logged(server, TRACEBACK, tracebacks_before)
    serves_on(server, pids, mode)


def test_wsgi_iterable_without_close_is_served_whole(servers: dict[str, ServerProcess]) -> None:
    """close() is optional (PEP 3333): its absence is no error and keeps the connection."""
    server = servers["wsgi"]
    with server.connect(TIMEOUT) as sock:
        reader = ResponseReader(sock)
        for _ in range(2):
            sock.sendall(get("/no-close"))
            response = reader.read_response()
            assert (response.status, response.body) == (200, b"no close")
        assert not reader.server_closes


def outcome(server: ServerProcess, path: str) -> str:
    """What a client makes of the answer: "500", "cut", or "whole <status> <body>"."""
    with server.connect(TIMEOUT) as sock:
        sock.sendall(get(path))
        try:
            response = ResponseReader(sock).read_response()
        except ResponseTruncated:
            return "cut"
    return "500" if response.status == 500 else f"whole {response.status} {response.body!r}"


def test_gunicorn_gives_the_wsgi_cases_the_same_answers() -> None:
    """The reference agrees on each case (its 500 has an HTML body, not compared), but one.

    An app that returns an empty iterable without calling start_response gets a head
    with the status line `HTTP/1.1 None` from gunicorn 27: invalid HTTP, which a client
    rejects. pounce-sync answers a clean 500 (docs/frameworks.md, "Apps that misbehave").
    """
    expected = {"500": "500", "cut": "cut", "cut-length": "cut"}
    expected["whole"] = "whole 200 b'closing raises'"
    cases = [case for case in WSGI_CASES if case.path != "/never-responds"]
    with reference.gunicorn(APPS["wsgi"], Path(__file__).parent.parent) as gunicorn:
        got = {case.path: outcome(gunicorn, case.path) for case in cases}
        assert outcome(gunicorn, "/ok") == "whole 200 b'ok'"
    assert got == {case.path: expected[case.answer] for case in cases}
