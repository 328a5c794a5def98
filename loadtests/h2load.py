"""Run h2load (nghttp2's HTTP/2 load generator) for a fixed time and read its summary.

h2load gives no latency percentiles: per request it reports min, max, mean and standard
deviation ("time for request"), and that is what is kept.
"""

import re
from dataclasses import dataclass

from pinning import pinned
from wrk import run_load, to_ms

H2LOAD = "/usr/bin/h2load"
_TIME = r"([\d.]+)(us|ms|s)"
_FINISHED = re.compile(r"^finished in [\d.]+\w+, ([\d.]+) req/s", re.M)
_REQUESTS = re.compile(
    r"^requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed"
    r"(?:, (\d+) errored)?(?:, (\d+) timeout)?",
    re.M,
)
_STATUS = re.compile(r"^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", re.M)
_TIME_FOR_REQUEST = re.compile(rf"^time for request:\s+{_TIME}\s+{_TIME}\s+{_TIME}\s+{_TIME}", re.M)


@dataclass(frozen=True, slots=True)
class H2Load:
    clients: int  # h2load -c: connections
    streams: int  # h2load -m: concurrent streams per connection
    duration_s: int  # h2load -D
    cpus: str | None = None  # a taskset CPU list to run h2load on (--per-core); None: anywhere


@dataclass(frozen=True, slots=True)
class H2loadResult:
    requests: int
    succeeded: int
    failed: int
    errored: int
    timeout: int
    rps: float  # over the measured duration, warm-up excluded
    latency_min_ms: float
    latency_max_ms: float
    latency_mean_ms: float
    latency_sd_ms: float
    statuses: dict[str, int]  # 2xx, 3xx, 4xx, 5xx

    @property
    def errors(self) -> int:
        """h2load's `failed`: status >= 400 and network failures (`errored` is a subset)."""
        return self.failed


def command(url: str, load: H2Load, warmup_s: int) -> list[str]:
    argv = [H2LOAD, "-D", str(load.duration_s), "-c", str(load.clients)]
    argv += ["-m", str(load.streams)]
    if warmup_s:
        argv += ["--warm-up-time", str(warmup_s)]
    return pinned([*argv, url], load.cpus)


def run(argv: list[str], seconds: int) -> str:
    """h2load's report; the timeout only bites if h2load itself hangs."""
    return run_load(argv, seconds + 30)


def parse(report: str) -> H2loadResult:
    """Numbers from h2load's summary; ValueError if there is none or nothing succeeded."""
    finished, requests = _FINISHED.search(report), _REQUESTS.search(report)
    latency, status = _TIME_FOR_REQUEST.search(report), _STATUS.search(report)
    if finished is None or requests is None or latency is None:
        raise ValueError("no summary in h2load's output: " + report.strip()[-300:])
    total, succeeded, failed, errored, timeout = (int(n or 0) for n in requests.groups())
    if succeeded == 0:
        raise ValueError(f"no request succeeded ({total} total, {failed} failed)")
    lows = latency.groups()
    statuses = [int(n) for n in status.groups()] if status else [0, 0, 0, 0]
    return H2loadResult(
        requests=total,
        succeeded=succeeded,
        failed=failed,
        errored=errored,
        timeout=timeout,
        rps=float(finished.group(1)),
        latency_min_ms=to_ms(lows[0], lows[1]),
        latency_max_ms=to_ms(lows[2], lows[3]),
        latency_mean_ms=to_ms(lows[4], lows[5]),
        latency_sd_ms=to_ms(lows[6], lows[7]),
        statuses=dict(zip(("2xx", "3xx", "4xx", "5xx"), statuses, strict=True)),
    )
