"""HTTP/3 end to end: pounce-sync --http3 (zoomies) and aioquic's client over loopback UDP.

Runs on Python 3.14, where HTTP/3 exists; the start-up refusal on older Pythons is
tested in test_http3_startup.py.
"""

import asyncio
import hashlib
import http.client
import json
import re
import signal
import ssl
import sys
import time
from collections.abc import Iterator

import pytest

if sys.version_info < (3, 14):
    pytest.skip("HTTP/3 needs Python 3.14 (bengal-zoomies)", allow_module_level=True)

from ..h3_client import h3_connect
from ..server.test_tls import OPENSSL
from ..tls_server import Certs, TLSServerProcess, make_certs, running_tls_server

_UDP_PORT = re.compile(r"HTTP/3 on udp port (\d+)")


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    assert OPENSSL is not None
    return make_certs(OPENSSL, tmp_path_factory.mktemp("tls"))


def udp_port(server: TLSServerProcess) -> int:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        match = _UDP_PORT.search(server.stderr)
        if match:
            return int(match[1])
        time.sleep(0.02)
    raise AssertionError("no HTTP/3 port announced:\n" + server.stderr)


def h3_server(certs: Certs, *args: str):
    return running_tls_server(certs, "--http3", *args, app="apps_http3:app")


@pytest.fixture(scope="module", params=["thread", "process"])
def server(request: pytest.FixtureRequest, certs: Certs) -> Iterator[TLSServerProcess]:
    """Two workers: one process whose pool owns the socket, or two with a socket each."""
    with h3_server(certs, "--workers", "2", "--worker-mode", request.param) as srv:
        yield srv
    assert "Traceback" not in srv.stderr, srv.stderr


def run(coro):
    return asyncio.run(coro)


def test_get_verifies_the_certificate_and_answers_http_version_3(server, certs) -> None:
    async def go():
        async with h3_connect(udp_port(server), ca=certs.ca) as client:
            assert client._quic.tls.alpn_negotiated == "h3"
            response = await client.request("GET", "/scope?a=1")
        assert response.status == 200
        info = json.loads(response.body)
        assert info["http_version"] == "3"
        assert info["scheme"] == "https"
        assert info["query_string"] == "a=1"
        assert ["host", "localhost"] in info["headers"]

    run(go())


def test_tcp_responses_advertise_alt_svc(server, certs) -> None:
    context = ssl.create_default_context(cafile=certs.ca)
    conn = http.client.HTTPSConnection("localhost", server.port, context=context, timeout=10)
    conn.request("GET", "/")
    response = conn.getresponse()
    assert response.read() == b"hello h3"
    assert response.getheader("alt-svc") == f'h3=":{udp_port(server)}"; ma=86400'
    conn.close()


def test_post_with_a_one_mebibyte_body(server) -> None:
    body = bytes(range(256)) * 4096

    async def go():
        async with h3_connect(udp_port(server)) as client:
            return await client.request("POST", "/echo", body)

    response = run(go())
    assert response.status == 200
    assert response.body == f"{len(body)} {hashlib.sha256(body).hexdigest()}".encode()


def test_streaming_response_arrives_in_pieces(server) -> None:
    async def go():
        async with h3_connect(udp_port(server)) as client:
            return await client.request("GET", "/stream")

    response = run(go())
    assert response.body == b"".join(b"chunk %d\n" % i for i in range(10))
    assert response.chunks > 1


def test_response_larger_than_the_clients_first_window(server) -> None:
    """aioquic opens 1 MiB of connection credit; the rest comes as MAX_DATA frames."""
    size = 3 * 1024 * 1024 + 17

    async def go():
        async with h3_connect(udp_port(server)) as client:
            return await client.request("GET", f"/big?{size}")

    response = run(go())
    block = bytes(range(256)) * 256
    assert len(response.body) == size
    assert response.body == (block * (size // len(block) + 1))[:size]


def test_trailers_follow_the_body(server) -> None:
    async def go():
        async with h3_connect(udp_port(server)) as client:
            return await client.request("GET", "/trailers")

    response = run(go())
    assert response.body == b"body"
    assert (b"x-checksum", b"abc") in response.trailers


def test_hundred_concurrent_streams_on_one_connection(server) -> None:
    async def go():
        async with h3_connect(udp_port(server)) as client:
            ids = [client.start("GET", f"/scope?n={i}") for i in range(100)]
            return [await client.response(i) for i in ids]

    responses = run(go())
    assert [r.status for r in responses] == [200] * 100
    assert [json.loads(r.body)["query_string"] for r in responses] == [f"n={i}" for i in range(100)]


def test_more_streams_than_the_limit_over_a_connections_life(server) -> None:
    """Each finished stream gives the client a new one (MAX_STREAMS)."""

    async def go():
        async with h3_connect(udp_port(server)) as client:
            statuses = []
            for _batch in range(3):
                ids = [client.start("GET", "/") for _ in range(90)]
                statuses += [(await client.response(i)).status for i in ids]
            return statuses

    assert run(go()) == [200] * 270


def test_bad_request_on_one_stream_leaves_the_others_alive(server) -> None:
    async def go():
        async with h3_connect(udp_port(server)) as client:
            slow = client.start("GET", "/slow?0.3")
            bad = client.start("GET", "/", headers=[(b"Upper-Case", b"x")])
            after = client.start("GET", "/scope")
            return [await client.response(s) for s in (slow, bad, after)]

    slow, bad, after = run(go())
    assert bad.status == 400
    assert (slow.status, slow.body) == (200, b"slow done")
    assert after.status == 200


def test_connections_past_the_pool_backlog_are_not_accepted(certs) -> None:
    """--async-backlog caps QUIC connections as it caps the pool's other connections."""
    with h3_server(certs, "--async-backlog", "1") as server:
        port = udp_port(server)

        async def second_while_first_open() -> tuple[bytes, str]:
            async with h3_connect(port) as first:
                assert (await first.request("GET", "/")).status == 200
                try:  # its Initial is dropped: the handshake never completes
                    async with h3_connect(port, connect_timeout=2.0) as second:
                        refused = f"served: {(await second.request('GET', '/')).status}"
                except (TimeoutError, ConnectionError) as exc:
                    refused = type(exc).__name__
                again = (await first.request("GET", "/")).body  # the first one is unharmed
            return again, refused

        async def after_the_first_closed() -> int:
            async with h3_connect(port, connect_timeout=3.0) as third:
                return (await third.request("GET", "/")).status

        again, refused = run(second_while_first_open())
        assert refused in ("TimeoutError", "ConnectionError"), refused
        assert again == b"hello h3"
        # The first client's CONNECTION_CLOSE frees its slot at once, not at the idle
        # timeout (30 s): three tries of 3 s leave room for a busy machine, not for that.
        status = 0
        for _ in range(3):
            try:
                status = run(after_the_first_closed())
                break
            except (TimeoutError, ConnectionError):
                continue
        assert status == 200
    assert "Traceback" not in server.stderr, server.stderr


def test_access_log_shows_the_body_size_and_response_headers(certs) -> None:
    """`B` and `{name}o` as on the other protocols (tests/observe/test_access_log.py)."""
    fmt = "ACCESS %(r)s|%(s)s|%(B)s|%({Content-Type}o)s"
    with h3_server(certs, "--access-log", "--access-log-format", fmt) as server:

        async def go() -> None:
            async with h3_connect(udp_port(server)) as client:
                assert (await client.request("GET", "/typed")).body == b"typed"

        run(go())
        server.stop()
    lines = [
        line[line.index("ACCESS ") :].strip()
        for line in server.stdout.splitlines()
        if "ACCESS " in line
    ]
    assert lines == ["ACCESS GET /typed HTTP/3|200|5|text/plain"], server.stdout + server.stderr


def test_client_that_vanishes_mid_stream_is_noticed(certs) -> None:
    """The client's socket goes away without a word: the idle timeout ends it."""
    with h3_server(certs, "--http3-idle-timeout", "1") as server:
        port = udp_port(server)

        async def vanish():
            async with h3_connect(port) as client:
                stream = client.start("GET", "/hold")
                while not client.responses[stream].body:
                    await asyncio.sleep(0.01)
                client._transport.close()  # no CONNECTION_CLOSE: the client just vanishes

        async def gone():
            async with h3_connect(port) as client:
                for _ in range(100):
                    response = await client.request("GET", "/gone")
                    if response.body:
                        return response.body
                    await asyncio.sleep(0.05)
            return b""

        try:
            run(vanish())
        except Exception:
            pass
        assert run(gone()) == b"/hold"
    assert "Traceback" not in server.stderr, server.stderr


def test_shutdown_lets_streams_in_flight_finish(certs) -> None:
    with h3_server(certs) as server:
        port = udp_port(server)

        async def go():
            async with h3_connect(port) as client:
                stream = client.start("GET", "/slow?1")
                await asyncio.sleep(0.3)
                server.send_signal(signal.SIGTERM)
                response = await client.response(stream)
                async with asyncio.timeout(10):
                    while client.terminated is None:
                        await asyncio.sleep(0.02)
                return response, client.terminated

        response, terminated = run(go())
        assert (response.status, response.body) == (200, b"slow done")
        assert terminated.error_code in (0, 0x100)  # closed cleanly once drained
        assert server.wait_exit() == 0
    assert "Traceback" not in server.stderr, server.stderr
