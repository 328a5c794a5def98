"""Binding: several listeners at once, IPv6, Unix sockets and inherited descriptors."""

import json
import re
import socket
import subprocess
import sys
import time

import pytest

from ..http_client import Response, ResponseReader
from ..server_process import TESTS_DIR, ServerProcess

REQUEST = b"GET /scope HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"


def _start(*args: str, **popen) -> ServerProcess:
    srv = ServerProcess([*args, "--app-dir", str(TESTS_DIR), "apps:app"], **popen)
    deadline = time.monotonic() + 30
    while srv.stderr.count("Listening on") < sum(a in ("--bind", "--fd") for a in args):
        assert srv.proc.poll() is None and time.monotonic() < deadline, srv.stderr
        time.sleep(0.05)
    return srv


def _ask(family: int, address) -> Response:
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(address)
        sock.sendall(REQUEST)
        reader = ResponseReader(sock)
        response = reader.read_response()
        reader.read_closed()
    return response


def _scope(family: int, address) -> dict:
    response = _ask(family, address)
    assert response.status == 200, response
    return json.loads(response.body)


def test_tcp_and_unix_binds_at_once(tmp_path) -> None:
    path = tmp_path / "app.sock"
    srv = _start("--bind", "127.0.0.1:0", "--bind", f"unix:{path}")
    try:
        port = int(re.search(r"Listening on http://127\.0\.0\.1:(\d+)", srv.stderr)[1])
        assert _scope(socket.AF_INET, ("127.0.0.1", port))["client"][0] == "127.0.0.1"
        assert _scope(socket.AF_UNIX, str(path))["client"] is None
        assert srv.stop() == 0
    finally:
        srv.kill()
    assert not path.exists()


def test_ipv6_loopback() -> None:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("this machine has no IPv6 loopback")
    srv = _start("--bind", "[::1]:0")
    try:
        port = int(re.search(r"Listening on http://\[::1\]:(\d+)", srv.stderr)[1])
        assert _scope(socket.AF_INET6, ("::1", port))["server"] == ["::1", port]
        assert srv.stop() == 0
    finally:
        srv.kill()


def test_inherited_descriptor() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    srv = _start("--fd", str(listener.fileno()), pass_fds=[listener.fileno()])
    listener.close()  # the server holds its own copy now
    try:
        assert f"Listening on http://127.0.0.1:{port}" in srv.stderr
        assert _ask(socket.AF_INET, ("127.0.0.1", port)).status == 200
        assert srv.stop() == 0
    finally:
        srv.kill()


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--bind", "nonsense"], 2, "--bind must be"),
        (["--bind", "127.0.0.1:99999"], 2, "--bind must be"),
        (["--fd", "0"], 1, "--fd 0 is not a socket"),
        (["--fd", "999"], 1, "--fd 999"),
    ],
)
def test_bad_binds_are_one_line_errors(args: list[str], code: int, message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pounce_sync", *args],
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == code, result.stderr
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert "Traceback" not in result.stderr


def test_inherited_descriptor_that_is_not_listening() -> None:
    with socket.socket() as unbound:
        result = subprocess.run(
            [sys.executable, "-m", "pounce_sync", "--fd", str(unbound.fileno())],
            capture_output=True,
            text=True,
            timeout=30,
            pass_fds=[unbound.fileno()],
        )
    assert result.returncode == 1
    assert result.stderr.strip().endswith("is not a listening stream socket")


@pytest.mark.parametrize("flag", ["--uds", "--bind"])
def test_unix_socket_permissions(tmp_path, flag: str) -> None:
    import os
    import stat

    path = tmp_path / "app.sock"
    value = str(path) if flag == "--uds" else f"unix:{path}"
    srv = _start(flag, value, "--uds-mode", "660")
    try:
        deadline = time.monotonic() + 30
        while "Listening on" not in srv.stderr:
            assert srv.proc.poll() is None and time.monotonic() < deadline, srv.stderr
            time.sleep(0.05)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
        assert _ask(socket.AF_UNIX, str(path)).status == 200
        assert srv.stop() == 0
    finally:
        srv.kill()


def test_bad_uds_mode_is_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pounce_sync", "--uds", "/tmp/x.sock", "--uds-mode", "rw"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "--uds-mode must be octal" in result.stderr
