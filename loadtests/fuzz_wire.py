"""Mutated requests on the wire against a live pounce-sync: answers must match the parser.

    python loadtests/fuzz_wire.py                          # 8 clients x 250 requests
    python loadtests/fuzz_wire.py --connections 4 --requests 50 --seed 7

The server runs on the interpreter that runs this file.

Each client sends `--requests` mutated requests (tests/fuzz_mutations.py, seeded), each
on a new connection with a valid marker request pipelined after it, then half-closes.
The sans-I/O parser, fed the same bytes, says which requests the server must see; this
file's app answers each with its method and body length. So a desync (the server
reading a message boundary anywhere else than the parser does, or answering the marker
as part of a rejected request) shows as an answer that does not match. A refused
request must get its status and a close, and nothing after it. At the end a normal
request must succeed and the server must still be running. Requests that ask for a
handoff (Upgrade, the HTTP/2 preface) are sent but not predicted.
Prints one JSON line: status counts, mismatches, skipped. Exit 1 on any mismatch.
"""

import argparse
import json
import random
import socket
import sys
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
MARKER = b"GET /fuzz-marker HTTP/1.1\r\nHost: a\r\n\r\n"


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers `METHOD body-length` once the body is read: what the server took as one request."""
    if scope["type"] != "http":
        return
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    if message["type"] == "http.disconnect":
        return
    body = b"%s %d" % (scope["method"].encode(), size)
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@dataclass(frozen=True, slots=True)
class Expected:
    """What the server must do with one input: these answers, then maybe an error."""

    answers: tuple[tuple[bytes, bytes], ...]  # (method, the app's body) per request
    error: int | None  # the status of the refusal that ends the connection
    error_at_eof: bool  # the refusal needs the client's EOF: a silent close is as good
    predictable: bool  # False for handoffs, which this file does not follow


def expect(data: bytes) -> Expected:
    """The parser's reading of `data` then EOF, as the server gets it."""
    sys.path.insert(0, str(REPO))
    from pounce_sync.http1 import (
        NEED_DATA,
        PAUSED,
        ConnectionClosed,
        Data,
        HTTP2Preface,
        ProtocolError,
        Request,
        RequestParser,
    )

    parser, answers, size, method = RequestParser(), [], 0, b""
    parser.feed(data)
    eof = False
    while True:
        try:
            event = parser.next_event()
        except HTTP2Preface:
            return Expected(tuple(answers), None, False, False)
        except ProtocolError as exc:
            return Expected(tuple(answers), exc.status, eof, True)
        if event is NEED_DATA:
            parser.feed(b"")
            eof = True
        elif type(event) is Request:
            if event.upgrade is not None:
                return Expected(tuple(answers), None, False, False)
            method, size, keep_alive = event.method, 0, event.keep_alive
        elif type(event) is Data:
            size += len(event.data)
        elif event is PAUSED:
            answers.append((method, b"%s %d" % (method, size)))
            if not keep_alive:
                return Expected(tuple(answers), None, False, True)
            parser.start_next_cycle()
        elif type(event) is ConnectionClosed:
            return Expected(tuple(answers), None, False, True)


@dataclass(slots=True)
class Tally:
    statuses: Counter[int] = field(default_factory=Counter)
    inputs: int = 0
    skipped: int = 0
    silent_closes: int = 0
    mismatches: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def one_input(port: int, data: bytes, expected: Expected, tally: Tally) -> None:
    from tests.http_client import ResponseReader, ServerClosed

    with socket.create_connection((HOST, port), timeout=10) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may close on a refusal before all was sent
        reader = ResponseReader(sock, timeout=10)
        seen: list[int] = []
        try:
            for method, body in expected.answers:
                response = reader.read_response(method)
                seen.append(response.status)
                if response.status == 200 and method != b"HEAD" and response.body != body:
                    raise AssertionError(f"answer {response.body!r}, expected {body!r}")
                if response.status != 200:
                    raise AssertionError(f"status {response.status}, expected 200")
            if expected.error is not None:
                try:
                    response = reader.read_response()
                    seen.append(response.status)
                    if response.status != expected.error:
                        raise AssertionError(f"status {response.status}, not {expected.error}")
                    if response.header(b"connection") != b"close":
                        raise AssertionError("a refusal without connection: close")
                except ServerClosed:
                    if not expected.error_at_eof:
                        raise
                    seen.append(0)
            reader.read_closed()
        except Exception as exc:
            with tally.lock:
                tally.mismatches.append(f"{type(exc).__name__}: {exc} after {seen} for {data!r}")
            return
    with tally.lock:
        tally.statuses.update(seen)
        tally.silent_closes += seen.count(0)


def client(port: int, seed: int, count: int, tally: Tally) -> None:
    from tests.fuzz_mutations import SEEDS, mutate

    rng = random.Random(seed)
    for _ in range(count):
        data = mutate(rng, rng.choice(SEEDS)) + MARKER
        expected = expect(data)
        with tally.lock:
            tally.inputs += 1
            tally.skipped += not expected.predictable
        if expected.predictable:
            one_input(port, data, expected, tally)
        else:  # still sent: the server must survive it
            try:
                with socket.create_connection((HOST, port), timeout=10) as sock:
                    sock.sendall(data)
                    sock.shutdown(socket.SHUT_WR)
                    sock.recv(65536)
            except OSError:
                pass


def fuzz(port: int, seed: int, connections: int, requests: int) -> dict[str, Any]:
    """`connections` clients at once, `requests` inputs each; the figures as a dict."""
    sys.path.insert(0, str(REPO))
    from tests.http_client import ResponseReader

    tally = Tally()
    threads = [
        threading.Thread(target=client, args=(port, seed * 1000 + i, requests, tally))
        for i in range(connections)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with socket.create_connection((HOST, port), timeout=10) as sock:
        sock.sendall(b"GET /after HTTP/1.1\r\nHost: a\r\n\r\n")
        after = ResponseReader(sock).read_response()
    return {
        "inputs": tally.inputs,
        "statuses": dict(sorted(tally.statuses.items())),
        "silent_closes_at_eof": tally.silent_closes,
        "skipped_handoffs": tally.skipped,
        "mismatches": len(tally.mismatches),
        "first_mismatches": tally.mismatches[:5],
        "normal_request_after": after.status,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--connections", type=int, default=8, help="clients at once")
    parser.add_argument("--requests", type=int, default=250, help="mutated inputs per client")
    parser.add_argument("--seed", type=int, default=20240914)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    from tests.server_process import ServerProcess

    argv_ = ["--host", HOST, "--port", "0", "--app-dir", str(Path(__file__).parent)]
    # This checkout's pounce_sync, the one `expect` reads with, not an installed one.
    server = ServerProcess(
        [*argv_, "--workers", str(args.workers), "--no-access-log", "fuzz_wire:app"],
        env={"PYTHONPATH": str(REPO)},
    )
    server.wait_listening()
    try:
        figures = fuzz(server.port, args.seed, args.connections, args.requests)
        figures["server_running"] = server.proc.poll() is None
        figures["tracebacks"] = server.stderr.count("Traceback")
    finally:
        server.kill()
    print(json.dumps(figures))
    ok = not figures["mismatches"] and figures["server_running"] and not figures["tracebacks"]
    return 0 if ok and figures["normal_request_after"] == 200 else 1


if __name__ == "__main__":
    sys.exit(main())
