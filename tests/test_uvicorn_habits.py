"""What a uvicorn user types: POUNCE_SYNC_* variables, --env-file, uvicorn's flags,
`python -m pounce_sync` and `pounce_sync.run(app)`.

Every server here is a real process on 127.0.0.1 (tests/apps_habits.py).
"""

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pounce_sync.config import ConfigError
from pounce_sync.sources.environment import settings_from_environ

from .http_client import get_new, request
from .server_process import TESTS_DIR, ServerProcess, running_server
from .test_cli import one_line_error, run_cli, serve_args

GET = b"GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"

# -- POUNCE_SYNC_<SETTING> ----------------------------------------------------------------

# (environment, the settings it gives)
FROM_ENVIRON = [
    ({"POUNCE_SYNC_WORKERS": "4"}, {"workers": 4}),
    ({"POUNCE_SYNC_HTTP2": "false", "POUNCE_SYNC_WS": "Yes"}, {"http2": False, "ws": True}),
    ({"POUNCE_SYNC_ACCESS_LOG": "0"}, {"access_log": False}),
    ({"POUNCE_SYNC_TIMEOUT_KEEP_ALIVE": "2.5"}, {"timeout_keep_alive": 2.5}),
    ({"POUNCE_SYNC_APP": "main:app"}, {"app": "main:app"}),
    ({"POUNCE_SYNC_LIFESPAN": "off"}, {"lifespan": "off"}),
    (
        {"POUNCE_SYNC_BIND": "127.0.0.1:8000, unix:/run/a.sock,"},
        {"bind": ("127.0.0.1:8000", "unix:/run/a.sock")},
    ),
    (
        {"POUNCE_SYNC_HEADER": "Cache-Control: no-cache, no-store\nX-A:1\n"},
        {"header": ("Cache-Control: no-cache, no-store", "X-A:1")},
    ),
    ({"POUNCE_SYNC_WORKERS": ""}, {}),  # set but empty: unset, as click has it
    ({"POUNCE_SYNC_SSL_KEYFILE_PASSWORD": "secret"}, {}),  # its own meaning (server/tls.py)
    ({"UVICORN_WORKERS": "4", "POUNCE_OTHER": "x"}, {}),
]


@pytest.mark.parametrize(
    ("environ", "expected"), FROM_ENVIRON, ids=[str(e) for e, _ in FROM_ENVIRON]
)
def test_settings_from_environment_variables(environ: dict, expected: dict) -> None:
    assert settings_from_environ(environ) == expected


ENV_REJECTED = [
    ({"POUNCE_SYNC_WORKERS": "four"}, "POUNCE_SYNC_WORKERS must be a whole number, got 'four'"),
    ({"POUNCE_SYNC_WORKERS": "-1"}, "POUNCE_SYNC_WORKERS must be 0 or more, got -1"),
    ({"POUNCE_SYNC_HTTP2": "nope"}, "POUNCE_SYNC_HTTP2 must be true or false, got 'nope'"),
    ({"POUNCE_SYNC_PORT": "70000"}, "POUNCE_SYNC_PORT must be between 0 and 65535, got 70000"),
    ({"POUNCE_SYNC_WROKERS": "2"}, "POUNCE_SYNC_WROKERS names no setting (see docs/settings.md)"),
    (
        {"POUNCE_SYNC_HEADER": "X-A: 1,X-B: 2\nbad"},
        "POUNCE_SYNC_HEADER must look like 'name: value', got 'bad'",
    ),
]


@pytest.mark.parametrize(("environ", "message"), ENV_REJECTED, ids=[m for _, m in ENV_REJECTED])
def test_bad_environment_variable_is_one_line_naming_it(environ: dict, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from_environ(environ)
    assert str(caught.value) == message


def test_bad_environment_variable_on_the_command_line_is_exit_2() -> None:
    result = run_cli(*serve_args("apps:app"), env=_env(POUNCE_SYNC_WORKERS="four"))
    line = one_line_error(result)
    assert result.returncode == 2
    assert line == "pounce-sync: error: POUNCE_SYNC_WORKERS must be a whole number, got 'four'"


def _env(**extra: str) -> dict[str, str]:
    import os

    return {**os.environ, **extra}


def test_environment_variables_alone_serve() -> None:
    """No argument at all: app, directory, address and a header from the environment."""
    env = {
        "POUNCE_SYNC_APP": "apps_habits:app",
        "POUNCE_SYNC_APP_DIR": str(TESTS_DIR),
        "POUNCE_SYNC_HOST": "127.0.0.1",
        "POUNCE_SYNC_PORT": "0",
        "POUNCE_SYNC_HEADER": "X-A: 1, 2\nX-B:3",
    }
    server = ServerProcess([], env=env).wait_listening()
    try:
        response = request(server, GET % b"/")
    finally:
        server.kill()
    assert (response.status, response.body) == (200, b"habits ok")
    assert (response.header(b"x-a"), response.header(b"x-b")) == (b"1, 2", b"3")


def test_flags_beat_environment_variables() -> None:
    with running_server(
        "--no-server-header", app="apps_habits:app", env={"POUNCE_SYNC_SERVER_HEADER": "true"}
    ) as server:
        response = request(server, GET % b"/")
    assert response.header(b"server") is None


# -- --env-file -----------------------------------------------------------------------------


def _env_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "app.env"
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_env_file_reaches_the_app_in_every_worker_process(tmp_path: Path) -> None:
    """Loaded before the app's import, inherited by the forked workers (as uvicorn does)."""
    path = _env_file(
        tmp_path,
        """\
        # the app's own settings
        export HABITS_AT_IMPORT=loaded-first
        DATABASE_URL="postgres://u:p@db/app?sslmode=require"
        GREETING='hello # not a comment'
        """,
    )
    with running_server(
        "--env-file", path, "--worker-mode", "process", "--workers", "2", app="apps_habits:app"
    ) as server:
        assert get_new(server, "/at-import") == (200, b"loaded-first")
        pids = set()
        for _ in range(20):  # both processes answer, sooner or later
            assert get_new(server, "/env?name=DATABASE_URL") == (
                200,
                b"postgres://u:p@db/app?sslmode=require",
            )
            pids.add(get_new(server, "/pid")[1])
            if len(pids) == 2:
                break
        assert get_new(server, "/env?name=GREETING") == (200, b"hello # not a comment")


def test_env_file_does_not_override_the_environment(tmp_path: Path) -> None:
    path = _env_file(tmp_path, "HABITS_X=from-file\n")
    with running_server(
        "--env-file", path, app="apps_habits:app", env={"HABITS_X": "from-environment"}
    ) as server:
        assert get_new(server, "/env?name=HABITS_X") == (200, b"from-environment")


def test_pounce_sync_variables_in_the_env_file_are_settings(tmp_path: Path) -> None:
    """Unlike uvicorn's UVICORN_* ones, which click reads before the file is loaded."""
    path = _env_file(tmp_path, "POUNCE_SYNC_HEADER=X-From-Env-File: yes\n")
    with running_server("--env-file", path, app="apps_habits:app") as server:
        response = request(server, GET % b"/")
    assert response.header(b"x-from-env-file") == b"yes"


def test_malformed_env_file_is_one_line_with_file_and_line(tmp_path: Path) -> None:
    path = _env_file(tmp_path, "GOOD=1\nthis is not an assignment\n")
    result = run_cli(*serve_args("apps_habits:app", "--env-file", path))
    line = one_line_error(result)
    assert result.returncode == 2
    assert line == (
        f"pounce-sync: error: {path}:2: expected NAME=VALUE, got 'this is not an assignment'"
    )


def test_bad_setting_in_the_env_file_names_the_variable(tmp_path: Path) -> None:
    path = _env_file(tmp_path, "POUNCE_SYNC_LIFESPAN=sometimes\n")
    result = run_cli(*serve_args("apps_habits:app", "--env-file", path))
    line = one_line_error(result)
    assert result.returncode == 2
    assert "POUNCE_SYNC_LIFESPAN must be one of auto, on, off, got 'sometimes'" in line


# -- uvicorn's flags ----------------------------------------------------------------------------


def test_uvicorn_header_spelling_works() -> None:
    """uvicorn's `--header name:value`, repeated; uvicorn's --server-header/--date-header."""
    with running_server(
        "--header", "X-A:1", "--header", "x-b: two",
        "--server-header", "--no-date-header",
        app="apps_habits:app",
    ) as server:  # fmt: skip
        response = request(server, GET % b"/")
    assert (response.header(b"x-a"), response.header(b"x-b")) == (b"1", b"two")
    assert response.header(b"server") == b"pounce-sync"
    assert response.header(b"date") is None


def test_a_uvicorn_command_line_serves(tmp_path: Path) -> None:
    """A command line as it was written for uvicorn, with only our own spellings of
    nothing: every flag here is uvicorn's."""
    env_file = _env_file(tmp_path, "HABITS_AT_IMPORT=from-env-file\n")
    log_config = tmp_path / "logging.json"
    log_config.write_text(
        json.dumps(
            {
                "version": 1,
                "disable_existing_loggers": False,
                "handlers": {"err": {"class": "logging.StreamHandler"}},
                "root": {"handlers": ["err"], "level": "INFO"},
            }
        )
    )
    with running_server(
        "--env-file", env_file, "--log-config", str(log_config), "--log-level", "info",
        "--workers", "2", "--timeout-keep-alive", "5", "--proxy-headers",
        "--forwarded-allow-ips", "127.0.0.1", "--root-path", "/api", "--limit-concurrency", "100",
        "--backlog", "128", "--lifespan", "on", "--no-access-log", "--header", "X-Served:uv",
        "--timeout-graceful-shutdown", "5", "--ws-ping-interval", "20", "--ws-max-size", "65536",
        app="apps_habits:app",
    ) as server:  # fmt: skip
        response = request(server, GET % b"/at-import")
    assert (response.status, response.body) == (200, b"from-env-file")
    assert response.header(b"x-served") == b"uv"


# -- python -m pounce_sync and pounce_sync.run --------------------------------------------------


def test_python_dash_m_serves() -> None:
    server = ServerProcess(serve_args("apps_habits:app")).wait_listening()
    try:
        assert server.proc.args[1:3] == ["-m", "pounce_sync"]
        assert get_new(server) == (200, b"habits ok")
    finally:
        assert server.stop() == 0


RUN_SCRIPT = """\
import signal
import sys

sys.path.insert(0, {tests!r})
import pounce_sync
from apps_habits import app

code = pounce_sync.run(app, host="127.0.0.1", port=0, lifespan="on", workers={workers})
print("run returned", code, flush=True)
print("sigint handler restored:", signal.getsignal(signal.SIGINT) is signal.default_int_handler)
"""


@pytest.mark.parametrize("workers", [1, 2], ids=["one-process", "two-workers"])
def test_run_serves_an_app_object_from_a_script(tmp_path: Path, workers: int) -> None:
    script = tmp_path / "serve.py"
    script.write_text(RUN_SCRIPT.format(tests=str(TESTS_DIR), workers=workers))
    lifespan_log = tmp_path / "lifespan.log"
    server = ServerProcess(
        [], script=str(script), env={"HABITS_LIFESPAN_LOG": str(lifespan_log)}
    ).wait_listening()
    try:
        assert get_new(server) == (200, b"habits ok")
        assert get_new(server, "/slow?s=0.01") == (200, b"slow done")
    finally:
        code = server.stop(signal.SIGTERM)
    assert code == 0, server.stderr
    assert "run returned 0\n" in server.stdout_lines
    assert "sigint handler restored: True\n" in server.stdout_lines
    lines = lifespan_log.read_text().split("\n")
    assert [line.split()[0] for line in lines if line].count("startup") >= 1


def test_run_with_an_import_string(tmp_path: Path) -> None:
    script = tmp_path / "serve.py"
    script.write_text(
        "import pounce_sync\n"
        f"raise SystemExit(pounce_sync.run('apps_habits:app', app_dir={str(TESTS_DIR)!r}, "
        "host='127.0.0.1', port=0))\n"
    )
    server = ServerProcess([], script=str(script)).wait_listening()
    try:
        assert get_new(server) == (200, b"habits ok")
    finally:
        assert server.stop() == 0


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"workers": -1}, "--workers must be 0 or more, got -1"),
        ({"wrokers": 2}, "pounce_sync.run(): no such setting 'wrokers'"),
        ({"reload": True}, "reload needs the command line: pounce-sync --reload APP"),
    ],
)
def test_run_with_a_bad_setting_raises_and_the_caller_goes_on(settings: dict, message: str) -> None:
    """In a child interpreter: the error is an exception the caller catches, nothing exits."""
    code = textwrap.dedent(
        f"""
        import pounce_sync
        from pounce_sync.config import ConfigError
        try:
            pounce_sync.run(lambda scope, receive, send: None, **{settings!r})
        except ConfigError as exc:
            print("caught:", exc)
        print("still running")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"caught: {message}\nstill running\n"
    assert result.stderr == ""


def test_run_with_an_app_that_does_not_import_returns_the_exit_code(tmp_path: Path) -> None:
    code = "import pounce_sync\nprint('returned', pounce_sync.run('no_such_module_xyz:app'))\n"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    assert result.stdout == "returned 1\n"
    assert one_line_error(subprocess.CompletedProcess([], 1, "", result.stderr)).startswith(
        "pounce-sync: error: "
    )
