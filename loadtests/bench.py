"""Side-by-side benchmark: the same app, the same worker count, the same load on each server.

Servers alternate round by round (A, B, A, B, ...) so that drift of the machine hits all of
them alike, and the report gives medians over rounds and req/s as a ratio to a baseline.
Loads: wrk (HTTP/1.1), h2load (HTTP/2) and an SSE fan-out client; never a Python load
generator for throughput. Everything runs on 127.0.0.1 and every step has a time limit.
See docs/benchmarks.md.

    python loadtests/bench.py --setup     # once: loadtests/.venv-peers, .venv-pounce314
    python loadtests/bench.py             # the default servers on browser and hello
    python loadtests/bench.py --per-core  # one worker each, server and load on their own CPU
"""

import argparse
import dataclasses
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

import h2load
import pinning
import proctree
import scenarios as scenario_table
import servers as server_table
import setup_venvs
import wrk
from loads import MEASURES, Settings
from report import Row, Run, summarize, table
from scenarios import Scenario
from servers import HERE, Server

RESULTS = HERE / "results"
STARTUP_TIMEOUT_S = 30.0
OVERHEAD_S = 3  # start-up and shut-down per run, for the time estimate
# --per-core: where the servers and the load generator run, and the load (wrk -t1 -c64).
PER_CORE_SERVER_CPUS = "1"
PER_CORE_LOAD_CPUS = "0"
PER_CORE_THREADS = 1
DEFAULT_WORKERS = 2
DEFAULT_THREADS = 2
TOOLS = {"wrk": (wrk.WRK, "wrk"), "h2load": (h2load.H2LOAD, "nghttp2-client")}
NOT_RUN = {  # why a server that runs gets no figures for a kind of load
    "h2load": "n/a (no HTTP/2 cleartext with prior knowledge)",
    "sse": "n/a (not in the SSE comparison)",
}


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    settings: Settings
    scenarios: list[Scenario]
    servers: list[Server]
    available: dict[str, str]  # server -> "ok" or why it cannot run at all

    def statuses(self, scenario: Scenario) -> dict[str, str]:
        """Server -> "ok" or why it has no figures for `scenario`, in the order given."""
        return {s.name: status_for(s, scenario, self.available) for s in self.servers}

    def runnable(self, scenario: Scenario) -> list[Server]:
        return [s for s in self.servers if self.statuses(scenario)[s.name] == "ok"]

    def estimate_s(self) -> int:
        per_round = sum(
            self.settings.run_s(scenario) + OVERHEAD_S + server.stop_s
            for scenario in self.scenarios
            for server in self.runnable(scenario)
        )
        return per_round * self.settings.rounds


def _names(value: str, known: Sequence[str], what: str) -> list[str]:
    """A comma-separated choice from `known`; "all" means every one."""
    if value == "all":
        return list(known)
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise SystemExit(f"unknown {what}: {', '.join(unknown)} (known: {', '.join(known)})")
    return names


def bounded(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: an int within [low, high], so no option can make a run unbounded."""

    def parse(text: str) -> int:
        value = int(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}")
        return value

    return parse


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument(
        "--setup",
        action="store_true",
        help="create loadtests/.venv-peers and loadtests/.venv-pounce314, then exit",
    )
    p.add_argument("--setup-python", default=sys.executable, help="interpreter for .venv-peers")
    p.add_argument(
        "--setup-python314",
        help="CPython 3.14 for .venv-pounce314 (default: ../shared/tools/python-314.sh's, "
        "else python3.14 on PATH)",
    )
    p.add_argument("--list", action="store_true", help="list servers and scenarios, then exit")
    p.add_argument(
        "--servers",
        help="comma-separated, or 'all' (default: "
        f"{','.join(server_table.DEFAULT_SERVERS)}; with --per-core: "
        f"{','.join(server_table.PER_CORE_SERVERS)})",
    )
    p.add_argument(
        "--scenarios",
        default=",".join(scenario_table.DEFAULT_SCENARIOS),
        help="comma-separated, or 'all' (default: %(default)s)",
    )
    p.add_argument("--rounds", type=bounded(1, 20), default=3)
    p.add_argument("--duration", type=bounded(1, 120), default=10, help="seconds per measured run")
    p.add_argument("--warmup", type=bounded(0, 30), default=2, help="seconds; 0 skips it")
    p.add_argument("--connections", type=bounded(1, 10_000), default=64, help="wrk -c")
    p.add_argument(
        "--threads",
        type=bounded(1, 64),
        help=f"wrk -t (default: {DEFAULT_THREADS}; with --per-core: {PER_CORE_THREADS})",
    )
    p.add_argument("--h2-clients", type=bounded(1, 1000), default=10, help="h2load -c")
    p.add_argument("--h2-streams", type=bounded(1, 1000), default=10, help="h2load -m")
    p.add_argument(
        "--idle-connections",
        type=bounded(1, 10_000),
        default=1000,
        help="idle keep-alive connections held in idle-keepalive (default: %(default)s)",
    )
    p.add_argument(
        "--sse-subscribers",
        type=bounded(1, 10_000),
        default=1000,
        help="event streams held open in sse (default: %(default)s)",
    )
    p.add_argument(
        "--workers",
        type=bounded(1, 64),
        help=f"worker count given to every server (default: {DEFAULT_WORKERS}; "
        "--per-core: 1, and no other)",
    )
    p.add_argument(
        "--per-core",
        action="store_true",
        help="one worker per server; each server's process tree pinned to --server-cpus, "
        "wrk (-t1 unless --threads) and the harness to --load-cpus, with taskset",
    )
    p.add_argument(
        "--server-cpus",
        default=PER_CORE_SERVER_CPUS,
        help="--per-core: taskset CPU list for the servers (default: %(default)s)",
    )
    p.add_argument(
        "--load-cpus",
        default=PER_CORE_LOAD_CPUS,
        help="--per-core: taskset CPU list for wrk, h2load and the harness (default: %(default)s)",
    )
    p.add_argument("--baseline", default="uvicorn")
    p.add_argument("--json", type=Path, help="results file (default: loadtests/results/...)")
    p.add_argument(
        "--python-pounce",
        default=sys.executable,
        help="interpreter for pounce-sync and ceiling (default: this one)",
    )
    p.add_argument(
        "--python-ft",
        default=str(server_table.FREE_THREADED_PYTHON),
        help="free-threaded interpreter with pounce-sync installed, for pounce-sync-ft "
        "(default: %(default)s, made by .ci/run)",
    )
    p.add_argument(
        "--python-peers",
        default=str(server_table.peers_python()),
        help="interpreter for the peer servers (default: %(default)s)",
    )
    p.add_argument(
        "--python-pounce314",
        default=str(server_table.pounce314_python()),
        help="CPython 3.14 with bengal-pounce installed (default: %(default)s)",
    )
    args = p.parse_args(argv)
    _resolve_defaults(p, args)
    return args


def _resolve_defaults(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Defaults that depend on --per-core; a flag that contradicts it is an error."""
    if args.per_core:
        if args.workers not in (None, 1):
            p.error("--per-core runs one worker per server: leave out --workers")
        if why := pinning.check(args.server_cpus, args.load_cpus):
            p.error(f"--per-core: {why}")
    per_core = args.per_core
    if args.workers is None:
        args.workers = 1 if per_core else DEFAULT_WORKERS
    if args.threads is None:
        args.threads = PER_CORE_THREADS if per_core else DEFAULT_THREADS
    if args.servers is None:
        chosen = server_table.PER_CORE_SERVERS if per_core else server_table.DEFAULT_SERVERS
        args.servers = ",".join(chosen)


def _python(server: Server, args: argparse.Namespace) -> str:
    by_role = {
        "pounce": args.python_pounce,
        "ft": args.python_ft,
        "peers": args.python_peers,
        "pounce314": args.python_pounce314,
    }
    python = str(by_role[server.interpreter])
    # Servers run in loadtests/: a relative path given on the command line is made absolute
    # here; a bare name (found on PATH) is left as it is.
    return os.path.abspath(python) if os.sep in python else python


def availability(selected: list[Server], args: argparse.Namespace) -> dict[str, str]:
    """Each server's name -> "ok" or why it cannot run; never silently dropped."""
    return {s.name: server_table.probe(s, _python(s, args)) or "ok" for s in selected}


def status_for(server: Server, scenario: Scenario, available: dict[str, str]) -> str:
    if available[server.name] != "ok":
        return available[server.name]
    if server.scenarios is not None and scenario.name not in server.scenarios:
        return f"n/a (serves only: {', '.join(sorted(server.scenarios))})"
    if scenario.app_for(server.interface) is None:
        return f"n/a (no {server.interface.upper()} version of {scenario.app})"
    if scenario.load not in server.loads:
        return NOT_RUN[scenario.load]
    return "ok"


def _log_tail(path: Path, lines: int = 5) -> str:
    text = path.read_text(errors="replace").strip().splitlines()
    return " | ".join(text[-lines:])


def measure(
    run: Run, proc: subprocess.Popen[bytes], port: int, scenario: Scenario, settings: Settings
) -> None:
    """Wait for the server, then its scenario's kind of load (loads.py)."""
    started = time.monotonic()
    proctree.wait_until_answers(proc, port, scenario.path, STARTUP_TIMEOUT_S)
    run.startup_s = round(time.monotonic() - started, 2)
    run.rss_ready_mib = round(proctree.rss_kib(proctree.tree(proc.pid)) / 1024, 1)
    MEASURES[scenario.load](run, proc, port, scenario, settings)


def command_for(
    server: Server, scenario: Scenario, python: str, port: int, settings: Settings
) -> list[str]:
    """The server's command line, under taskset when the run is --per-core."""
    app = scenario.app_for(server.interface)
    if app is None:
        raise ValueError(f"{server.name} has no app for {scenario.name}")
    workers = settings.workers
    argv = server.command(python, app, port, workers)
    if scenario.load == "h2load":
        argv += server.h2_args(workers)
    return pinning.pinned(argv, settings.server_cpus)


def run_one(
    server: Server, scenario: Scenario, round_no: int, settings: Settings, python: str, log: Path
) -> Run:
    """Start the server, measure it, and always stop it again."""
    port = proctree.free_port()
    argv = command_for(server, scenario, python, port, settings)
    run = Run(server.name, scenario.name, round_no, argv)
    with log.open("wb") as log_file:
        proc = proctree.start(argv, HERE, log_file)
        try:
            measure(run, proc, port, scenario, settings)
        except (RuntimeError, ValueError, OSError, subprocess.TimeoutExpired) as exc:
            tail = _log_tail(log) if run.startup_s is None else ""
            run.error = f"{exc} [log: {tail}]" if tail else str(exc)
        finally:
            run.stopped = proctree.stop(proc)
    return run


def _figures(run: Run) -> str:
    """The run's main figures in one line, for progress output."""
    if run.sse is not None:
        got = run.sse
        return (
            f"events {got.events:,} of {got.expected:,} ({got.delivered:.1%})  "
            f"failed streams {got.failed}"
        )
    if run.h2load is not None:
        h2 = run.h2load
        return f"{h2.rps:>10,.0f} req/s  mean {h2.latency_mean_ms:7.2f} ms  failed {h2.errors}"
    assert run.wrk is not None
    line = (
        f"{run.wrk.rps:>10,.0f} req/s  p99 {run.wrk.p99_ms:7.2f} ms  "
        f"errors {run.wrk.errors + run.wrk.non_2xx}"
    )
    if run.cpu_us is not None:
        line += f"  CPU {run.cpu_us:5.1f} µs/req on {run.cores or 0:.2f} cores"
    if run.idle is not None:
        idle = run.idle
        line += f"  idle {idle.open_start}->{idle.open_end}/{idle.target} reopened {idle.reopened}"
    return line


def _progress(run: Run, rounds: int, out: IO[str], server_cpus: str | None = None) -> None:
    where = f"[{run.scenario} {run.round}/{rounds}] {run.server:<16}"
    if not run.ok:
        print(f"{where} FAILED: {run.error}", file=out, flush=True)
        return
    line = f"{where} {_figures(run)}  peak RSS {run.rss_peak_mib} MiB"
    if server_cpus is not None and run.cpus_allowed:
        wanted = pinning.cpu_set(server_cpus)
        if any(pinning.cpu_set(cpus) != wanted for cpus in run.cpus_allowed):
            line += f"  WARNING: server threads allowed on CPUs {', '.join(run.cpus_allowed)}"
    print(line, file=out, flush=True)


def run_scenario(
    scenario: Scenario,
    chosen: list[Server],
    settings: Settings,
    args: argparse.Namespace,
    log_dir: Path,
    runs: list[Run],
) -> None:
    """All rounds of one scenario, servers alternating; appends to `runs` as it goes."""
    broken: set[str] = set()  # never came up: later rounds would only fail the same way
    for round_no in range(1, settings.rounds + 1):
        for server in chosen:
            if server.name in broken:
                continue
            log = log_dir / f"{scenario.name}-{server.name}-r{round_no}.log"
            run = run_one(server, scenario, round_no, settings, _python(server, args), log)
            runs.append(run)
            _progress(run, settings.rounds, sys.stdout, settings.server_cpus)
            if run.startup_s is None:
                broken.add(server.name)


def _server_meta(server: Server, status: str, args: argparse.Namespace) -> dict[str, object]:
    version = (
        server_table.dist_version(_python(server, args), server.dist) if status == "ok" else None
    )
    return {"status": status, "version": version, "summary": server.summary}


def _meta(args: argparse.Namespace, plan: Plan) -> dict[str, object]:
    """What the figures depend on besides the servers' code: machine, settings, versions."""
    chosen = [server_table.BY_NAME[name] for name in plan.available]
    pythons = {server.interpreter: _python(server, args) for server in chosen}
    return {
        "host": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "settings": dataclasses.asdict(plan.settings),
        "baseline": args.baseline,
        "interpreters": {
            role: server_table.interpreter_info(python)
            for role, python in pythons.items()
            if Path(python).exists()
        },
        "servers": {
            server.name: _server_meta(server, plan.available[server.name], args)
            for server in chosen
        },
    }


def write_json(path: Path, meta: dict[str, object], runs: list[Run], rows: list[Row]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "meta": meta,
        "runs": [dataclasses.asdict(run) for run in runs],
        "summary": [dataclasses.asdict(row) for row in rows],
    }
    path.write_text(json.dumps(document, indent=2) + "\n")


def list_all(args: argparse.Namespace) -> int:
    available = availability(list(server_table.SERVERS), args)
    print("servers:")
    for server in server_table.SERVERS:
        print(f"  {server.name:<18}{server.summary}")
        print(f"  {'':<18}{available[server.name]}")
    print("scenarios:")
    for scenario in scenario_table.SCENARIOS:
        print(f"  {scenario.name:<16}{scenario.load:<8}{scenario.app:<16}{scenario.summary}")
    return 0


def settings_from(args: argparse.Namespace) -> Settings:
    load_cpus = args.load_cpus if args.per_core else None
    return Settings(
        workers=args.workers,
        rounds=args.rounds,
        warmup_s=args.warmup,
        load=wrk.WrkLoad(args.threads, args.connections, args.duration, load_cpus),
        h2=h2load.H2Load(args.h2_clients, args.h2_streams, args.duration, load_cpus),
        idle_connections=args.idle_connections,
        sse_subscribers=args.sse_subscribers,
        server_cpus=args.server_cpus if args.per_core else None,
    )


def make_plan(args: argparse.Namespace) -> Plan:
    servers = _names(args.servers, list(server_table.BY_NAME), "servers")
    scenarios = _names(args.scenarios, list(scenario_table.BY_NAME), "scenarios")
    chosen = [server_table.BY_NAME[name] for name in servers]
    return Plan(
        settings=settings_from(args),
        scenarios=[scenario_table.BY_NAME[name] for name in scenarios],
        servers=chosen,
        available=availability(chosen, args),
    )


def _workers(count: int) -> str:
    return f"{count} worker" if count == 1 else f"{count} workers"


def _announce(plan: Plan, log_dir: Path) -> None:
    settings, load, h2 = plan.settings, plan.settings.load, plan.settings.h2
    kinds = {scenario.load for scenario in plan.scenarios}
    loads = [
        f"wrk -t{load.threads} -c{load.connections} -d{load.duration_s}s --latency"
        if "wrk" in kinds
        else "",
        f"h2load -D {h2.duration_s} -c {h2.clients} -m {h2.streams}" if "h2load" in kinds else "",
        f"{settings.sse_subscribers} SSE streams for {load.duration_s} s" if "sse" in kinds else "",
    ]
    where = ""
    if settings.server_cpus is not None:
        where = f" (per core: servers on CPU {settings.server_cpus}, load on CPU {load.cpus})"
    print(
        f"{_workers(settings.workers)}{where}; {', '.join(filter(None, loads))}; "
        f"{settings.warmup_s} s warm-up, {settings.rounds} rounds; about {plan.estimate_s()} s. "
        f"Server logs: {log_dir}",
        flush=True,
    )


def run_all(plan: Plan, args: argparse.Namespace, log_dir: Path) -> tuple[list[Run], bool]:
    """Every scenario in turn; on Ctrl-C, the runs completed so far and True."""
    runs: list[Run] = []
    try:
        for scenario in plan.scenarios:
            run_scenario(scenario, plan.runnable(scenario), plan.settings, args, log_dir, runs)
    except KeyboardInterrupt:
        print("interrupted: reporting the runs so far", flush=True)
        return runs, True
    return runs, False


def report(plan: Plan, runs: list[Run], baseline: str) -> list[Row]:
    """Print one table per scenario; return all their rows."""
    rows: list[Row] = []
    for scenario in plan.scenarios:
        baselines = [baseline, *([scenario.baseline] if scenario.baseline else [])]
        mine = summarize(
            runs,
            scenario.name,
            scenario.load,
            plan.statuses(scenario),
            plan.settings.rounds,
            baselines,
        )
        settings = plan.settings
        how = f"medians over {settings.rounds} rounds"
        if settings.server_cpus is not None:
            how += (
                f"; per core: {_workers(settings.workers)} on CPU {settings.server_cpus}, "
                f"load on CPU {settings.load.cpus}"
            )
        title = f"\nscenario {scenario.name}: {scenario.summary} ({how})"
        print(table(mine, title, baseline, scenario.load, scenario.hold_idle))
        rows += mine
    return rows


def raise_fd_limit() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit: idle-keepalive and sse hold thousands of
    sockets here, and the servers, started from here, inherit the limit. Returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.setup:
        return setup_venvs.setup(args.setup_python, args.setup_python314)
    if args.list:
        return list_all(args)
    plan = make_plan(args)
    if plan.settings.load.cpus is not None:
        # The harness's own threads (memory sampler, idle holder, SSE client) stay off
        # the servers' CPUs too; wrk and h2load get taskset on their command lines.
        os.sched_setaffinity(0, pinning.cpu_set(plan.settings.load.cpus))
    for kind in sorted({scenario.load for scenario in plan.scenarios} & set(TOOLS)):
        tool, package = TOOLS[kind]
        if not Path(tool).exists():
            raise SystemExit(f"{tool} not found: install it (apt-get install {package})")
    needed = max(plan.settings.idle_connections, plan.settings.sse_subscribers) + 256
    if (limit := raise_fd_limit()) < needed:
        print(f"warning: only {limit} file descriptors; some connections may fail", flush=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    log_dir = RESULTS / "logs" / stamp
    log_dir.mkdir(parents=True, exist_ok=True)
    _announce(plan, log_dir)
    runs, interrupted = run_all(plan, args, log_dir)
    rows = report(plan, runs, args.baseline)
    path = args.json or RESULTS / f"bench-{stamp}.json"
    write_json(path, _meta(args, plan), runs, rows)
    print(f"\nraw results: {path}")
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
