"""--limit-max-requests: workers retire gracefully and are replaced; no request fails."""

import re
from collections import Counter

from ..http_client import request
from ..server_process import running_server

CLOSE = b"GET /pid HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"


def _ask_many(srv, count: int) -> list[int]:
    pids = []
    for _ in range(count):
        response = request(srv, CLOSE)
        assert response.status == 200, response
        pids.append(int(response.body))
    return pids


def test_worker_threads_retire_and_are_replaced() -> None:
    args = ("--workers", "1", "--worker-mode", "thread", "--limit-max-requests", "5")
    with running_server(*args, "--no-access-log") as srv:
        _ask_many(srv, 17)
        assert srv.stop() == 0
    retired = re.findall(r"worker thread worker-1 retired after (\d+) requests", srv.stderr)
    assert retired[:3] == ["5", "5", "5"]
    assert "restarts within" not in srv.stderr  # retiring spends no restart budget


def test_jitter_stays_within_its_range() -> None:
    args = ("--workers", "1", "--worker-mode", "thread", "--limit-max-requests", "3")
    with running_server(*args, "--limit-max-requests-jitter", "4", "--no-access-log") as srv:
        _ask_many(srv, 40)
        srv.stop()
    counts = [int(n) for n in re.findall(r"retired after (\d+) requests", srv.stderr)]
    assert len(counts) >= 5
    assert all(3 <= n <= 7 for n in counts)


def test_worker_processes_retire_and_are_replaced() -> None:
    args = ("--workers", "2", "--worker-mode", "process", "--limit-max-requests", "4")
    with running_server(*args, "--no-access-log") as srv:
        pids = _ask_many(srv, 40)
        assert srv.stop() == 0
    # A retiring process stops accepting at its 4th request, on the worker thread: it
    # served dozens more while its main thread got round to the drain (40 of 40 once).
    assert max(Counter(pids).values()) <= 5, Counter(pids)
    assert len(set(pids)) >= 8
    assert srv.stderr.count("retired; starting a new one") >= 2
    assert "restarts within" not in srv.stderr
