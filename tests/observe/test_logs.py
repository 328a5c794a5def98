"""--log-config: dictConfig (JSON) and fileConfig (INI) files, and one-line errors."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from ..http_client import ResponseReader, request
from ..server_process import running_server

GET = b"GET /logged?x=1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"


# Root's handler writes to stderr, where the test harness looks for "Listening on".
ROOT_FORMAT = "ROOT %(name)s %(message)s"


def _json_config(log: Path) -> str:
    """The access logger to a file of its own; everything else propagates to root."""
    return json.dumps(
        {
            "version": 1,
            "formatters": {
                "plain": {"format": "CUSTOM %(name)s %(message)s"},
                "root": {"format": ROOT_FORMAT},
            },
            "handlers": {
                "file": {
                    "class": "logging.FileHandler",
                    "filename": str(log),
                    "formatter": "plain",
                },
                "stderr": {
                    "class": "logging.StreamHandler",
                    "stream": "ext://sys.stderr",
                    "formatter": "root",
                },
            },
            "root": {"handlers": ["stderr"], "level": "INFO"},
            "loggers": {"pounce_sync.access": {"handlers": ["file"], "propagate": False}},
        }
    )


def _ini_config(log: Path) -> str:
    return f"""
[loggers]
keys=root,access
[handlers]
keys=file,stderr
[formatters]
keys=plain,root
[logger_root]
level=INFO
handlers=stderr
[logger_access]
level=INFO
handlers=file
propagate=0
qualname=pounce_sync.access
[handler_file]
class=FileHandler
args=({str(log)!r},)
formatter=plain
[handler_stderr]
class=StreamHandler
args=(sys.stderr,)
formatter=root
[formatter_plain]
format=CUSTOM %(name)s %(message)s
[formatter_root]
format={ROOT_FORMAT}
"""


@pytest.mark.parametrize(("suffix", "render"), [(".json", _json_config), (".ini", _ini_config)])
def test_access_lines_go_where_the_file_says(tmp_path: Path, suffix: str, render) -> None:
    log = tmp_path / "access.log"
    config = tmp_path / f"logging{suffix}"
    config.write_text(render(log))
    with running_server("--log-config", str(config)) as srv:
        assert request(srv, GET).status == 200
        assert srv.stop() == 0
    lines = log.read_text().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("CUSTOM pounce_sync.access 127.0.0.1:")
    assert '"GET /logged?x=1 HTTP/1.1" 200 ' in lines[0]
    assert "/logged" not in srv.stdout  # the built-in handler was replaced
    assert "ROOT pounce_sync.error Listening on http://127.0.0.1:" in srv.stderr


# -- a file that configures only the root logger gets every line ------------------------

ROOT_ONLY = {
    "version": 1,
    "formatters": {"root": {"format": ROOT_FORMAT}},
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stderr",
            "formatter": "root",
        }
    },
    "root": {"handlers": ["stderr"], "level": "INFO"},
}

ROOT_ONLY_INI = f"""
[loggers]
keys=root
[handlers]
keys=stderr
[formatters]
keys=root
[logger_root]
level=INFO
handlers=stderr
[handler_stderr]
class=StreamHandler
args=(sys.stderr,)
formatter=root
[formatter_root]
format={ROOT_FORMAT}
"""

ROOT_ONLY_YAML = f"""
version: 1
formatters:
  root:
    format: "{ROOT_FORMAT}"
handlers:
  stderr:
    class: logging.StreamHandler
    stream: ext://sys.stderr
    formatter: root
root:
  handlers: [stderr]
  level: INFO
"""

needs_yaml = pytest.mark.skipif(
    importlib.util.find_spec("yaml") is None, reason="PyYAML is not installed"
)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("logging.json", json.dumps(ROOT_ONLY)),
        ("logging.ini", ROOT_ONLY_INI),
        pytest.param("logging.yaml", ROOT_ONLY_YAML, marks=needs_yaml),
    ],
)
def test_a_root_only_config_replaces_the_built_in_handlers(
    tmp_path: Path, name: str, text: str
) -> None:
    """The server's loggers propagate to root: its format for every line, none of ours."""
    config = tmp_path / name
    config.write_text(text)
    with running_server("--log-config", str(config)) as srv:
        assert request(srv, GET).status == 200
        assert srv.stop() == 0
    assert "ROOT pounce_sync.error Listening on http://127.0.0.1:" in srv.stderr
    access = [line for line in srv.stderr_lines if "/logged" in line]
    assert len(access) == 1 and access[0].startswith("ROOT pounce_sync.access 127.0.0.1:")
    assert srv.stdout == ""  # the built-in access handler is gone
    assert "[INFO]" not in srv.stderr  # and so is the built-in error handler's format


BAD_FILES = [
    ("missing.json", None, "no such file"),
    ("broken.json", "{not json", "Expecting property name"),
    ("handler.json", '{"version": 1, "handlers": {"h": {"class": "no.Such"}}}', "handler 'h'"),
    ("bad.ini", "[loggers]\nkeys=root\n", "missing 'formatters'"),
]
if importlib.util.find_spec("yaml") is None:
    BAD_FILES.append(("logging.yaml", "version: 1\n", "need PyYAML"))


@pytest.mark.parametrize(("name", "text", "reason"), BAD_FILES)
def test_a_bad_file_is_a_one_line_error(tmp_path: Path, name: str, text, reason: str) -> None:
    path = tmp_path / name
    if text is not None:
        path.write_text(text)
    result = subprocess.run(
        [sys.executable, "-m", "pounce_sync", "--port", "0", "--log-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"pounce-sync: error: --log-config {path}: ")
    assert reason in result.stderr


# -- --log-level debug: lifespan and connection events ------------------------------------

DEBUG_EVENTS = (
    "ASGI lifespan: startup complete",
    "ASGI lifespan: shutdown complete",
    "Connection from 127.0.0.1:",
    "closed after 1 request(s)",
)


def _serve_two_connections(*args: str) -> str:
    """One request on each of two connections, then a clean stop; all of stderr."""
    with running_server("--no-access-log", *args) as srv:
        assert request(srv, GET).status == 200  # the server closes: Connection: close
        with srv.connect() as sock:  # the client closes after its answer
            sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            assert ResponseReader(sock).read_response().status == 200
        assert srv.stop() == 0
    return srv.stderr


def test_debug_logs_lifespan_and_connection_events() -> None:
    stderr = _serve_two_connections("--log-level", "debug")
    for event in DEBUG_EVENTS:
        assert event in stderr, f"{event!r} not logged:\n{stderr}"
    assert stderr.count(" open (http)") == 2
    assert stderr.count("ASGI lifespan: startup sent, waiting for the application") == 1


def test_info_logs_none_of_them() -> None:
    stderr = _serve_two_connections()
    assert not [event for event in DEBUG_EVENTS if event in stderr], stderr
