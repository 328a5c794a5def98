"""Memory under load: does the server grow over a million requests, and what does an idle
connection cost?

    python loadtests/memory.py                                   # 3.11 processes, hello
    python loadtests/memory.py --scenario browser --mode thread --python .venv-ft/bin/python

1. Warm-up: wrk for 5 s (caches, allocator arenas and thread stacks reach their size).
2. The server's resident memory (VmRSS summed over its process tree) is read, then wrk
   runs until `--requests` more requests were answered, and it is read again: the growth
   per million requests. `browser` sends a browser-like head whose target and cookie
   change every request (lua/browser.lua), so nothing is reused between requests.
3. `--idle` keep-alive connections are opened, each answered once and then left idle;
   resident memory before and after gives the cost of one idle connection.

Everything binds 127.0.0.1; wrk and every wait are bounded.
"""

import argparse
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import proctree
from servers import HERE, HOST

WRK_ROUND_S = 10
LUA = {"hello": None, "browser": HERE / "lua" / "browser.lua"}


def server_argv(python: str, mode: str, workers: int, port: int) -> list[str]:
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
        "--timeout-keep-alive",
        "300",
        "--app-dir",
        str(HERE),
        "apps:hello",
    ]


def rss_mib(root: int) -> float:
    return proctree.rss_kib(proctree.tree(root)) / 1024


def wrk(port: int, scenario: str, seconds: int) -> int:
    """Run wrk; the number of requests it had answered."""
    argv = ["wrk", "-t1", "-c32", f"-d{seconds}s", f"http://{HOST}:{port}/"]
    if LUA[scenario] is not None:
        argv[1:1] = ["-s", str(LUA[scenario])]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30).stdout
    for line in out.splitlines():
        if "requests in" in line:
            return int(line.split()[0])
    raise RuntimeError(f"no wrk report:\n{out}")


def hold_idle(port: int, count: int) -> list[socket.socket]:
    """`count` connections, each answered once on keep-alive and then left idle."""
    request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    conns = []
    for _ in range(count):
        sock = socket.create_connection((HOST, port), timeout=10)
        sock.sendall(request)
        conns.append(sock)
    for sock in conns:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                raise RuntimeError("the server closed an idle connection")
            data += chunk
    return conns


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("--python", default=sys.executable, help="interpreter for the server")
    p.add_argument("--mode", choices=("process", "thread"), default="process")
    p.add_argument("--workers", type=int, choices=range(1, 9), default=2)
    p.add_argument("--scenario", choices=tuple(LUA), default="hello")
    p.add_argument("--requests", type=int, default=1_000_000)
    p.add_argument("--idle", type=int, default=5000, help="idle connections to hold")
    args = p.parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, args.idle + 256)), hard))
    port = proctree.free_port()
    log = Path(tempfile.mkstemp(prefix="pounce-memory-", suffix=".log")[1])
    python = os.path.abspath(args.python)
    with log.open("wb") as out:
        server = proctree.start(server_argv(python, args.mode, args.workers, port), HERE, out)
    try:
        proctree.wait_until_answers(server, port, "/", timeout=30)
        wrk(port, args.scenario, 5)
        time.sleep(1)
        before = rss_mib(server.pid)
        served = 0
        while served < args.requests:
            served += wrk(port, args.scenario, WRK_ROUND_S)
        time.sleep(1)
        after = rss_mib(server.pid)
        growth = (after - before) * 1_000_000 / served
        print(
            f"{args.scenario}, {args.mode} mode, {args.workers} workers: RSS {before:.1f} MiB "
            f"-> {after:.1f} MiB over {served:,} requests ({growth:+.2f} MiB per million)"
        )
        idle_before = rss_mib(server.pid)
        conns = hold_idle(port, args.idle)
        time.sleep(1)
        idle_after = rss_mib(server.pid)
        per_conn = (idle_after - idle_before) * 1024 * 1024 / args.idle
        print(
            f"{args.idle:,} idle keep-alive connections: RSS {idle_before:.1f} -> "
            f"{idle_after:.1f} MiB, {per_conn / 1024:.1f} KiB each"
        )
        for sock in conns:
            sock.close()
    finally:
        proctree.stop(server, grace=15)
        log.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
