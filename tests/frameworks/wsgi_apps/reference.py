"""The reference servers the framework tests compare pounce-sync with, as subprocesses.

gunicorn for WSGI and uvicorn for ASGI, each on a free port of 127.0.0.1 (port 0: the
port is read from the line that announces it), its output collected as ServerProcess
collects pounce-sync's.
"""

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from ...server_process import ServerProcess

_ANNOUNCED = re.compile(r"(?:Listening at:|running on) http://([\d.]+):(\d+)")


class ReferenceServer(ServerProcess):
    """A `python -m <server>` subprocess, ready once it says where it listens."""

    def _read(self, stream, lines: list[str]) -> None:
        for line in stream:
            lines.append(line)
            m = _ANNOUNCED.search(line)
            if m and not self._listening.is_set():
                self.host, self.port = m[1], int(m[2])
                self._listening.set()


def _start(module: str, args: Sequence[str], env: dict[str, str] | None) -> ReferenceServer:
    server = ReferenceServer([module, *args], env=env, script="-m")  # python -m <module>
    return server.wait_listening()


@contextmanager
def gunicorn(
    app: str, app_dir: Path, *args: str, env: dict[str, str] | None = None
) -> Iterator[ReferenceServer]:
    """gunicorn's sync worker serving WSGI `app` (module:attr importable from `app_dir`)."""
    argv = ["--bind", "127.0.0.1:0", "--chdir", str(app_dir), "--no-control-socket", *args, app]
    server = _start("gunicorn", argv, env)
    try:
        yield server
    finally:
        server.kill()


@contextmanager
def uvicorn(
    app: str, app_dir: Path, *args: str, env: dict[str, str] | None = None
) -> Iterator[ReferenceServer]:
    """uvicorn serving ASGI `app` (module:attr importable from `app_dir`)."""
    argv = ["--host", "127.0.0.1", "--port", "0", "--app-dir", str(app_dir), *args, app]
    server = _start("uvicorn", argv, env)
    try:
        yield server
    finally:
        server.kill()
