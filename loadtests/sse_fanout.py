"""SSE fan-out: hold N event streams open at once and count what every subscriber receives.

    .venv/bin/python loadtests/sse_fanout.py --subscribers 1000 --seconds 10

Starts pounce-sync (or, with --server uvicorn, uvicorn from loadtests/.venv-peers)
on 127.0.0.1 serving loadtests/sse_app.py, opens the subscribers from one
selector loop (a client, not a throughput generator: each stream is slow by
design), and reports events received per subscriber, streams that failed, and
the server's peak RSS. Bounded: the subscribers leave after --seconds.
"""

import argparse
import selectors
import socket
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from proctree import PeakRss, free_port, start, stop, wait_until_answers  # noqa: E402

REQUEST = b"GET /?interval=%s HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"


def server_argv(name: str, port: int, workers: int) -> list[str]:
    if name == "pounce-sync":
        python = str(HERE.parent / ".venv" / "bin" / "python")
        return [python, "-m", "pounce_sync", "--port", str(port), "--workers", str(workers),
                "--no-access-log", "--app-dir", str(HERE), "sse_app:app"]  # fmt: skip
    python = str(HERE / ".venv-peers" / "bin" / "python")
    return [python, "-m", "uvicorn", "--port", str(port), "--workers", str(workers),
            "--no-access-log", "--app-dir", str(HERE), "sse_app:app"]  # fmt: skip


def subscribe(port: int, count: int, interval: float, seconds: float) -> tuple[list[int], int]:
    """Events received by each subscriber, and how many streams failed."""
    selector = selectors.DefaultSelector()
    events = [0] * count
    failed = 0
    request = REQUEST % str(interval).encode()
    for i in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(request)
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ, i)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for key, _ in selector.select(timeout=0.5):
            try:
                data = key.fileobj.recv(65536)  # type: ignore[union-attr]
            except OSError:
                data = b""
            if not data:
                failed += 1
                selector.unregister(key.fileobj)
                key.fileobj.close()  # type: ignore[union-attr]
                continue
            events[key.data] += data.count(b"data: tick")
    for key in list(selector.get_map().values()):
        key.fileobj.close()  # type: ignore[union-attr]
    return events, failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", choices=("pounce-sync", "uvicorn"), default="pounce-sync")
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--interval", type=float, default=0.1)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    port = free_port()
    log = open(HERE / "results" / "sse_fanout.log", "wb")  # noqa: SIM115
    proc = start(server_argv(args.server, port, args.workers), HERE, log)
    try:
        wait_until_answers(proc, port, "/?interval=0.01&n=1", 30)
        with PeakRss(proc.pid) as rss:
            events, failed = subscribe(port, args.subscribers, args.interval, args.seconds)
        expected = args.seconds / args.interval
        events.sort()
        print(f"server: {args.server}, workers: {args.workers}")
        print(f"subscribers: {args.subscribers}, for {args.seconds:.0f} s, one event each "
              f"{args.interval * 1000:.0f} ms (at most {expected:.0f} events each)")  # fmt: skip
        print(f"streams failed: {failed}")
        print(f"events per subscriber: min {events[0]}, median {events[len(events) // 2]}, "
              f"max {events[-1]}; total {sum(events)}")  # fmt: skip
        print(f"server peak RSS: {rss.peak_kib / 1024:.0f} MiB")
        return 0 if failed == 0 else 1
    finally:
        stop(proc)
        log.close()


if __name__ == "__main__":
    sys.exit(main())
