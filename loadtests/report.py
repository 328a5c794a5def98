"""From raw runs to the summary: medians over rounds, ratios to a baseline, a printed table.

Each kind of load has its own columns: wrk and h2load give req/s and latency (h2load has no
percentiles, only min/max/mean/sd), SSE fan-out gives events delivered rather than req/s.
wrk runs also give the server's CPU time per request, and its ratio to the baseline's.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from cputime import CpuTimes, per_request_us
from h2load import H2loadResult
from idle_hold import IdleResult
from wrk import WrkResult

if TYPE_CHECKING:  # sse_fanout starts servers too; the report needs only its result type
    from sse_fanout import Fanout


@dataclass(slots=True)
class Run:
    """One measured run of one server on one scenario: everything the JSON file keeps."""

    server: str
    scenario: str
    round: int
    command: list[str]
    error: str | None = None
    startup_s: float | None = None
    rss_ready_mib: float | None = None
    rss_peak_mib: float | None = None
    rss_samples: int = 0
    pss_end_mib: float | None = None
    stopped: str | None = None
    wrk: WrkResult | None = None
    wrk_report: str | None = None
    idle: IdleResult | None = None  # idle-keepalive: the held connections
    h2load: H2loadResult | None = None
    h2load_report: str | None = None
    sse: Fanout | None = None
    cpu: CpuTimes | None = None  # the server tree's CPU time over the measured wrk run
    cpu_wall_s: float | None = None  # wall-clock time between the two CPU readings
    cpus_allowed: list[str] | None = None  # CPU lists of the server's threads, under load

    @property
    def ok(self) -> bool:
        return self.error is None and (self.wrk or self.h2load or self.sse) is not None

    @property
    def rps(self) -> float | None:
        result = self.wrk or self.h2load
        return None if result is None else result.rps

    @property
    def cpu_us(self) -> float | None:
        """Server CPU µs per request wrk completed in the measured run."""
        if self.cpu is None or self.wrk is None:
            return None
        return per_request_us(self.cpu, self.wrk.requests)

    @property
    def cores(self) -> float | None:
        """The server's CPU time over wall-clock time: 1.0 is one core kept busy."""
        if self.cpu is None or not self.cpu_wall_s:
            return None
        return self.cpu.total_s / self.cpu_wall_s


@dataclass(frozen=True, slots=True)
class Row:
    """One server on one scenario, summarised over its rounds."""

    scenario: str
    server: str
    status: str  # "ok", or why there are no figures
    load: str = "wrk"
    rounds_ok: int = 0
    rps: float | None = None
    rps_spread: float | None = None  # (max - min) / median of req/s over rounds
    ratio: float | None = None  # rps / the baseline's rps
    baseline: str | None = None  # the server `ratio` divides by
    cpu_us: float | None = None  # wrk: server CPU µs per request (user + system)
    cpu_user_us: float | None = None
    cpu_system_us: float | None = None
    cpu_ratio: float | None = None  # cpu_us / the baseline's: above 1 costs more than it
    cores: float | None = None  # server CPU time / wall-clock time of the measured run
    p50_ms: float | None = None  # wrk
    p99_ms: float | None = None  # wrk
    mean_ms: float | None = None  # h2load: time for request
    sd_ms: float | None = None  # h2load
    max_ms: float | None = None  # h2load
    errors: int | None = None  # socket errors (wrk), failed requests (h2load), failed streams
    non_2xx: int | None = None  # responses with status >= 400, summed over rounds
    rss_peak_mib: float | None = None
    idle_target: int | None = None
    idle_open_start: int | None = None  # worst (lowest) over rounds
    idle_open_end: int | None = None  # worst (lowest) over rounds
    idle_reopened: int | None = None  # worst (highest) over rounds
    sse_subscribers: int | None = None
    sse_events: float | None = None  # median over rounds
    sse_expected: float | None = None  # median over rounds
    sse_delivered: float | None = None  # median over rounds of events / expected
    sse_events_min: int | None = None  # fewest events one subscriber got, over all rounds
    failures: list[str] = field(default_factory=list)


def _median(runs: Sequence[Run], value: Callable[[Run], float]) -> float:
    return statistics.median(value(run) for run in runs)


def _throughput(good: list[Run]) -> dict[str, object]:
    rps = [run.rps or 0.0 for run in good]
    median_rps = statistics.median(rps)
    return {
        "rps": median_rps,
        "rps_spread": (max(rps) - min(rps)) / median_rps if median_rps else None,
    }


def _cpu_us(run: Run, part: str) -> float:
    """`part` of the run's CPU time ("user_s", "system_s", "total_s") per request, in µs."""
    assert run.cpu is not None and run.wrk is not None
    return getattr(run.cpu, part) * 1_000_000 / run.wrk.requests


def _cpu_figures(good: list[Run]) -> dict[str, object]:
    """Medians over the rounds with CPU readings (runs that completed requests)."""
    timed = [run for run in good if run.cpu_us is not None]
    if not timed:
        return {}
    return {
        "cpu_us": _median(timed, lambda run: _cpu_us(run, "total_s")),
        "cpu_user_us": _median(timed, lambda run: _cpu_us(run, "user_s")),
        "cpu_system_us": _median(timed, lambda run: _cpu_us(run, "system_s")),
        "cores": _median(timed, lambda run: run.cores or 0.0),
    }


def _wrk_figures(good: list[Run]) -> dict[str, object]:
    results = [run.wrk for run in good if run.wrk]
    return {
        **_throughput(good),
        **_cpu_figures(good),
        "p50_ms": statistics.median(r.p50_ms for r in results),
        "p99_ms": statistics.median(r.p99_ms for r in results),
        "errors": sum(r.errors for r in results),
        "non_2xx": sum(r.non_2xx for r in results),
        **_idle_figures(good),
    }


def _idle_figures(good: list[Run]) -> dict[str, object]:
    held = [run.idle for run in good if run.idle]
    if not held:
        return {}
    return {
        "idle_target": held[0].target,
        "idle_open_start": min(r.open_start for r in held),
        "idle_open_end": min(r.open_end for r in held),
        "idle_reopened": max(r.reopened for r in held),
    }


def _h2load_figures(good: list[Run]) -> dict[str, object]:
    results = [run.h2load for run in good if run.h2load]
    return {
        **_throughput(good),
        "mean_ms": statistics.median(r.latency_mean_ms for r in results),
        "sd_ms": statistics.median(r.latency_sd_ms for r in results),
        "max_ms": max(r.latency_max_ms for r in results),
        "errors": sum(r.errors for r in results),
        "non_2xx": sum(r.statuses["4xx"] + r.statuses["5xx"] for r in results),
    }


def _sse_figures(good: list[Run]) -> dict[str, object]:
    results = [run.sse for run in good if run.sse]
    return {
        "sse_subscribers": results[0].subscribers,
        "sse_events": statistics.median(r.events for r in results),
        "sse_expected": statistics.median(r.expected for r in results),
        "sse_delivered": statistics.median(r.delivered for r in results),
        "sse_events_min": min(r.events_min for r in results),
        "errors": sum(r.failed for r in results),
    }


FIGURES: dict[str, Callable[[list[Run]], dict[str, object]]] = {
    "wrk": _wrk_figures,
    "h2load": _h2load_figures,
    "sse": _sse_figures,
}


def _figures(scenario: str, server: str, load: str, runs: list[Run], rounds: int) -> Row:
    good = [run for run in runs if run.ok]
    failures = [f"round {run.round}: {run.error}" for run in runs if not run.ok]
    if not good:
        reason = runs[0].error if runs else "no completed run"
        return Row(scenario, server, f"failed: {reason}", load, failures=failures)
    return Row(
        scenario,
        server,
        status="ok" if len(good) == rounds else f"ok in {len(good)}/{rounds} rounds",
        load=load,
        rounds_ok=len(good),
        rss_peak_mib=_median(good, lambda run: run.rss_peak_mib or 0.0),
        failures=failures,
        **FIGURES[load](good),  # type: ignore[arg-type]
    )


def summarize(
    runs: list[Run],
    scenario: str,
    load: str,
    servers: dict[str, str],
    rounds: int,
    baselines: Sequence[str],
) -> list[Row]:
    """Rows in `servers` order; `servers` maps each name to "ok" or why it did not run.

    Ratios divide by the first of `baselines` that has figures here (none for SSE).
    """
    rows = []
    for server, status in servers.items():
        if status != "ok":
            rows.append(Row(scenario, server, status, load))
            continue
        mine = [run for run in runs if run.server == server and run.scenario == scenario]
        rows.append(_figures(scenario, server, load, mine, rounds))
    by_name = {row.server: row for row in rows if row.rps}
    base = next((name for name in baselines if name in by_name), None)
    if base is None:
        return rows
    return [_with_ratio(row, by_name[base]) for row in rows]


def _with_ratio(row: Row, base: Row) -> Row:
    if row.rps is None:
        return row
    cost = None
    if row.cpu_us is not None and base.cpu_us:
        cost = row.cpu_us / base.cpu_us
    return replace(row, ratio=row.rps / (base.rps or 1.0), baseline=base.server, cpu_ratio=cost)


def _cell(value: float | None, spec: str, suffix: str = "") -> str:
    return "-" if value is None else format(value, spec) + suffix


@dataclass(frozen=True, slots=True)
class Column:
    title: str
    width: int
    text: Callable[[Row], str]


def _spread(row: Row) -> str:
    return _cell(None if row.rps_spread is None else row.rps_spread * 100, ".1f", "%")


def _held(value: int | None, row: Row) -> str:
    return "-" if value is None else f"{value}/{row.idle_target}"


def _columns(load: str, baseline: str, idle: bool) -> list[Column]:
    rate = [
        Column("req/s", 10, lambda r: _cell(r.rps, ",.0f")),
        Column("vs " + baseline, 15, lambda r: _cell(r.ratio, ".2f", "x")),
        Column("spread", 8, _spread),
    ]
    rss = Column("peak RSS MiB", 14, lambda r: _cell(r.rss_peak_mib, ".1f"))
    cpu = [
        Column("CPU µs/req", 12, lambda r: _cell(r.cpu_us, ".1f")),
        Column("cost vs " + baseline, 17, lambda r: _cell(r.cpu_ratio, ".2f", "x")),
        Column("cores", 7, lambda r: _cell(r.cores, ".2f")),
    ]
    if load == "h2load":
        return [
            *rate,
            Column("mean ms", 9, lambda r: _cell(r.mean_ms, ".2f")),
            Column("sd ms", 8, lambda r: _cell(r.sd_ms, ".2f")),
            Column("max ms", 9, lambda r: _cell(r.max_ms, ".1f")),
            Column("failed", 8, lambda r: _cell(r.errors, "d")),
            Column("4xx/5xx", 9, lambda r: _cell(r.non_2xx, "d")),
            rss,
        ]
    if load == "sse":
        return [
            Column("streams", 9, lambda r: _cell(r.sse_subscribers, "d")),
            Column("events", 10, lambda r: _cell(r.sse_events, ",.0f")),
            Column("of", 10, lambda r: _cell(r.sse_expected, ",.0f")),
            Column("delivered", 11, lambda r: _cell(_percent(r.sse_delivered), ".1f", "%")),
            Column("min/stream", 12, lambda r: _cell(r.sse_events_min, "d")),
            Column("failed", 8, lambda r: _cell(r.errors, "d")),
            rss,
        ]
    columns = [
        *rate,
        *cpu,
        Column("p50 ms", 9, lambda r: _cell(r.p50_ms, ".2f")),
        Column("p99 ms", 9, lambda r: _cell(r.p99_ms, ".2f")),
        Column("sock err", 10, lambda r: _cell(r.errors, "d")),
        Column("non-2xx", 9, lambda r: _cell(r.non_2xx, "d")),
        rss,
    ]
    if idle:
        columns += [
            Column("idle start", 12, lambda r: _held(r.idle_open_start, r)),
            Column("idle end", 11, lambda r: _held(r.idle_open_end, r)),
            Column("reopened", 10, lambda r: _cell(r.idle_reopened, "d")),
        ]
    return columns


def _percent(value: float | None) -> float | None:
    return None if value is None else value * 100


NAME_WIDTH = 18


def header(columns: Sequence[Column]) -> str:
    return f"{'server':<{NAME_WIDTH}}" + "".join(f"{c.title:>{c.width}}" for c in columns)


def format_row(row: Row, columns: Sequence[Column]) -> str:
    if row.rounds_ok == 0:
        return f"{row.server:<{NAME_WIDTH}}{row.status}"
    line = f"{row.server:<{NAME_WIDTH}}" + "".join(f"{c.text(row):>{c.width}}" for c in columns)
    return line if row.status == "ok" else f"{line}  ({row.status})"


def table(rows: list[Row], title: str, baseline: str, load: str, idle: bool = False) -> str:
    """The printed table for one scenario; `baseline` is the name the ratio column shows."""
    shown = next((row.baseline for row in rows if row.baseline), baseline)
    columns = _columns(load, shown, idle)
    head = header(columns)
    lines = [title, head, "-" * len(head), *(format_row(row, columns) for row in rows)]
    if load != "sse" and not any(row.ratio is not None for row in rows):
        lines.append(f"(no ratios: the baseline {baseline!r} has no figures in this run)")
    return "\n".join(lines)
