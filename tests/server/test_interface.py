"""Choosing the interface: ASGI 3, ASGI 2 or WSGI, once at load (pounce_sync/interface.py)."""

import socket
import subprocess
import sys

import pytest

from pounce_sync.server.interface import detect_interface, resolve_interface

from ..apps_wsgi import ASGI2App, FlaskLike, app, wsgi_with_default
from ..http_client import ResponseReader
from ..server_process import running_server

TIMEOUT = 30.0


def get_body(sock: socket.socket, path: str) -> bytes:
    sock.sendall(b"GET %s HTTP/1.1\r\nHost: test\r\n\r\n" % path.encode())
    return ResponseReader(sock).read_response().body


async def _asgi3(scope: dict, receive: object, send: object) -> None:
    pass


class _ASGI3Instance:
    async def __call__(self, scope: dict, receive: object, send: object) -> None:
        pass


@pytest.mark.parametrize(
    ("candidate", "interface"),
    [
        (app, "wsgi"),
        (FlaskLike(), "wsgi"),
        (wsgi_with_default, "asgi2"),  # three positional parameters
        (ASGI2App, "asgi2"),  # a class, although its __call__ is async
        (_asgi3, "asgi3"),
        (_ASGI3Instance(), "asgi3"),
        (lambda scope: None, "asgi2"),
    ],
)
def test_detect_interface(candidate: object, interface: str) -> None:
    assert detect_interface(candidate)[0] == interface


def test_asgi2_is_wrapped_and_explicit_interfaces_are_kept() -> None:
    assert resolve_interface(ASGI2App, "auto")[1] is not ASGI2App
    assert resolve_interface(app, "wsgi") == ("wsgi", app, "--interface wsgi")
    assert resolve_interface(_asgi3, "asgi3")[1] is _asgi3


@pytest.mark.parametrize(
    ("served", "args", "logged", "body"),
    [
        ("apps_wsgi:flask_like", (), "Interface: wsgi (auto: ", b"flask-like /x"),
        ("apps_wsgi:ASGI2App", (), "Interface: asgi2 (auto: ", b"asgi2 /x"),
        ("apps:app", (), "Interface: asgi3 (auto: ", b"Hello, world!"),
        (
            "apps_wsgi:wsgi_with_default",
            ("--interface", "wsgi"),
            "Interface: wsgi (--interface wsgi)",
            b"explicit wsgi",
        ),
    ],
)
def test_interface_served(served: str, args: tuple[str, ...], logged: str, body: bytes) -> None:
    with running_server("--no-access-log", *args, app=served) as srv, srv.connect(TIMEOUT) as sock:
        assert get_body(sock, "/x") == body
    assert logged in srv.stderr


def test_bad_interface_is_one_line_and_exit_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pounce_sync", "--interface", "wsgi3", "apps_wsgi:app"],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "--interface" in lines[0] and "wsgi3" in lines[0], result.stderr
