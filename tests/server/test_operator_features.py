"""Extra response headers, X-Request-ID, the health endpoint and the embedding API."""

import json
import re
import signal
import time

import pytest

from ..http_client import Response, ResponseReader, get, get_new, request
from ..server_process import TESTS_DIR, ServerProcess, running_server

GET = b"GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n%s\r\n"


def _get(srv, path: bytes, extra: bytes = b"") -> Response:
    return request(srv, GET % (path, extra))


def test_extra_headers_on_every_response() -> None:
    with running_server("--header", "X-Frame-Options: DENY", "--header", "x-served-by:a") as srv:
        responses = [_get(srv, b"/"), _get(srv, b"/status?404")]
    for response in responses:
        assert response.header(b"x-frame-options") == b"DENY"
        assert response.header(b"x-served-by") == b"a"


def test_request_id_is_kept_or_made_and_echoed() -> None:
    with running_server("--request-id") as srv:
        response = _get(srv, b"/scope", b"X-Request-ID: trace-42\r\n")
        assert response.header(b"x-request-id") == b"trace-42"
        assert json.loads(response.body)["extensions"] == {"request_id": {"id": "trace-42"}}
        made = _get(srv, b"/", b"X-Request-ID: has spaces in it\r\n").header(b"x-request-id")
        assert re.fullmatch(rb"[0-9a-f]{32}", made)
        srv.stop()
    assert "id=trace-42" in srv.stdout
    assert f"id={made.decode()}" in srv.stdout


def test_no_request_id_by_default() -> None:
    with running_server() as srv:
        response = _get(srv, b"/scope", b"X-Request-ID: trace-42\r\n")
    assert response.header(b"x-request-id") is None
    assert "extensions" not in json.loads(response.body)


def test_health_path_is_answered_without_the_app(tmp_path) -> None:
    log = tmp_path / "calls"
    env = {"POUNCE_TEST_CALL_LOG": str(log)}
    with running_server("--health-path", "/stream", env=env) as srv:
        response = _get(srv, b"/stream")
        assert (response.status, response.body) == (200, b"ok\n")
        response = _get(srv, b"/stream?3")  # another target: the app's own route
        assert response.header(b"transfer-encoding") == b"chunked"
        assert response.body == b"0\n1\n2\n"
    assert log.read_text() == "/stream\n"  # the app ran once, for the second request


def test_embedding_api_serves_an_app_object() -> None:
    embedded = ServerProcess([], script=str(TESTS_DIR / "embedded_server.py")).wait_listening()
    try:
        assert request(embedded, GET % (b"/", b"")).body == b"embedded"
        embedded.send_signal(signal.SIGTERM)
        assert embedded.wait_exit(20) == 0
    finally:
        embedded.kill()
    assert "Worker mode: thread (--worker-mode thread): 2 worker thread(s)" in embedded.stderr


@pytest.mark.parametrize("mode", [("thread", "1"), ("process", "2")])
def test_health_fails_during_drain_delay_while_requests_are_served(mode) -> None:
    """SIGTERM with --drain-delay: health says 503 at once, the app still answers."""
    args = ("--worker-mode", mode[0], "--workers", mode[1])
    with running_server("--health-path", "/healthz", "--drain-delay", "3", *args) as srv:
        with srv.connect() as sock:
            reader = ResponseReader(sock)
            assert get(reader, "/healthz") == (200, b"ok\n")
            srv.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 10
            while get(reader, "/healthz")[0] != 503:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            status, _ = get_new(srv, "/")  # new connections are still accepted and served
            assert status == 200
        assert srv.wait_exit(20) == 0


def test_sighup_to_a_single_process_is_ignored_with_a_warning() -> None:
    with running_server() as srv:
        srv.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while "SIGHUP ignored" not in srv.stderr:
            assert time.monotonic() < deadline and srv.proc.poll() is None
            time.sleep(0.05)
        assert get_new(srv, "/")[0] == 200
