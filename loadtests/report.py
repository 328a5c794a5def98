"""From raw runs to the summary: medians over rounds, ratios to a baseline, a printed table."""

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from wrk import WrkResult


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

    @property
    def ok(self) -> bool:
        return self.error is None and self.wrk is not None


@dataclass(frozen=True, slots=True)
class Row:
    """One server on one scenario, summarised over its rounds."""

    scenario: str
    server: str
    status: str  # "ok", or why there are no figures
    rounds_ok: int = 0
    rps: float | None = None
    rps_spread: float | None = None  # (max - min) / median of req/s over rounds
    ratio: float | None = None  # rps / the baseline's rps
    p50_ms: float | None = None
    p99_ms: float | None = None
    errors: int | None = None  # socket errors, summed over rounds
    non_2xx: int | None = None  # responses with status >= 400, summed over rounds
    rss_peak_mib: float | None = None
    failures: list[str] = field(default_factory=list)


def _median(runs: Sequence[Run], value: Callable[[Run], float]) -> float:
    return statistics.median(value(run) for run in runs)


def _figures(scenario: str, server: str, runs: list[Run], rounds: int) -> Row:
    good = [run for run in runs if run.ok]
    failures = [f"round {run.round}: {run.error}" for run in runs if not run.ok]
    if not good:
        reason = runs[0].error if runs else "no completed run"
        return Row(scenario, server, f"failed: {reason}", failures=failures)
    rps = [run.wrk.rps for run in good if run.wrk]
    median_rps = statistics.median(rps)
    return Row(
        scenario,
        server,
        status="ok" if len(good) == rounds else f"ok in {len(good)}/{rounds} rounds",
        rounds_ok=len(good),
        rps=median_rps,
        rps_spread=(max(rps) - min(rps)) / median_rps if median_rps else None,
        p50_ms=_median(good, lambda run: run.wrk.p50_ms if run.wrk else 0.0),
        p99_ms=_median(good, lambda run: run.wrk.p99_ms if run.wrk else 0.0),
        errors=sum(run.wrk.errors for run in good if run.wrk),
        non_2xx=sum(run.wrk.non_2xx for run in good if run.wrk),
        rss_peak_mib=_median(good, lambda run: run.rss_peak_mib or 0.0),
        failures=failures,
    )


def summarize(
    runs: list[Run], scenario: str, servers: dict[str, str], rounds: int, baseline: str
) -> list[Row]:
    """Rows in `servers` order; `servers` maps each name to "ok" or why it did not run."""
    rows = []
    for server, status in servers.items():
        if status != "ok":
            rows.append(Row(scenario, server, status))
            continue
        mine = [run for run in runs if run.server == server and run.scenario == scenario]
        rows.append(_figures(scenario, server, mine, rounds))
    base = next((row.rps for row in rows if row.server == baseline and row.rps), None)
    if base is None:
        return rows
    return [_with_ratio(row, base) for row in rows]


def _with_ratio(row: Row, base: float) -> Row:
    return row if row.rps is None else replace(row, ratio=row.rps / base)


def _cell(value: float | None, spec: str, suffix: str = "") -> str:
    return "-" if value is None else format(value, spec) + suffix


def header(baseline: str) -> str:
    return (
        f"{'server':<14}{'req/s':>10}{'vs ' + baseline:>15}{'spread':>8}{'p50 ms':>9}"
        f"{'p99 ms':>9}{'sock err':>10}{'non-2xx':>9}{'peak RSS MiB':>14}"
    )


def format_row(row: Row) -> str:
    if row.rps is None:
        return f"{row.server:<14}{row.status}"
    spread = None if row.rps_spread is None else row.rps_spread * 100
    line = (
        f"{row.server:<14}{_cell(row.rps, ',.0f'):>10}{_cell(row.ratio, '.2f', 'x'):>15}"
        f"{_cell(spread, '.1f', '%'):>8}{_cell(row.p50_ms, '.2f'):>9}"
        f"{_cell(row.p99_ms, '.2f'):>9}{_cell(row.errors, 'd'):>10}"
        f"{_cell(row.non_2xx, 'd'):>9}{_cell(row.rss_peak_mib, '.1f'):>14}"
    )
    return line if row.status == "ok" else f"{line}  ({row.status})"


def table(rows: list[Row], title: str, baseline: str) -> str:
    head = header(baseline)
    lines = [title, head, "-" * len(head), *(format_row(row) for row in rows)]
    if not any(row.ratio is not None for row in rows):
        lines.append(f"(no ratios: the baseline {baseline!r} has no figures in this run)")
    return "\n".join(lines)
