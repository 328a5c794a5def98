"""Lifecycle events under load, with every request counted: is anything lost?

    python loadtests/lifecycle.py --event hup                  # one event, process mode
    python loadtests/lifecycle.py --all --mode thread          # every event thread mode has
    python loadtests/lifecycle.py --all --python .venv-ft/bin/python --mode thread

Client threads (half keep one keep-alive connection each, half open a new connection per
request) send `GET /` with a short pause and count every request: answered, refused
(the connection was refused: nothing was sent) or lost (sent, and no whole response, or a
5xx). During the run one event happens:

- `term`: SIGTERM at a third of the run. The server must exit 0; nothing sent may be
  lost; connections refused once the listener closed are counted, not lost. An event
  stream, a WebSocket and an HTTP/2 connection opened before the signal must each be
  closed by the server (end of stream, close 1001, GOAWAY) within the graceful timeout.
- `hup`: SIGHUP at a third and at two thirds (process mode: rolling restart).
- `reload`: `--reload`, the app's file rewritten at a third and at two thirds.
- `max-requests`: `--limit-max-requests`, so workers retire again and again.
- `kill-worker`: SIGKILL of one worker process at a third (process mode). Only the
  requests that worker had in flight may be lost: at most one per client, all within
  a second of the kill.
- `budget`: a worker process SIGKILLed every 0.3 s from a third on, until the restart
  budget trips: the server must exit non-zero with one line saying so.

Everything binds 127.0.0.1; every wait has a limit. Results are printed as a table and
written to results/lifecycle-*.json.
"""

import argparse
import dataclasses
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import proctree
import wsproto
import wsproto.events
from servers import HERE, HOST

RESULTS = HERE / "results"
EVENTS = ("term", "hup", "reload", "max-requests", "kill-worker", "budget")
PROCESS_ONLY = frozenset({"hup", "kill-worker", "budget"})
GRACE_S = 10  # --timeout-graceful-shutdown for the server under test
THINK_S = 0.002  # each client's pause between requests
TIMEOUT_S = 15.0  # per request: only turns a hang into a loss
MAX_REQUESTS = 1500  # --limit-max-requests for the max-requests event


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    python: str
    mode: str
    workers: int
    clients: int
    duration_s: float
    event: str


@dataclasses.dataclass(slots=True)
class Tally:
    """What the clients saw; list appends are atomic, so the client threads need no lock."""

    answered: list[float] = dataclasses.field(default_factory=list)  # when, since start
    refused: list[float] = dataclasses.field(default_factory=list)
    lost: list[tuple[float, str]] = dataclasses.field(default_factory=list)
    pids: set[str] = dataclasses.field(default_factory=set)


@dataclasses.dataclass(slots=True)
class StreamWatch:
    """Seconds from the stop signal until the server closed each long-lived stream."""

    sse: float | None = None
    websocket: float | None = None
    websocket_code: int | None = None
    http2_goaway: float | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    plan: Plan
    answered: int
    refused: int
    lost: int
    lost_examples: tuple[str, ...]
    event_at_s: tuple[float, ...]
    exit_code: int | None
    exit_after_s: float | None  # after the last signal, when the server was stopped
    workers_seen: int  # distinct pids that answered
    replaced: int  # worker processes (or threads) the server logged as retired or restarted
    streams: StreamWatch | None
    log_lines: tuple[str, ...]  # the server's lines that tell the story (budget, warnings)
    verdict: str  # "ok", or what went wrong


# -- the clients -----------------------------------------------------------------------------
def _request(conn: http.client.HTTPConnection, close: bool) -> tuple[int, bytes, bool]:
    conn.request("GET", "/", headers={"Connection": "close"} if close else {})
    response = conn.getresponse()
    return response.status, response.read(), response.will_close


def counting_client(
    port: int, keep_alive: bool, start: float, stop: threading.Event, tally: Tally
) -> None:
    conn: http.client.HTTPConnection | None = None
    served = 0
    while not stop.is_set():
        if conn is None:
            served = 0
            conn = http.client.HTTPConnection(HOST, port, timeout=TIMEOUT_S)
            try:
                conn.connect()
            except OSError:
                tally.refused.append(time.monotonic() - start)
                conn = None
                time.sleep(0.05)
                continue
        try:
            status, body, will_close = _request(conn, close=not keep_alive)
        except (OSError, http.client.HTTPException) as exc:
            kind = f"keep-alive, request {served + 1} on its connection" if keep_alive else "new"
            tally.lost.append((time.monotonic() - start, f"{exc!r} ({kind})"))
            conn.close()
            conn = None
            continue
        now = time.monotonic() - start
        if status >= 500:
            tally.lost.append((now, f"status {status}"))
        else:
            tally.answered.append(now)
            tally.pids.add(body.decode(errors="replace"))
        served += 1
        if will_close or not keep_alive:
            conn.close()
            conn = None
        time.sleep(THINK_S)
    if conn is not None:
        conn.close()


# -- the long-lived streams (term) -----------------------------------------------------------
def _connect(port: int) -> socket.socket:
    return socket.create_connection((HOST, port), timeout=GRACE_S + 10)


def _watch_sse(port: int, signalled: threading.Event, at: list[float], watch: StreamWatch) -> None:
    with _connect(port) as sock:
        sock.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
        while sock.recv(65536):
            pass
    if signalled.is_set():
        watch.sse = time.monotonic() - at[0]


def _watch_websocket(
    port: int, signalled: threading.Event, at: list[float], watch: StreamWatch
) -> None:
    ws = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
    with _connect(port) as sock:
        sock.sendall(ws.send(wsproto.events.Request(host="x", target="/ws")))
        while data := sock.recv(65536):
            ws.receive_data(data)
            for event in ws.events():
                if isinstance(event, wsproto.events.CloseConnection):
                    if signalled.is_set():
                        watch.websocket = time.monotonic() - at[0]
                    watch.websocket_code = event.code
                    sock.sendall(ws.send(event.response()))
                    return


def _watch_http2(
    port: int, signalled: threading.Event, at: list[float], watch: StreamWatch
) -> None:
    """An event stream on an HTTP/2 connection: busy, so no idle timeout ends it first."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    stream = conn.get_next_available_stream_id()
    fields = [(":method", "GET"), (":scheme", "http"), (":authority", "x"), (":path", "/events")]
    conn.send_headers(stream, fields, end_stream=True)
    with _connect(port) as sock:
        sock.sendall(conn.data_to_send())
        while data := sock.recv(65536):
            try:
                events = conn.receive_data(data)
            except h2.exceptions.ProtocolError:
                # h2's client closes on GOAWAY and then refuses the DATA that the server
                # still sends on the streams the GOAWAY lets finish (RFC 9113 6.8).
                if conn.state_machine.state is h2.connection.ConnectionState.CLOSED:
                    if signalled.is_set():
                        watch.http2_goaway = time.monotonic() - at[0]
                    return
                raise
            for event in events:
                if isinstance(event, h2.events.DataReceived):
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.ConnectionTerminated):
                    if signalled.is_set():
                        watch.http2_goaway = time.monotonic() - at[0]
                    return
            sock.sendall(conn.data_to_send())


# -- the server ------------------------------------------------------------------------------
def server_argv(plan: Plan, port: int, app_dir: Path) -> list[str]:
    argv = [plan.python, "-m", "pounce_sync", "--host", HOST, "--port", str(port)]
    argv += ["--workers", str(plan.workers), "--worker-mode", plan.mode, "--no-access-log"]
    argv += ["--timeout-graceful-shutdown", str(GRACE_S), "--app-dir", str(app_dir)]
    if plan.event == "reload":
        argv += ["--reload", "--reload-dir", str(app_dir)]
    if plan.event == "max-requests":
        argv += ["--limit-max-requests", str(MAX_REQUESTS)]
    return [*argv, "lifecycle_app:app"]


def _workers(root: int) -> list[int]:
    return [pid for pid in proctree.tree(root) if pid != root]


def _event_times(plan: Plan) -> list[float]:
    third = plan.duration_s / 3
    return [third, 2 * third] if plan.event in ("hup", "reload") else [third]


def _fire(plan: Plan, server: subprocess.Popen[bytes], app_file: Path) -> None:
    """One occurrence of the event; `budget` kills until the server gives up."""
    if plan.event == "term":
        server.send_signal(signal.SIGTERM)
    elif plan.event == "hup":
        server.send_signal(signal.SIGHUP)
    elif plan.event == "reload":
        app_file.write_text(app_file.read_text() + "\n# touched\n")
    elif plan.event == "kill-worker":
        _kill_one(server.pid)
    elif plan.event == "budget":
        deadline = time.monotonic() + 60
        while server.poll() is None and time.monotonic() < deadline:
            _kill_one(server.pid)
            time.sleep(0.3)


def _kill_one(root: int) -> None:
    workers = _workers(root)
    if workers:
        try:
            os.kill(workers[0], signal.SIGKILL)
        except ProcessLookupError:
            pass


def run(plan: Plan, log: Callable[[str], None] = print) -> Outcome:
    app_dir = Path(tempfile.mkdtemp(prefix="pounce-lifecycle-"))
    app_file = app_dir / "lifecycle_app.py"
    shutil.copy(HERE / "lifecycle_app.py", app_file)
    port = proctree.free_port()
    log_file = app_dir / "server.log"
    with log_file.open("wb") as out:
        server = proctree.start(server_argv(plan, port, app_dir), HERE.parent, out)
    try:
        outcome = _drive(plan, server, port, app_file, log_file, log)
    finally:
        proctree.stop(server, grace=GRACE_S + 10)
        if log_file.exists():  # kept for whoever reads the verdict
            RESULTS.mkdir(exist_ok=True)
            stamp = time.strftime("%Y%m%d-%H%M%S")
            shutil.copy(log_file, RESULTS / f"lifecycle-{plan.event}-{plan.mode}-{stamp}.log")
        shutil.rmtree(app_dir, ignore_errors=True)
    return outcome


def _drive(
    plan: Plan,
    server: subprocess.Popen[bytes],
    port: int,
    app_file: Path,
    log_file: Path,
    log: Callable[[str], None],
) -> Outcome:
    proctree.wait_until_answers(server, port, "/", timeout=30)
    tally, stop, signalled = Tally(), threading.Event(), threading.Event()
    start = time.monotonic()
    clients = [
        threading.Thread(
            target=counting_client, args=(port, i % 2 == 0, start, stop, tally), daemon=True
        )
        for i in range(plan.clients)
    ]
    watch = StreamWatch() if plan.event == "term" else None
    at: list[float] = [0.0]
    watchers = []
    if watch is not None:
        for target in (_watch_sse, _watch_websocket, _watch_http2):
            watchers.append(
                threading.Thread(target=target, args=(port, signalled, at, watch), daemon=True)
            )
    for thread in (*clients, *watchers):
        thread.start()
    fired: list[float] = []
    for when in _event_times(plan):
        time.sleep(max(0.0, when - (time.monotonic() - start)))
        at[0] = time.monotonic()
        signalled.set()
        fired.append(at[0] - start)
        log(f"  {plan.event} at {fired[-1]:.1f} s")
        _fire(plan, server, app_file)
    if plan.event not in ("term", "budget"):  # the load ends before our own SIGTERM
        time.sleep(max(0.0, plan.duration_s - (time.monotonic() - start)))
        stop_clients(stop, clients)
    exit_code, exit_after = _finish(plan, server, at[0])
    stop_clients(stop, [*clients, *watchers])
    return _judge(plan, tally, fired, exit_code, exit_after, watch, log_file)


def stop_clients(stop: threading.Event, threads: list[threading.Thread]) -> None:
    stop.set()
    for thread in threads:
        thread.join(TIMEOUT_S + GRACE_S)


def _finish(
    plan: Plan, server: subprocess.Popen[bytes], last_signal: float
) -> tuple[int | None, float | None]:
    """The exit code and how long it took: the server stops by itself (term, budget) or
    on our SIGTERM once the load is over."""
    if plan.event not in ("term", "budget"):
        server.send_signal(signal.SIGTERM)
        last_signal = time.monotonic()
    try:
        code = server.wait(GRACE_S + 20)
    except subprocess.TimeoutExpired:
        return None, None
    return code, time.monotonic() - last_signal


_REPLACED = ("retired", "restarting it", "Detected a change", "Reloading: replacing")


def _judge(
    plan: Plan,
    tally: Tally,
    fired: list[float],
    exit_code: int | None,
    exit_after: float | None,
    watch: StreamWatch | None,
    log_file: Path,
) -> Outcome:
    text = log_file.read_text(errors="replace").splitlines()
    story = tuple(line for line in text if "restarts within" in line or "WARNING" in line)
    lost = tally.lost
    problems = []
    if plan.event == "budget":
        if exit_code in (0, None):
            problems.append(f"exit code {exit_code}, expected non-zero")
        if sum("restarts within" in line for line in text) != 1:
            problems.append("not exactly one line about the restart budget")
    elif exit_code != 0:
        problems.append(f"exit code {exit_code}")
    if plan.event == "kill-worker":
        late = [t for t, _ in lost if not fired[0] <= t <= fired[0] + 1.0]
        if late or len(lost) > plan.clients:
            problems.append(f"{len(lost)} lost, {len(late)} of them away from the kill")
    elif plan.event != "budget" and lost:
        problems.append(f"{len(lost)} lost")
    if plan.event in ("hup", "reload", "max-requests") and tally.refused:
        problems.append(f"{len(tally.refused)} refused")
    if watch is not None:
        for name in ("sse", "websocket", "http2_goaway"):
            took = getattr(watch, name)
            if took is None or took > GRACE_S:
                problems.append(f"{name} not closed within {GRACE_S} s ({took})")
    return Outcome(
        plan=plan,
        answered=len(tally.answered),
        refused=len(tally.refused),
        lost=len(lost),
        lost_examples=tuple(f"{t:.2f}s {why}" for t, why in lost[:5]),
        event_at_s=tuple(round(t, 2) for t in fired),
        exit_code=exit_code,
        exit_after_s=None if exit_after is None else round(exit_after, 2),
        workers_seen=len(tally.pids),
        replaced=sum(any(w in line for w in _REPLACED) for line in text),
        streams=watch,
        log_lines=story[:5],
        verdict="; ".join(problems) or "ok",
    )


# -- the command -----------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[Plan]]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("--event", choices=EVENTS, action="append", help="repeatable")
    p.add_argument("--all", action="store_true", help="every event the mode has")
    p.add_argument("--mode", choices=("process", "thread"), default="process")
    p.add_argument("--python", default=sys.executable, help="interpreter for the server")
    p.add_argument("--workers", type=int, choices=range(1, 9), default=2)
    p.add_argument("--clients", type=int, choices=range(2, 257), default=16, metavar="N")
    p.add_argument("--duration", type=float, default=30.0, help="seconds of load per event")
    args = p.parse_args(argv)
    if not args.all and not args.event:
        p.error("give --event or --all")
    events = [e for e in EVENTS if args.all or e in args.event]
    if args.mode == "thread":
        skipped = [e for e in events if e in PROCESS_ONLY]
        if skipped and not args.all:
            p.error(f"{', '.join(skipped)}: process mode only")
        events = [e for e in events if e not in PROCESS_ONLY]
    plans = [
        Plan(
            os.path.abspath(args.python),
            args.mode,
            args.workers,
            args.clients,
            args.duration,
            event,
        )
        for event in events
    ]
    return args, plans


def _streams(watch: StreamWatch | None) -> str:
    if watch is None:
        return "-"

    def s(v: float | None) -> str:
        return "never" if v is None else f"{v:.2f}s"

    return (
        f"sse {s(watch.sse)}, ws {s(watch.websocket)} ({watch.websocket_code}), "
        f"h2 goaway {s(watch.http2_goaway)}"
    )


_VERSION = "import sys; print(sys.version.split()[0], getattr(sys, '_is_gil_enabled', lambda: 1)())"


def main(argv: list[str] | None = None) -> int:
    args, plans = parse_args(argv)
    version = subprocess.run(
        [args.python, "-c", _VERSION],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    print(f"python {version[0]} (GIL enabled: {version[1]}), {args.mode} mode")
    outcomes = []
    for plan in plans:
        print(f"{plan.event}: {plan.clients} clients, {plan.duration_s:.0f} s")
        outcomes.append(run(plan))
    print()
    print("| event | answered | refused | lost | replaced | exit | exit after |", end="")
    print(" streams on SIGTERM | verdict |")
    print("|---|---|---|---|---|---|---|---|---|")
    for o in outcomes:
        print(
            f"| {o.plan.event} | {o.answered} | {o.refused} | {o.lost} | {o.replaced} "
            f"| {o.exit_code} "
            f"| {o.exit_after_s} s | {_streams(o.streams)} | {o.verdict} |"
        )
    for o in outcomes:
        for line in (*o.lost_examples, *o.log_lines):
            print(f"  {o.plan.event}: {line}")
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"lifecycle-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps([dataclasses.asdict(o) for o in outcomes], indent=1, default=str))
    print(f"\nwritten to {path}")
    return 0 if all(o.verdict == "ok" for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
