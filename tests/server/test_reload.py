"""--reload: a parent process restarts the server child when a watched file changes.

The server listens on a Unix socket in the test's directory: its address stays the
same across restarts, and no other test can take it in between.
"""

import os
import pty
import select
import signal
import socket
import sys
import time
from pathlib import Path

import pytest

from pounce_sync.config import Config
from pounce_sync.server.reload import FileWatcher

from ..http_client import ResponseReader
from ..server_process import TESTS_DIR, ServerProcess

DEADLINE = 30.0  # only turns a hang into a failure

APP = """\
import os


async def app(scope, receive, send):
    body = b"{version} %d" % os.getpid()
    await send({{"type": "http.response.start", "status": 200, "headers": []}})
    await send({{"type": "http.response.body", "body": body}})
"""


def _write_app(directory: Path, version: str) -> None:
    (directory / "mod.py").write_text(APP.format(version=version))


def _start(directory: Path) -> tuple[ServerProcess, Path]:
    uds = directory / "server.sock"
    args = ["--reload", "--app-dir", str(directory), "--uds", str(uds), "--lifespan", "off"]
    return ServerProcess([*args, "mod:app"]).wait_listening(), uds


def _get(uds: Path) -> bytes:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(str(uds))
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        return ResponseReader(sock).read_response().body


def _serving_pid(uds: Path, version: str) -> int:
    """Wait until the server answers with `version`; the pid of the process that did."""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        try:
            served, _, pid = _get(uds).decode().partition(" ")
        except OSError:  # between two children
            served = pid = ""
        if served == version:
            return int(pid)
        time.sleep(0.1)
    raise AssertionError(f"never served {version!r}")


def _wait_for_line(srv: ServerProcess, text: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while text not in srv.stderr:
        assert time.monotonic() < deadline, f"no {text!r} in:\n{srv.stderr}"
        time.sleep(0.1)


def _gone(pid: int) -> bool:
    """No such process, or a zombie nobody reaped yet."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rpartition(")")[2].split()[0] == "Z"


def test_a_change_restarts_the_server_an_excluded_one_does_not(tmp_path: Path) -> None:
    _write_app(tmp_path, "v1")
    srv, uds = _start(tmp_path)
    try:
        first = _serving_pid(uds, "v1")
        (tmp_path / "notes.txt").write_text("not *.py")
        (tmp_path / ".#mod.py").write_text("an editor's lock file")
        (tmp_path / "__pycache__").mkdir(exist_ok=True)
        (tmp_path / "__pycache__" / "stray.py").write_text("")
        _write_app(tmp_path, "v2")
        second = _serving_pid(uds, "v2")
        assert srv.stop() == 0
    finally:
        srv.kill()
    restarts = [line for line in srv.stderr.splitlines() if "Detected a change" in line]
    assert len(restarts) == 1, restarts
    assert restarts[0].endswith(
        f"Detected a change in {tmp_path / 'mod.py'}; restarting the server"
    )
    assert first != second and _gone(first) and _gone(second)


def test_clients_are_served_not_refused_while_the_server_restarts(tmp_path: Path) -> None:
    """The reloader holds the listening socket: between two children a connection waits
    in its queue. Binding in each child refused every connection in that gap."""
    _write_app(tmp_path, "v1")
    srv, uds = _start(tmp_path)
    answers: list[bytes] = []
    try:
        _serving_pid(uds, "v1")
        _write_app(tmp_path, "v2")
        deadline = time.monotonic() + DEADLINE
        while not answers or not answers[-1].startswith(b"v2"):
            assert time.monotonic() < deadline, "the new child never answered"
            answers.append(_get(uds))  # an OSError here is a refused or reset client
        assert srv.stop() == 0
    finally:
        srv.kill()
    assert answers[0].startswith(b"v1"), answers[0]  # the load spanned the restart
    assert not uds.exists()  # the reloader removes the socket it bound


def test_a_reloaded_server_keeps_its_tcp_port(tmp_path: Path) -> None:
    _write_app(tmp_path, "v1")
    args = ["--reload", "--app-dir", str(tmp_path), "--port", "0", "--lifespan", "off"]
    srv = ServerProcess([*args, "mod:app"]).wait_listening()
    try:
        _write_app(tmp_path, "v2")
        _wait_for_line(srv, "Detected a change")
        deadline = time.monotonic() + DEADLINE
        while srv.stderr.count("Listening on") < 2:
            assert time.monotonic() < deadline, srv.stderr
            time.sleep(0.1)
        assert srv.stop() == 0
    finally:
        srv.kill()
    listening = [line for line in srv.stderr.splitlines() if "Listening on" in line]
    assert len(set(line.partition("Listening on ")[2] for line in listening)) == 1, listening


def test_a_broken_app_waits_for_the_next_change(tmp_path: Path) -> None:
    _write_app(tmp_path, "v1")
    srv, uds = _start(tmp_path)
    try:
        _serving_pid(uds, "v1")
        (tmp_path / "mod.py").write_text("def broken(:\n")
        _wait_for_line(srv, "exited with code 1; waiting for a file change")
        assert srv.proc.poll() is None and "SyntaxError" in srv.stderr
        _write_app(tmp_path, "v3")
        fixed = _serving_pid(uds, "v3")
        assert srv.stop(signal.SIGINT) == 0
    finally:
        srv.kill()
    assert _gone(fixed)


def test_watched_files(tmp_path: Path) -> None:
    names = ["a.py", "b.txt", "c.html", "e.pyc", "f.py.swp", "g.py~", ".#h.py"]
    names += [".git/i.py", "__pycache__/j.py", "sub/k.py", "sub/build/l.py", "sub/m_test.py"]
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    config = Config(
        app_dir=str(tmp_path),
        reload_include=("*.html",),
        reload_exclude=("build", "*_test.py"),
    )
    found = FileWatcher.from_config(config).snapshot()
    assert sorted(Path(path).relative_to(tmp_path).as_posix() for path in found) == [
        "a.py",
        "c.html",
        "sub/k.py",
    ]


def _run_in_a_terminal(
    argv: list[str], env: dict[str, str], ready: bytes, count: int, then: bytes
) -> tuple[str, int]:
    """Run `argv` as the foreground job of a new pseudo-terminal, type `then` once it
    has shown `ready` `count` times, and return what the terminal showed and the exit
    status."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: the pty is its controlling terminal, its group the foreground
        os.execve(sys.executable, [sys.executable, *argv], {**os.environ, **env})
    shown = b""
    deadline = time.monotonic() + DEADLINE
    typed = False
    status = None
    try:
        while time.monotonic() < deadline:
            if select.select([fd], [], [], 0.1)[0]:
                try:
                    shown += os.read(fd, 65536)
                except OSError:  # EIO: every process on the terminal has exited
                    pass
            if not typed and shown.count(ready) >= count:
                os.write(fd, then)  # the line discipline sends SIGINT to the whole group
                typed = True
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
        else:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    finally:
        os.close(fd)
    return shown.decode(errors="replace"), os.waitstatus_to_exitcode(status or 0)


@pytest.mark.parametrize("workers", ["1", "2"])  # 2: a supervisor and its worker processes
def test_ctrl_c_in_a_terminal_stops_the_reloaded_server_gracefully(
    tmp_path: Path, workers: str
) -> None:
    """The terminal's SIGINT reaches the reloader and the server child at once (one
    process group); forwarding it as well would be the child's second signal, which
    means exit without the lifespan shutdown."""
    marker = tmp_path / "shutdown"
    argv = ["-m", "pounce_sync", "--reload", "--workers", workers, "--worker-mode", "process"]
    argv += ["--port", "0", "--app-dir", str(TESTS_DIR)]
    env = {"POUNCE_TEST_SHUTDOWN_FILE": str(marker)}
    started = b"Started server process"  # each worker process, after its lifespan startup
    shown, code = _run_in_a_terminal(
        [*argv, "apps:shutdown_marker"], env, started, int(workers), b"\x03"
    )
    assert "second signal" not in shown, shown
    assert "Reloader" in shown and "stopped" in shown, shown
    # Every worker process's lifespan shutdown ran.
    assert marker.read_text() == "shutdown\n" * int(workers), shown
    assert code == 0, shown
