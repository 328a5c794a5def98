"""The command line: one-line start-up errors, app loading, the diagnostic app, fd limits.

Every server here is a real `python -m pounce_sync` process on 127.0.0.1.
"""

import ast
import ctypes
import json
import os
import resource
import selectors
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pounce_sync.version import __version__

from .http_client import get_new
from .server_process import TESTS_DIR, running_server

TIMEOUT = 30.0
CAP_DAC_OVERRIDE = 1
CAP_NET_BIND_SERVICE = 10
PR_CAPBSET_DROP = 24


def run_cli(*args: str, **popen) -> subprocess.CompletedProcess:
    """Run pounce-sync to completion (start-up errors exit at once; a hang fails)."""
    return subprocess.run(
        [sys.executable, "-m", "pounce_sync", *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
        **popen,
    )


def one_line_error(result: subprocess.CompletedProcess) -> str:
    """Assert a non-zero exit with exactly one line on stderr and no traceback; return it."""
    assert result.returncode != 0, result
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].strip(), result.stderr
    return lines[0]


def serve_args(app: str, *args: str) -> list[str]:
    return ["--host", "127.0.0.1", "--port", "0", "--app-dir", str(TESTS_DIR), *args, app]


# -- start-up errors: one line, non-zero exit -----------------------------------------


@pytest.mark.parametrize(
    ("app", "expected"),
    [
        ("nocolon", "nocolon"),
        ("no_such_module_xyz:app", "no_such_module_xyz"),
        ("apps:no_such_attribute", "no_such_attribute"),
    ],
    ids=["no-colon", "missing-module", "missing-attribute"],
)
def test_bad_app_is_one_line_error(app: str, expected: str) -> None:
    line = one_line_error(run_cli(*serve_args(app)))
    assert expected in line


def test_app_that_is_not_callable_is_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "not_an_app.py").write_text("app = 42\n")
    line = one_line_error(run_cli(*serve_args("not_an_app:app", "--app-dir", str(tmp_path))))
    assert "not callable" in line


IMPORT_FAILURES = {
    "multi-line message": (
        "import explodes_helper\n",
        "def check():\n"
        "    raise RuntimeError('kaboom at import time\\n  second line')\n"
        "\n"
        "check()\n",
        "RuntimeError: kaboom at import time | second line",
        "explodes_helper.py:2",
    ),
    "raised in the standard library": (
        "import explodes_helper\n",
        "import json\n\njson.loads('{')\n",
        "JSONDecodeError: Expecting property name",
        "explodes_helper.py:3",  # the app's call, not json's own line
    ),
    "syntax error": (
        "import explodes_helper\n",
        "x = (\n",
        "SyntaxError: '(' was never closed",
        "explodes_helper.py:1",
    ),
}


def write_import_failure(where: Path, case: str) -> None:
    app_module, helper, _, _ = IMPORT_FAILURES[case]
    (where / "explodes_at_import.py").write_text(app_module)
    (where / "explodes_helper.py").write_text(helper)


@pytest.mark.parametrize("case", IMPORT_FAILURES)
def test_app_module_raising_at_import_is_one_line_error(tmp_path: Path, case: str) -> None:
    """The message as written (no repr, no literal \\n) and the app's line that raised."""
    write_import_failure(tmp_path, case)
    line = one_line_error(
        run_cli(*serve_args("explodes_at_import:app", "--app-dir", str(tmp_path)))
    )
    _, _, message, location = IMPORT_FAILURES[case]
    assert f'error while importing "explodes_at_import": {message}' in line
    assert line.endswith(f"({tmp_path / location})")


def test_import_failure_traceback_is_logged_at_debug(tmp_path: Path) -> None:
    write_import_failure(tmp_path, "multi-line message")
    result = run_cli(
        *serve_args("explodes_at_import:app", "--app-dir", str(tmp_path), "--log-level", "debug")
    )
    assert result.returncode != 0
    assert "Traceback (most recent call last)" in result.stderr
    assert "raise RuntimeError('kaboom at import time" in result.stderr  # the source line
    last = result.stderr.splitlines()[-1]
    assert last.startswith("pounce-sync: error: ") and "kaboom at import time" in last


def test_app_module_with_missing_dependency_names_the_dependency(tmp_path: Path) -> None:
    (tmp_path / "needs_missing_dep.py").write_text("import no_such_dependency_xyz\n")
    line = one_line_error(run_cli(*serve_args("needs_missing_dep:app", "--app-dir", str(tmp_path))))
    assert "No module named 'no_such_dependency_xyz'" in line
    assert line.endswith(f"({tmp_path / 'needs_missing_dep.py'}:1)")


def test_failing_factory_is_one_line_error() -> None:
    line = one_line_error(run_cli(*serve_args("apps:app", "--factory")))
    assert 'factory "apps:app" failed: TypeError: app() missing 3 required' in line


def test_port_in_use_is_one_line_error() -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        result = run_cli(
            "--host", "127.0.0.1", "--port", str(port), "--app-dir", str(TESTS_DIR), "apps:app"
        )
    line = one_line_error(result)
    assert str(port) in line
    assert "in use" in line


def _unprivileged_port_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text())
    except (OSError, ValueError):
        return 1024


def _drop_capabilities(*caps: int):
    """A preexec_fn: drop `caps` from the bounding set, so the exec'd server lacks them.

    The server must be unprivileged, but `nobody` may not be able to reach the
    interpreter (it may live under /root); dropping the capability from root does
    the same for bind() and works wherever the tests run as root.
    """
    libc = ctypes.CDLL(None, use_errno=True)

    def preexec() -> None:
        for cap in caps:
            if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")

    return preexec


def test_permission_denied_is_one_line_error(tmp_path: Path) -> None:
    root = os.geteuid() == 0
    if _unprivileged_port_start() > 80:
        # Port 80 without CAP_NET_BIND_SERVICE.
        where = ["--host", "127.0.0.1", "--port", "80"]
        caps = (CAP_NET_BIND_SERVICE,)
    else:
        # Any user may bind port 80 here: a Unix socket in a read-only directory instead.
        read_only = tmp_path / "read-only"
        read_only.mkdir(mode=0o555)
        where = ["--uds", str(read_only / "server.sock")]
        caps = (CAP_DAC_OVERRIDE,)
    popen = {"preexec_fn": _drop_capabilities(*caps)} if root else {}
    result = run_cli(*where, "--app-dir", str(TESTS_DIR), "apps:app", **popen)
    line = one_line_error(result)
    assert "permission denied" in line.lower()


@pytest.mark.parametrize(
    "flags",
    [
        ["--port", "70000"],
        ["--port", "eighty"],
        ["--workers", "-1"],
        ["--lifespan", "maybe"],
        ["--timeout-keep-alive", "0"],
        ["--timeout-header-read", "-1"],
        ["--limit-concurrency", "0"],
        ["--threads", "0"],
        ["--max-body-size", "-1"],
        ["--ws-ping-interval", "-1"],
        ["--h2-max-inbound-frame-size", "16383"],
        ["--ssl-cert-reqs", "3"],
        ["--header", "no-colon"],
        ["--header", "bad header: 1"],
        ["--health-path", "healthz"],
        ["--stream-path", "events"],
        ["--interface", "cgi"],
        ["--no-such-flag"],
    ],
    ids=lambda flags: " ".join(flags),
)
def test_invalid_flag_is_exit_2_and_one_line(flags: list[str]) -> None:
    result = run_cli(*serve_args("apps:app", *flags))
    line = one_line_error(result)
    assert result.returncode == 2
    assert flags[0] in line


# -- uvicorn's flags, and no abbreviations ------------------------------------------------

UVICORN_FLAGS = [
    (["--http", "h11"], "--http2"),
    (["--http=httptools"], "--http2"),
    (["--ws", "websockets"], "--no-ws refuses them"),
    (["--ws=wsproto"], "--no-ws refuses them"),
    (["--no-ws", "none"], "takes no value"),
    (["--ws-per-message-deflate", "false"], "--no-ws-per-message-deflate turns it off"),
    (["--loop", "uvloop"], "--coroutine-driver"),
    (["--use-colors"], "--log-config"),
    (["--no-use-colors"], "never coloured"),
    (["--h11-max-incomplete-event-size", "16384"], "--limit-request-headers-size"),
    (["--timeout-notify", "30"], "gunicorn -k pounce_sync.gunicorn.Worker --timeout N"),
    (["--timeout-worker-healthcheck", "5"], "meaningless here"),
    (["--ws-max-queue", "32"], "--ws-max-size"),
    (["--reload-delay", "0.5"], "every 0.25 s"),
    (["--ssl-version", "2"], "TLS 1.2"),
]


@pytest.mark.parametrize(
    ("flags", "hint"), UVICORN_FLAGS, ids=[" ".join(f) for f, _ in UVICORN_FLAGS]
)
def test_uvicorn_flag_without_a_counterpart_gets_a_hint(flags: list[str], hint: str) -> None:
    """Not read as another flag or as the app: one line naming the flag and what to use."""
    result = run_cli(*serve_args("apps:app", *flags))
    line = one_line_error(result)
    assert result.returncode == 2
    assert line.startswith(f"pounce-sync: error: {flags[0].partition('=')[0]}")
    assert hint in line


@pytest.mark.parametrize(
    ("command", "abbreviated"),
    [
        # The invalid port makes the server exit at once where the abbreviation is taken.
        (["--work", "2", "--port", "70000"], "--work"),
        (["--timeout-keep", "5", "--port", "70000"], "--timeout-keep"),
        (["bench", "--dur", "0"], "--dur"),  # taken, --duration 0 is out of range
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else value,
)
def test_flags_cannot_be_abbreviated(command: list[str], abbreviated: str) -> None:
    result = run_cli(*command)
    line = one_line_error(result)
    assert result.returncode == 2
    assert f"unrecognized arguments: {abbreviated}" in line


def test_hints_quote_the_numbers_the_code_uses() -> None:
    from async_pool.websocket import INBOX_LIMIT
    from pounce_sync.server.reload import POLL_INTERVAL
    from pounce_sync.server.restart_budget import RESTART_LIMIT, RESTART_WINDOW
    from pounce_sync.uvicorn_flags import UVICORN_ONLY

    assert f"at most {INBOX_LIMIT} messages" in UVICORN_ONLY["--ws-max-queue"].hint
    assert f"every {POLL_INTERVAL} s" in UVICORN_ONLY["--reload-delay"].hint
    restarts = f"at most {RESTART_LIMIT} restarts in {RESTART_WINDOW:g} s"
    assert restarts in UVICORN_ONLY["--timeout-worker-healthcheck"].hint


def _parser_calls(path: Path) -> list[ast.Call]:
    calls = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("ArgumentParser", "_OneLineParser"):
                calls.append(node)
    return calls


def test_every_argparse_parser_refuses_abbreviations() -> None:
    """Prefix matching read --http as --http2; no parser of the project may do it."""
    root = TESTS_DIR.parent
    found = 0
    for path in [*root.glob("pounce_sync/**/*.py"), *root.glob("loadtests/*.py")]:
        for call in _parser_calls(path):
            found += 1
            options = {kw.arg: kw.value for kw in call.keywords}
            value = options.get("allow_abbrev")
            assert isinstance(value, ast.Constant) and value.value is False, (
                f"{path.relative_to(root)}:{call.lineno}: ArgumentParser without allow_abbrev=False"
            )
    assert found >= 2  # the server's and the bench's at least


def test_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"pounce-sync {__version__} on ")


def test_bad_forwarded_allow_ips_names_the_bad_entry() -> None:
    result = run_cli(*serve_args("apps:app", "--forwarded-allow-ips", "127.0.0.1,nope"))
    line = one_line_error(result)
    assert result.returncode == 2
    assert "--forwarded-allow-ips" in line and "nope" in line


# -- loading the app -------------------------------------------------------------------


def test_factory_flag_calls_the_factory() -> None:
    with running_server("--factory", app="apps:make_app") as server:
        assert get_new(server) == (200, b"from factory")


def test_app_dir_is_searched_first(tmp_path: Path) -> None:
    (tmp_path / "app_dir_probe.py").write_text(
        textwrap.dedent(
            """
            async def app(scope, receive, send):
                if scope["type"] != "http":
                    return
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.body", "body": b"from app-dir"})
            """
        )
    )
    with running_server(
        "--app-dir", str(tmp_path), "--lifespan", "off", app="app_dir_probe:app"
    ) as server:
        assert get_new(server) == (200, b"from app-dir")


def test_no_app_serves_the_diagnostic_app() -> None:
    with running_server("--workers", "2", app=None) as server:
        status, body = get_new(server, "/diag")
    assert status == 200
    info = json.loads(body)
    assert info["python"] == sys.version.split()[0]
    gil_check = getattr(sys, "_is_gil_enabled", None)
    assert info["gil_enabled"] is (True if gil_check is None else gil_check())
    assert info["worker_mode"] in ("thread", "process")
    assert info["workers"] == 2
    assert info["thread"].startswith("worker-"), info
    assert info["path"] == "/diag"


# -- open-files limit ------------------------------------------------------------------


def _set_nofile(soft: int, hard: int):
    def preexec() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    return preexec


def _open_files_limits(pid: int) -> tuple[str, str]:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line[len("Max open files") :].split()[:2]
            return soft, hard
    raise AssertionError("no 'Max open files' line")


def test_open_files_soft_limit_is_raised_to_the_hard_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= 256:
        pytest.skip(f"open-files hard limit is only {hard}")
    with running_server(preexec_fn=_set_nofile(256, hard)) as server:
        soft, server_hard = _open_files_limits(server.proc.pid)
        assert get_new(server)[0] == 200
    assert soft == server_hard, (soft, server_hard)
    assert soft != "256"


def test_running_out_of_descriptors_slows_accepting_but_does_not_crash() -> None:
    """64 descriptors, 100 clients at once: some stall until others close, none kill it."""
    clients = 100
    with running_server(
        "--workers",
        "2",
        "--worker-mode",
        "thread",  # one process: its 64 descriptors are the whole budget
        "--timeout-keep-alive",
        "60",
        preexec_fn=_set_nofile(64, 64),
    ) as server:
        assert _open_files_limits(server.proc.pid) == ("64", "64")
        socks: list[socket.socket] = []
        try:
            for _ in range(clients):
                try:
                    sock = server.connect(TIMEOUT)
                    sock.sendall(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
                except OSError:
                    continue  # refused or reset under pressure: tolerated
                socks.append(sock)
            # Collect what gets answered while all of them stay open: at most what fits in
            # 64 descriptors. Stop once nothing new arrives for a second.
            answered = 0
            with selectors.DefaultSelector() as selector:
                for sock in socks:
                    selector.register(sock, selectors.EVENT_READ)
                while answered < len(socks):
                    ready = selector.select(1.0)
                    if not ready:
                        break
                    for key, _ in ready:
                        selector.unregister(key.fileobj)
                        answered += 1
            assert answered < clients  # the limit really was reached
            assert server.proc.poll() is None
        finally:
            for sock in socks:
                sock.close()
        # Descriptors come back once those clients are gone; accepting resumes.
        assert get_new(server) == (200, b"Hello, world!")
        assert server.proc.poll() is None
    assert "Traceback" not in server.stderr, server.stderr


def test_help_lists_every_flag() -> None:
    result = run_cli("--help")
    assert result.returncode == 0, result.stderr
    assert "--access-log-format" in result.stdout and "%(h)s" in result.stdout


def test_help_names_the_bench_subcommand() -> None:
    result = run_cli("--help")
    assert result.returncode == 0, result.stderr
    assert "pounce-sync bench" in " ".join(result.stdout.split())  # however it is wrapped
    bench = run_cli("bench", "--help")
    assert bench.returncode == 0 and bench.stdout.startswith("usage: pounce-sync bench")
