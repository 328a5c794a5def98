"""The ASGI lifespan protocol around the server's life."""

import signal

from ..http_client import ResponseReader, request
from ..server_process import ServerProcess, running_server


def test_startup_failure_exits_non_zero_with_the_apps_message() -> None:
    server = ServerProcess(["--port", "0", "--app-dir", "tests", "apps:failing_startup"])
    code = server.proc.wait(30)
    server.kill()
    assert code == 3
    errors = [line for line in server.stderr_lines if "error" in line.lower()]
    assert len(errors) == 1
    assert "database unreachable" in errors[0]
    assert "Traceback" not in server.stderr


def test_shutdown_runs_after_in_flight_requests_drain(tmp_path) -> None:
    marker = tmp_path / "shutdown"
    env = {"POUNCE_TEST_SHUTDOWN_FILE": str(marker)}
    with running_server(app="apps:shutdown_marker", env=env) as srv:
        sock = srv.connect()
        sock.sendall(b"GET /sleep?1 HTTP/1.1\r\nHost: t\r\n\r\n")
        srv.send_signal(signal.SIGTERM)
        response = ResponseReader(sock).read_response()
        assert not marker.exists()  # the request was still in flight
        sock.close()
        assert srv.wait_exit() == 0
    assert response.status == 200
    assert marker.read_text() == "shutdown\n"


def test_lifespan_off_never_calls_lifespan(tmp_path) -> None:
    marker = tmp_path / "shutdown"
    env = {"POUNCE_TEST_SHUTDOWN_FILE": str(marker)}
    with running_server("--lifespan", "off", app="apps:shutdown_marker", env=env) as srv:
        assert request(srv, b"GET / HTTP/1.0\r\n\r\n").body == b"Hello, world!"
        assert srv.stop() == 0
    assert not marker.exists()


def test_app_without_lifespan_support_still_serves_in_auto_mode() -> None:
    with running_server("--factory", app="apps:make_app") as srv:
        assert request(srv, b"GET / HTTP/1.0\r\n\r\n").body == b"from factory"
        assert srv.stop() == 0
