"""TLS on the sync path: real TLS clients against a real server on 127.0.0.1.

Certificates are made for each test session with the openssl command (see
tls_server.py). Nothing asserts on wall-clock durations: socket timeouts are
generous and only turn a hang into a failure.
"""

import http.client
import json
import os
import select
import shutil
import socket
import ssl
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..http_client import ResponseReader, get
from ..server_process import TESTS_DIR, read_until_closed
from ..tls_server import (
    KEY_PASSWORD,
    BIOClient,
    Certs,
    TLSServerProcess,
    client_context,
    make_certs,
    running_tls_server,
)

OPENSSL = shutil.which("openssl")
CURL = shutil.which("curl")
pytestmark = pytest.mark.skipif(OPENSSL is None, reason="the openssl command makes the certs")

TIMEOUT = 30.0
FIVE_MB = 5 * 1024 * 1024
HELLO = (200, b"Hello, world!")


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    assert OPENSSL is not None
    return make_certs(OPENSSL, tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module", params=["thread", "process"])
def server(request: pytest.FixtureRequest, certs: Certs) -> Iterator[TLSServerProcess]:
    """Two workers: threads in one process, or two processes forked after the context."""
    with running_tls_server(certs, "--workers", "2", "--worker-mode", request.param) as srv:
        yield srv
    assert "Traceback" not in srv.stderr, srv.stderr


def request(path: str, body: bytes | None = None) -> bytes:
    if body is None:
        return b"GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n" % path.encode()
    head = b"POST %s HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n\r\n"
    return head % (path.encode(), len(body)) + body


def readable(sock: socket.socket, wait: float) -> bool:
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(wait * 1000))


def closed_by_server(sock: socket.socket) -> bool:
    """Reads (raw bytes, e.g. a TLS alert) until EOF or reset; True once that came."""
    try:
        read_until_closed(sock)
    except TimeoutError:
        return False
    return True


# -- serving over TLS, in thread and in process mode ----------------------------------------


def test_get_and_post_on_one_keep_alive_connection(server: TLSServerProcess, certs: Certs) -> None:
    with server.connect_tls(client_context(certs)) as sock:
        reader = ResponseReader(sock)
        assert get(reader) == HELLO
        sock.sendall(request("/echo", b"posted over TLS"))
        response = reader.read_response(b"POST")
        assert (response.status, response.body) == (200, b"posted over TLS")
        assert response.header(b"connection") != b"close"
        assert get(reader, "/again") == HELLO


def test_pipelined_requests_are_answered_in_order(server: TLSServerProcess, certs: Certs) -> None:
    bodies = [b"first", b"second" * 1000, b"third"]
    with server.connect_tls(client_context(certs)) as sock:
        sock.sendall(b"".join(request("/echo", body) for body in bodies) + request("/"))
        reader = ResponseReader(sock)
        for body in bodies:
            assert reader.read_response(b"POST").body == body
        assert reader.read_response().body == b"Hello, world!"


def test_scope_scheme_is_https(server: TLSServerProcess, certs: Certs) -> None:
    with server.connect_tls(client_context(certs)) as sock:
        status, body = get(ResponseReader(sock), "/scope")
    scope = json.loads(body)
    assert status == 200
    assert scope["scheme"] == "https"
    assert scope["server"] == ["127.0.0.1", server.port]


def test_alpn_prefers_h2_and_offers_http11(server: TLSServerProcess, certs: Certs) -> None:
    context = client_context(certs)
    context.set_alpn_protocols(["h2", "http/1.1"])
    with server.connect_tls(context) as sock:
        assert sock.selected_alpn_protocol() == "h2"
    context = client_context(certs)
    context.set_alpn_protocols(["http/1.1"])
    with server.connect_tls(context) as sock:
        assert sock.selected_alpn_protocol() == "http/1.1"
        assert get(ResponseReader(sock)) == HELLO


def test_http_client_large_response_and_upload(server: TLSServerProcess, certs: Certs) -> None:
    conn = http.client.HTTPSConnection(
        "localhost", server.port, context=client_context(certs), timeout=TIMEOUT
    )
    try:
        conn.request("GET", f"/big?{FIVE_MB}")
        response = conn.getresponse()
        assert response.status == 200
        assert response.read() == b"x" * FIVE_MB
        upload = bytes(range(256)) * (FIVE_MB // 256)
        conn.request("POST", "/count-body", body=upload)  # same connection, kept alive
        response = conn.getresponse()
        assert (response.status, response.read()) == (200, str(FIVE_MB).encode())
        conn.request("POST", "/echo", body=upload)
        response = conn.getresponse()
        assert response.read() == upload
    finally:
        conn.close()


@pytest.mark.skipif(CURL is None, reason="curl is not installed")
def test_curl_verifies_and_reuses_the_connection(server: TLSServerProcess, certs: Certs) -> None:
    assert CURL is not None
    url = f"https://127.0.0.1:{server.port}"
    result = subprocess.run(
        [CURL, "-sS", "--http1.1", "--cacert", certs.ca,
         "-w", " %{http_version} %{num_connects}\n",
         f"{url}/", f"{url}/scope"],
        capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    hello, scope = result.stdout.splitlines()
    assert hello == "Hello, world! 1.1 1"
    assert scope.endswith(" 1.1 0")  # the second request reused the connection
    assert json.loads(scope.rsplit(" ", 2)[0])["scheme"] == "https"


# -- protocol versions and client certificates ----------------------------------------------


@pytest.mark.parametrize(
    ("server_ciphers", "client_ciphers"),
    [
        # The default --ssl-ciphers serves Python's default client context over TLS 1.2
        # (uvicorn's "TLSv1" would leave it only CBC-SHA1 suites, which it refuses).
        ((), None),
        (("--ssl-ciphers", "ECDHE+AESGCM"), None),
        (("--ssl-ciphers", "TLSv1"), "DEFAULT"),
    ],
    ids=["default-ciphers", "aead-ciphers", "uvicorn-ciphers"],
)
def test_tls12_client_is_served(
    certs: Certs, server_ciphers: tuple[str, ...], client_ciphers: str | None
) -> None:
    context = client_context(certs)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    if client_ciphers:
        context.set_ciphers(client_ciphers)
    with (
        running_tls_server(certs, "--workers", "1", *server_ciphers) as server,
        server.connect_tls(context) as sock,
    ):
        assert sock.version() == "TLSv1.2"
        assert get(ResponseReader(sock)) == HELLO


def _tls11_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLSVersion.TLSv1_1 is deprecated
        try:
            context.minimum_version = ssl.TLSVersion.TLSv1_1
            context.maximum_version = ssl.TLSVersion.TLSv1_1
            context.set_ciphers("DEFAULT:@SECLEVEL=0")
        except (ValueError, ssl.SSLError) as exc:
            pytest.skip(f"this OpenSSL cannot make a TLS 1.1 client: {exc}")
    return context


def test_tls11_client_is_refused(certs: Certs) -> None:
    context = _tls11_context()
    with running_tls_server(certs, "--workers", "1") as server:
        sock = server.connect(TIMEOUT)
        with pytest.raises(ssl.SSLError) as failure:
            context.wrap_socket(sock, server_hostname="localhost").close()
        sock.close()
        if "NO_PROTOCOLS_AVAILABLE" in str(failure.value):
            pytest.skip(f"this OpenSSL does not send a TLS 1.1 hello: {failure.value}")
        # The refusal came from the server: its protocol_version alert.
        assert "PROTOCOL_VERSION" in str(failure.value).upper(), failure.value
        with server.connect_tls(client_context(certs)) as ok:
            assert get(ResponseReader(ok)) == HELLO


def test_mutual_tls_requires_a_client_certificate(certs: Certs) -> None:
    with running_tls_server(
        certs, "--workers", "1", "--ssl-ca-certs", certs.ca, "--ssl-cert-reqs", "2"
    ) as server:
        with (
            pytest.raises(ssl.SSLError, match=r"(?i)certificate required"),
            server.connect_tls(client_context(certs)) as sock,
        ):
            # TLS 1.3: the client finishes first; the server's alert is what it reads.
            sock.recv(1)
        with server.connect_tls(client_context(certs, client_cert=True)) as sock:
            reader = ResponseReader(sock)
            assert get(reader) == HELLO
            assert get(reader, "/again") == HELLO


def _warnings(server: TLSServerProcess) -> list[str]:
    return [line for line in server.stderr_lines if "[WARNING]" in line]


def _command_line(server: TLSServerProcess) -> bytes:
    return Path(f"/proc/{server.proc.pid}/cmdline").read_bytes()


def test_encrypted_key_with_its_password_flag_warns_once(certs: Certs) -> None:
    """The flag still works, and says in one line that ps shows it and what to use instead."""
    with (
        running_tls_server(
            certs, "--ssl-keyfile-password", KEY_PASSWORD, key=certs.server_key_encrypted
        ) as server,
        server.connect_tls(client_context(certs)) as sock,
    ):
        assert get(ResponseReader(sock)) == HELLO
    [warning] = _warnings(server)
    assert "--ssl-keyfile-password is visible to every user in ps" in warning
    assert "--ssl-keyfile-password-file PATH" in warning
    assert "$POUNCE_SYNC_SSL_KEYFILE_PASSWORD" in warning


@pytest.mark.parametrize(
    "content", [KEY_PASSWORD + "\n", KEY_PASSWORD + "\r\nnot the password\n", KEY_PASSWORD]
)
def test_encrypted_key_with_its_password_in_a_file(
    certs: Certs, tmp_path: Path, content: str
) -> None:
    """The first line, its line ending stripped; the password is nowhere in ps."""
    password_file = tmp_path / "key-password"
    password_file.write_text(content)
    with (
        running_tls_server(
            certs,
            "--ssl-keyfile-password-file",
            str(password_file),
            key=certs.server_key_encrypted,
        ) as server,
        server.connect_tls(client_context(certs)) as sock,
    ):
        assert get(ResponseReader(sock)) == HELLO
        assert KEY_PASSWORD.encode() not in _command_line(server)
    assert _warnings(server) == []


def test_encrypted_key_with_its_password_in_the_environment(certs: Certs) -> None:
    env = {"POUNCE_SYNC_SSL_KEYFILE_PASSWORD": KEY_PASSWORD}
    with (
        running_tls_server(certs, key=certs.server_key_encrypted, env=env) as server,
        server.connect_tls(client_context(certs)) as sock,
    ):
        assert get(ResponseReader(sock)) == HELLO
        assert KEY_PASSWORD.encode() not in _command_line(server)
    assert _warnings(server) == []


# -- handshakes that never finish, and clients that do not speak TLS ------------------------


def test_stalled_handshakes_delay_nobody_and_are_closed_at_their_deadline(certs: Certs) -> None:
    """One worker; one client sends nothing, another stops after its ClientHello."""
    with running_tls_server(certs, "--workers", "1", "--timeout-tls-handshake", "1") as server:
        silent = server.connect(TIMEOUT)
        stalled = server.connect(TIMEOUT)
        stalled.sendall(BIOClient(stalled, client_context(certs)).client_hello())
        with silent, stalled:
            with server.connect_tls(client_context(certs)) as sock:
                assert get(ResponseReader(sock)) == HELLO  # the only worker is pinned by neither
            assert read_until_closed(silent) == b""  # closed silently at the deadline
            assert read_until_closed(stalled)[:1] == b"\x16"  # the server's flight, then EOF
        with server.connect_tls(client_context(certs)) as sock:
            assert get(ResponseReader(sock)) == HELLO


@pytest.mark.parametrize(
    "garbage",
    [
        request("/"),  # plain HTTP on the TLS port
        b"\x16\x03\x01\x00\x10" + b"not a hello, no" * 2,  # a handshake record of junk
        b"\x00" * 64,
    ],
    ids=["plain-http", "junk-record", "zeros"],
)
def test_garbage_instead_of_client_hello_is_closed(certs: Certs, garbage: bytes) -> None:
    with running_tls_server(certs, "--workers", "1") as server:
        with server.connect(TIMEOUT) as sock:
            sock.sendall(garbage)
            assert closed_by_server(sock)
        with server.connect_tls(client_context(certs)) as sock:
            assert get(ResponseReader(sock)) == HELLO
    assert "Traceback" not in server.stderr, server.stderr


def test_partial_record_on_keep_alive_connection_gets_the_head_deadline(certs: Certs) -> None:
    """Slowloris under TLS: one byte of a record per 100 ms after a first request.

    The bytes never reach the HTTP parser, so without care each one would renew the
    1 s keep-alive deadline for ever; the 2 s head deadline must close it instead.
    """
    padding = b"".join(b"X-Padding-%02d: %s\r\n" % (i, b"p" * 40) for i in range(5))
    with running_tls_server(
        certs, "--workers", "1", "--timeout-keep-alive", "1", "--timeout-header-read", "2"
    ) as server:
        with server.connect(TIMEOUT) as sock:
            client = BIOClient(sock, client_context(certs))
            client.handshake()
            assert get(ResponseReader(client)) == HELLO
            record = client.records(request("/trickle")[:-2] + padding + b"\r\n")
            sent = 0
            for byte in record:
                try:
                    sock.sendall(bytes([byte]))
                except OSError:  # closed already
                    break
                sent += 1
                if readable(sock, 0.1):
                    break
            assert closed_by_server(sock)
        # ~20 bytes at the deadline; the whole record would have taken 30 s.
        assert sent < len(record) // 2, (sent, len(record))


def test_body_read_timeout_over_tls(certs: Certs) -> None:
    """A body that stops arriving gets 408: TLS reads are bounded (not retried for ever)."""
    with (
        running_tls_server(certs, "--workers", "1", "--timeout-body-read", "1") as server,
        server.connect_tls(client_context(certs)) as sock,
    ):
        sock.sendall(request("/echo", b"0123456789")[:-7])  # 3 of 10 body bytes
        reader = ResponseReader(sock)
        response = reader.read_response(b"POST")
        assert (response.status, response.reason) == (408, b"Request Timeout")
        assert response.header(b"connection") == b"close"
        reader.read_closed()


def test_write_timeout_over_tls_frees_the_worker(certs: Certs) -> None:
    """A client that stops reading a 64 MiB response holds the only worker only until
    the write timeout; the next client is served then."""
    with (
        running_tls_server(certs, "--workers", "1", "--timeout-write", "1") as server,
        server.connect_tls(client_context(certs)) as stuck,
    ):
        stuck.sendall(request(f"/big?{64 * 1024 * 1024}"))
        with server.connect_tls(client_context(certs), TIMEOUT) as sock:
            assert get(ResponseReader(sock)) == HELLO


@pytest.mark.parametrize("close_notify", [False, True], ids=["tcp-close", "close-notify"])
def test_client_disconnect_is_seen_while_the_app_waits(certs: Certs, close_notify: bool) -> None:
    """The app awaits http.disconnect: a plain close and a TLS close_notify both count."""
    with running_tls_server(certs, app="apps_disconnect:app") as server:
        sock = server.connect_tls(client_context(certs))
        sock.sendall(request("/wait"))
        time.sleep(0.3)
        if close_notify:
            try:
                sock.unwrap()  # sends close_notify, then waits for the server's
            except ssl.SSLEOFError:
                pass  # the server saw the client leave and closed without answering one
        sock.close()
        deadline = time.monotonic() + 10
        with server.connect_tls(client_context(certs)) as other:
            reader = ResponseReader(other)
            while (body := get(reader, "/seen")[1]) != b"disconnect":
                assert time.monotonic() < deadline, body
                time.sleep(0.1)
    assert "Traceback" not in server.stderr, server.stderr


# -- start-up errors ------------------------------------------------------------------------


def _start(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "pounce_sync", "--port", "0", "--app-dir", str(TESTS_DIR)]
    return subprocess.run(
        [*argv, *args, "apps:app"],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=TIMEOUT,
        env={**os.environ, **(env or {})},
    )


CERT, ENCRYPTED = "--ssl-certfile {server_cert}", "--ssl-keyfile {server_key_encrypted}"
PASSWORD_FILE = "--ssl-keyfile-password-file"
STARTUP_ERRORS = {
    # id: (flags, {names} filled from Certs, {missing}, {directory} and {wrong_password};
    # words the one line holds; exit code)
    "missing-cert": ("--ssl-certfile {missing}", "cannot read TLS certificate file", 1),
    "missing-key": (f"{CERT} --ssl-keyfile {{missing}}", "cannot read TLS key file", 1),
    "mismatched-key": (f"{CERT} --ssl-keyfile {{client_key}}", "does not belong to", 1),
    "wrong-password": (f"{CERT} {ENCRYPTED} --ssl-keyfile-password x", "wrong --ssl-keyfile", 1),
    "wrong-password-file": (
        f"{CERT} {ENCRYPTED} {PASSWORD_FILE} {{wrong_password}}",
        f"wrong password in {PASSWORD_FILE} ",
        1,
    ),
    "missing-password-file": (
        f"{CERT} {ENCRYPTED} {PASSWORD_FILE} {{missing}}",
        f"cannot read {PASSWORD_FILE} ",
        1,
    ),
    "password-file-is-a-directory": (
        f"{CERT} {ENCRYPTED} {PASSWORD_FILE} {{directory}}",
        f"cannot read {PASSWORD_FILE} ",
        1,
    ),
    "both-passwords": (
        f"{CERT} {ENCRYPTED} --ssl-keyfile-password x {PASSWORD_FILE} {{wrong_password}}",
        "not both",
        2,
    ),
    "password-file-without-cert": (f"{PASSWORD_FILE} {{wrong_password}}", "needs --ssl-cert", 2),
    "no-password": (f"{CERT} {ENCRYPTED}", "is encrypted", 1),
    "key-as-cert": ("--ssl-certfile {client_key} --ssl-keyfile {server_key}", "no PEM cert", 1),
    "key-without-cert": ("--ssl-keyfile {server_key}", "needs --ssl-certfile", 2),
    "cert-reqs-without-ca": (f"{CERT} --ssl-cert-reqs 2", "needs --ssl-ca-certs", 2),
}


@pytest.mark.parametrize(
    ("flags", "words", "code"), list(STARTUP_ERRORS.values()), ids=list(STARTUP_ERRORS)
)
def test_bad_tls_files_are_one_line_and_a_nonzero_exit(
    certs: Certs, tmp_path: Path, flags: str, words: str, code: int
) -> None:
    wrong_password = tmp_path / "wrong-password"
    wrong_password.write_text("x\n")
    names = {
        **vars(certs),
        "missing": str(tmp_path / "missing.pem"),
        "directory": str(tmp_path),
        "wrong_password": str(wrong_password),
    }
    result = _start([flag.format(**names) for flag in flags.split()])
    _assert_one_error_line(result, words, code)


def test_a_wrong_password_in_the_environment_is_one_line_and_a_nonzero_exit(
    certs: Certs,
) -> None:
    flags = [f.format(**vars(certs)) for f in f"{CERT} {ENCRYPTED}".split()]
    result = _start(flags, env={"POUNCE_SYNC_SSL_KEYFILE_PASSWORD": "x"})
    _assert_one_error_line(result, "wrong POUNCE_SYNC_SSL_KEYFILE_PASSWORD for TLS key", 1)


def _assert_one_error_line(result: subprocess.CompletedProcess[str], words: str, code: int) -> None:
    lines = result.stderr.splitlines()
    assert result.returncode == code, result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("pounce-sync: error: "), lines[0]
    assert words in lines[0], lines[0]
