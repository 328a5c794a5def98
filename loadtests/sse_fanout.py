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
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from proctree import free_port, peak_rss, start, stop, wait_until_answers  # noqa: E402

REQUEST = b"GET /?interval=%s HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"


def server_argv(name: str, port: int, workers: int) -> list[str]:
    if name == "pounce-sync":
        python = str(HERE.parent / ".venv" / "bin" / "python")
        return [python, "-m", "pounce_sync", "--port", str(port), "--workers", str(workers),
                "--no-access-log", "--app-dir", str(HERE), "sse_app:app"]  # fmt: skip
    python = str(HERE / ".venv-peers" / "bin" / "python")
    return [python, "-m", "uvicorn", "--port", str(port), "--workers", str(workers),
            "--no-access-log", "--app-dir", str(HERE), "sse_app:app"]  # fmt: skip


@dataclass(frozen=True, slots=True)
class Fanout:
    """What the subscribers received, summed and spread over subscribers."""

    subscribers: int
    seconds: float
    interval_s: float
    events: int  # received, all subscribers together
    expected: int  # due: per stream one at once, then one per interval until it was left
    events_min: int  # per subscriber
    events_median: int
    events_max: int
    failed: int  # streams that never opened, or that the server ended or broke early

    @property
    def delivered(self) -> float:
        return self.events / self.expected if self.expected else 0.0


def _due(opened: float, left: float, interval: float) -> int:
    """Events a stream opened at `opened` and left at `left` can have received at most."""
    return int((left - opened) / interval) + 1


def subscribe(
    port: int, count: int, interval: float, seconds: float, open_timeout: float = 30.0
) -> Fanout:
    """Open `count` streams (within `open_timeout` s), hold them `seconds`, count events."""
    selector = selectors.DefaultSelector()
    events = [0] * count
    opened = [0.0] * count
    failed = 0
    request = REQUEST % str(interval).encode()
    open_deadline = time.monotonic() + open_timeout
    for i in range(count):
        try:
            remaining = open_deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no time left to open it")
            sock = socket.create_connection(("127.0.0.1", port), timeout=min(10, remaining))
            sock.sendall(request)
        except OSError:
            failed += 1  # never opened: due as many events as the last stream that did
            opened[i] = -1.0
            continue
        opened[i] = time.monotonic()
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
    selector.close()
    last_open = max((t for t in opened if t >= 0), default=deadline - seconds)
    expected = sum(_due(t if t >= 0 else last_open, deadline, interval) for t in opened)
    ordered = sorted(events)
    return Fanout(
        subscribers=count,
        seconds=seconds,
        interval_s=interval,
        events=sum(events),
        expected=expected,
        events_min=ordered[0] if ordered else 0,
        events_median=ordered[len(ordered) // 2] if ordered else 0,
        events_max=ordered[-1] if ordered else 0,
        failed=failed,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
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
        with peak_rss(proc.pid) as rss:
            got = subscribe(port, args.subscribers, args.interval, args.seconds)
        print(f"server: {args.server}, workers: {args.workers}")
        print(f"subscribers: {args.subscribers}, for {args.seconds:.0f} s, one event each "
              f"{args.interval * 1000:.0f} ms")  # fmt: skip
        print(f"streams failed: {got.failed}")
        print(f"events per subscriber: min {got.events_min}, median {got.events_median}, "
              f"max {got.events_max}; total {got.events} of at most {got.expected} "
              f"({got.delivered:.1%})")  # fmt: skip
        print(f"server peak RSS: {rss.rss_kib / 1024:.0f} MiB")
        return 0 if got.failed == 0 else 1
    finally:
        stop(proc)
        log.close()


if __name__ == "__main__":
    sys.exit(main())
