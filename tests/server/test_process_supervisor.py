"""Process mode: forked workers share the listener, are restarted, reloaded and drained."""

import os
import re
import signal
import threading
import time
from pathlib import Path

import pytest

from pounce_sync.server.listeners import bind_listeners
from pounce_sync.server.supervisor import ProcessSupervisor

from ..http_client import ResponseError, ResponseReader, request
from ..server_process import TESTS_DIR, ServerProcess, running_server

PROCESS = ("--worker-mode", "process", "--no-access-log")


def _pid_of_response(srv: ServerProcess, path: bytes = b"/pid") -> int:
    response = request(srv, b"GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" % path)
    return int(response.body)


def _children(pid: int) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                found.add(int(entry))
    return found


def _wait_for(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def _wait_children(srv: ServerProcess, count: int) -> set[int]:
    _wait_for(lambda: len(_children(srv.proc.pid)) == count)
    return _children(srv.proc.pid)


def test_each_worker_process_serves_on_the_shared_listener() -> None:
    with running_server("--workers", "2", *PROCESS) as srv:
        children = _wait_children(srv, 2)
        # One thread per process: while one process sleeps in a request, only the
        # other is waiting on the shared listener, so it must take the next connection.
        busy = ResponseReader(srv.connect())
        busy.sock.sendall(b"GET /sleep?1.5 HTTP/1.1\r\nHost: t\r\n\r\n")
        time.sleep(0.5)
        other = _pid_of_response(srv)
        busy.read_response()
        busy.sock.sendall(b"GET /pid HTTP/1.1\r\nHost: t\r\n\r\n")
        sleeper = int(busy.read_response().body)
        busy.sock.close()
        assert {sleeper, other} == children
        assert srv.stop() == 0
    assert "Worker mode: process (--worker-mode process): 2 worker processes" in srv.stderr


def test_killed_worker_process_is_replaced() -> None:
    with running_server("--workers", "2", *PROCESS) as srv:
        first = _wait_children(srv, 2)
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        _wait_for(lambda: len(_children(srv.proc.pid) - {victim}) == 2)
        assert victim not in _children(srv.proc.pid)
        for _ in range(5):
            assert _pid_of_response(srv) in _children(srv.proc.pid)
        assert srv.stop() == 0
    assert f"[{victim}] was killed by signal 9; restarting it" in srv.stderr


def test_restart_budget_exhausted_exits_non_zero_naming_the_worker() -> None:
    with running_server("--workers", "2", *PROCESS) as srv:
        killed: set[int] = set()
        deadline = time.monotonic() + 60
        while srv.proc.poll() is None and time.monotonic() < deadline:
            alive = _children(srv.proc.pid) - killed
            if len(alive) == 2:  # the last replacement is up: kill one more
                victim = min(alive)
                os.kill(victim, signal.SIGKILL)
                killed.add(victim)
            time.sleep(0.05)
        code = srv.wait_exit(30)
    assert code == 1
    assert len(killed) == 6  # five replaced, the sixth ends it
    assert "5 restarts within 60s already, shutting down" in srv.stderr
    assert "worker process" in srv.stderr.splitlines()[-3] + srv.stderr


def test_sigterm_drains_in_flight_requests_and_leaves_no_process() -> None:
    with running_server("--workers", "2", *PROCESS) as srv:
        children = _wait_children(srv, 2)
        sock = srv.connect()
        sock.sendall(b"GET /sleep?1 HTTP/1.1\r\nHost: t\r\n\r\n")
        time.sleep(0.2)
        srv.send_signal(signal.SIGTERM)
        response = ResponseReader(sock).read_response()
        sock.close()
        assert (response.status, response.body) == (200, b"slept")
        assert srv.wait_exit(30) == 0
    for pid in children:
        status = Path(f"/proc/{pid}/status")
        assert not status.exists() or "zombie" in status.read_text()


def test_workers_exit_when_the_supervisor_is_killed() -> None:
    with running_server("--workers", "2", *PROCESS) as srv:
        children = _wait_children(srv, 2)
        srv.proc.kill()
        srv.proc.wait(10)
        _wait_for(lambda: not any(os.path.exists(f"/proc/{pid}") for pid in children))


def test_sighup_replaces_every_worker_with_no_failed_request() -> None:
    with running_server("--workers", "2", *PROCESS) as srv:
        before = _wait_children(srv, 2)
        failures: list[str] = []
        done = threading.Event()
        count = 0

        def load() -> None:
            nonlocal count
            while not done.is_set():
                try:
                    response = request(srv, b"GET / HTTP/1.0\r\n\r\n", timeout=10)
                    if response.status != 200:
                        failures.append(repr(response))
                    count += 1
                except (OSError, ResponseError) as exc:
                    failures.append(repr(exc))

        clients = [threading.Thread(target=load) for _ in range(4)]
        for c in clients:
            c.start()
        time.sleep(0.5)
        srv.send_signal(signal.SIGHUP)
        _wait_for(lambda: len(_children(srv.proc.pid) & before) == 0)
        time.sleep(0.5)
        done.set()
        for c in clients:
            c.join(20)
        after = _wait_children(srv, 2)
        assert not before & after
        assert failures == []
        assert count > 50
        assert srv.stop() == 0


def test_lifespan_runs_in_every_worker_process(tmp_path) -> None:
    marker = tmp_path / "shutdown"
    env = {"POUNCE_TEST_SHUTDOWN_FILE": str(marker)}
    with running_server("--workers", "2", *PROCESS, app="apps:shutdown_marker", env=env) as srv:
        _wait_children(srv, 2)
        assert srv.stop() == 0
    assert marker.read_text() == "shutdown\n" * 2


def test_startup_failure_in_worker_processes_exits_3() -> None:
    srv = ServerProcess(
        ["--port", "0", "--workers", "2", *PROCESS, "--app-dir", "tests", "apps:failing_startup"]
    )
    assert srv.proc.wait(30) == 3
    srv.kill()
    assert "database unreachable" in srv.stderr


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_diagnostic_app_reports_the_mode(mode: str) -> None:
    import json

    with running_server("--workers", "2", "--worker-mode", mode, app=None) as srv:
        info = json.loads(request(srv, b"GET / HTTP/1.0\r\n\r\n").body)
    assert info["worker_mode"] == mode
    assert info["workers"] == 2
    assert (info["pid"] == srv.proc.pid) is (mode == "thread")


def _wait_line(srv: ServerProcess, text: str, timeout: float = 20.0) -> None:
    """Poll the collected stderr often: the tests below act inside a restart back-off."""
    deadline = time.monotonic() + timeout
    while text not in srv.stderr:
        assert time.monotonic() < deadline, f"no {text!r} in:\n{srv.stderr}"
        time.sleep(0.002)


def _started_pids(srv: ServerProcess) -> set[int]:
    return {int(pid) for pid in re.findall(r"Started worker process \d+ \[(\d+)\]", srv.stderr)}


def _gone(pid: int) -> bool:
    try:
        return "zombie" in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True


def _kill_and_wait_replacement(srv: ServerProcess) -> None:
    """One restart spent: SIGKILL a worker, wait until both slots are filled again."""
    before = _wait_children(srv, 2)
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    _wait_for(lambda: len(_children(srv.proc.pid) - {victim}) == 2)


GRACEFUL = ("--timeout-graceful-shutdown", "2")


def test_sigterm_during_a_restart_back_off_starts_no_worker_and_exits_in_time() -> None:
    # Before the fix the supervisor slept through the back-off and forked the replacement
    # anyway; that newborn, still on the supervisor's SIGTERM handler, swallowed the stop
    # and served until the SIGKILL at graceful timeout + 5 s.
    with running_server("--workers", "2", *PROCESS, *GRACEFUL) as srv:
        for _ in range(2):  # the third restart backs off 0.4 s: room to signal inside it
            _kill_and_wait_replacement(srv)
        victim = min(_wait_children(srv, 2))
        os.kill(victim, signal.SIGKILL)
        _wait_line(srv, f"[{victim}] was killed by signal 9; restarting it")
        srv.send_signal(signal.SIGTERM)
        assert srv.wait_exit(30) == 0
    assert "Shutting down: stopping 1 worker processes" in srv.stderr  # no replacement forked
    assert "did not stop in time" not in srv.stderr
    assert all(_gone(pid) for pid in _started_pids(srv))


def test_restart_budget_tripping_during_a_back_off_leaves_no_worker_serving() -> None:
    # Five restarts spent, the last with a 1.6 s back-off; the other worker dies during
    # it and trips the budget. Before the fix the back-off still ended in a fork, and the
    # newborn swallowed the supervisor's SIGTERM and answered 200 until it was SIGKILLed.
    with running_server("--workers", "2", *PROCESS, *GRACEFUL) as srv:
        for _ in range(4):
            _kill_and_wait_replacement(srv)
        first, second = sorted(_wait_children(srv, 2))
        os.kill(first, signal.SIGKILL)
        _wait_line(srv, f"[{first}] was killed by signal 9; restarting it")
        os.kill(second, signal.SIGKILL)
        _wait_line(srv, "5 restarts within 60s already, shutting down")
        answered: list[int] = []
        while srv.proc.poll() is None:
            try:
                answered.append(request(srv, b"GET / HTTP/1.0\r\n\r\n", timeout=2).status)
            except OSError:
                pass  # refused, reset or closed unanswered: nothing serves, as it should be
            time.sleep(0.05)
        assert srv.wait_exit(30) == 1
    assert 200 not in answered
    assert "Shutting down: stopping 0 worker processes" in srv.stderr
    assert "did not stop in time" not in srv.stderr
    assert all(_gone(pid) for pid in _started_pids(srv))


# The imports name the modules through the objects imported above, so a module that moves
# breaks this test at collection instead of inside the child script.
_SPAWN_THEN_SIGTERM = f"""
import os, signal, sys, time
from apps import app
from pounce_sync.config import Config
from {bind_listeners.__module__} import bind_listeners
from {ProcessSupervisor.__module__} import ProcessSupervisor

config = Config(host="127.0.0.1", port=0, workers=2, worker_mode="process",
                interface="asgi3", timeout_graceful_shutdown=1)
supervisor = ProcessSupervisor(config, app, bind_listeners(config))
supervisor._install_signal_handlers()
for _ in range(5):
    worker = supervisor._spawn(1)
    os.kill(worker.pid, signal.SIGTERM)  # reaches the child before it is set up
    deadline = time.monotonic() + 10
    while not os.waitpid(worker.pid, os.WNOHANG)[0]:
        if time.monotonic() > deadline:
            print("swallowed", flush=True)
            os.kill(worker.pid, signal.SIGKILL)
            sys.exit(1)
        time.sleep(0.01)
    supervisor.workers.clear()
print("stopped", flush=True)
"""


def test_sigterm_reaching_a_just_forked_worker_ends_it(tmp_path: Path) -> None:
    # Before the fix the child ran the supervisor's Python handler until its own setup
    # reset it: the SIGTERM only set the child's copy of the stop flag and it served on.
    script = tmp_path / "spawn_then_sigterm.py"
    script.write_text(_SPAWN_THEN_SIGTERM)
    env = {"PYTHONPATH": os.pathsep.join([str(TESTS_DIR), str(TESTS_DIR.parent)])}
    srv = ServerProcess([], script=str(script), env=env)
    try:
        code = srv.proc.wait(60)
    finally:
        srv.kill()
    assert (code, srv.stdout) == (0, "stopped\n"), srv.stderr
