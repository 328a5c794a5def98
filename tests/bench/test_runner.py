"""`pounce-sync bench` and the locust profiles, run for real against servers on loopback."""

import csv
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pounce_sync.bench import runner as bench
from tests.server_process import running_server

LOADTESTS = Path(__file__).resolve().parents[2] / "loadtests"
WRK_REPORT = """\
Running 1s test @ http://127.0.0.1:8000/
  2 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   101.00us   20.00us   1.00ms   90.00%
  Latency Distribution
     50%  100.00us
     75%  110.00us
     90%  120.00us
     99%    1.50ms
  20000 requests in 1.00s, 2.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 3
Requests/sec:  19999.50
"""


def _bench(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pounce_sync", "bench", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def test_parse_wrk_counts_socket_errors_and_bad_statuses() -> None:
    figures = bench.parse_wrk(WRK_REPORT)
    assert figures == bench.WrkFigures(rps=19999.5, p99_ms=1.5, errors=6)


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed: no load to measure")
def test_bench_measures_a_real_server() -> None:
    done = _bench("--modes", "thread", "--workers", "1", "--duration", "1", "--connections", "4")
    assert done.returncode == 0, done.stderr
    assert "GIL" in done.stdout.splitlines()[0]
    row = next(line for line in done.stdout.splitlines() if line.startswith("thread "))
    mode, workers, rps, speedup, p99, errors, cores, rss, pss = row.split()
    assert (mode, workers, speedup) == ("thread", "1", "1.00x")
    assert float(rps.replace(",", "")) > 0
    assert float(rss) > 0 and float(pss) > 0
    assert float(p99) > 0 and errors == "0" and float(cores) > 0


@pytest.mark.parametrize(
    "args",
    [["--bogus"], ["--modes", "fork"], ["--workers", "0"], ["--duration", "x"], ["notanapp"]],
)
def test_bad_flag_is_one_line_and_exit_2(args: list[str]) -> None:
    done = _bench(*args)
    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1
    assert done.stderr.startswith("pounce-sync bench: error: ")


def test_without_wrk_says_so_in_one_line_and_exits_1(tmp_path: Path) -> None:
    done = _bench(env={**os.environ, "PATH": str(tmp_path)})
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert "wrk not found" in done.stderr


@pytest.mark.skipif(
    importlib.util.find_spec("locust") is None,
    reason="locust is not importable here (it needs gevent, which does not build on "
    "free-threaded 3.13t); the GIL venv runs this test",
)
def test_locust_profiles_run_without_failures(tmp_path: Path) -> None:
    with running_server("--app-dir", str(LOADTESTS), "--no-access-log", app="demo_app:app") as srv:
        done = subprocess.run(
            [
                *[sys.executable, "-m", "locust", "-f", str(LOADTESTS / "locustfile.py")],
                *["--headless", "-u", "10", "-r", "10", "-t", "4s", "--only-summary"],
                *["-H", f"http://127.0.0.1:{srv.port}", "--csv", str(tmp_path / "run")],
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 0, done.stderr[-2000:]
    with (tmp_path / "run_stats.csv").open() as f:
        total = next(row for row in csv.DictReader(f) if row["Name"] == "Aggregated")
    assert int(total["Request Count"]) > 0
    assert int(total["Failure Count"]) == 0, done.stderr[-2000:]
