"""WebSocket echo load: N clients at once, each sending M messages and awaiting each echo.

    .venv/bin/python loadtests/ws_echo.py --clients 200 --messages 200 --size 64
    .venv/bin/python loadtests/ws_echo.py --python .venv-ft/bin/python --worker-mode thread

Starts pounce-sync on 127.0.0.1 serving the echo app of tests/apps_websocket.py
(the one the Autobahn run uses), drives the clients from one asyncio loop with
wsproto's client side, and reports round trips per second, failed connections
and the server's peak RSS. Bounded: every client sends exactly --messages.
"""

import argparse
import asyncio
import os
import sys
import time
from collections import deque
from pathlib import Path

from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, BytesMessage, CloseConnection, Event, Request

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from proctree import free_port, peak_rss, start, stop, wait_until_answers  # noqa: E402


class EchoClient:
    """One connection: handshake, `messages` binary round trips, close."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.pending: deque[Event] = deque()

    async def next_event(self) -> Event:
        while not self.pending:
            self.ws.receive_data(await self.reader.read(65536) or None)
            self.pending.extend(self.ws.events())
        return self.pending.popleft()

    async def message(self) -> bytes:
        parts = []
        while True:
            event = await self.next_event()
            if not isinstance(event, BytesMessage):
                raise ConnectionError(f"expected a message, got {event!r}")
            parts.append(event.data)
            if event.message_finished:
                return b"".join(parts)

    async def run(self, messages: int, payload: bytes) -> None:
        self.writer.write(self.ws.send(Request(host="127.0.0.1", target="/echo")))
        if not isinstance(await self.next_event(), AcceptConnection):
            raise ConnectionError("the upgrade was refused")
        for _ in range(messages):
            self.writer.write(self.ws.send(BytesMessage(payload)))
            if await self.message() != payload:
                raise ConnectionError("the echo differs")
        self.writer.write(self.ws.send(CloseConnection(1000)))
        await self.next_event()


async def one_client(port: int, messages: int, payload: bytes) -> bool:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    try:
        await EchoClient(reader, writer).run(messages, payload)
        return True
    except (OSError, ConnectionError):
        return False
    finally:
        writer.close()


async def drive(port: int, clients: int, messages: int, size: int) -> tuple[int, float]:
    """How many clients failed, and the wall time of the whole run."""
    payload = b"x" * size
    started = time.perf_counter()
    results = await asyncio.gather(*(one_client(port, messages, payload) for _ in range(clients)))
    return results.count(False), time.perf_counter() - started


def server_argv(python: str, port: int, workers: int, mode: str) -> list[str]:
    return [python, "-m", "pounce_sync", "--port", str(port), "--workers", str(workers),
            "--worker-mode", mode, "--no-access-log", "--ws-ping-interval", "0",
            "--app-dir", str(HERE.parent / "tests"), "apps_websocket:app"]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--python", default=str(HERE.parent / ".venv" / "bin" / "python"))
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--worker-mode", default="auto")
    args = parser.parse_args()
    args.python = os.path.abspath(args.python)  # not resolve(): that would leave the venv
    port = free_port()
    (HERE / "results").mkdir(exist_ok=True)
    log = open(HERE / "results" / "ws_echo.log", "wb")  # noqa: SIM115
    proc = start(server_argv(args.python, port, args.workers, args.worker_mode), HERE, log)
    try:
        wait_until_answers(proc, port, "/", 30)
        with peak_rss(proc.pid) as rss:
            failed, seconds = asyncio.run(drive(port, args.clients, args.messages, args.size))
        trips = (args.clients - failed) * args.messages
        print(f"python: {args.python}, workers: {args.workers} ({args.worker_mode})")
        print(f"clients: {args.clients}, {args.messages} round trips of {args.size} bytes each")
        print(f"failed connections: {failed}")
        print(f"round trips: {trips} in {seconds:.2f} s = {trips / seconds:,.0f}/s")
        print(f"server peak RSS: {rss.rss_kib / 1024:.0f} MiB")
        return 0 if failed == 0 else 1
    finally:
        stop(proc)
        log.close()


if __name__ == "__main__":
    sys.exit(main())
