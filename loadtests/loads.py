"""One measured run of each kind of load, on a server that already answers.

"wrk": an optional warm-up, then `wrk --latency` while the server's memory is sampled and its
CPU time is read before and after (cputime.py); with `hold_idle`, idle keep-alive connections
are opened first and held through both.
"h2load": `h2load -D` with its own warm-up, HTTP/2 cleartext with prior knowledge.
"sse": subscribers hold event streams open for the run's duration (sse_fanout.subscribe).
Every step has a time limit.
"""

import dataclasses
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

import cputime
import h2load
import proctree
import sse_fanout
import wrk
from idle_hold import IdleHolder, IdleResult
from report import Run
from scenarios import Scenario
from servers import HOST

IDLE_OPEN_TIMEOUT_S = 30.0
# Each idle connection sends a request this often: below every server's default keep-alive
# timeout (gunicorn's 2 s is the shortest; uvicorn, hypercorn, bengal-pounce: 5 s), so the
# connections stay open and idle rather than being closed and reopened.
IDLE_INTERVAL_S = 1.5
SSE_INTERVAL_S = 0.1
SSE_OPEN_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class Settings:
    workers: int
    rounds: int
    warmup_s: int
    load: wrk.WrkLoad
    h2: h2load.H2Load
    idle_connections: int
    sse_subscribers: int
    sse_interval_s: float = SSE_INTERVAL_S
    server_cpus: str | None = None  # --per-core: a taskset CPU list for the servers

    def run_s(self, scenario: Scenario) -> int:
        """About how long one measured run takes, start and stop of the server excluded."""
        if scenario.load == "sse":
            return self.load.duration_s + 2  # opening the streams
        idle = 2 if scenario.hold_idle else 0  # opening the idle connections
        return self.warmup_s + self.load.duration_s + idle


def _mib(kib: int) -> float:
    return round(kib / 1024, 1)


def _record_memory(run: Run, proc: subprocess.Popen[bytes], sampler: proctree.PeakMemory) -> None:
    """The peak RSS the sampler saw, the tree's PSS at the end of the run, and a check that
    the server outlived it."""
    run.rss_peak_mib, run.rss_samples = _mib(sampler.rss_kib), sampler.samples
    run.pss_end_mib = _mib(proctree.pss_kib(proctree.tree(proc.pid)))
    _check_alive(proc)


def _check_alive(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        raise proctree.ServerFailed(f"exited with code {proc.returncode} during the run")


def _wrk_runs(run: Run, proc: subprocess.Popen[bytes], url: str, scenario: Scenario,
              settings: Settings, holder: IdleHolder | None) -> proctree.PeakMemory:  # fmt: skip
    """Warm-up and measured wrk run; the idle counts are taken right around the latter.

    Returns the memory sampler of the measured run."""
    if settings.warmup_s:
        warm = dataclasses.replace(settings.load, duration_s=settings.warmup_s)
        wrk.run(wrk.command(url, warm, scenario), settings.warmup_s)
    start = holder.counts() if holder else None
    cpu_before, started = cputime.read(proctree.tree(proc.pid)), time.monotonic()
    with proctree.peak_rss(proc.pid) as sampler:
        run.wrk_report = wrk.run(
            wrk.command(url, settings.load, scenario), settings.load.duration_s
        )
    pids = proctree.tree(proc.pid)
    run.cpu = cputime.read(pids) - cpu_before
    run.cpus_allowed = cputime.cpus_allowed(pids)
    run.cpu_wall_s = round(time.monotonic() - started, 3)
    if holder and start:
        run.idle = IdleResult.between(holder.count, start, holder.counts())
        if holder.error is not None:
            raise RuntimeError(f"the idle connection holder failed: {holder.error!r}")
    return sampler


def measure_wrk(
    run: Run, proc: subprocess.Popen[bytes], port: int, scenario: Scenario, settings: Settings
) -> None:
    url = f"http://{HOST}:{port}{scenario.path}"
    holder = None
    if scenario.hold_idle:
        holder = IdleHolder(HOST, port, settings.idle_connections, scenario.path, IDLE_INTERVAL_S)
    try:
        if holder:
            holder.start()
            holder.wait_open(IDLE_OPEN_TIMEOUT_S)
        sampler = _wrk_runs(run, proc, url, scenario, settings, holder)
    finally:
        if holder:
            holder.close()
    _record_memory(run, proc, sampler)
    run.wrk = wrk.parse(run.wrk_report)


def measure_h2load(
    run: Run, proc: subprocess.Popen[bytes], port: int, scenario: Scenario, settings: Settings
) -> None:
    url = f"http://{HOST}:{port}{scenario.path}"
    argv = h2load.command(url, settings.h2, settings.warmup_s)
    with proctree.peak_rss(proc.pid) as sampler:  # the warm-up is inside h2load's run
        run.h2load_report = h2load.run(argv, settings.warmup_s + settings.h2.duration_s)
    _record_memory(run, proc, sampler)
    run.h2load = h2load.parse(run.h2load_report)


def measure_sse(
    run: Run, proc: subprocess.Popen[bytes], port: int, scenario: Scenario, settings: Settings
) -> None:
    with proctree.peak_rss(proc.pid) as sampler:
        fanout = sse_fanout.subscribe(
            port,
            settings.sse_subscribers,
            settings.sse_interval_s,
            settings.load.duration_s,
            SSE_OPEN_TIMEOUT_S,
        )
    _record_memory(run, proc, sampler)
    run.sse = fanout


Measure = Callable[[Run, "subprocess.Popen[bytes]", int, Scenario, Settings], None]
MEASURES: dict[str, Measure] = {"wrk": measure_wrk, "h2load": measure_h2load, "sse": measure_sse}
