"""The benchmark harness's own logic (loadtests/): reading h2load and wrk reports, framing
the idle holder's responses, summarising runs into table rows (real outputs as fixtures), and
the idle holder against a small server on loopback."""

import http.server
import sys
import threading
import time
from pathlib import Path

import pytest

LOADTESTS = Path(__file__).resolve().parents[2] / "loadtests"
if str(LOADTESTS) not in sys.path:
    sys.path.append(str(LOADTESTS))  # appended: the harness's module names shadow nothing

import h2load  # noqa: E402
import report  # noqa: E402
import sse_fanout  # noqa: E402
import wrk  # noqa: E402
from idle_hold import IdleCounts, IdleHolder, IdleResult, take_response  # noqa: E402

# nghttp2 1.52.0, `h2load -D 3 --warm-up-time 1 -c 10 -m 10` against pounce-sync (progress
# lines cut).
H2LOAD_TIMED = """\
starting benchmark...
spawning thread #0: 10 total client(s). Timing-based test with 1s of warm-up time and 3s of main duration for measurements.
Application protocol: h2c
Main benchmark duration is over for thread #0. Stopping all clients.
Stopped all clients for thread #0

finished in 4.00s, 7343.33 req/s, 258.39KB/s
requests: 22030 total, 22030 started, 22030 done, 22030 succeeded, 0 failed, 0 errored, 0 timeout
status codes: 22030 2xx, 0 3xx, 0 4xx, 0 5xx
traffic: 775.17KB (793770) total, 135.41KB (138660) headers (space savings 95.53%), 348.36KB (356720) data
                     min         max         mean         sd        +/- sd
time for request:     5.78ms     31.47ms     13.61ms      4.00ms    79.13%
time for connect:        0us         0us         0us         0us     0.00%
time to 1st byte:        0us         0us         0us         0us     0.00%
req/s           :     733.00      736.37      734.03        1.61    70.00%
"""  # noqa: E501

# `h2load -n 2000 -c 10 -m 10`: microseconds and milliseconds mixed.
H2LOAD_COUNTED = """\
finished in 255.03ms, 7842.12 req/s, 281.35KB/s
requests: 2000 total, 2000 started, 2000 done, 1990 succeeded, 10 failed, 4 errored, 1 timeout
status codes: 1990 2xx, 0 3xx, 6 4xx, 0 5xx
traffic: 71.75KB (73477) total, 10.50KB (10747) headers (space savings 95.24%), 25.39KB (26000) data
                     min         max         mean         sd        +/- sd
time for request:      840us      1.07s     11.88ms      6.04ms    80.50%
time for connect:      142us      1.09ms       393us       272us    90.00%
"""

# Against uvicorn, which has no HTTP/2: nothing succeeds.
H2LOAD_NO_H2 = """\
finished in 1.95ms, 0.00 req/s, 192.60KB/s
requests: 100 total, 4 started, 0 done, 0 succeeded, 100 failed, 100 errored, 0 timeout
status codes: 0 2xx, 0 3xx, 0 4xx, 0 5xx
traffic: 384B (384) total, 0B (0) headers (space savings 0.00%), 0B (0) data
                     min         max         mean         sd        +/- sd
time for request:        0us         0us         0us         0us     0.00%
"""

WRK_REPORT = """\
Running 3s test @ http://127.0.0.1:41003/
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.46ms    5.70ms  58.28ms   91.32%
    Req/Sec     2.94k   523.04     3.63k    68.33%
  Latency Distribution
     50%    1.34ms
     75%    2.73ms
     90%    8.01ms
     99%   41.76ms
  17523 requests in 3.00s, 2.54MB read
  Socket errors: connect 0, read 3, write 0, timeout 2
Requests/sec:   5840.11
Transfer/sec:    866.90KB
"""


def test_h2load_timed_run() -> None:
    result = h2load.parse(H2LOAD_TIMED)
    assert (result.requests, result.succeeded, result.errors) == (22030, 22030, 0)
    assert result.rps == 7343.33  # over the main duration: 22030 / 3 s, warm-up excluded
    assert (result.latency_min_ms, result.latency_max_ms) == (5.78, 31.47)
    assert (result.latency_mean_ms, result.latency_sd_ms) == (13.61, 4.0)
    assert result.statuses == {"2xx": 22030, "3xx": 0, "4xx": 0, "5xx": 0}


def test_h2load_units_and_failures() -> None:
    result = h2load.parse(H2LOAD_COUNTED)
    assert (result.latency_min_ms, result.latency_max_ms) == (0.84, 1070.0)
    assert (result.failed, result.errored, result.timeout) == (10, 4, 1)
    assert result.errors == 10  # `errored` and `timeout` are part of `failed`
    assert result.statuses["4xx"] == 6


@pytest.mark.parametrize(
    ("text", "message"),
    [(H2LOAD_NO_H2, "no request succeeded"), ("connect refused\n", "no summary")],
)
def test_h2load_without_figures_is_an_error(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        h2load.parse(text)


def test_h2load_command_is_timed_with_a_warm_up() -> None:
    argv = h2load.command("http://127.0.0.1:1/", h2load.H2Load(10, 10, 5), warmup_s=2)
    assert argv == [
        *[h2load.H2LOAD, "-D", "5", "-c", "10", "-m", "10", "--warm-up-time", "2"],
        "http://127.0.0.1:1/",
    ]
    assert "--warm-up-time" not in h2load.command("u", h2load.H2Load(1, 1, 1), warmup_s=0)


def test_wrk_report() -> None:
    result = wrk.parse(WRK_REPORT)
    assert (result.requests, result.rps) == (17523, 5840.11)
    assert (result.p50_ms, result.p99_ms, result.latency_max_ms) == (1.34, 41.76, 58.28)
    assert result.errors == 5 and result.non_2xx == 0


HELLO = b"HTTP/1.1 200 OK\r\ncontent-length: 13\r\ncontent-type: text/plain\r\n\r\nHello, world!"
CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nHello\r\n0\r\n\r\n"


@pytest.mark.parametrize(
    ("buf", "expected"),
    [
        (HELLO, (200, len(HELLO))),
        (HELLO[:-1], None),  # body incomplete
        (HELLO[:20], None),  # head incomplete
        (HELLO + HELLO[:10], (200, len(HELLO))),  # the next response is left for later
        (b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n", (503, 40)),
        (b"HTTP/1.1 204 No Content\r\nServer: x\r\n\r\n", (204, 38)),  # no framing: no body
        (b"HTTP/1.1 200 \r\ncontent-length: 2\r\n\r\nok", (200, 38)),  # empty reason
        (CHUNKED, (200, len(CHUNKED))),
        (CHUNKED[:-2], None),
        (CHUNKED[:-2] + b"X-Trailer: 1\r\n\r\n", (200, len(CHUNKED) + 14)),
    ],
)
def test_take_response(buf: bytes, expected: tuple[int, int] | None) -> None:
    assert take_response(buf) == expected


@pytest.mark.parametrize("buf", [b"SSH-2.0-OpenSSH\r\n\r\n", b"HTTP/1.1 OK\r\n\r\n"])
def test_take_response_rejects_what_is_no_response(buf: bytes) -> None:
    with pytest.raises(ValueError):
        take_response(buf)


def test_idle_result_counts_the_measured_run_only() -> None:
    start = IdleCounts(
        open=980, reopened=20, closed_by_server=20, responses=3000,
        bad_responses=0, connect_errors=1, late=0, cycles=3,
    )  # fmt: skip
    end = IdleCounts(
        open=1000, reopened=45, closed_by_server=50, responses=8000,
        bad_responses=2, connect_errors=1, late=7, cycles=8,
    )  # fmt: skip
    result = IdleResult.between(1000, start, end)
    assert (result.open_start, result.open_end) == (980, 1000)
    assert (result.reopened, result.closed_by_server, result.responses) == (25, 30, 5000)
    assert (result.reopened_total, result.closed_by_server_total, result.late) == (45, 50, 7)


def test_sse_events_due() -> None:
    assert sse_fanout._due(opened=10.0, left=20.0, interval=0.1) == 101  # one at once
    assert sse_fanout._due(opened=19.95, left=20.0, interval=0.1) == 1


def _run(server: str, round_no: int, **fields: object) -> report.Run:
    run = report.Run(server, "s", round_no, ["x"])
    for name, value in fields.items():
        setattr(run, name, value)
    return run


def _h2(rps: float) -> h2load.H2loadResult:
    return h2load.parse(H2LOAD_TIMED.replace("7343.33 req/s", f"{rps} req/s"))


def test_summary_falls_back_to_the_scenario_baseline() -> None:
    runs = [
        _run("granian", 1, h2load=_h2(4000.0), rss_peak_mib=90.0),
        _run("hypercorn", 1, h2load=_h2(2000.0), rss_peak_mib=100.0),
    ]
    statuses = {"granian": "ok", "uvicorn": "n/a (no HTTP/2)", "hypercorn": "ok"}
    rows = report.summarize(runs, "s", "h2load", statuses, 1, ["uvicorn", "hypercorn"])
    assert [(r.server, r.ratio, r.baseline) for r in rows] == [
        ("granian", 2.0, "hypercorn"),
        ("uvicorn", None, None),
        ("hypercorn", 1.0, "hypercorn"),
    ]
    assert rows[0].mean_ms == 13.61 and rows[0].errors == 0
    text = report.table(rows, "title", "uvicorn", "h2load")
    assert "vs hypercorn" in text and "n/a (no HTTP/2)" in text


def _fanout(events: int, failed: int) -> sse_fanout.Fanout:
    return sse_fanout.Fanout(
        subscribers=10, seconds=1.0, interval_s=0.1, events=events, expected=110,
        events_min=events // 10 - 1, events_median=events // 10, events_max=events // 10 + 1,
        failed=failed,
    )  # fmt: skip


def test_sse_summary_sums_failed_streams_and_reports_no_ratio() -> None:
    runs = [
        _run("uvicorn", 1, sse=_fanout(99, 0), rss_peak_mib=50.0),
        _run("uvicorn", 2, sse=_fanout(88, 2), rss_peak_mib=60.0),
        _run("uvicorn", 3, error="did not answer"),
    ]
    (row,) = report.summarize(runs, "s", "sse", {"uvicorn": "ok"}, 3, ["uvicorn"])
    assert row.status == "ok in 2/3 rounds" and row.ratio is None
    assert (row.errors, row.sse_events_min, row.sse_subscribers) == (2, 7, 10)
    assert row.sse_delivered == pytest.approx((99 / 110 + 88 / 110) / 2)
    line = report.table([row], "title", "uvicorn", "sse").splitlines()[-1]
    assert line.split()[:5] == ["uvicorn", "10", "94", "110", "85.0%"]


def test_idle_columns_show_the_worst_round() -> None:
    idle = [
        IdleResult(1000, 1000, 990, 12, 12, 5000, 0, 12, 12, 0, 0),
        IdleResult(1000, 950, 1000, 40, 40, 5000, 0, 40, 40, 0, 0),
    ]
    runs = [
        _run("gunicorn-gthread", n + 1, wrk=wrk.parse(WRK_REPORT), idle=held, rss_peak_mib=60.0)
        for n, held in enumerate(idle)
    ]
    (row,) = report.summarize(runs, "s", "wrk", {"gunicorn-gthread": "ok"}, 2, ["uvicorn"])
    assert (row.idle_open_start, row.idle_open_end, row.idle_reopened) == (950, 990, 40)
    assert row.errors == 10  # socket errors summed over rounds
    line = report.table([row], "title", "uvicorn", "wrk", idle=True).splitlines()[-2]
    assert line.split()[-3:] == ["950/1000", "990/1000", "40"]


class _Hello(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    close_after = False  # True: every response ends its connection

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        if self.close_after:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Closing(_Hello):
    close_after = True


@pytest.mark.parametrize(("handler", "reopens"), [(_Hello, False), (_Closing, True)])
def test_idle_holder_keeps_connections_open_and_reopens_closed_ones(
    handler: type[_Hello], reopens: bool
) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    holder = IdleHolder("127.0.0.1", server.server_address[1], count=20, interval_s=0.2)
    try:
        holder.start()
        assert holder.wait_open(timeout_s=5) == 20 or reopens
        time.sleep(0.5)  # two more turns each
        counts = holder.counts()
    finally:
        holder.close()
        server.shutdown()
        server.server_close()
    assert holder.error is None
    assert counts.responses >= 40 and counts.bad_responses == 0
    if reopens:
        assert counts.closed_by_server >= 20 and counts.reopened >= 20
    else:
        assert (counts.open, counts.closed_by_server, counts.reopened) == (20, 0, 0)
