"""Start a real pounce-sync process on loopback and talk to it over real sockets."""

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

TESTS_DIR = Path(__file__).parent
_LISTENING = re.compile(r"Listening on (?:http://(\S+):(\d+)|unix:(\S+))")
START_TIMEOUT = 30.0


class ServerProcess:
    """A pounce-sync subprocess; stderr and stdout are collected line by line."""

    def __init__(
        self,
        args: Sequence[str],
        env: dict[str, str] | None = None,
        script: str | None = None,
        **popen,
    ) -> None:
        """`args` for `python -m pounce_sync`, or for `python <script>` if given."""
        cmd = [sys.executable, *((script,) if script else ("-m", "pounce_sync")), *args]
        self.proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env={**os.environ, **(env or {})},
            **popen,
        )
        self.stderr_lines: list[str] = []
        self.stdout_lines: list[str] = []
        self._listening = threading.Event()
        self.host = ""
        self.port = 0
        self.unix_path = ""
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stderr, self.stderr_lines)),
            threading.Thread(target=self._read, args=(self.proc.stdout, self.stdout_lines)),
        ]
        for reader in self._readers:
            reader.daemon = True
            reader.start()

    def _read(self, stream, lines: list[str]) -> None:
        for line in stream:
            lines.append(line)
            m = _LISTENING.search(line)
            if m and m[3]:
                self.unix_path = m[3]
                self._listening.set()
            elif m:
                self.host, self.port = m[1].strip("[]"), int(m[2])
                self._listening.set()

    def wait_listening(self, timeout: float = START_TIMEOUT) -> "ServerProcess":
        deadline = time.monotonic() + timeout
        while not self._listening.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError("server did not start:\n" + self.stderr)
        return self

    @property
    def stderr(self) -> str:
        return "".join(self.stderr_lines)

    @property
    def stdout(self) -> str:
        return "".join(self.stdout_lines)

    def connect(self, timeout: float = 10.0) -> socket.socket:
        return socket.create_connection((self.host, self.port), timeout=timeout)

    def send_signal(self, signum: int = signal.SIGTERM) -> None:
        self.proc.send_signal(signum)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        self._close_pipes()
        return code

    def wait_exit(self, timeout: float = 20.0) -> int:
        """Wait for an exit already under way (no signal sent: a second one forces exit)."""
        code = self.proc.wait(timeout)
        self._close_pipes()
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._close_pipes()

    def _close_pipes(self) -> None:
        for reader in self._readers:
            reader.join(5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None and not stream.closed:
                stream.close()


@contextmanager
def running_server(*args: str, app: str | None = "apps:app", **kwargs) -> Iterator[ServerProcess]:
    """pounce-sync with the test apps importable, on a free port of 127.0.0.1."""
    argv = ["--host", "127.0.0.1", "--port", "0", "--app-dir", str(TESTS_DIR), *args]
    if app is not None:
        argv.append(app)
    server = ServerProcess(argv, **kwargs).wait_listening()
    try:
        yield server
    finally:
        server.kill()


def exchange(server: ServerProcess, raw: bytes, timeout: float = 10.0) -> bytes:
    """Send raw bytes, read until the server closes (or `timeout`).

    For tests whose subject is the bytes themselves; responses are read with
    http_client.py, never parsed from these.
    """
    with server.connect(timeout) as sock:
        sock.sendall(raw)
        return read_until_closed(sock)


def read_until_closed(sock: socket.socket) -> bytes:
    chunks = []
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)
