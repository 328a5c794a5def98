"""Proxy headers: only trusted peers may speak for the client. Table-driven, pure."""

import pytest

from pounce_sync.asgi.proxy import Forwarded, parse_trusted, resolve

LOCAL = parse_trusted("127.0.0.1")
NETS = parse_trusted("127.0.0.1, 10.0.0.0/8, ::1")


def h(**fields: str) -> tuple[tuple[bytes, bytes], ...]:
    return tuple((k.replace("_", "-").encode(), v.encode()) for k, v in fields.items())


@pytest.mark.parametrize(
    ("trusted", "peer", "headers", "expected"),
    [
        pytest.param(LOCAL, "127.0.0.1", h(), None, id="no-headers"),
        pytest.param(LOCAL, "203.0.113.9", h(x_forwarded_for="1.2.3.4"), None, id="untrusted-peer"),
        pytest.param(
            LOCAL,
            "127.0.0.1",
            h(x_forwarded_for="1.2.3.4", x_forwarded_proto="https", x_forwarded_host="ex.com"),
            Forwarded("1.2.3.4", "https", b"ex.com"),
            id="one-proxy",
        ),
        pytest.param(
            NETS,
            "127.0.0.1",
            h(x_forwarded_for="6.6.6.6, 1.2.3.4, 10.1.1.1"),
            Forwarded("1.2.3.4", None, None),
            id="forged-left-entry-ignored",
        ),
        pytest.param(
            NETS,
            "10.0.0.5",
            h(x_forwarded_for="10.9.9.9, 10.1.1.1"),
            Forwarded("10.9.9.9", None, None),
            id="all-trusted-leftmost-is-client",
        ),
        pytest.param(
            LOCAL,
            "127.0.0.1",
            h(x_forwarded_proto="gopher"),
            Forwarded(None, None, None),
            id="unknown-scheme-ignored",
        ),
        pytest.param(
            LOCAL,
            "127.0.0.1",
            h(
                forwarded='for="[2001:db8::1]:4711";proto=https;host=ex.org',
                x_forwarded_for="9.9.9.9",
            ),
            Forwarded("2001:db8::1", "https", b"ex.org"),
            id="rfc7239-wins-ipv6",
        ),
        pytest.param(
            NETS,
            "127.0.0.1",
            h(forwarded="for=1.2.3.4:80;proto=http, for=10.0.0.1;proto=https"),
            Forwarded("1.2.3.4", "http", None),
            id="rfc7239-chain",
        ),
        pytest.param(
            parse_trusted("*"),
            "198.51.100.7",
            h(x_forwarded_for="1.2.3.4"),
            Forwarded("1.2.3.4", None, None),
            id="star-trusts-all",
        ),
        pytest.param(
            LOCAL, None, h(x_forwarded_for="1.2.3.4"), Forwarded("1.2.3.4", None, None), id="uds"
        ),
    ],
)
def test_resolve(trusted, peer, headers, expected) -> None:
    assert resolve(trusted, peer, headers) == expected


def test_bad_trusted_spec_names_the_entry() -> None:
    with pytest.raises(ValueError, match="not-an-ip"):
        parse_trusted("127.0.0.1,not-an-ip")


def _scope_of(srv, extra: bytes) -> dict:
    import json

    from ..http_client import request

    raw = b"GET /scope HTTP/1.1\r\nHost: inner\r\nConnection: close\r\n%s\r\n" % extra
    return json.loads(request(srv, raw).body)


def test_trusted_proxy_over_the_wire() -> None:
    from ..server_process import running_server

    forwarded = b"X-Forwarded-For: 198.51.100.4\r\nX-Forwarded-Proto: https\r\n"
    forwarded += b"X-Forwarded-Host: example.com\r\n"
    with running_server() as srv:  # default: proxy headers on, 127.0.0.1 trusted
        scope = _scope_of(srv, forwarded)
        srv.stop()
    assert scope["client"] == ["198.51.100.4", 0]
    assert scope["scheme"] == "https"
    assert ["host", "example.com"] in scope["headers"]
    assert '198.51.100.4:0 - "GET /scope' in srv.stdout


def test_proxy_fields_are_read_per_request_on_a_keep_alive_connection() -> None:
    """One request's hop is never carried to the next request on the connection."""
    import json

    from ..http_client import ResponseReader
    from ..server_process import running_server

    base = b"GET /scope HTTP/1.1\r\nHost: inner\r\n"
    heads = [
        base + b"X-Forwarded-For: 198.51.100.4\r\n\r\n",
        base + b"X-Forwarded-For: 198.51.100.4\r\n\r\n",  # the same bytes again
        base + b"\r\n",
        base + b"x-forwarded-for: 203.0.113.9\r\n\r\n",
    ]
    with running_server() as srv, srv.connect(10.0) as sock:
        reader = ResponseReader(sock)
        clients = []
        for head in heads:
            sock.sendall(head)
            clients.append(json.loads(reader.read_response().body)["client"][0])
    assert clients == ["198.51.100.4", "198.51.100.4", "127.0.0.1", "203.0.113.9"]


def test_untrusted_peer_and_disabled_proxy_headers_are_ignored() -> None:
    from ..server_process import running_server

    forwarded = b"X-Forwarded-For: 198.51.100.4\r\nForwarded: for=1.2.3.4;proto=https\r\n"
    for args in (("--forwarded-allow-ips", "10.0.0.0/8"), ("--no-proxy-headers",)):
        with running_server(*args) as srv:
            scope = _scope_of(srv, forwarded)
        assert scope["client"][0] == "127.0.0.1"
        assert scope["scheme"] == "http"
