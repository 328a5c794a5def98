"""`pounce-sync bench`: thread mode against process mode, on this interpreter, with wrk.

For each worker mode and worker count it starts a real server on 127.0.0.1, warms it up,
runs wrk while sampling the memory of the server's whole process tree, and stops it with
SIGTERM. The figures say what free threading buys: req/s as workers are added, and memory
of N threads in one process against N processes.

Self-contained on purpose: it ships in the package, so it cannot use the harness in
loadtests/. Figures come from wrk only; there is no Python load generator to fall back to,
because one would measure itself as much as the server.
"""

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, NoReturn

HOST = "127.0.0.1"
BUILTIN_PREFIX = "pounce_sync.bench.apps:"
DEFAULT_APP = BUILTIN_PREFIX + "hello"
MODES = ("thread", "process")
WARMUP_S = 1
STARTUP_TIMEOUT_S = 30.0
STOP_GRACE_S = 15.0
WRK_SLACK_S = 30  # on top of the duration, before a hung wrk is given up
SAMPLE_INTERVAL_S = 0.1
PSS_EVERY = 5  # smaps_rollup walks page tables: read it every 5th sample only
RELIST_EVERY = 10  # scanning /proc costs CPU the server would otherwise have

_FACTS_SNIPPET = (
    "import json, sys, sysconfig; print(json.dumps({'python': sys.version.split()[0], "
    "'free_threaded_build': bool(sysconfig.get_config_var('Py_GIL_DISABLED')), "
    "'gil_enabled': bool(getattr(sys, '_is_gil_enabled', lambda: True)())}))"
)


class BenchError(RuntimeError):
    """One run could not be measured; the message is one line for the table."""


@dataclass(frozen=True, slots=True)
class Options:
    app: str
    modes: tuple[str, ...]
    workers: tuple[int, ...]
    duration: int
    connections: int
    path: str
    python: str

    @property
    def wrk_threads(self) -> int:
        return min(2, self.connections)  # wrk refuses fewer connections than threads

    @property
    def builtin_app(self) -> bool:
        return self.app.startswith(BUILTIN_PREFIX)


@dataclass(frozen=True, slots=True)
class WrkFigures:
    rps: float
    p99_ms: float
    errors: int  # socket errors (connect, read, write, timeout) plus statuses >= 400


@dataclass(frozen=True, slots=True)
class Run:
    mode: str
    workers: int
    wrk: WrkFigures | None = None
    rss_mib: float = 0.0
    pss_mib: float = 0.0
    cpu_cores: float = 0.0  # server CPU time over the measured run / its length
    facts: dict[str, Any] | None = None  # the server's interpreter, when it can be asked
    error: str | None = None


# -- command line ------------------------------------------------------------------------
class _OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _bounded(low: int, high: int) -> Callable[[str], int]:
    """An int within [low, high]: no flag can make a run unbounded."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}, got {value}")
        return value

    return parse


def _modes(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in MODES]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"must be a comma-separated subset of {','.join(MODES)}")
    return tuple(dict.fromkeys(names))


def _worker_counts(text: str) -> tuple[int, ...]:
    parse = _bounded(1, 64)
    counts = tuple(parse(part) for part in text.split(",") if part.strip())
    if not counts:
        raise argparse.ArgumentTypeError("must be comma-separated counts, e.g. 1,2,4")
    return tuple(dict.fromkeys(counts))


def _url_path(text: str) -> str:
    if not text.startswith("/") or any(c.isspace() for c in text):
        raise argparse.ArgumentTypeError(f"must start with '/' and hold no spaces, got {text!r}")
    return text


def build_parser() -> argparse.ArgumentParser:
    p = _OneLineParser(
        prog="pounce-sync bench",
        allow_abbrev=False,
        description="Thread mode against process mode: req/s, p99 and memory, with wrk.",
    )
    p.add_argument("app", nargs="?", default=DEFAULT_APP, help="module:attribute to serve")
    p.add_argument("--modes", type=_modes, default=MODES, help="default: thread,process")
    p.add_argument("--workers", type=_worker_counts, default=(1, 2, 4), help="default: 1,2,4")
    p.add_argument("--duration", type=_bounded(1, 120), default=5, help="wrk seconds per run")
    p.add_argument("--connections", type=_bounded(1, 10_000), default=64, help="wrk -c")
    p.add_argument("--path", type=_url_path, default="/", help="URL path wrk requests")
    p.add_argument("--python", default=sys.executable, help="interpreter that runs the server")
    return p


def parse_options(argv: Sequence[str]) -> Options:
    parser = build_parser()
    args = parser.parse_args(list(argv))
    if ":" not in args.app:
        parser.error(f"APP must look like module:attribute, got {args.app!r}")
    python = shutil.which(args.python)
    if python is None:
        parser.error(f"--python {args.python!r} is not an executable")
    return Options(
        args.app, args.modes, args.workers, args.duration, args.connections, args.path, python
    )


# -- the process tree, from /proc ----------------------------------------------------------
def _parent_pids() -> dict[int, int]:
    parents = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        parents[int(entry)] = int(stat.rpartition(")")[2].split()[1])  # names may hold spaces
    return parents


def process_tree(root: int) -> list[int]:
    """`root` and every live descendant: workers of a supervisor count towards its memory."""
    children: dict[int, list[int]] = {}
    for pid, ppid in _parent_pids().items():
        children.setdefault(ppid, []).append(pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def _proc_kib(pid: int, name: str, field: str) -> int:
    """One "<field>: N kB" line of /proc/<pid>/<name>; 0 once the process is gone."""
    try:
        with open(f"/proc/{pid}/{name}") as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def rss_kib(pids: Sequence[int]) -> int:
    """Summed VmRSS: pages shared between forked workers count once per process."""
    return sum(_proc_kib(pid, "status", "VmRSS:") for pid in pids)


def pss_kib(pids: Sequence[int]) -> int:
    """Summed proportional set size: shared pages split between their sharers."""
    return sum(_proc_kib(pid, "smaps_rollup", "Pss:") for pid in pids)


def cpu_seconds(pids: Sequence[int]) -> float:
    """User plus system CPU time of `pids` so far: how much of the machine the server got."""
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            continue
    return ticks / os.sysconf("SC_CLK_TCK")


class PeakMemory:
    """Samples the tree's summed RSS (and, every `pss_every` samples, PSS; 0: never) in a
    thread every SAMPLE_INTERVAL_S; keeps the peaks and counts the samples."""

    def __init__(self, root: int, pss_every: int = PSS_EVERY) -> None:
        self.root = root
        self.pss_every = pss_every
        self.rss_kib = 0
        self.pss_kib = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="peak-memory", daemon=True)

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        pids: list[int] = []
        while True:
            if self.samples % RELIST_EVERY == 0:
                pids = process_tree(self.root)
            self.rss_kib = max(self.rss_kib, rss_kib(pids))
            if self.pss_every and self.samples % self.pss_every == 0:
                self.pss_kib = max(self.pss_kib, pss_kib(pids))
            self.samples += 1
            if self._stop.wait(SAMPLE_INTERVAL_S):
                return


# -- the server ----------------------------------------------------------------------------
def free_port() -> int:
    """A port the kernel just handed out on loopback; still free when the server binds it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def server_command(options: Options, mode: str, workers: int, port: int) -> list[str]:
    argv = [options.python, "-m", "pounce_sync", "--worker-mode", mode, "--workers", str(workers)]
    argv += ["--no-access-log", "--host", HOST, "--port", str(port)]
    if mode == "process":
        argv += ["--threads", "1"]  # one thread per process: N processes against N threads
    return [*argv, options.app]


def start_server(argv: list[str], log: IO[bytes]) -> subprocess.Popen[bytes]:
    """In a session of its own, so that a Ctrl-C at the terminal reaches only the bench."""
    return subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )


def _get(port: int, path: str, timeout: float = 1.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def wait_until_answers(proc: subprocess.Popen[bytes], port: int, path: str) -> None:
    """Return once the server answers an HTTP request with any status."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"server exited with code {proc.returncode} before answering")
        try:
            _get(port, path)
            return
        except (OSError, http.client.HTTPException):
            time.sleep(0.1)
    raise BenchError(f"server did not answer within {STARTUP_TIMEOUT_S:.0f} s")


def server_facts(port: int) -> dict[str, Any] | None:
    """Interpreter facts from the built-in apps' runtime path; None if it does not answer."""
    from .apps import RUNTIME_PATH

    try:
        status, body = _get(port, RUNTIME_PATH, timeout=5.0)
        facts = json.loads(body) if status == 200 else None
    except (OSError, http.client.HTTPException, ValueError):
        return None
    return facts if isinstance(facts, dict) else None


def interpreter_facts(python: str) -> dict[str, Any] | None:
    """The same facts from `python -c`: for apps that cannot be asked (an import in the app
    may still re-enable the GIL in the server)."""
    try:
        done = subprocess.run(
            [python, "-c", _FACTS_SNIPPET], capture_output=True, text=True, timeout=30, check=True
        )
        facts = json.loads(done.stdout)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    return facts if isinstance(facts, dict) else None


def _start_time(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[19]
    except (OSError, IndexError):
        return None


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM; SIGKILL to whatever of the tree is left after the grace period.

    Worker processes run in process groups of their own, so the tree is noted before the
    signal (with start times, so that a reused pid is never killed).
    """
    if proc.poll() is not None:
        return  # its workers, now orphans, get SIGTERM from the kernel (PR_SET_PDEATHSIG)
    survivors = {pid: _start_time(pid) for pid in process_tree(proc.pid)}
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        pass
    for pid, started in survivors.items():
        if started is not None and _start_time(pid) == started:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    if proc.poll() is None:
        proc.wait(5)


# -- wrk ---------------------------------------------------------------------------------
_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.M)
_P99 = re.compile(r"^\s+99%\s+([\d.]+)(us|ms|s|m)\s*$", re.M)
_SOCKET_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")


def wrk_command(wrk: str, options: Options, port: int, duration: int) -> list[str]:
    url = f"http://{HOST}:{port}{options.path}"
    load = [f"-t{options.wrk_threads}", f"-c{options.connections}", f"-d{duration}s"]
    return [wrk, *load, "--latency", url]


def run_wrk(argv: list[str], duration: int) -> str:
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=duration + WRK_SLACK_S, check=False
        )
    except subprocess.TimeoutExpired:
        raise BenchError(f"wrk did not finish within {duration + WRK_SLACK_S} s") from None
    if done.returncode != 0:
        raise BenchError(f"wrk exited {done.returncode}: {done.stderr.strip()[-200:]}")
    return done.stdout


def parse_wrk(report: str) -> WrkFigures:
    """req/s, p99 and error count from a `wrk --latency` report."""
    rps, p99 = _RPS.search(report), _P99.search(report)
    if rps is None or p99 is None:
        raise BenchError("wrk printed no Requests/sec or 99% latency")
    socket_errors = _SOCKET_ERRORS.search(report)
    non_2xx = _NON_2XX.search(report)
    errors = sum(int(n) for n in socket_errors.groups()) if socket_errors else 0
    errors += int(non_2xx.group(1)) if non_2xx else 0
    p99_ms = float(p99.group(1)) * _UNIT_MS[p99.group(2)]
    return WrkFigures(rps=float(rps.group(1)), p99_ms=round(p99_ms, 3), errors=errors)


# -- one run -----------------------------------------------------------------------------
def measure(options: Options, wrk: str, mode: str, workers: int, log: IO[bytes]) -> Run:
    """Start, wait, ask, warm up, measure under the memory sampler, and always stop it."""
    port = free_port()
    proc = start_server(server_command(options, mode, workers, port), log)
    try:
        wait_until_answers(proc, port, options.path)
        facts = server_facts(port) if options.builtin_app else None
        run_wrk(wrk_command(wrk, options, port, WARMUP_S), WARMUP_S)
        pids, started = process_tree(proc.pid), time.monotonic()
        cpu_before = cpu_seconds(pids)
        with PeakMemory(proc.pid) as memory:
            report = run_wrk(wrk_command(wrk, options, port, options.duration), options.duration)
        cores = (cpu_seconds(pids) - cpu_before) / (time.monotonic() - started)
        if proc.poll() is not None:
            raise BenchError(f"server exited with code {proc.returncode} during the run")
        figures = parse_wrk(report)
    finally:
        stop_server(proc)
    rss, pss = round(memory.rss_kib / 1024, 1), round(memory.pss_kib / 1024, 1)
    return Run(mode, workers, figures, rss, pss, round(cores, 2), facts)


def _log_tail(log: IO[bytes], lines: int = 3) -> str:
    log.seek(0)
    text = log.read().decode(errors="replace").strip().splitlines()
    return " | ".join(text[-lines:])


def run_one(options: Options, wrk: str, mode: str, workers: int) -> Run:
    """One row of the table; a failure becomes a row that says why, with the server's log."""
    with tempfile.TemporaryFile() as log:
        try:
            return measure(options, wrk, mode, workers, log)
        except BenchError as exc:
            tail = _log_tail(log)
            return Run(mode, workers, error=f"{exc} [server log: {tail}]" if tail else str(exc))


# -- the report --------------------------------------------------------------------------
def _gil_summary(facts: list[dict[str, Any]], asked_server: bool) -> str:
    states = {bool(f.get("gil_enabled")) for f in facts}
    source = "asked the server" if asked_server else "asked the interpreter, not the server"
    if not states:
        return "GIL state unknown"
    if len(states) > 1:
        return f"GIL enabled in some servers and not in others ({source})"
    return f"GIL {'enabled' if states.pop() else 'disabled'} in the server ({source})"


def header(options: Options, runs: list[Run], fallback: dict[str, Any] | None) -> str:
    """Interpreter, GIL state, app and load: what the figures depend on besides the code."""
    server_facts_seen = [run.facts for run in runs if run.facts]
    facts = server_facts_seen or ([fallback] if fallback else [])
    version = facts[0].get("python", "?") if facts else "?"
    build = " (free-threaded build)" if facts and facts[0].get("free_threaded_build") else ""
    gil = _gil_summary(facts, asked_server=bool(server_facts_seen))
    load = f"wrk -t{options.wrk_threads} -c{options.connections} -d{options.duration}s --latency"
    return (
        f"Python {version}{build}, {gil}; {os.cpu_count()} CPUs; {options.python}\n"
        f"app {options.app}, GET {options.path}, {load} after a {WARMUP_S} s warm-up"
    )


def _speedup(run: Run, runs: list[Run]) -> str:
    one = next((r for r in runs if r.mode == run.mode and r.workers == 1 and r.wrk), None)
    if run.wrk is None or one is None or one.wrk is None or not one.wrk.rps:
        return "-"
    return f"{run.wrk.rps / one.wrk.rps:.2f}x"


_COLUMNS = (
    f"{'mode':<8}{'workers':>8}{'req/s':>11}{'vs 1 worker':>13}{'p99 ms':>10}{'errors':>8}"
    f"{'server CPU':>12}{'peak RSS MiB':>14}{'peak PSS MiB':>14}"
)


def table_row(run: Run, runs: list[Run]) -> str:
    lead = f"{run.mode:<8}{run.workers:>8}"
    if run.wrk is None:
        return f"{lead}  failed: {run.error}"
    return (
        f"{lead}{run.wrk.rps:>11,.0f}{_speedup(run, runs):>13}{run.wrk.p99_ms:>10.2f}"
        f"{run.wrk.errors:>8}{run.cpu_cores:>12.2f}{run.rss_mib:>14.1f}{run.pss_mib:>14.1f}"
    )


def memory_ratios(runs: list[Run], attribute: str) -> str:
    """ "1 worker 0.95x, 4 workers 0.31x": thread mode's memory over process mode's."""
    by_key = {(r.mode, r.workers): r for r in runs if r.wrk is not None}
    parts = []
    for workers in sorted({r.workers for r in runs}):
        thread, process = by_key.get(("thread", workers)), by_key.get(("process", workers))
        if thread and process and getattr(process, attribute):
            ratio = getattr(thread, attribute) / getattr(process, attribute)
            parts.append(f"{workers} worker{'s' if workers > 1 else ''} {ratio:.2f}x")
    return ", ".join(parts)


def report(options: Options, runs: list[Run], fallback: dict[str, Any] | None) -> str:
    lines = [header(options, runs, fallback), "", _COLUMNS]
    lines += [table_row(run, runs) for run in runs]
    for label, attribute in (("RSS", "rss_mib"), ("PSS", "pss_mib")):
        if ratios := memory_ratios(runs, attribute):
            lines.append(f"{label} thread/process: {ratios}")
    lines.append("server CPU: CPU time of the server's process tree over the run, in cores")
    if any(run.wrk is not None and run.wrk.errors for run in runs):
        lines.append("errors: wrk socket errors (a request over 2 s is a timeout) + status >= 400")
    return "\n".join(lines)


def _progress(run: Run) -> None:
    what = f"{run.mode} x{run.workers}"
    if run.wrk is None:
        print(f"bench: {what}: failed: {run.error}", file=sys.stderr, flush=True)
    else:
        print(f"bench: {what}: {run.wrk.rps:,.0f} req/s", file=sys.stderr, flush=True)


def main(argv: Sequence[str]) -> int:
    """Exit 0 when every run was measured, 1 if wrk is missing or a run failed, 2 bad flags."""
    options = parse_options(argv)
    wrk = shutil.which("wrk")
    if wrk is None:
        print(
            "pounce-sync bench: error: wrk not found on PATH (install it, e.g. apt-get install "
            "wrk); the figures come from wrk only",
            file=sys.stderr,
        )
        return 1
    fallback = None if options.builtin_app else interpreter_facts(options.python)
    runs = []
    for mode in options.modes:
        for workers in options.workers:
            runs.append(run_one(options, wrk, mode, workers))
            _progress(runs[-1])
    print(report(options, runs, fallback), flush=True)
    return 0 if all(run.wrk is not None for run in runs) else 1
