"""Run wrk and read its `--latency` report into numbers."""

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from pinning import pinned
from scenarios import Scenario

WRK = "/usr/bin/wrk"
_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_TIME = r"([\d.]+)(us|ms|s|m|h)"
_PERCENTILE = re.compile(rf"^\s+(50|75|90|99)%\s+{_TIME}\s*$", re.M)
_LATENCY = re.compile(rf"^\s+Latency\s+{_TIME}\s+\S+\s+{_TIME}", re.M)
_REQUESTS = re.compile(r"^\s+(\d+) requests in ([\d.]+)(us|ms|s|m|h),", re.M)
_SOCKET_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")
_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.M)


@dataclass(frozen=True, slots=True)
class WrkLoad:
    threads: int
    connections: int
    duration_s: int
    cpus: str | None = None  # a taskset CPU list to run wrk on (--per-core); None: anywhere


@dataclass(frozen=True, slots=True)
class WrkResult:
    requests: int
    rps: float
    latency_avg_ms: float
    latency_max_ms: float
    p50_ms: float
    p75_ms: float
    p90_ms: float
    p99_ms: float
    socket_errors: dict[str, int]  # connect, read, write, timeout
    non_2xx: int  # wrk counts every status >= 400 here despite the name

    @property
    def errors(self) -> int:
        return sum(self.socket_errors.values())


def command(url: str, load: WrkLoad, scenario: Scenario) -> list[str]:
    argv = [WRK, f"-t{load.threads}", f"-c{load.connections}", f"-d{load.duration_s}s"]
    argv += ["--latency", *scenario.wrk_args]
    if scenario.script is not None:
        argv += ["-s", str(scenario.script)]
    return pinned([*argv, url], load.cpus)


def run(argv: list[str], duration_s: int) -> str:
    """wrk's report; the timeout only bites if wrk itself hangs."""
    return run_load(argv, duration_s + 30)


def run_load(argv: list[str], timeout_s: float) -> str:
    """The report of a load generator (wrk, h2load); RuntimeError if it fails."""
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
    if done.returncode != 0:
        tool = Path(argv[0]).name
        raise RuntimeError(f"{tool} exited {done.returncode}: {done.stderr.strip()[-300:]}")
    return done.stdout


def to_ms(value: str, unit: str) -> float:
    """A duration as wrk or h2load prints it ("1.23", "ms") in milliseconds."""
    return round(float(value) * _UNIT_MS[unit], 3)


def parse(report: str) -> WrkResult:
    """Numbers from a `wrk --latency` report; ValueError if it is not one."""
    rps, requests, latency = _RPS.search(report), _REQUESTS.search(report), _LATENCY.search(report)
    if rps is None or requests is None or latency is None:
        raise ValueError(f"not a wrk report:\n{report}")
    percentiles = {p: to_ms(v, u) for p, v, u in _PERCENTILE.findall(report)}
    if len(percentiles) != 4:
        raise ValueError(f"no latency distribution (was --latency given?):\n{report}")
    errors = _SOCKET_ERRORS.search(report)
    counts = [int(n) for n in errors.groups()] if errors else [0, 0, 0, 0]
    non_2xx = _NON_2XX.search(report)
    return WrkResult(
        requests=int(requests.group(1)),
        rps=float(rps.group(1)),
        latency_avg_ms=to_ms(latency.group(1), latency.group(2)),
        latency_max_ms=to_ms(latency.group(3), latency.group(4)),
        p50_ms=percentiles["50"],
        p75_ms=percentiles["75"],
        p90_ms=percentiles["90"],
        p99_ms=percentiles["99"],
        socket_errors=dict(zip(("connect", "read", "write", "timeout"), counts, strict=True)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
    )
