"""--access-log-format: gunicorn's atoms, rendered on a real server's access lines."""

import http.client
import re

import pytest

from pounce_sync.config import Config
from pounce_sync.http1 import BodyFraming, Request
from pounce_sync.observe.access_log import (
    AccessLog,
    AccessRecord,
    compile_format,
    shows_response_headers,
)

from ..h2_client import H2Client
from ..server_process import ServerProcess, exchange, running_server

# "|" between atoms keeps every field findable, whatever it holds.
ATOMS = "h l u t r m U q H s B b f a T M D L p {X-Custom}i {x-request-id}i {content-type}o zz"
FORMAT = "ACCESS " + "|".join(f"%({atom})s" for atom in ATOMS.split())
TIMESTAMP = re.compile(r"\[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\]")


EXPECTED_TAGGED = {
    "h": "127.0.0.1",
    "l": "-",
    "u": "-",
    "r": "GET /status?404 HTTP/1.1",
    "m": "GET",
    "U": "/status",
    "q": "404",
    "H": "HTTP/1.1",
    "s": "404",
    "f": "http://ref/",
    "a": "ua/1",
    "{X-Custom}i": "custom value",
    "{x-request-id}i": "trace-7",
    "{content-type}o": "-",  # /status sends none
    "zz": "-",  # unknown atom
}


def _subset(fields: dict[str, str], wanted: dict[str, str]) -> dict[str, str]:
    return {name: fields[name] for name in wanted}


def _tagged(stdout: str) -> list[str]:
    """The access lines of a format that starts with `ACCESS `, without the tag."""
    return [line.split("ACCESS ", 1)[1] for line in stdout.splitlines() if "ACCESS " in line]


def _access_lines(stdout: str) -> list[dict[str, str]]:
    return [dict(zip(ATOMS.split(), line.split("|"), strict=True)) for line in _tagged(stdout)]


def test_atoms_on_a_served_request() -> None:
    with running_server("--access-log-format", FORMAT, "--request-id") as srv:
        client = http.client.HTTPConnection(srv.host, srv.port, timeout=30)
        headers = {"Referer": "http://ref/", "User-Agent": "ua/1", "X-Custom": "custom value"}
        client.request("GET", "/status?404", headers={**headers, "X-Request-ID": "trace-7"})
        first = client.getresponse()
        first.read()
        client.request("GET", "/plain")
        second = client.getresponse()
        second.read()
        made_id = second.getheader("x-request-id")
        client.close()
        raw = exchange(srv, b"POST /echo HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello")
        srv.stop()
    tagged, untagged, posted = _access_lines(srv.stdout)
    assert first.status == 404
    assert _subset(tagged, EXPECTED_TAGGED) == EXPECTED_TAGGED
    assert TIMESTAMP.fullmatch(tagged["t"])
    assert (tagged["B"], tagged["b"]) == ("0", "-")  # /status answers with an empty body
    for atom in "TMD":
        assert tagged[atom].isdigit()
    assert re.fullmatch(r"\d+\.\d{6}", tagged["L"])
    assert tagged["p"] == f"<{srv.proc.pid}>"
    # Absent values are "-"; the id --request-id made is the one the client got back.
    assert (untagged["q"], untagged["f"], untagged["{X-Custom}i"]) == ("-", "-", "-")
    assert untagged["a"] == "-" and untagged["{x-request-id}i"] == made_id
    assert untagged["{content-type}o"] == "text/plain"
    # B counts the body only, as gunicorn's does.
    assert posted["r"] == "POST /echo HTTP/1.0" and posted["s"] == "200"
    assert (posted["B"], posted["b"]) == ("5", "5") and raw.endswith(b"\r\n\r\nhello")


def _record(**changes: object) -> AccessRecord:
    request = Request(
        b"GET", b'/p?a="1"', b"1.1", ((b"x-a", b"1"), (b"x-a", b"2")), True, False,
        BodyFraming.NONE, None, None,
    )  # fmt: skip
    record = AccessRecord(("10.0.0.1", 5000), request, 200, 42, 1.5, None)
    return record._replace(**changes)


@pytest.mark.parametrize(
    ("fmt", "record", "line"),
    [
        ('%(h)s "%(r)s" %(s)s %(b)s', _record(), '10.0.0.1 "GET /p?a=\\"1\\" HTTP/1.1" 200 42'),
        ("%(h)s %(s)s %(b)s %(B)s", _record(client=None, status=0, body_bytes=0), "- - - 0"),
        ("%(T)s %(M)s %(D)s %(L)s", _record(), "1 1500 1500000 1.500000"),
        ("%({X-A}i)s %({x-b}i)s %(Z)s", _record(), "1, 2 - -"),
        ("100%% %(s)5s|%(B)05d|%(h)d|50%", _record(), "100%   200|00042|10.0.0.1|50%"),
    ],
)
def test_compiled_format(fmt: str, record: AccessRecord, line: str) -> None:
    assert compile_format(fmt)(record) == line


def test_requests_on_the_async_pool_use_the_format_too() -> None:
    """A request streamed on the AsyncPool (SSE) is logged with the operator's format."""
    import time

    with running_server("--access-log-format", "POOL %(r)s %(s)s", app="apps_streaming:app") as srv:
        client = http.client.HTTPConnection(srv.host, srv.port, timeout=30)
        client.request("GET", "/sse?n=1", headers={"Accept": "text/event-stream"})
        assert client.getresponse().read() == b"data: 0\n\n"
        client.close()
        deadline = time.monotonic() + 30
        while "POOL GET /sse?n=1 HTTP/1.1 200" not in srv.stdout:
            assert time.monotonic() < deadline, srv.stdout
            time.sleep(0.05)


# -- b and B: the body's bytes, as gunicorn counts them, on every protocol path -------------

BODY_FORMAT = "ACCESS %(r)s|%(s)s|%(b)s|%(B)s"


def _by_request_line(server: ServerProcess) -> dict[str, tuple[str, ...]]:
    """Request line -> the other fields, from a stopped server's `ACCESS %(r)s|...` lines."""
    fields = (line.split("|") for line in _tagged(server.stdout))
    return {r: tuple(rest) for r, *rest in fields}


def _http11(server: ServerProcess, *requests: tuple[str, str, dict[str, str]]) -> None:
    client = http.client.HTTPConnection(server.host, server.port, timeout=30)
    for method, target, headers in requests:
        client.request(method, target, headers=headers)
        client.getresponse().read()
    client.close()


def test_b_and_B_count_the_body_alone_on_the_sync_path() -> None:
    """Content-Length, chunked and HEAD; the head and the chunk framing are not counted."""
    with running_server("--access-log-format", BODY_FORMAT) as srv:
        _http11(srv, ("GET", "/", {}), ("HEAD", "/head", {}), ("GET", "/status?204", {}))
        _http11(srv, ("GET", "/stream?3", {}))  # "0\n1\n2\n" in three chunks
        srv.stop()
    assert _by_request_line(srv) == {
        "GET / HTTP/1.1": ("200", "13", "13"),
        "HEAD /head HTTP/1.1": ("200", "-", "0"),
        "GET /status?204 HTTP/1.1": ("204", "-", "0"),
        "GET /stream?3 HTTP/1.1": ("200", "6", "6"),
    }


def test_b_and_B_count_the_body_alone_for_wsgi_and_http10() -> None:
    """A WSGI stream on HTTP/1.0 is close-delimited: its body is what is counted."""
    args = ["--interface", "wsgi", "--access-log-format", BODY_FORMAT]
    with running_server(*args, app="apps_wsgi:app") as srv:
        raw = exchange(srv, b"GET /stream HTTP/1.0\r\n\r\n")
        _http11(srv, ("GET", "/list", {}))
        srv.stop()
    assert raw.endswith(b"\r\n\r\nfirst\nsecond\n")
    assert _by_request_line(srv) == {
        "GET /stream HTTP/1.0": ("200", "13", "13"),
        "GET /list HTTP/1.1": ("201", "13", "13"),
    }


def test_b_and_B_count_the_body_alone_on_the_async_pool() -> None:
    """Streaming HTTP/1.1 on the pool: server-sent events, a --stream-path prefix, HEAD."""
    args = ["--access-log-format", BODY_FORMAT, "--stream-path", "/feed"]
    with running_server(*args, app="apps_streaming:app") as srv:
        sse = {"Accept": "text/event-stream"}
        _http11(srv, ("GET", "/sse?n=2", sse), ("GET", "/feed/chunks?n=3", {}))
        _http11(srv, ("HEAD", "/feed/chunks?n=3", {}))
        srv.stop()
    assert _by_request_line(srv) == {
        "GET /sse?n=2 HTTP/1.1": ("200", "18", "18"),  # "data: N\n\n" twice
        "GET /feed/chunks?n=3 HTTP/1.1": ("200", "24", "24"),  # "chunk N\n" three times
        "HEAD /feed/chunks?n=3 HTTP/1.1": ("200", "-", "0"),
    }


def test_b_and_B_count_the_body_alone_on_http2() -> None:
    with running_server("--access-log-format", BODY_FORMAT, app="apps_http2:app") as srv:
        with srv.connect(30) as sock:
            client = H2Client(sock)
            assert client.get("/").body == b"hello h2"
            assert client.response(client.request("/", method="HEAD")).body == b""
            assert client.get("/trailers").body == b"part 1, part 2"
        srv.stop()
    assert _by_request_line(srv) == {
        "GET / HTTP/2": ("200", "8", "8"),
        "HEAD / HTTP/2": ("200", "-", "0"),
        "GET /trailers HTTP/2": ("200", "14", "14"),
    }


# -- {name}o: the app's response headers, on every protocol path -----------------------------

# Names in another case than the apps send them; Server is the server's own, not the app's.
HEADERS_FORMAT = "ACCESS %(r)s|%(s)s|%({Content-TYPE}o)s|%({x-multi}o)s|%({SERVER}o)s"


def test_response_headers_on_the_sync_path() -> None:
    args = ["--access-log-format", HEADERS_FORMAT, "--max-body-size", "10"]
    with running_server(*args) as srv:
        _http11(srv, ("GET", "/", {}), ("GET", "/scope", {}), ("GET", "/status?404", {}))
        _http11(srv, ("GET", "/stream?2", {}))
        client = http.client.HTTPConnection(srv.host, srv.port, timeout=30)
        # Chunked, so the limit is met while the app reads: the app's head never went out.
        client.request("POST", "/start-then-read", body=iter([b"x" * 100]))
        assert client.getresponse().status == 413
        client.close()
        srv.stop()
    assert _by_request_line(srv) == {
        "GET / HTTP/1.1": ("200", "text/plain", "-", "-"),
        "GET /scope HTTP/1.1": ("200", "application/json", "-", "-"),
        "GET /status?404 HTTP/1.1": ("404", "-", "-", "-"),
        "GET /stream?2 HTTP/1.1": ("200", "-", "-", "-"),
        "POST /start-then-read HTTP/1.1": ("413", "-", "-", "-"),
    }


def test_response_headers_of_a_wsgi_app() -> None:
    """Repeated fields are joined, as for `{name}i`."""
    args = ["--interface", "wsgi", "--access-log-format", HEADERS_FORMAT]
    with running_server(*args, app="apps_wsgi:app") as srv:
        _http11(srv, ("GET", "/list", {}), ("GET", "/stream", {}))
        srv.stop()
    assert _by_request_line(srv) == {
        "GET /list HTTP/1.1": ("201", "text/plain", "a, b", "-"),
        "GET /stream HTTP/1.1": ("200", "text/plain", "-", "-"),
    }


def test_response_headers_on_the_async_pool() -> None:
    args = ["--access-log-format", HEADERS_FORMAT, "--stream-path", "/feed"]
    with running_server(*args, app="apps_streaming:app") as srv:
        sse = {"Accept": "text/event-stream"}
        _http11(srv, ("GET", "/sse?n=1", sse), ("GET", "/feed/chunks?n=1", {}))
        srv.stop()
    assert _by_request_line(srv) == {
        "GET /sse?n=1 HTTP/1.1": ("200", "text/event-stream", "-", "-"),
        "GET /feed/chunks?n=1 HTTP/1.1": ("200", "text/plain", "-", "-"),
    }


def test_response_headers_on_http2() -> None:
    with running_server("--access-log-format", HEADERS_FORMAT, app="apps_http2:app") as srv:
        with srv.connect(30) as sock:
            client = H2Client(sock)
            assert client.get("/").headers[b"content-type"] == b"text/plain"
            assert client.get("/scope").status == 200
        srv.stop()
    assert _by_request_line(srv) == {
        "GET / HTTP/2": ("200", "text/plain", "-", "-"),
        "GET /scope HTTP/2": ("200", "application/json", "-", "-"),
    }


@pytest.mark.parametrize(
    ("fmt", "keeps"),
    [
        (HEADERS_FORMAT, True),
        ("%(h)s %({content-type}i)s %(b)s", False),
        ("%%({content-type}o)s", False),  # a literal percent sign, not an atom
        (None, False),
    ],
)
def test_response_headers_are_kept_only_for_a_format_that_shows_them(
    fmt: str | None, keeps: bool
) -> None:
    assert shows_response_headers(fmt) is keeps
    assert AccessLog(Config(access_log_format=fmt)).keeps_response_headers is keeps
    off = Config(access_log=False, access_log_format=fmt)
    assert AccessLog(off).keeps_response_headers is False
