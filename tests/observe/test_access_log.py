"""--access-log-format: gunicorn's atoms, rendered on a real server's access lines."""

import http.client
import re

import pytest

from pounce_sync.http1 import BodyFraming, Request
from pounce_sync.observe.access_log import AccessRecord, compile_format

from ..server_process import exchange, running_server

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
    "{content-type}o": "-",  # response headers are not available
    "zz": "-",  # unknown atom
}


def _subset(fields: dict[str, str], wanted: dict[str, str]) -> dict[str, str]:
    return {name: fields[name] for name in wanted}


def _access_lines(stdout: str) -> list[dict[str, str]]:
    lines = [line.split("ACCESS ", 1)[1] for line in stdout.splitlines() if "ACCESS " in line]
    return [dict(zip(ATOMS.split(), line.split("|"), strict=True)) for line in lines]


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
    assert tagged["B"] == tagged["b"] != "0"
    for atom in "TMD":
        assert tagged[atom].isdigit()
    assert re.fullmatch(r"\d+\.\d{6}", tagged["L"])
    assert tagged["p"] == f"<{srv.proc.pid}>"
    # Absent values are "-"; the id --request-id made is the one the client got back.
    assert (untagged["q"], untagged["f"], untagged["{X-Custom}i"]) == ("-", "-", "-")
    assert untagged["a"] == "-" and untagged["{x-request-id}i"] == made_id
    # B counts the bytes written for the response, head included.
    assert posted["r"] == "POST /echo HTTP/1.0" and posted["s"] == "200"
    assert int(posted["B"]) == len(raw) and raw.endswith(b"\r\n\r\nhello")


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
        ("%(h)s %(s)s %(b)s %(B)s", _record(client=None, status=0, bytes_sent=0), "- - - 0"),
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
