"""Cost budget of pounce-sync's sync path: µs per request of each stage, measured in process.

Each stage is the real function the worker calls (SyncWorker, IdlePoller, Connection,
RequestParser, ResponseWriter, HTTPCycle), timed call by call on a real TCP connection over
loopback, with whatever a call needs prepared outside the timed part (the client's bytes
sent, the response drained). The figure is the median over `--calls` calls, less the cost
of reading the clock; a median holds up on a busy machine better than a mean does. Two heads:

- browser: loadtests/browser_head.py, about 620 bytes and 11 fields, a new target and
  cookie on every request, so nothing is reused between requests (the figure of record);
- hello: wrk's default head (`GET /` and Host), the same on every request.

`whole` times SyncWorker.dispatch from claim to park as one call, so the stages can be
checked against it; what the stages do not cover (bookkeeping in `_handle`) is the gap.
Configuration: the defaults with --no-access-log, as `bench.py` runs pounce-sync.

    python loadtests/cost_budget.py                      # on this interpreter
    .venv-ft/bin/python loadtests/cost_budget.py --calls 50000 --json budget.json

It imports the pounce_sync of this checkout, whichever is installed.
"""

import argparse
import json
import select
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's pounce_sync

import apps
import browser_head

from pounce_sync.asgi.proxy import parse_trusted
from pounce_sync.config import Config
from pounce_sync.http1 import RequestParser, ResponseWriter, parse_head
from pounce_sync.http1.parser import SeenFields
from pounce_sync.observe.access_log import AccessLog
from pounce_sync.server.runtime import gil_enabled
from pounce_sync.worker.asgi_http import HTTPCycle
from pounce_sync.worker.connection import Connection
from pounce_sync.worker.context import Listener, ServeContext
from pounce_sync.worker.coroutine_driver import make_driver
from pounce_sync.worker.idle_poller import IdlePoller
from pounce_sync.worker.reactors import Reactors
from pounce_sync.worker.sync_worker import SyncWorker

HOST = "127.0.0.1"
WARMUP_CALLS = 2000
HEADS = ("browser", "hello")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Stage:
    name: str  # the words: read, parse, scope, app, ...; "" for a part of the above
    what: str
    run: Callable[["Rig", int], list[int]]  # (rig, calls) -> ns per call
    counted: bool = True  # part of the sum; False: a part of another row, or another shape


class Rig:
    """One worker and one served connection over loopback, built the way the server does."""

    def __init__(self, kind: str, calls: int) -> None:
        self.config = Config(access_log=False)
        self.listener = socket.create_server((HOST, 0))
        port = self.listener.getsockname()[1]
        self.client = socket.create_connection((HOST, port))
        sock, addr = self.listener.accept()
        self.ctx = ServeContext(
            config=self.config,
            app=apps.hello,
            reactors=Reactors(1),  # one worker seat: its own epoll set, as every seat has
            listeners={},
            lifespan_state={},
            trusted_proxies=parse_trusted(self.config.forwarded_allow_ips),
            access_log=AccessLog(self.config),
        )
        self.worker = SyncWorker(self.ctx)
        self.worker._driver = make_driver(self.config.coroutine_driver)  # as run() does
        # The worker thread's memos of seen lines, made on this thread as run() makes them.
        self.worker._seen_fields = self.seen_fields = SeenFields()
        self.worker._seen_response = self.seen_response = {}
        self.conn = self.ctx.open_connection(sock, addr, Listener(self.listener, "http", None))
        self.conn.requests = 1  # between keep-alive requests, as in a measured run
        host = f"{HOST}:{port}"
        if kind == "browser":
            self.heads = [browser_head.head(host, 1, n + 1) for n in range(calls)]
        else:
            self.heads = [f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()] * calls
        parser = RequestParser(self.ctx.limits)  # one connection's parser, as served
        self.requests = [_parsed(parser, head) for head in self.heads]
        self.conn.parser.seen = self.seen_fields  # as SyncWorker._serve sets it

    def send(self, i: int) -> None:
        """The client's request `i`, in the server socket's receive queue on return."""
        self.client.sendall(self.heads[i])
        select.select([self.conn.sock], [], [], 1.0)

    def drain(self) -> None:
        """Read every response byte the client has been sent."""
        try:
            while self.client.recv(65536, socket.MSG_DONTWAIT):
                pass
        except BlockingIOError:
            pass

    def cycle(self, i: int) -> HTTPCycle:
        request = self.requests[i]
        writer = ResponseWriter(
            request, True, self.worker._default_headers.get(), self.seen_response
        )
        return HTTPCycle(self.conn, request, writer, self.config.max_body_size, self.ctx.stopping)

    def close(self) -> None:
        self.worker._driver.close()  # type: ignore[union-attr]
        self.ctx.reactors.close()
        for sock in (self.client, self.conn.sock, self.listener):
            sock.close()


def _parsed(parser: RequestParser, head: bytes) -> Any:
    parser.feed(head)
    request = parser.next_event()
    parser.next_event()  # EndOfMessage
    parser.start_next_cycle()
    return request


def timed(
    calls: int,
    call: Callable[[int], object],
    prepare: Callable[[int], object] | None = None,
    after: Callable[[int], object] | None = None,
) -> list[int]:
    """ns of each `call(i)`; `prepare(i)` and `after(i)` run around it, untimed."""
    clock = time.perf_counter_ns
    samples = []
    for i in range(calls):
        if prepare is not None:
            prepare(i)
        start = clock()
        call(i)
        samples.append(clock() - start)
        if after is not None:
            after(i)
    return samples


# -- the stages, in the order one request meets them ------------------------------------
def poll(rig: Rig, calls: int) -> list[int]:
    poller = IdlePoller()
    other = socket.create_connection(rig.listener.getsockname())
    ready, _ = rig.listener.accept()
    other.sendall(b"x")  # never read: the connection stays ready
    select.select([ready], [], [], 1.0)
    poller.park(Connection(ready, None, None, "http", rig.ctx.limits), time.monotonic() + 60)
    try:
        return timed(calls, lambda i: poller.wait(0))
    finally:
        poller.close()
        other.close()
        ready.close()


def claim(rig: Rig, calls: int) -> list[int]:
    poller, conn, fd = rig.worker.poller, rig.conn, rig.conn.fd
    deadline = time.monotonic() + 60
    return timed(calls, lambda i: poller.claim(fd), prepare=lambda i: poller.park(conn, deadline))


def read(rig: Rig, calls: int) -> list[int]:
    conn = rig.conn

    def fresh_parser(i: int) -> None:
        conn.parser = RequestParser(rig.ctx.limits)
        conn.parser.seen = rig.seen_fields

    return timed(calls, lambda i: conn.read_ready(), prepare=rig.send, after=fresh_parser)


def parse(rig: Rig, calls: int) -> list[int]:
    parser, heads = rig.conn.parser, rig.heads

    def next_cycle(i: int) -> None:
        parser.next_event()  # EndOfMessage
        parser.start_next_cycle()

    return timed(
        calls,
        lambda i: parser.next_event(),
        prepare=lambda i: parser.feed(heads[i]),
        after=next_cycle,
    )


def parse_head_alone(rig: Rig, calls: int) -> list[int]:
    heads, limits, seen = [head[:-4] for head in rig.heads], rig.ctx.limits, rig.seen_fields
    return timed(calls, lambda i: parse_head(heads[i], limits, seen))


def fields(rig: Rig, calls: int) -> list[int]:
    default_headers = rig.worker._default_headers
    return timed(calls, lambda i: default_headers.get())


def scope(rig: Rig, calls: int) -> list[int]:
    worker, conn, requests = rig.worker, rig.conn, rig.requests
    return timed(calls, lambda i: worker._scope(conn, requests[i], None))


def cycle_objects(rig: Rig, calls: int) -> list[int]:
    return timed(calls, lambda i: rig.cycle(i))


def app_call(rig: Rig, calls: int) -> list[int]:
    worker, made = rig.worker, {}

    def prepare(i: int) -> None:
        made["scope"] = worker._scope(rig.conn, rig.requests[i], None)
        made["cycle"] = rig.cycle(i)

    def call(i: int) -> None:
        worker._run_app(made["scope"], made["cycle"])

    return timed(calls, call, prepare=prepare, after=lambda i: rig.drain())


def app_alone(rig: Rig, calls: int) -> list[int]:
    driver, scopes = rig.worker._driver, {}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        pass

    def prepare(i: int) -> None:
        scopes[0] = rig.worker._scope(rig.conn, rig.requests[i], None)

    return timed(
        calls,
        lambda i: driver.run(apps.hello(scopes[0], receive, send)),  # type: ignore[union-attr]
        prepare=prepare,
    )


def response_start(rig: Rig, calls: int) -> list[int]:
    writers: dict[int, ResponseWriter] = {}
    headers = apps._start(apps.TEXT, len(apps.HELLO_BODY))["headers"]  # as apps.hello sends

    def prepare(i: int) -> None:
        fields = rig.worker._default_headers.get()
        writers[0] = ResponseWriter(rig.requests[i], True, fields, rig.seen_response)

    return timed(calls, lambda i: writers[0].start(200, headers), prepare=prepare)


def response_head(rig: Rig, calls: int) -> list[int]:
    writers: dict[int, ResponseWriter] = {}
    headers = apps._start(apps.TEXT, len(apps.HELLO_BODY))["headers"]

    def prepare(i: int) -> None:
        fields = rig.worker._default_headers.get()
        writer = writers[0] = ResponseWriter(rig.requests[i], True, fields, rig.seen_response)
        writer.start(200, headers)

    return timed(calls, lambda i: writers[0].body(apps.HELLO_BODY, False), prepare=prepare)


def write(rig: Rig, calls: int) -> list[int]:
    writer = ResponseWriter(rig.requests[0], True, rig.worker._default_headers.get())
    writer.start(200, apps._start(apps.TEXT, len(apps.HELLO_BODY))["headers"])
    data = writer.body(apps.HELLO_BODY, False)
    conn = rig.conn
    return timed(calls, lambda i: conn.send_what_fits(data), after=lambda i: rig.drain())


def finish(rig: Rig, calls: int) -> list[int]:
    parser, cycles = rig.conn.parser, {}

    def prepare(i: int) -> None:
        parser.feed(rig.heads[i])
        parser.next_event()  # the Request: its app has run
        cycles[0] = rig.cycle(i)

    def call(i: int) -> None:
        cycles[0].drain_body()
        parser.start_next_cycle()
        parser.next_event()  # NEED_DATA: the worker parks the connection

    return timed(calls, call, prepare=prepare)


def park(rig: Rig, calls: int) -> list[int]:
    worker, poller, conn = rig.worker, rig.worker.poller, rig.conn
    return timed(calls, lambda i: worker._park(conn), after=lambda i: poller.claim(conn.fd))


def whole(rig: Rig, calls: int) -> list[int]:
    worker, fd = rig.worker, rig.conn.fd
    worker._park(rig.conn)
    return timed(
        calls, lambda i: worker.dispatch(fd), prepare=rig.send, after=lambda i: rig.drain()
    )


STAGES = (
    Stage("poll", "IdlePoller.wait: epoll_wait, one connection ready", poll),
    Stage("claim", "IdlePoller.claim: the connection out of the parked set", claim),
    Stage("read", "Connection.read_ready: recv + RequestParser.feed", read),
    Stage("parse", "RequestParser.next_event: the head to a Request", parse),
    Stage("", "  of which parse_head", parse_head_alone, counted=False),
    Stage("fields", "DefaultHeaders.get: Date and Server lines", fields),
    Stage("scope", "SyncWorker._scope: the ASGI scope", scope),
    Stage("cycle", "ResponseWriter + HTTPCycle objects", cycle_objects),
    Stage("app", "SyncWorker._run_app: driver, app, both sends, socket write", app_call),
    Stage("", "  of which driver + app, no-op receive/send", app_alone, counted=False),
    Stage("", "  of which ResponseWriter.start: status, headers", response_start, counted=False),
    Stage("", "  of which ResponseWriter.body: head + body bytes", response_head, counted=False),
    Stage("", "  of which Connection.send_what_fits: the write", write, counted=False),
    Stage("finish", "drain_body, start_next_cycle, next_event -> NEED_DATA", finish),
    Stage("park", "SyncWorker._park: one worker, level-triggered, no syscall", park),
)
WHOLE = Stage("whole", "SyncWorker.dispatch, claim to park, as one call", whole)


def clock_overhead_ns(calls: int) -> float:
    return median(timed(calls, lambda i: None))


def run_on_fresh_rig(stage: Stage, kind: str, calls: int) -> list[int]:
    rig = Rig(kind, calls)
    try:
        return stage.run(rig, calls)
    finally:
        rig.close()


def measure(stage: Stage, kind: str, calls: int, overhead: float) -> float:
    """Median µs per call of `stage` on heads of `kind`, after a warm-up run."""
    run_on_fresh_rig(stage, kind, min(WARMUP_CALLS, calls))  # the interpreter specialises
    samples = run_on_fresh_rig(stage, kind, calls)
    return max(0.0, (median(samples) - overhead) / 1000)


def budget(calls: int) -> dict[str, dict[str, float]]:
    """stage label -> head kind -> µs."""
    overhead = clock_overhead_ns(calls)
    return {
        _label(stage): {kind: measure(stage, kind, calls, overhead) for kind in HEADS}
        for stage in (*STAGES, WHOLE)
    }


def _label(stage: Stage) -> str:
    return f"{stage.name} {stage.what.strip()}" if stage.name else stage.what.strip()


def _line(name: str, what: str, values: list[float]) -> str:
    return f"{name:<8}{what:<58}" + "".join(f"{v:>10.2f}" for v in values)


def table(figures: dict[str, dict[str, float]]) -> str:
    head = f"{'stage':<8}{'what is timed':<58}" + "".join(f"{kind + ' µs':>10}" for kind in HEADS)
    lines = [head, "-" * len(head)]
    for stage in STAGES:
        lines.append(_line(stage.name, stage.what, [figures[_label(stage)][k] for k in HEADS]))
        if stage.run is write:  # the last part of `app`: what the parts leave out of it
            rest = [_app_rest(figures, kind) for kind in HEADS]
            lines.append(_line("", "  rest: HTTPCycle.send, awaits (app - its parts)", rest))
    sums = [sum(figures[_label(s)][k] for s in STAGES if s.counted) for k in HEADS]
    lines += ["-" * len(head), _line("sum", "of the stages above", sums)]
    lines.append(_line(WHOLE.name, WHOLE.what, [figures[_label(WHOLE)][k] for k in HEADS]))
    return "\n".join(lines)


def _app_rest(figures: dict[str, dict[str, float]], kind: str) -> float:
    app = next(stage for stage in STAGES if stage.run is app_call)
    parts = [s for s in STAGES if s.run in (app_alone, response_start, response_head, write)]
    return figures[_label(app)][kind] - sum(figures[_label(s)][kind] for s in parts)


def header(calls: int) -> str:
    sample = browser_head.head(f"{HOST}:8000", 1, 100_000)
    return "\n".join(
        [
            f"pounce-sync sync path, cost per request by stage: median of {calls:,} calls, µs",
            f"Python {sys.version.split()[0]}, GIL {'enabled' if gil_enabled() else 'disabled'}; "
            "default settings with --no-access-log, one worker thread",
            f"browser: {len(sample)}-byte head, {browser_head.FIELDS} fields, new target and "
            "cookie per request; hello: GET / with Host only, the same head every request",
        ]
    )


def on_a_worker_thread(measure: Callable[[int], T], calls: int) -> T:
    """Run `measure` on a new thread, as the server runs requests: never on the thread that
    imported the modules. On 3.13t some operations cost far more off that thread (a shared
    dict's .get() with bytes keys: 0.1 against 19.5 us), which the main thread never shows."""
    result: list[T] = []
    thread = threading.Thread(target=lambda: result.append(measure(calls)), name="worker-0")
    thread.start()
    thread.join()
    if not result:
        raise SystemExit("cost_budget: the measuring thread failed (traceback above)")
    return result[0]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("--calls", type=int, default=20_000, help="timed calls per stage and head")
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args(argv)
    if not 100 <= args.calls <= 1_000_000:
        p.error("--calls must be between 100 and 1,000,000")
    figures = on_a_worker_thread(budget, args.calls)
    print(header(args.calls))
    print()
    print(table(figures))
    if args.json:
        facts = {
            "python": sys.version,
            "gil_enabled": gil_enabled(),
            "calls": args.calls,
            "clock_overhead_ns": clock_overhead_ns(args.calls),
        }
        args.json.write_text(json.dumps({"meta": facts, "us": figures}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
