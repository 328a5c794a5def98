"""Config checks: each field's own check, the Literal choices, the rules across fields.

In-process and table-driven, one row a case; tests/test_cli.py checks that such
an error reaches the command line as one line and exit 2.
"""

import dataclasses
from typing import Any

import pytest

from pounce_sync.config import Config, ConfigError, choices

BIND_FORMS = "HOST:PORT, [IPV6]:PORT, unix:PATH or fd://N"

# (settings, the exact one-line message)
REJECTED: list[tuple[dict[str, Any], str]] = [
    ({"port": -1}, "--port must be between 0 and 65535, got -1"),
    ({"port": 65536}, "--port must be between 0 and 65535, got 65536"),
    ({"http3_port": 65536}, "--http3-port must be between 0 and 65535, got 65536"),
    (
        {"http3_max_concurrent_streams": 0},
        "--http3-max-concurrent-streams must be at least 1, got 0",
    ),
    ({"http3_idle_timeout": 0}, "--http3-idle-timeout must be positive, got 0"),
    ({"uds_mode": "rw"}, "--uds-mode must be octal permissions like 660, got 'rw'"),
    ({"uds_mode": "0o8"}, "--uds-mode must be octal permissions like 660, got '0o8'"),
    ({"uds_mode": "0o17777"}, "--uds-mode must be octal permissions like 660, got '0o17777'"),
    ({"bind": ("nonsense",)}, f"--bind must be {BIND_FORMS}, got 'nonsense'"),
    ({"bind": ("127.0.0.1:65536",)}, f"--bind must be {BIND_FORMS}, got '127.0.0.1:65536'"),
    ({"bind": ("[::1]:8000", "unix:")}, f"--bind must be {BIND_FORMS}, got 'unix:'"),
    ({"bind": ("fd://x",)}, f"--bind must be {BIND_FORMS}, got 'fd://x'"),
    ({"backlog": 0}, "--backlog must be at least 1, got 0"),
    ({"ssl_cert_reqs": 3}, "--ssl-cert-reqs must be 0 (none), 1 (optional) or 2 (required), got 3"),
    ({"timeout_tls_handshake": 0.0}, "--timeout-tls-handshake must be positive, got 0.0"),
    ({"interface": "cgi"}, "--interface must be one of auto, asgi3, asgi2, wsgi, got 'cgi'"),
    ({"workers": -1}, "--workers must be 0 or more, got -1"),
    ({"worker_mode": "fiber"}, "--worker-mode must be one of auto, thread, process, got 'fiber'"),
    ({"threads": 0}, "--threads must be at least 1, got 0"),
    ({"lifespan": "maybe"}, "--lifespan must be one of auto, on, off, got 'maybe'"),
    ({"coroutine_driver": "x"}, "--coroutine-driver must be one of auto, eager, loop, got 'x'"),
    ({"limit_max_requests": 0}, "--limit-max-requests must be at least 1, got 0"),
    ({"limit_max_requests_jitter": -1}, "--limit-max-requests-jitter must be 0 or more, got -1"),
    ({"timeout_keep_alive": 0}, "--timeout-keep-alive must be positive, got 0"),
    ({"timeout_header_read": -1.0}, "--timeout-header-read must be positive, got -1.0"),
    ({"timeout_body_read": 0}, "--timeout-body-read must be positive, got 0"),
    ({"timeout_write": 0}, "--timeout-write must be positive, got 0"),
    (
        {"timeout_graceful_shutdown": -0.5},
        "--timeout-graceful-shutdown must be 0 or more, got -0.5",
    ),
    ({"limit_concurrency": 0}, "--limit-concurrency must be at least 1, got 0"),
    ({"max_body_size": -1}, "--max-body-size must be 0 or more, got -1"),
    ({"limit_request_line": 0}, "--limit-request-line must be at least 1, got 0"),
    ({"limit_request_fields": 0}, "--limit-request-fields must be at least 1, got 0"),
    ({"limit_request_headers_size": 0}, "--limit-request-headers-size must be at least 1, got 0"),
    (
        {"log_level": "loud"},
        "--log-level must be one of critical, error, warning, info, debug, trace, got 'loud'",
    ),
    ({"header": ("no-colon",)}, "--header must look like 'name: value', got 'no-colon'"),
    ({"header": ("bad name: v",)}, "--header must look like 'name: value', got 'bad name: v'"),
    (
        {"header": ("X-A: 1", "X-B: a\nb")},
        "--header must look like 'name: value', got 'X-B: a\\nb'",
    ),
    (
        {"forwarded_allow_ips": "10.0.0.0/8,nope"},
        "--forwarded-allow-ips: not an IP address or network: 'nope'",
    ),
    ({"metrics_path": "metrics"}, "--metrics-path must start with '/', got 'metrics'"),
    ({"health_path": "healthz"}, "--health-path must start with '/', got 'healthz'"),
    ({"drain_delay": -1.0}, "--drain-delay must be 0 or more, got -1.0"),
    ({"async_threads": 0}, "--async-threads must be at least 1, got 0"),
    ({"async_backlog": 0}, "--async-backlog must be at least 1, got 0"),
    ({"stream_path": ("/events", "feed")}, "--stream-path must start with '/', got 'feed'"),
    ({"limit_stream_threads": -1}, "--limit-stream-threads must be 0 or more, got -1"),
    ({"ws_max_size": 0}, "--ws-max-size must be at least 1, got 0"),
    ({"ws_ping_interval": -1.0}, "--ws-ping-interval must be 0 or more, got -1.0"),
    ({"ws_ping_timeout": -1.0}, "--ws-ping-timeout must be 0 or more, got -1.0"),
    ({"h2_max_concurrent_streams": 0}, "--h2-max-concurrent-streams must be at least 1, got 0"),
    ({"h2_max_header_list_size": 0}, "--h2-max-header-list-size must be at least 1, got 0"),
    (
        {"h2_max_inbound_frame_size": 16383},
        "--h2-max-inbound-frame-size must be between 16384 and 16777215, got 16383",
    ),
    (
        {"h2_max_inbound_frame_size": 16777216},
        "--h2-max-inbound-frame-size must be between 16384 and 16777215, got 16777216",
    ),
    # Rules across fields.
    ({"ssl_keyfile": "key.pem"}, "--ssl-keyfile needs --ssl-certfile"),
    ({"ssl_keyfile_password": "secret"}, "--ssl-keyfile-password needs --ssl-certfile"),
    ({"ssl_ca_certs": "ca.pem", "ssl_cert_reqs": 2}, "--ssl-ca-certs needs --ssl-certfile"),
    ({"ssl_cert_reqs": 1}, "--ssl-cert-reqs needs --ssl-certfile"),
    (
        {"ssl_certfile": "cert.pem", "ssl_cert_reqs": 2},
        "--ssl-cert-reqs 1 or 2 needs --ssl-ca-certs to verify client certificates",
    ),
    # Every field passes its own check before any rule across fields is asked.
    (
        {"ssl_keyfile": "key.pem", "h2_max_concurrent_streams": 0},
        "--h2-max-concurrent-streams must be at least 1, got 0",
    ),
    # Fields are checked in declaration order: --port comes before --workers.
    ({"workers": -1, "port": -1}, "--port must be between 0 and 65535, got -1"),
]

ACCEPTED: list[dict[str, Any]] = [
    {"port": 0},
    {"port": 65535},
    {"uds_mode": "660"},
    {"uds_mode": "0660"},
    {"uds_mode": "0o660"},
    {"uds_mode": "07777"},
    {"bind": ("127.0.0.1:0", ":8000", "[::1]:65535", "unix:/run/app.sock", "fd://3")},
    {"workers": 0},
    {"max_body_size": 0},
    {"timeout_graceful_shutdown": 0.0},
    {"drain_delay": 0.0},
    {"limit_stream_threads": 0},
    {"limit_concurrency": None, "limit_max_requests": None},
    {"ws_ping_interval": 0.0, "ws_ping_timeout": None},
    {"h2_max_inbound_frame_size": 16384},
    {"h2_max_inbound_frame_size": 16777215},
    {"header": ("X-Served-By: edge-1", "Cache-Control:no-store")},
    {"forwarded_allow_ips": "*"},
    {"forwarded_allow_ips": "10.0.0.0/8, ::1"},
    {"health_path": "/healthz", "metrics_path": "/metrics", "stream_path": ("/events",)},
    {"interface": "wsgi", "worker_mode": "process", "lifespan": "off", "log_level": "trace"},
    {"ssl_certfile": "cert.pem", "ssl_keyfile": "key.pem", "ssl_keyfile_password": "secret"},
    {"ssl_certfile": "cert.pem", "ssl_ca_certs": "ca.pem", "ssl_cert_reqs": 2},
    {"ssl_certfile": "cert.pem", "ssl_ca_certs": "ca.pem", "ssl_cert_reqs": 0},
]


def _id(settings: dict[str, Any]) -> str:
    return ",".join(f"{name}={value!r}" for name, value in settings.items())


@pytest.mark.parametrize(("settings", "message"), REJECTED, ids=[_id(s) for s, _ in REJECTED])
def test_invalid_setting_is_a_one_line_config_error(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Config(**settings)
    assert str(caught.value) == message


@pytest.mark.parametrize("settings", ACCEPTED, ids=_id)
def test_valid_setting_is_accepted(settings: dict[str, Any]) -> None:
    config = Config(**settings)
    assert all(getattr(config, name) == value for name, value in settings.items())


def test_every_checked_field_has_a_rejected_row() -> None:
    """A new check without a row here would go untested."""
    checked = {f.name for f in dataclasses.fields(Config) if f.metadata["check"] or choices(f.name)}
    rejected = {name for settings, _ in REJECTED if len(settings) == 1 for name in settings}
    assert checked <= rejected, sorted(checked - rejected)


def test_choices_are_read_from_the_literal_type() -> None:
    assert choices("lifespan") == ("auto", "on", "off")
    assert choices("log_level") == ("critical", "error", "warning", "info", "debug", "trace")
    assert choices("port") == ()
    assert choices("app") == ()


def test_defaults_pass_every_check() -> None:
    Config()


def test_replace_checks_again() -> None:
    """The server replaces fields after start-up (worker_mode, interface); they are checked too."""
    with pytest.raises(ConfigError, match="--worker-mode must be one of"):
        dataclasses.replace(Config(), worker_mode="fiber")
