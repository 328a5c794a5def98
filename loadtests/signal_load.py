"""Restarts and shutdown under load: SIGHUP, then SIGTERM, while wrk keeps 64 connections busy.

    python loadtests/signal_load.py                  # process mode, 2 workers
    python loadtests/signal_load.py --threads-mode   # thread mode, 2 workers (SIGHUP ignored)

Timeline (defaults): wrk from 0 s to 20 s, SIGHUP at 5 s (a rolling restart of the worker
processes), SIGTERM at 13 s (graceful shutdown); the server must exit with code 0.

A failed request is a read error, a timeout or a status >= 400, or a write error while the
listening socket was still open. wrk on Linux loopback counts a refused connection as a
*write* error, not a connect error (its non-blocking connect returns EINPROGRESS; the refusal
shows up on the first write), so refused connections after the listener closed are counted
separately: nothing was sent on them. To tell them apart, and to say when an error
happened, wrk runs three times back to back (0-4 s, 4-12 s, 12-20 s: one second before each
signal), and a thread watches /proc/net/tcp for the moment the listening socket goes away
and for connections waiting in its accept queue meanwhile. Everything binds 127.0.0.1;
every step has a time limit.
"""

import argparse
import dataclasses
import itertools
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

import proctree
import wrk
from servers import HERE, HOST

RESULTS = HERE / "results"
EXIT_WAIT_S = 45.0  # graceful timeout (30 s) plus margin


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    python: str
    mode: str
    workers: int
    connections: int
    duration_s: int
    hup_at_s: float
    term_at_s: float

    @property
    def phases(self) -> list[tuple[int, int]]:
        """wrk's runs as (from, to) seconds: each signal lands one second into a fresh run."""
        cuts = [0, int(self.hup_at_s) - 1, int(self.term_at_s) - 1, self.duration_s]
        return list(itertools.pairwise(cuts))


@dataclasses.dataclass(slots=True)
class Timeline:
    """Seconds since the first wrk run started."""

    hup: float | None = None
    term: float | None = None
    listener_gone: float | None = None
    exited: float | None = None
    exit_code: int | None = None
    queued_peak: int = 0  # connections waiting in the accept queue, most seen after SIGTERM
    queued_last: int = 0  # ... and at the last look before the listener went away


@dataclasses.dataclass(frozen=True, slots=True)
class Verdict:
    requests: int
    failed: int
    failures: dict[str, int]  # what the failed count is made of
    refused_after_close: int
    exit_code: int | None

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.exit_code == 0


def parse_args(argv: list[str] | None) -> Plan:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("--threads-mode", action="store_true", help="thread mode instead of process")
    p.add_argument("--python", default=sys.executable, help="interpreter for the server")
    p.add_argument("--workers", type=int, choices=range(1, 9), default=2)
    p.add_argument("--connections", type=int, choices=range(2, 1025), default=64, metavar="N")
    args = p.parse_args(argv)
    mode = "thread" if args.threads_mode else "process"
    return Plan(args.python, mode, args.workers, args.connections, 20, 5.0, 13.0)


def server_argv(plan: Plan, port: int) -> list[str]:
    return [
        *[plan.python, "-m", "pounce_sync", "--worker-mode", plan.mode],
        *["--workers", str(plan.workers), "--host", HOST, "--port", str(port)],
        *["--no-access-log", "apps:hello"],
    ]


def accept_queue(port: int) -> int | None:
    """Connections waiting to be accepted on 127.0.0.1:`port`; None if nothing listens.

    Read from /proc/net/tcp (no connection made): for a listening socket, rx_queue is
    the length of its accept queue.
    """
    local = f"0100007F:{port:04X}"
    with open("/proc/net/tcp") as table:
        for fields in (line.split() for line in table):
            if len(fields) > 4 and fields[1] == local and fields[3] == "0A":  # 0A: LISTEN
                return int(fields[4].partition(":")[2], 16)
    return None


def watch_listener(port: int, start: float, timeline: Timeline, stop: threading.Event) -> None:
    """Note when the listening socket disappears (refusals start there) and what it held."""
    while not stop.wait(0.01):
        queued = accept_queue(port)
        if queued is None:
            timeline.listener_gone = round(time.monotonic() - start, 3)
            return
        if timeline.term is not None:
            timeline.queued_peak = max(timeline.queued_peak, queued)
            timeline.queued_last = queued


def start_wrk(port: int, plan: Plan, duration_s: int) -> subprocess.Popen[str]:
    load = wrk.WrkLoad(threads=2, connections=plan.connections, duration_s=duration_s)
    argv = [wrk.WRK, f"-t{load.threads}", f"-c{load.connections}", f"-d{duration_s}s"]
    argv += ["--latency", f"http://{HOST}:{port}/"]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish_wrk(proc: subprocess.Popen[str], duration_s: int) -> wrk.WrkResult:
    out, err = proc.communicate(timeout=duration_s + 30)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk exited {proc.returncode}: {err.strip()[-300:]}")
    return wrk.parse(out)


def sleep_until(start: float, at_s: float) -> None:
    time.sleep(max(0.0, start + at_s - time.monotonic()))


def wait_exit(server: subprocess.Popen[bytes], start: float, timeline: Timeline) -> None:
    try:
        timeline.exit_code = server.wait(EXIT_WAIT_S)
    except subprocess.TimeoutExpired:
        return  # the caller's proctree.stop kills it; no exit code is a failure
    timeline.exited = round(time.monotonic() - start, 3)


def drive(
    server: subprocess.Popen[bytes], port: int, plan: Plan
) -> tuple[list[wrk.WrkResult], Timeline]:
    """wrk's runs back to back and the two signals on schedule; wrk's result per run."""
    timeline, stop = Timeline(), threading.Event()
    start = time.monotonic()
    watcher = threading.Thread(target=watch_listener, args=(port, start, timeline, stop))
    watcher.start()
    signals = [None, (plan.hup_at_s, signal.SIGHUP), (plan.term_at_s, signal.SIGTERM)]
    results = []
    try:
        for (begin, end), due in zip(plan.phases, signals, strict=True):
            run = start_wrk(port, plan, end - begin)
            if due is not None:
                sleep_until(start, due[0])
                send_signal(server, due[1], start, timeline)
            if due is not None and due[1] == signal.SIGTERM:
                wait_exit(server, start, timeline)
            results.append(finish_wrk(run, end - begin))
    finally:
        stop.set()
        watcher.join()
    return results, timeline


def send_signal(
    server: subprocess.Popen[bytes], signum: int, start: float, timeline: Timeline
) -> None:
    server.send_signal(signum)
    at = round(time.monotonic() - start, 3)
    if signum == signal.SIGHUP:
        timeline.hup = at
    else:
        timeline.term = at


def judge(results: list[wrk.WrkResult], timeline: Timeline) -> Verdict:
    """Failures by the definition above; refused connections after the close set apart.

    Only the last run can see the listener gone; in the runs before it, a connect or write
    error was an error on a live server.
    """
    *before, last = results
    failures = {"read": 0, "timeout": 0, "status >= 400": 0, "connect or write, listener open": 0}
    for result in results:
        failures["read"] += result.socket_errors["read"]
        failures["timeout"] += result.socket_errors["timeout"]
        failures["status >= 400"] += result.non_2xx
    for result in before:
        failures["connect or write, listener open"] += sum(
            result.socket_errors[kind] for kind in ("connect", "write")
        )
    refused = last.socket_errors["connect"] + last.socket_errors["write"]
    if timeline.listener_gone is None:  # it never closed: those failed on a live listener
        failures["connect or write, listener open"] += refused
        refused = 0
    return Verdict(
        requests=sum(result.requests for result in results),
        failed=sum(failures.values()),
        failures=failures,
        refused_after_close=refused,
        exit_code=timeline.exit_code,
    )


def _at(value: float | None) -> str:
    return "never" if value is None else f"{value:.2f} s"


def describe(plan: Plan, results: list[wrk.WrkResult], timeline: Timeline, out: IO[str]) -> None:
    print(
        f"timeline: SIGHUP at {_at(timeline.hup)}, SIGTERM at {_at(timeline.term)}, listener "
        f"gone at {_at(timeline.listener_gone)}, server exited at {_at(timeline.exited)}; "
        f"accept queue after SIGTERM: at most {timeline.queued_peak} connections, "
        f"{timeline.queued_last} at the last look before the listener went away",
        file=out,
    )
    for (begin, end), result in zip(plan.phases, results, strict=True):
        errors = ", ".join(f"{k} {v}" for k, v in result.socket_errors.items())
        print(
            f"wrk {begin:>2}-{end:>2} s: {result.requests:,} requests, {result.rps:,.0f} req/s, "
            f"p99 {result.p99_ms:.2f} ms, max {result.latency_max_ms:.0f} ms; socket errors: "
            f"{errors}; status >= 400: {result.non_2xx}",
            file=out,
        )


def print_verdict(verdict: Verdict, out: IO[str]) -> None:
    parts = ", ".join(f"{k} {v}" for k, v in verdict.failures.items())
    print(f"requests completed: {verdict.requests:,}", file=out)
    print(f"failed requests: {verdict.failed} ({parts})", file=out)
    print(
        f"connect errors after the listener closed: {verdict.refused_after_close:,} "
        "(refused, nothing sent; wrk counts them as write errors)",
        file=out,
    )
    print(f"server exit code: {verdict.exit_code}", file=out)
    print("result: " + ("PASS" if verdict.ok else "FAIL"), file=out)


def print_log(path: Path, out: IO[str]) -> None:
    print(f"server log ({path}):", file=out)
    for line in path.read_text(errors="replace").splitlines():
        print(f"  {line}", file=out)


def main(argv: list[str] | None = None) -> int:
    plan = parse_args(argv)
    port = proctree.free_port()
    RESULTS.mkdir(exist_ok=True)
    log_path = RESULTS / f"signal-load-{plan.mode}-{time.strftime('%Y%m%d-%H%M%S')}.log"
    print(
        f"signal load: {plan.mode} mode, {plan.workers} workers, {plan.python}; wrk -t2 "
        f"-c{plan.connections} for {plan.duration_s} s in runs {plan.phases}",
        flush=True,
    )
    with log_path.open("wb") as log:
        server = proctree.start(server_argv(plan, port), HERE, log)
        try:
            proctree.wait_until_answers(server, port, "/", 30.0)
            results, timeline = drive(server, port, plan)
        finally:
            proctree.stop(server)
    describe(plan, results, timeline, sys.stdout)
    verdict = judge(results, timeline)
    print_verdict(verdict, sys.stdout)
    print_log(log_path, sys.stdout)
    return 0 if verdict.ok else 1


if __name__ == "__main__":
    sys.exit(main())
