"""h2load against pounce-sync and hypercorn serving the same app over HTTP/2.

Cleartext HTTP/2 with prior knowledge, the same app (apps:hello), the same worker
count; servers alternate round by round and the report gives the median req/s.
Everything runs on 127.0.0.1, every option has a ceiling and every step a time limit.

    python loadtests/h2_compare.py                        # -n 20000 -c 10 -m 10, one round
    python loadtests/h2_compare.py --rounds 3 --requests 50000

Peers come from loadtests/.venv-peers (`python loadtests/bench.py --setup`).
"""

import argparse
import dataclasses
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import h2load
import proctree
import servers as server_table
from bench import bounded
from servers import HERE, HOST
from wrk import run_load

H2LOAD = h2load.H2LOAD
APP = "apps:hello"
PATH = "/"
STARTUP_TIMEOUT_S = 30.0
RUN_TIMEOUT_S = 300.0
SERVERS = ("pounce-sync", "pounce-sync-ft", "hypercorn")
PROBES = {
    "pounce-sync": server_table.imports("pounce_sync.cli", "async_pool.http2"),
    "pounce-sync-ft": server_table.imports("pounce_sync.cli", "async_pool.http2"),
    "hypercorn": server_table.imports("hypercorn", "uvloop", "h2"),
}


@dataclass(frozen=True, slots=True)
class Load:
    requests: int
    clients: int
    streams: int  # concurrent streams per connection (h2load -m)

    def command(self, port: int, requests: int | None = None) -> list[str]:
        n = str(requests or self.requests)
        url = f"http://{HOST}:{port}{PATH}"
        return [H2LOAD, "-n", n, "-c", str(self.clients), "-m", str(self.streams), url]


@dataclass(frozen=True, slots=True)
class Launch:
    """How to start one server: its command line once a port is chosen, with the flags
    bench.py uses for h2load runs (servers.py: `h2_args`)."""

    name: str
    python: str
    workers: int

    def argv(self, port: int) -> list[str]:
        server = server_table.BY_NAME[self.name]
        return [
            *server.command(self.python, APP, port, self.workers),
            *server.h2_args(self.workers),
        ]


@dataclass(slots=True)
class Result:
    server: str
    rps: list[float] = field(default_factory=list)
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("--requests", type=bounded(100, 500_000), default=20_000, help="h2load -n")
    p.add_argument("--clients", type=bounded(1, 200), default=10, help="h2load -c")
    p.add_argument("--streams", type=bounded(1, 100), default=10, help="h2load -m")
    p.add_argument("--workers", type=bounded(1, 16), default=2)
    p.add_argument("--rounds", type=bounded(1, 10), default=1)
    p.add_argument("--servers", default=",".join(SERVERS), help="comma-separated subset")
    p.add_argument("--python-pounce", default=sys.executable)
    p.add_argument("--python-ft", default=str(server_table.FREE_THREADED_PYTHON))
    p.add_argument("--python-peers", default=str(server_table.peers_python()))
    return p.parse_args(argv)


def parse(report: str) -> tuple[float, int]:
    """(req/s, requests that did not succeed) from h2load's summary."""
    result = h2load.parse(report)
    return result.rps, result.requests - result.succeeded


def run_h2load(command: list[str]) -> str:
    return run_load(command, RUN_TIMEOUT_S)


def run_one(launch: Launch, load: Load, log: Path) -> tuple[float, int]:
    """Start the server, warm it up, measure, and always stop it (its whole process group)."""
    port = proctree.free_port()
    with log.open("wb") as log_file:
        proc = proctree.start(launch.argv(port), HERE, log_file)
        try:
            proctree.wait_until_answers(proc, port, PATH, STARTUP_TIMEOUT_S)
            run_h2load(load.command(port, min(2000, load.requests)))
            return parse(run_h2load(load.command(port)))
        finally:
            proctree.stop(proc)


def python_for(name: str, args: argparse.Namespace) -> str:
    role = server_table.BY_NAME[name].interpreter
    return {"pounce": args.python_pounce, "ft": args.python_ft, "peers": args.python_peers}[role]


def available(names: list[str], args: argparse.Namespace) -> list[str]:
    """The servers whose interpreter has them and h2 installed; says why for the others."""
    chosen = []
    for name in names:
        server = dataclasses.replace(server_table.BY_NAME[name], probe=PROBES[name])
        problem = server_table.probe(server, python_for(name, args))
        if problem is None:
            chosen.append(name)
        else:
            print(f"{name}: skipped, {problem}", flush=True)
    return chosen


def measure_all(names: list[str], load: Load, args: argparse.Namespace) -> list[Result]:
    results = {name: Result(name) for name in names}
    with tempfile.TemporaryDirectory(prefix="h2-compare-") as tmp:
        for round_no in range(1, args.rounds + 1):
            for name in names:  # alternating: drift of the machine hits every server alike
                launch = Launch(name, python_for(name, args), args.workers)
                log = Path(tmp) / f"{name}-r{round_no}.log"
                result = results[name]
                try:
                    rps, failed = run_one(launch, load, log)
                except (RuntimeError, ValueError, OSError, subprocess.TimeoutExpired) as exc:
                    result.errors.append(f"round {round_no}: {exc}")
                    print(f"[{round_no}] {name:<15} FAILED: {exc}", flush=True)
                    continue
                result.rps.append(rps)
                result.failed += failed
                print(f"[{round_no}] {name:<15} {rps:>10,.0f} req/s  failed {failed}", flush=True)
    return list(results.values())


def report(results: list[Result], load: Load, workers: int) -> None:
    print(
        f"\nh2load -n {load.requests} -c {load.clients} -m {load.streams}, {workers} workers, "
        f"app {APP} (median over rounds)"
    )
    base = next((r for r in results if r.server == "hypercorn" and r.rps), None)
    for result in results:
        if not result.rps:
            print(f"  {result.server:<15} no figures: {'; '.join(result.errors)}")
            continue
        median = statistics.median(result.rps)
        ratio = f"  x{median / statistics.median(base.rps):.2f} hypercorn" if base else ""
        print(f"  {result.server:<15} {median:>10,.0f} req/s  failed {result.failed}{ratio}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not Path(H2LOAD).exists():
        raise SystemExit(f"{H2LOAD} not found: apt-get install nghttp2-client")
    names = [n.strip() for n in args.servers.split(",") if n.strip()]
    unknown = [n for n in names if n not in SERVERS]
    if unknown:
        raise SystemExit(f"unknown servers: {', '.join(unknown)} (known: {', '.join(SERVERS)})")
    load = Load(args.requests, args.clients, args.streams)
    started = time.monotonic()
    results = measure_all(available(names, args), load, args)
    report(results, load, args.workers)
    print(f"\n{time.monotonic() - started:.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
