"""Django on pounce-sync, WSGI and ASGI, side by side with gunicorn and uvicorn.

The project is made once per module by `django-admin startproject` in a temporary
directory (wsgi_apps/django_project.py), with a small app, a migrated SQLite database,
a superuser and WhiteNoise. pounce-sync serves it with `--app-dir <project>` and
DJANGO_SETTINGS_MODULE in the environment: the WSGI application in thread and process
mode, the ASGI application in thread mode; gunicorn (gthread) and uvicorn are the
references. Each test asks every server the same and compares what matters.
"""

import hashlib
import json
import re
import sys
import time
from collections.abc import Iterator
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

import pytest

from ..http_client import Response, ResponseReader, request
from ..server_process import ServerProcess, running_server
from .wsgi_apps import reference
from .wsgi_apps.django_project import ADMIN_PASSWORD, ADMIN_USER, SETTINGS, make_project

TIMEOUT = 30.0
WSGI, ASGI = "mysite.wsgi:application", "mysite.asgi:application"
STATIC = "/static/admin/css/base.css"
_TOKEN = re.compile(rb'name="csrfmiddlewaretoken" value="([^"]+)"')


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_project(tmp_path_factory.mktemp("django"))


@pytest.fixture(scope="module")
def servers(project: Path) -> Iterator[dict[str, ServerProcess]]:
    env = {"DJANGO_SETTINGS_MODULE": SETTINGS}
    args = ("--workers", "2", "--no-access-log", "--app-dir", str(project))
    gthread = ("--worker-class", "gthread", "--threads", "2")
    with (
        running_server(*args, "--worker-mode", "thread", app=WSGI, env=env) as wsgi_threads,
        running_server(*args, "--worker-mode", "process", app=WSGI, env=env) as wsgi_processes,
        running_server(*args, "--worker-mode", "thread", app=ASGI, env=env) as asgi_threads,
        reference.gunicorn(WSGI, project, *gthread, env=env) as gunicorn,
        reference.uvicorn(ASGI, project, "--lifespan", "off", env=env) as uvicorn,
    ):
        yield {
            "wsgi-thread": wsgi_threads,
            "wsgi-process": wsgi_processes,
            "asgi-thread": asgi_threads,
            "gunicorn": gunicorn,
            "uvicorn": uvicorn,
        }


def is_asgi(name: str) -> bool:
    return name.startswith("asgi") or name == "uvicorn"


def get(path: str, *headers: str, method: str = "GET") -> bytes:
    return "\r\n".join([f"{method} {path} HTTP/1.1", "Host: test", *headers, "", ""]).encode()


def post(path: str, body: bytes, content_type: str, *headers: str) -> bytes:
    extra = (f"Content-Type: {content_type}", f"Content-Length: {len(body)}", *headers)
    return get(path, *extra, method="POST") + body


def cookies(response: Response) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    for value in response.header_values(b"set-cookie"):
        jar.load(value.decode())
    return {name: morsel.value for name, morsel in jar.items()}


# -- the admin, its login and CSRF ------------------------------------------------------
def login_page(server: ServerProcess) -> tuple[str, str]:
    """GET the login page: (the csrftoken cookie, the form's csrfmiddlewaretoken)."""
    page = request(server, get("/admin/login/?next=/admin/"))
    assert page.status == 200
    token = _TOKEN.search(page.body)
    assert token is not None, page.body[:500]
    return cookies(page)["csrftoken"], token[1].decode()


def test_admin_login_with_csrf(servers: dict[str, ServerProcess]) -> None:
    for name, server in servers.items():
        cookie, token = login_page(server)
        form = {"csrfmiddlewaretoken": token, "username": ADMIN_USER}
        form |= {"password": ADMIN_PASSWORD, "next": "/admin/"}
        raw = post(
            "/admin/login/?next=/admin/",
            urlencode(form).encode(),
            "application/x-www-form-urlencoded",
            f"Cookie: csrftoken={cookie}",
        )
        response = request(server, raw)
        assert (response.status, response.header(b"location")) == (302, b"/admin/"), name
        session = cookies(response)["sessionid"]
        index = request(server, get("/admin/", f"Cookie: csrftoken={cookie}; sessionid={session}"))
        assert index.status == 200 and b"Site administration" in index.body, name


def test_admin_login_without_the_token_is_403(servers: dict[str, ServerProcess]) -> None:
    for name, server in servers.items():
        cookie, _ = login_page(server)
        body = urlencode({"username": ADMIN_USER, "password": ADMIN_PASSWORD}).encode()
        raw = post(
            "/admin/login/",
            body,
            "application/x-www-form-urlencoded",
            f"Cookie: csrftoken={cookie}",
        )
        response = request(server, raw)
        assert response.status == 403 and b"CSRF" in response.body, name


# -- the app ----------------------------------------------------------------------------
def test_form_post_urlencoded_and_multipart(servers: dict[str, ServerProcess]) -> None:
    upload = bytes(range(256)) * 1000
    boundary = "djangoBoundary42"
    multipart = b"".join(
        [
            f'--{boundary}\r\nContent-Disposition: form-data; name="title"\r\n\r\nhi\r\n'.encode(),
            f'--{boundary}\r\nContent-Disposition: form-data; name="doc"; filename="d.bin"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n".encode()
            + upload
            + b"\r\n",
            f"--{boundary}--\r\n".encode(),
        ]
    )
    plain = post("/shop/form/", b"a=1&b=x%20y&b=2", "application/x-www-form-urlencoded")
    parts = post("/shop/form/", multipart, f"multipart/form-data; boundary={boundary}")
    doc = {"name": "d.bin", "sha256": hashlib.sha256(upload).hexdigest()}
    for name, server in servers.items():
        response = request(server, plain)
        assert json.loads(response.body) == {"post": {"a": ["1"], "b": ["x y", "2"]}, "files": {}}
        response = request(server, parts)
        want = {"post": {"title": ["hi"]}, "files": {"doc": doc}}
        assert (response.status, json.loads(response.body)) == (200, want), name


def test_static_file_from_whitenoise(servers: dict[str, ServerProcess], project: Path) -> None:
    expected = (project / "staticfiles" / STATIC.removeprefix("/static/")).read_bytes()
    fields = {}
    for name, server in servers.items():
        response = request(server, get(STATIC))
        assert (response.status, response.body == expected) == (200, True), name
        fields[name] = [response.header(h) for h in (b"content-type", b"last-modified", b"etag")]
        assert response.header(b"content-length") in (None, str(len(expected)).encode()), name
        again = request(server, get(STATIC, f"If-None-Match: {response.header(b'etag').decode()}"))
        assert (again.status, again.body) == (304, b""), name
    assert len({json.dumps([str(v) for v in got]) for got in fields.values()}) == 1, fields


def test_streaming_http_response(servers: dict[str, ServerProcess], tmp_path: Path) -> None:
    """The first block arrives while the view waits for the gate: the stream is not buffered.

    A sync iterator under WSGI, an async one under ASGI (Django warns about a sync one there).
    """
    for name, server in servers.items():
        gate = tmp_path / f"gate-{name}"
        path = "/shop/astream/" if is_asgi(name) else "/shop/stream/"
        with server.connect(TIMEOUT) as sock:
            sock.sendall(get(f"{path}?gate={gate}"))
            reader = ResponseReader(sock)
            head = reader.read_head()
            assert (head.status, head.header(b"transfer-encoding")) == (200, b"chunked"), name
            assert reader.read_chunk() == b"first\n"
            assert not gate.exists()
            gate.touch()
            assert reader.read_chunk() == b"second\n"
            assert reader.read_chunk() is None


def test_database_from_worker_threads(servers: dict[str, ServerProcess]) -> None:
    """The ORM works from every worker; under WSGI the view runs on the worker thread."""
    for name, server in servers.items():
        answer = json.loads(request(server, get("/shop/users/")).body)
        assert answer["users"] == 1, name
        if name.startswith("wsgi"):
            assert answer["thread"].startswith("worker-"), name


def test_gil_stays_off_on_a_free_threaded_build(servers: dict[str, ServerProcess]) -> None:
    """On 3.13t, importing Django (admin, auth, sessions, WhiteNoise) leaves the GIL off."""
    if getattr(sys, "_is_gil_enabled", lambda: True)():
        pytest.skip("a GIL build: nothing to learn (CI's 3.13t leg runs this)")
    for name in ("wsgi-thread", "asgi-thread"):
        assert json.loads(request(servers[name], get("/shop/users/")).body)["gil"] is False


def test_view_that_raises_is_djangos_500_with_the_traceback_logged(
    servers: dict[str, ServerProcess],
) -> None:
    for name, server in servers.items():
        response = request(server, get("/shop/boom/"))
        assert (response.status, b"Server Error (500)" in response.body) == (500, True), name
        deadline = time.monotonic() + TIMEOUT
        while "RuntimeError: django view failed on purpose" not in server.stderr:
            assert time.monotonic() < deadline, f"{name}: no traceback\n{server.stderr}"
            time.sleep(0.02)
        assert "Internal Server Error: /shop/boom/" in server.stderr, name


def test_asgi_lifespan_unsupported_is_one_info_line(servers: dict[str, ServerProcess]) -> None:
    """Django's ASGI handler refuses lifespan scopes; uvicorn's --lifespan auto says the same."""
    stderr = servers["asgi-thread"].stderr
    assert "ASGI 'lifespan' protocol appears unsupported." in stderr
    assert "Traceback" not in stderr.split("Listening on")[0]
