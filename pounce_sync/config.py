"""Every setting, declared once: a frozen dataclass whose field metadata drives the CLI and docs.

One `Config` is built at start-up, validated, and then shared read-only by every
thread, so nothing on the request path needs a lock to read a setting.
"""

import os
import re
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from pounce_sync.asgi.proxy import parse_trusted
from pounce_sync.http1 import valid_field

LifespanMode = Literal["auto", "on", "off"]
WorkerMode = Literal["auto", "thread", "process"]
Interface = Literal["auto", "asgi3", "asgi2", "wsgi"]
CoroutineDriver = Literal["auto", "eager", "loop"]
LogLevel = Literal["critical", "error", "warning", "info", "debug", "trace"]


_BIND = re.compile(r"unix:.+|fd://[0-9]+|(\[[0-9A-Fa-f:.]+\]|[^:\[\]]*):[0-9]{1,5}")


class ConfigError(ValueError):
    """A setting is invalid; the message is shown to the user as one line."""


def setting(default: Any, help: str, *, flag: str | None = None, choices: tuple = ()) -> Any:
    return field(default=default, metadata={"help": help, "flag": flag, "choices": choices})


@dataclass(frozen=True, slots=True)
class Config:
    app: str | None = setting(
        None, "Application as module:attribute; omitted, the built-in diagnostic app.", flag=""
    )
    host: str = setting("127.0.0.1", "Address to bind.")
    port: int = setting(8000, "Port to bind (0 picks a free port).")
    uds: str | None = setting(
        None, "Bind a Unix domain socket at this path (instead of --host/--port)."
    )
    uds_mode: str | None = setting(
        None,
        "Permissions (octal, e.g. 660) set on Unix socket files this server creates; "
        "omitted, the umask decides.",
    )
    bind: tuple[str, ...] = setting(
        (),
        "Listen on HOST:PORT, [IPV6]:PORT, unix:PATH or fd://N; repeat for several. "
        "Replaces --host/--port.",
    )
    fd: int | None = setting(
        None, "Listen on this inherited socket descriptor (systemd socket activation)."
    )
    backlog: int = setting(2048, "Listen backlog.")
    ssl_certfile: str | None = setting(
        None, "TLS certificate chain (PEM), server certificate first; setting it turns on TLS."
    )
    ssl_keyfile: str | None = setting(
        None, "TLS private key (PEM); omitted, the key is read from --ssl-certfile."
    )
    ssl_keyfile_password: str | None = setting(None, "Password of an encrypted TLS key.")
    ssl_ca_certs: str | None = setting(
        None, "CA certificates (PEM) that client certificates are verified against."
    )
    ssl_cert_reqs: int = setting(
        0, "Client certificates: 0 not asked for, 1 optional, 2 required (mutual TLS)."
    )
    ssl_ciphers: str = setting(
        "ECDHE+AESGCM:ECDHE+CHACHA20:ECDHE+AES",
        "OpenSSL cipher list for TLS 1.2 (TLS 1.3 always uses OpenSSL's suites); the default "
        "keeps forward-secret suites only.",
    )
    timeout_tls_handshake: float = setting(
        10.0, "Deadline in seconds for a TLS handshake; the connection is closed silently after."
    )
    app_dir: str = setting(".", "Directory put first on sys.path to import the app.")
    factory: bool = setting(False, "The app attribute is a factory; call it to get the app.")
    interface: Interface = setting(
        "auto",
        "Application interface. auto, decided once at load: an async callable is asgi3, a "
        "sync one taking (environ, start_response) is wsgi (PEP 3333), any other asgi2.",
        choices=("auto", "asgi3", "asgi2", "wsgi"),
    )
    workers: int = setting(
        1,
        "Workers: threads in thread mode, processes in process mode; 0 means os.cpu_count().",
    )
    worker_mode: WorkerMode = setting(
        "auto",
        "auto: threads when the GIL is disabled, processes when it is enabled.",
        choices=("auto", "thread", "process"),
    )
    threads: int = setting(1, "Sync worker threads in each worker process (process mode).")
    root_path: str = setting(
        "", "ASGI root_path (WSGI SCRIPT_NAME), for apps mounted below a URL prefix."
    )
    lifespan: LifespanMode = setting(
        "auto",
        "Run the ASGI lifespan protocol (never for WSGI apps).",
        choices=("auto", "on", "off"),
    )
    coroutine_driver: CoroutineDriver = setting(
        "auto",
        "How a worker runs an ASGI coroutine: 'eager' steps it without the event loop until it "
        "really awaits; 'loop' runs each request on the thread's loop. auto = eager.",
        choices=("auto", "eager", "loop"),
    )
    limit_max_requests: int | None = setting(
        None,
        "Retire a worker (a thread in thread mode, a process in process mode) gracefully "
        "after this many requests, and start a fresh one.",
    )
    limit_max_requests_jitter: int = setting(
        0, "Add 0..N at random to --limit-max-requests per worker, so they do not retire at once."
    )
    timeout_keep_alive: float = setting(5.0, "Seconds an idle keep-alive connection is kept.")
    timeout_header_read: float = setting(
        10.0, "Deadline in seconds for a whole request head (slow-client defence); 408 after."
    )
    timeout_body_read: float = setting(
        30.0, "Seconds the request body may stay silent before the request is abandoned."
    )
    timeout_write: float = setting(30.0, "Seconds a blocked response write may wait.")
    timeout_graceful_shutdown: float = setting(
        30.0, "Seconds in-flight requests get to finish on shutdown."
    )
    limit_concurrency: int | None = setting(
        None,
        "Open connections allowed per process; requests on connections past this get 503.",
    )
    max_body_size: int = setting(
        100 * 1024 * 1024, "Largest request body in bytes (413 past it); 0 for no limit."
    )
    limit_request_line: int = setting(8190, "Longest request line in bytes (414 past it).")
    limit_request_fields: int = setting(100, "Most header fields in a request (431 past it).")
    limit_request_headers_size: int = setting(
        65536, "Largest header block in bytes after the request line (431 past it)."
    )
    access_log: bool = setting(True, "Log one line per request.")
    access_log_format: str | None = setting(
        None,
        "Access line in gunicorn's atoms, e.g. '%(h)s \"%(r)s\" %(s)s %(b)s %(D)s "
        "%({x-request-id}i)s'; omitted, the built-in format.",
    )
    log_config: str | None = setting(
        None,
        "Logging configuration for logging.config: a .json or .yaml/.yml dictConfig file, "
        "or an .ini fileConfig file. Replaces the built-in handlers.",
    )
    log_level: LogLevel = setting(
        "info", "Log level.", choices=("critical", "error", "warning", "info", "debug", "trace")
    )
    server_header: bool = setting(True, "Send a Server header.")
    date_header: bool = setting(True, "Send a Date header.")
    header: tuple[str, ...] = setting(
        (), "Extra response header as 'name: value'; repeat the flag for more."
    )
    request_id: bool = setting(
        False,
        "Keep a sane incoming X-Request-ID or make one; echo it in the response, the access "
        "log and scope['extensions']['request_id'].",
    )
    proxy_headers: bool = setting(
        True,
        "Take the client address, scheme and host from X-Forwarded-For/-Proto/-Host or "
        "RFC 7239 Forwarded, from peers in --forwarded-allow-ips only.",
    )
    forwarded_allow_ips: str = setting(
        "127.0.0.1",
        "Comma-separated IPs or networks (CIDR) trusted to send proxy headers; '*' all.",
    )
    metrics_path: str | None = setting(
        None,
        "Path answered by the server itself with Prometheus text metrics, summed over all "
        "worker threads and processes.",
    )
    health_path: str | None = setting(
        None,
        "Path answered by the server itself, without the app: 200 while serving, "
        "503 while draining.",
    )
    drain_delay: float = setting(
        0.0,
        "Seconds to keep serving after SIGTERM/SIGINT before the drain starts, with the "
        "health path answering 503, so load balancers stop sending first.",
    )
    reload: bool = setting(False, "Development: restart the server when a watched file changes.")
    reload_dir: tuple[str, ...] = setting(
        (), "Directory to watch with --reload (repeatable); default: --app-dir."
    )
    reload_include: tuple[str, ...] = setting(
        (), "Glob of file names to watch with --reload (repeatable); default: *.py."
    )
    reload_exclude: tuple[str, ...] = setting(
        (),
        "Glob of file or directory names to ignore with --reload (repeatable); "
        "default: .* and __pycache__ directories, *.py[cod] and editor swap files.",
    )
    async_threads: int = setting(
        1, "Event-loop threads of the AsyncPool in each process (streaming, WebSocket, HTTP/2)."
    )
    async_backlog: int = setting(
        1024,
        "Handoffs (connections) the AsyncPool of a process holds at once; more get 503.",
    )
    stream_path: tuple[str, ...] = setting(
        (),
        "Path prefix whose requests go straight to the AsyncPool as streaming responses "
        "(repeatable).",
    )
    limit_stream_threads: int = setting(
        64,
        "Threads a process may add so that a response found streaming on the sync path "
        "does not hold a worker seat (its worker finishes it, a new thread takes the seat); "
        "past it, such a response holds its worker until it ends. 0: never.",
    )
    ws: bool = setting(True, "Accept WebSocket upgrades (needs wsproto).")
    ws_max_size: int = setting(
        16 * 1024 * 1024, "Largest WebSocket message in bytes; bigger ones close with 1009."
    )
    ws_ping_interval: float | None = setting(
        20.0, "Seconds between WebSocket pings from the server; 0: no pings."
    )
    ws_ping_timeout: float | None = setting(
        20.0, "Seconds to wait for a pong before closing the WebSocket; 0: never close for that."
    )
    ws_per_message_deflate: bool = setting(
        True, "Offer permessage-deflate compression to WebSocket clients."
    )
    http2: bool = setting(
        True, "Serve HTTP/2: prior knowledge, h2c upgrade and ALPN h2 (not for WSGI apps)."
    )
    h2_max_concurrent_streams: int = setting(100, "Most concurrent HTTP/2 streams per connection.")
    h2_max_header_list_size: int = setting(
        65536, "Largest HTTP/2 header list in bytes (uncompressed) a client may send."
    )
    h2_max_inbound_frame_size: int = setting(
        16384, "Largest HTTP/2 frame payload the server accepts (16384..16777215)."
    )

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def worker_count(self) -> int:
        return self.workers or os.cpu_count() or 1

    @property
    def serves_http2(self) -> bool:
        """HTTP/2 lives on the AsyncPool, which runs ASGI apps only."""
        return self.http2 and self.interface != "wsgi"

    @property
    def server_name(self) -> bytes:
        return b"pounce-sync"

    @property
    def uds_permissions(self) -> int | None:
        return None if self.uds_mode is None else int(self.uds_mode.removeprefix("0o"), 8)

    @property
    def extra_headers(self) -> list[tuple[bytes, bytes]]:
        pairs = (raw.partition(":") for raw in self.header)
        return [(name.strip().lower().encode(), value.strip().encode()) for name, _, value in pairs]


def _validate(config: Config) -> None:
    if not 0 <= config.port <= 65535:
        raise ConfigError(f"--port must be between 0 and 65535, got {config.port}")
    if config.workers < 0:
        raise ConfigError(f"--workers must be 0 or more, got {config.workers}")
    if config.threads < 1:
        raise ConfigError(f"--threads must be at least 1, got {config.threads}")
    if config.backlog < 1:
        raise ConfigError(f"--backlog must be at least 1, got {config.backlog}")
    for name in (
        "timeout_keep_alive",
        "timeout_header_read",
        "timeout_body_read",
        "timeout_write",
        "timeout_tls_handshake",
    ):
        if getattr(config, name) <= 0:
            raise ConfigError(f"--{name.replace('_', '-')} must be positive")
    if config.timeout_graceful_shutdown < 0:
        raise ConfigError("--timeout-graceful-shutdown must be 0 or more")
    if config.limit_concurrency is not None and config.limit_concurrency < 1:
        raise ConfigError("--limit-concurrency must be at least 1")
    if config.limit_max_requests is not None and config.limit_max_requests < 1:
        raise ConfigError("--limit-max-requests must be at least 1")
    if config.limit_max_requests_jitter < 0:
        raise ConfigError("--limit-max-requests-jitter must be 0 or more")
    if config.max_body_size < 0:
        raise ConfigError("--max-body-size must be 0 or more")
    for name in ("limit_request_line", "limit_request_fields", "limit_request_headers_size"):
        if getattr(config, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1")
    for spec in config.bind:
        tcp = not spec.startswith(("unix:", "fd://"))
        if not _BIND.fullmatch(spec) or (tcp and int(spec.rpartition(":")[2]) > 65535):
            raise ConfigError(
                f"--bind must be HOST:PORT, [IPV6]:PORT, unix:PATH or fd://N, got {spec!r}"
            )
    for raw in config.header:
        name, sep, value = raw.partition(":")
        if not sep or not valid_field(name.encode(), value.encode()):
            raise ConfigError(f"--header must look like 'name: value', got {raw!r}")
    try:
        parse_trusted(config.forwarded_allow_ips)
    except ValueError as exc:
        raise ConfigError(f"--forwarded-allow-ips: {exc}") from None
    for name in ("health_path", "metrics_path"):
        path = getattr(config, name)
        if path is not None and not path.startswith("/"):
            raise ConfigError(f"--{name.replace('_', '-')} must start with '/', got {path!r}")
    _validate_tls(config)
    _validate_async(config)
    for f in fields(config):
        choices = f.metadata.get("choices")
        if choices and getattr(config, f.name) not in choices:
            raise ConfigError(f"--{f.name.replace('_', '-')} must be one of {', '.join(choices)}")


def _validate_async(config: Config) -> None:
    if config.uds_mode is not None and not re.fullmatch(r"(0o?)?[0-7]{1,4}", config.uds_mode):
        raise ConfigError(f"--uds-mode must be octal permissions like 660, got {config.uds_mode!r}")
    if config.drain_delay < 0:
        raise ConfigError("--drain-delay must be 0 or more")
    if config.async_threads < 1:
        raise ConfigError("--async-threads must be at least 1")
    if config.async_backlog < 1:
        raise ConfigError("--async-backlog must be at least 1")
    if config.limit_stream_threads < 0:
        raise ConfigError("--limit-stream-threads must be 0 or more")
    for prefix in config.stream_path:
        if not prefix.startswith("/"):
            raise ConfigError(f"--stream-path must start with '/', got {prefix!r}")
    if config.ws_max_size < 1:
        raise ConfigError("--ws-max-size must be at least 1")
    for name in ("ws_ping_interval", "ws_ping_timeout"):
        value = getattr(config, name)
        if value is not None and value < 0:
            raise ConfigError(f"--{name.replace('_', '-')} must be 0 or more")
    if config.h2_max_concurrent_streams < 1:
        raise ConfigError("--h2-max-concurrent-streams must be at least 1")
    if config.h2_max_header_list_size < 1:
        raise ConfigError("--h2-max-header-list-size must be at least 1")
    if not 16384 <= config.h2_max_inbound_frame_size <= 16777215:
        raise ConfigError("--h2-max-inbound-frame-size must be between 16384 and 16777215")


def _validate_tls(config: Config) -> None:
    if config.ssl_cert_reqs not in (0, 1, 2):
        raise ConfigError("--ssl-cert-reqs must be 0 (none), 1 (optional) or 2 (required)")
    if config.ssl_certfile is None:
        for name in ("ssl_keyfile", "ssl_keyfile_password", "ssl_ca_certs"):
            if getattr(config, name) is not None:
                raise ConfigError(f"--{name.replace('_', '-')} needs --ssl-certfile")
        if config.ssl_cert_reqs:
            raise ConfigError("--ssl-cert-reqs needs --ssl-certfile")
    elif config.ssl_cert_reqs and config.ssl_ca_certs is None:
        raise ConfigError(
            "--ssl-cert-reqs 1 or 2 needs --ssl-ca-certs to verify client certificates"
        )
