"""The Prometheus endpoint: exact counts from concurrent threads and processes."""

import os
import re
import signal
import threading
import time

import pytest

from pounce_sync.observe.metrics import MetricsLayout, SharedMetrics

from ..http_client import ResponseReader, request
from ..server_process import ServerProcess, exchange, running_server

METRICS = ("--metrics-path", "/metrics", "--no-access-log")


def scrape(srv: ServerProcess) -> dict[str, float]:
    response = request(srv, b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert response.header(b"content-type").startswith(b"text/plain; version=0.0.4")
    values = {}
    for line in response.body.decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def test_render_is_valid_exposition_format() -> None:
    metrics = SharedMetrics(MetricsLayout(processes=2, threads=2))
    metrics.thread(1, 1).finished(b"GET", 200, 0.003)
    metrics.thread(0, 0).finished(b"PROPFIND", 503, 20.0)
    metrics.process(1).set_connections(7, 3)
    metrics.count_process_restart()
    text = metrics.render().decode()
    sample = re.compile(r'[a-z_][a-z0-9_]*(\{[a-z]+="[^"]*"(,[a-z]+="[^"]*")*\})? [0-9.e+-]+')
    for line in text.splitlines():
        assert line.startswith("# HELP ") or line.startswith("# TYPE ") or sample.fullmatch(line)
    assert 'pounce_requests_total{method="GET",status="2xx"} 1' in text
    assert 'pounce_requests_total{method="other",status="5xx"} 1' in text
    assert 'pounce_request_duration_seconds_bucket{le="0.0025"} 0' in text
    assert 'pounce_request_duration_seconds_bucket{le="0.005"} 1' in text
    assert 'pounce_request_duration_seconds_bucket{le="10.0"} 1' in text
    assert 'pounce_request_duration_seconds_bucket{le="+Inf"} 2' in text
    assert "pounce_connections_open 7" in text and "pounce_connections_parked 3" in text
    assert 'pounce_worker_restarts_total{kind="process"} 1' in text


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_counts_are_exact_under_concurrency(mode: str) -> None:
    clients, per_client = 8, 150
    with running_server("--workers", "4", "--worker-mode", mode, *METRICS) as srv:

        def client(i: int) -> None:
            with srv.connect() as sock:
                reader = ResponseReader(sock)
                for j in range(per_client):
                    method = b"POST" if j % 3 == 0 else b"GET"
                    path = b"/status?404" if j % 5 == 0 else b"/"
                    sock.sendall(
                        b"%s %s HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n" % (method, path)
                    )
                    reader.read_response(method)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        values = scrape(srv)
    expected = {("GET", "2xx"): 0, ("GET", "4xx"): 0, ("POST", "2xx"): 0, ("POST", "4xx"): 0}
    for j in range(per_client):
        expected["POST" if j % 3 == 0 else "GET", "4xx" if j % 5 == 0 else "2xx"] += clients
    for (method, status), count in expected.items():
        assert values[f'pounce_requests_total{{method="{method}",status="{status}"}}'] == count
    total = clients * per_client
    assert values["pounce_request_duration_seconds_count"] == total
    assert values['pounce_request_duration_seconds_bucket{le="+Inf"}'] == total


def test_in_flight_and_parked_gauges() -> None:
    with running_server("--workers", "2", "--worker-mode", "thread", *METRICS) as srv:
        idle = []
        for _ in range(5):
            sock = srv.connect()
            sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            ResponseReader(sock).read_response()
            idle.append(sock)
        busy = srv.connect()
        busy.sendall(b"GET /sleep?1.5 HTTP/1.1\r\nHost: t\r\n\r\n")
        time.sleep(0.8)  # gauges are published twice a second
        values = scrape(srv)
        ResponseReader(busy).read_response()
        for sock in [*idle, busy]:
            sock.close()
    assert values["pounce_requests_in_flight"] == 1
    assert values["pounce_connections_parked"] >= 5
    assert values["pounce_connections_open"] >= 6


def test_restarts_are_counted() -> None:
    with running_server("--workers", "2", "--worker-mode", "thread", *METRICS) as srv:
        try:
            exchange(srv, b"GET /exit-worker HTTP/1.1\r\nHost: t\r\n\r\n", timeout=5)
        except OSError:
            pass
        deadline = time.monotonic() + 20
        while scrape(srv)['pounce_worker_restarts_total{kind="thread"}'] != 1:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    with running_server("--workers", "2", "--worker-mode", "process", *METRICS) as srv:
        deadline = time.monotonic() + 20
        while "Started worker process 2" not in srv.stderr:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        pid = int(re.search(r"Started worker process 1 \[(\d+)\]", srv.stderr)[1])
        os.kill(pid, signal.SIGKILL)
        while (
            "restarting it" not in srv.stderr
            or "Started worker process 1" not in srv.stderr.split("restarting it")[-1]
        ):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert scrape(srv)['pounce_worker_restarts_total{kind="process"}'] == 1
