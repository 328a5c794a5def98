"""--config FILE: TOML settings, in-process for the reading and errors, and through the
command line for the precedence defaults < file < environment < flags."""

from pathlib import Path
from typing import Any

import pytest

from pounce_sync.cli import config_from_args
from pounce_sync.config import Config, ConfigError
from pounce_sync.sources.config_file import load_config_file

from .http_client import request
from .server_process import TESTS_DIR, ServerProcess
from .test_cli import one_line_error, run_cli, serve_args

FULL = """
app = "main:app"
bind = ["127.0.0.1:8000", "unix:/run/app.sock"]
workers = 4
worker-mode = "process"
timeout_keep_alive = 10          # an int for a float setting
http2 = false
header = "X-Served-By:edge-1"    # one string for a list setting
forwarded-allow-ips = "10.0.0.0/8"
"""


def _write(tmp_path: Path, text: str, name: str = "pounce.toml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_a_file_gives_every_kind_of_setting(tmp_path: Path) -> None:
    assert load_config_file(_write(tmp_path, FULL)) == {
        "app": "main:app",
        "bind": ("127.0.0.1:8000", "unix:/run/app.sock"),
        "workers": 4,
        "worker_mode": "process",
        "timeout_keep_alive": 10.0,
        "http2": False,
        "header": ("X-Served-By:edge-1",),
        "forwarded_allow_ips": "10.0.0.0/8",
    }


def test_the_full_example_in_the_docs_is_a_valid_config(tmp_path: Path) -> None:
    docs = (TESTS_DIR.parent / "docs" / "frameworks.md").read_text()
    example = docs.split("```toml\n", 1)[1].split("```", 1)[0]
    settings = load_config_file(_write(tmp_path, example))
    config = Config(**settings)
    assert config.workers == 4 and config.bind[1] == "unix:/run/myproject.sock"


def test_pyproject_toml_holds_them_in_its_tool_table(tmp_path: Path) -> None:
    path = _write(
        tmp_path, '[project]\nname = "x"\n\n[tool.pounce-sync]\nworkers = 2\n', "pyproject.toml"
    )
    assert load_config_file(path) == {"workers": 2}


# (file text, the error after "<path>")
REJECTED: list[tuple[str, str]] = [
    ("wrokers = 4\n", ": wrokers: no such setting (see docs/settings.md)"),
    ("workers = 'four'\n", ": workers must be a whole number, got 'four'"),
    ("workers = true\n", ": workers must be a whole number, got True"),
    ("workers = 1.5\n", ": workers must be a whole number, got 1.5"),
    ("http2 = 'no'\n", ": http2 must be true or false, got 'no'"),
    ("timeout-keep-alive = '5'\n", ": timeout-keep-alive must be a number, got '5'"),
    ("bind = [8000]\n", ": bind must be a list of strings, got [8000]"),
    ("host = 1\n", ": host must be a string, got 1"),
    ("[workers]\nx = 1\n", ": workers must be a whole number, got {'x': 1}"),
    ("port = 70000\n", ": port must be between 0 and 65535, got 70000"),
    ("lifespan = 'maybe'\n", ": lifespan must be one of auto, on, off, got 'maybe'"),
    ("header = ['no colon']\n", ": header must look like 'name: value', got 'no colon'"),
    (
        "workers = 2\nworkers = 3\n",
        ": not valid TOML: Cannot overwrite a value (at line 2, column 12)",
    ),
    (
        "workers = 2\n'workers' = 3\n",
        ": not valid TOML: Cannot overwrite a value (at line 2, column 14)",
    ),
    ("ssl-certfile = 'a'\nssl_certfile = 'b'\n", ": ssl_certfile: given twice (with - and with _)"),
    ("workers =\n", ": not valid TOML: Invalid value (at line 1, column 10)"),
]


@pytest.mark.parametrize(("text", "message"), REJECTED, ids=[t for t, _ in REJECTED])
def test_bad_file_is_a_one_line_error_naming_file_and_key(
    tmp_path: Path, text: str, message: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config_file(path)
    assert str(caught.value) == path + message


def test_pyproject_without_the_table_says_so(tmp_path: Path) -> None:
    path = _write(tmp_path, "[project]\nname = 'x'\n", "pyproject.toml")
    with pytest.raises(ConfigError, match=r"pyproject.toml: no \[tool.pounce-sync\] table"):
        load_config_file(path)


def test_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read it: No such file or directory"):
        load_config_file(str(tmp_path / "nope.toml"))


# -- precedence, through the command line's own function ---------------------------------


def _config(monkeypatch: pytest.MonkeyPatch, argv: list[str], env: dict[str, str]) -> Any:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return config_from_args(argv)


def test_file_beats_defaults_environment_beats_file_flags_beat_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path, "workers = 2\nbacklog = 10\nport = 9001\n")
    env = {"POUNCE_SYNC_BACKLOG": "20", "POUNCE_SYNC_PORT": "9002"}
    config = _config(monkeypatch, ["--config", path, "--port", "9003"], env)
    assert (config.workers, config.backlog, config.port) == (2, 20, 9003)
    assert config.timeout_keep_alive == 5.0  # the built-in default


def test_a_flag_switched_off_beats_a_file_that_switches_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path, "access-log = false\nhttp2 = false\n")
    config = _config(monkeypatch, ["--config", path, "--http2"], {})
    assert (config.access_log, config.http2) == (False, True)


def test_repeated_flags_replace_the_files_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path, "header = ['X-A: 1', 'X-B: 2']\n")
    config = _config(monkeypatch, ["--config", path, "--header", "X-C: 3"], {})
    assert config.header == ("X-C: 3",)


def test_rules_across_settings_see_all_sources_together(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key in the file and its certificate from the environment make one valid config."""
    path = _write(tmp_path, "ssl-keyfile = 'key.pem'\n")
    config = _config(monkeypatch, ["--config", path], {"POUNCE_SYNC_SSL_CERTFILE": "cert.pem"})
    assert (config.ssl_certfile, config.ssl_keyfile) == ("cert.pem", "key.pem")


def test_bad_config_file_on_the_command_line_is_exit_2_and_one_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "workers = -1\n")
    result = run_cli(*serve_args("apps:app", "--config", path))
    assert (
        one_line_error(result) == f"pounce-sync: error: {path}: workers must be 0 or more, got -1"
    )
    assert result.returncode == 2


def test_config_file_serves(tmp_path: Path) -> None:
    """The app and its directory from the file alone: no APP argument."""
    path = _write(
        tmp_path,
        f'app = "apps:app"\napp-dir = "{TESTS_DIR}"\nhost = "127.0.0.1"\nport = 0\n'
        'header = ["X-From-File: yes"]\n',
    )
    server = ServerProcess(["--config", path]).wait_listening()
    try:
        response = request(server, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    finally:
        server.kill()
    assert (response.status, response.body) == (200, b"Hello, world!")
    assert response.header(b"x-from-file") == b"yes"
