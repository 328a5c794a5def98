"""Two pounce-sync instances behind HAProxy, restarted one after the other under load.

    python loadtests/behind_lb.py                       # 30 s, process mode, 2 workers each
    python loadtests/behind_lb.py --mode thread --python .venv-ft/bin/python

HAProxy (Debian's `haproxy`) listens on a port of its own and balances over the two
instances, checking `--health-path` every 200 ms. At a third of the run instance A gets
SIGTERM: with `--drain-delay` it keeps serving while its health path answers 503, so
HAProxy takes it out before its listener closes; once it has exited it is started again
on the same port. At two thirds the same happens to instance B. The counting clients of
lifecycle.py (half keep-alive, half a new connection per request) talk to HAProxy only:
every request must be answered. `HAPROXY_CONFIG` below is the configuration that
docs/deployment.md recommends. Everything binds 127.0.0.1; every wait has a limit.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import lifecycle
import proctree
from servers import HERE, HOST

DRAIN_DELAY_S = 1.5  # > HAProxy's fall 2 x inter 200 ms, with room for a slow check
GRACE_S = 10

HAPROXY_CONFIG = """\
global
    maxconn 4096

defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    option http-keep-alive
    # A request that found a backend connection closing under it, or an instance whose
    # listener just closed, is sent again to another instance (GET is safe to retry).
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response response-timeout

frontend web
    bind {host}:{port}
    default_backend app

backend app
    balance roundrobin
    option httpchk GET /healthz
    http-check expect status 200
    default-server check inter 200ms fall 2 rise 2
    server a {host}:{port_a}
    server b {host}:{port_b}
"""


def instance_argv(python: str, mode: str, workers: int, port: int) -> list[str]:
    return [
        python,
        "-m",
        "pounce_sync",
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--worker-mode",
        mode,
        "--no-access-log",
        "--health-path",
        "/healthz",
        "--drain-delay",
        str(DRAIN_DELAY_S),
        "--timeout-graceful-shutdown",
        str(GRACE_S),
        "--app-dir",
        str(HERE),
        "lifecycle_app:app",
    ]


class Instance:
    def __init__(self, name: str, argv: list[str], port: int, log_dir: Path) -> None:
        self.name, self.argv, self.port, self.log_dir = name, argv, port, log_dir
        self.starts = 0
        self.proc = self._start()

    def _start(self) -> subprocess.Popen[bytes]:
        self.starts += 1
        with (self.log_dir / f"{self.name}-{self.starts}.log").open("wb") as log:
            proc = proctree.start(self.argv, HERE.parent, log)
        proctree.wait_until_answers(proc, self.port, "/healthz", timeout=30)
        return proc

    def restart(self) -> float:
        """SIGTERM, wait for the exit, start again; the seconds the instance was away."""
        began = time.monotonic()
        self.proc.terminate()
        code = self.proc.wait(GRACE_S + DRAIN_DELAY_S + 10)
        if code != 0:
            raise proctree.ServerFailed(f"instance {self.name} exited with code {code}")
        self.proc = self._start()
        return time.monotonic() - began


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("--mode", choices=("process", "thread"), default="process")
    p.add_argument("--python", default=sys.executable, help="interpreter for the instances")
    p.add_argument("--workers", type=int, choices=range(1, 9), default=2)
    p.add_argument("--clients", type=int, choices=range(2, 257), default=16, metavar="N")
    p.add_argument("--duration", type=float, default=30.0)
    args = p.parse_args(argv)
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not Path(haproxy).exists():
        print("behind_lb: error: no haproxy (apt-get install haproxy)", file=sys.stderr)
        return 2
    python = os.path.abspath(args.python)
    work = Path(tempfile.mkdtemp(prefix="pounce-lb-"))
    port, port_a, port_b = (proctree.free_port() for _ in range(3))
    config = work / "haproxy.cfg"
    config.write_text(HAPROXY_CONFIG.format(host=HOST, port=port, port_a=port_a, port_b=port_b))
    instances = [
        Instance(name, instance_argv(python, args.mode, args.workers, p), p, work)
        for name, p in (("a", port_a), ("b", port_b))
    ]
    with (work / "haproxy.log").open("wb") as log:
        lb = proctree.start([haproxy, "-db", "-f", str(config)], HERE.parent, log)
    try:
        proctree.wait_until_answers(lb, port, "/", timeout=30)
        time.sleep(1.0)  # both instances seen healthy (rise 2 x 200 ms)
        tally, stop = lifecycle.Tally(), threading.Event()
        start = time.monotonic()
        clients = [
            threading.Thread(
                target=lifecycle.counting_client,
                args=(port, i % 2 == 0, start, stop, tally),
                daemon=True,
            )
            for i in range(args.clients)
        ]
        for thread in clients:
            thread.start()
        away = []
        for i, instance in enumerate(instances):
            time.sleep(max(0.0, (i + 1) * args.duration / 3 - (time.monotonic() - start)))
            print(f"restarting instance {instance.name} at {time.monotonic() - start:.1f} s")
            away.append(instance.restart())
        time.sleep(max(0.0, args.duration - (time.monotonic() - start)))
        lifecycle.stop_clients(stop, clients)
    finally:
        proctree.stop(lb)
        for instance in instances:
            proctree.stop(instance.proc, grace=GRACE_S + DRAIN_DELAY_S + 5)
    print(
        f"\n{len(tally.answered)} answered, {len(tally.refused)} refused, {len(tally.lost)} lost; "
        f"instances away {away[0]:.1f} s and {away[1]:.1f} s; "
        f"{len(tally.pids)} worker processes answered"
    )
    for when, why in tally.lost[:5]:
        print(f"  lost at {when:.2f} s: {why}")
    ok = not tally.lost and not tally.refused and len(away) == 2
    print("verdict:", "ok" if ok else "FAILED")
    shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
