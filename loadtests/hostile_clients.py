"""Slow readers and slowloris against a server while a normal client measures its latency.

    python loadtests/hostile_clients.py                       # pounce-sync, 2 worker threads
    python loadtests/hostile_clients.py --servers pounce-sync,uvicorn,granian --mode process

For `--duration` seconds (default 20) one thread holds:

* `--slow-readers` connections (default 50) with a 4 KiB receive buffer, each asking for
  20 MiB and then taking 4 KiB every 2 s: half of them a response sent in one message
  (`/whole`), half a streamed one (`/stream`);
* `--slowloris` connections (default 1,000) that send a request head one header line per
  second and never finish it; one the server closes is reopened at its next turn.

Meanwhile a normal client sends `GET /` on a new connection every 20 ms and records how
long each answer took; an answer that takes more than 5 s, or never comes, is a failure.
The report gives the normal client's p50/p99/max, its failures, and how often the
slowloris connections had to be reopened. Every socket is on 127.0.0.1; every wait is
bounded. Peers come from `bench.py --setup`'s venv and are skipped when absent.
"""

import argparse
import http.client
import json
import socket
import statistics
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import proctree
from bench import raise_fd_limit
from servers import BY_NAME, HERE, HOST, Server, peers_python, probe

RESULTS = HERE / "results"
CLIENT_TIMEOUT_S = 5.0
READ_SIZE = 4096
READ_EVERY_S = 2.0


@dataclass(slots=True)
class Figures:
    server: str
    requests: int = 0
    failures: int = 0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    slowloris_reopened: int = 0
    slow_reader_bytes: int = 0


class Hostiles:
    """The slow readers and slowloris connections, driven by one thread, one step a second."""

    def __init__(self, port: int, readers: int, slowloris: int) -> None:
        self.port = port
        self.readers = [self._reader("/whole" if i % 2 else "/stream") for i in range(readers)]
        self.loris: list[socket.socket | None] = [self._loris() for _ in range(slowloris)]
        self.reopened = 0
        self.read_bytes = 0
        self.stop = threading.Event()

    def _reader(self, path: str) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, READ_SIZE)
        sock.settimeout(CLIENT_TIMEOUT_S)
        sock.connect((HOST, self.port))
        sock.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode())
        sock.setblocking(False)
        return sock

    def _loris(self) -> socket.socket | None:
        try:
            sock = socket.create_connection((HOST, self.port), timeout=1.0)
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
            sock.setblocking(False)
            return sock
        except OSError:
            return None

    def run(self) -> None:
        """Each second: one header line per slowloris, 4 KiB per reader every 2 s."""
        tick = 0
        while not self.stop.wait(1.0):
            tick += 1
            for i, sock in enumerate(self.loris):
                self.loris[i] = self._trickle(sock)
            if tick % int(READ_EVERY_S) == 0:
                for sock in self.readers:
                    try:
                        self.read_bytes += len(sock.recv(READ_SIZE))
                    except OSError:
                        pass

    def _trickle(self, sock: socket.socket | None) -> socket.socket | None:
        if sock is not None:
            try:
                sock.send(b"X-Slow: 1\r\n")
                return sock
            except OSError:
                sock.close()
        self.reopened += 1
        return self._loris()

    def close(self) -> None:
        for sock in [*self.readers, *self.loris]:
            if sock is not None:
                sock.close()


def _normal_client(port: int, until: float, latencies: list[float], failures: list[int]) -> None:
    while time.monotonic() < until:
        began = time.monotonic()
        conn = http.client.HTTPConnection(HOST, port, timeout=CLIENT_TIMEOUT_S)
        try:
            conn.request("GET", "/")
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                raise OSError(f"status {response.status}")
            latencies.append(time.monotonic() - began)
        except (OSError, http.client.HTTPException):
            failures.append(1)
        finally:
            conn.close()
        time.sleep(max(0.0, 0.02 - (time.monotonic() - began)))


def measure(server: Server, python: str, args: argparse.Namespace, log: Path) -> Figures:
    port = proctree.free_port()
    argv = server.command(python, "apps:hostile", port, args.workers)
    if server.name.startswith("pounce-sync"):
        argv[-1:-1] = ["--worker-mode", args.mode]
    with log.open("wb") as out:
        proc = proctree.start(argv, HERE, out)
        try:
            proctree.wait_until_answers(proc, port, "/", 30)
            hostiles = Hostiles(port, args.slow_readers, args.slowloris)
            keeper = threading.Thread(target=hostiles.run, daemon=True)
            keeper.start()
            time.sleep(2.0)  # the readers' windows are full; the server has done its worst
            latencies: list[float] = []
            failures: list[int] = []
            _normal_client(port, time.monotonic() + args.duration, latencies, failures)
            hostiles.stop.set()
            keeper.join(5)
            hostiles.close()
        finally:
            proctree.stop(proc)
    return _figures(server.name, latencies, len(failures), hostiles)


def _figures(name: str, latencies: list[float], failures: int, hostiles: Hostiles) -> Figures:
    figures = Figures(name, len(latencies) + failures, failures)
    figures.slowloris_reopened = hostiles.reopened
    figures.slow_reader_bytes = hostiles.read_bytes
    if len(latencies) >= 2:
        ms = sorted(x * 1000 for x in latencies)
        figures.p50_ms = round(statistics.median(ms), 1)
        figures.p99_ms = round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 1)
        figures.max_ms = round(ms[-1], 1)
    return figures


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--servers", default="pounce-sync", help="rows of servers.py, a,b,c")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--mode", choices=("thread", "process"), default="thread")
    parser.add_argument("--slow-readers", type=int, default=50)
    parser.add_argument("--slowloris", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--python", default=sys.executable, help="for the pounce-sync rows")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    raise_fd_limit()
    RESULTS.mkdir(exist_ok=True)
    rows = []
    for name in args.servers.split(","):
        server = BY_NAME[name]
        python = str(peers_python()) if server.interpreter == "peers" else args.python
        missing = probe(server, python)
        if missing is not None:
            print(f"{name}: skipped ({missing})")
            continue
        figures = measure(server, python, args, RESULTS / f"hostile-{name}.log")
        rows.append(asdict(figures))
        print(json.dumps(rows[-1]))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (RESULTS / f"hostile-{stamp}.json").write_text(json.dumps(rows, indent=2) + "\n")
    return 0 if all(row["failures"] == 0 for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
