"""Every setting, declared once: a frozen dataclass whose fields drive the CLI and docs.

Each field carries its type, default, help and its own check; the choices of a
`Literal[...]` setting are read from its type. Rules that tie several fields
together follow the class as `CROSS_FIELD_CHECKS`. One `Config` is built at
start-up, checked, and then shared read-only by every thread, so nothing on the
request path needs a lock to read a setting.
"""

import os
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from pounce_sync.asgi.proxy import parse_trusted
from pounce_sync.http1 import valid_field

LifespanMode = Literal["auto", "on", "off"]
WorkerMode = Literal["auto", "thread", "process"]
Interface = Literal["auto", "asgi3", "asgi2", "wsgi"]
CoroutineDriver = Literal["auto", "eager", "loop"]
LogLevel = Literal["critical", "error", "warning", "info", "debug", "trace"]

Check = Callable[[str, Any], None]
"""A field's check: given the flag that names it and a value (never None), raise or return."""


SSL_KEYFILE_PASSWORD_ENV = "POUNCE_SYNC_SSL_KEYFILE_PASSWORD"
"""The key's password from the environment: not in `ps`, unlike --ssl-keyfile-password."""


class ConfigError(ValueError):
    """A setting is invalid; the message is shown to the user as one line."""


def flag_for(name: str) -> str:
    """The command-line flag of setting `name`, which also names it in error messages."""
    return "--" + name.replace("_", "-")


# -- checks of one value, named for what they accept ------------------------------------


def positive(flag: str, value: float) -> None:
    if value <= 0:
        raise ConfigError(f"{flag} must be positive, got {value!r}")


def non_negative(flag: str, value: float) -> None:
    if value < 0:
        raise ConfigError(f"{flag} must be 0 or more, got {value!r}")


def at_least_one(flag: str, value: int) -> None:
    if value < 1:
        raise ConfigError(f"{flag} must be at least 1, got {value!r}")


def between(low: int, high: int) -> Check:
    """A check for whole numbers from `low` to `high`, both included."""

    def check(flag: str, value: int) -> None:
        if not low <= value <= high:
            raise ConfigError(f"{flag} must be between {low} and {high}, got {value!r}")

    return check


port_number = between(0, 65535)
h2_frame_size = between(16384, 16777215)  # RFC 9113 6.5.2, SETTINGS_MAX_FRAME_SIZE


def one_of(allowed: tuple[Any, ...]) -> Check:
    """A check for a `Literal[...]` setting: the value must be one of its type's values."""

    def check(flag: str, value: Any) -> None:
        if value not in allowed:
            listed = ", ".join(map(str, allowed))
            raise ConfigError(f"{flag} must be one of {listed}, got {value!r}")

    return check


def each(check: Check) -> Check:
    """A repeatable setting's check: `check` applied to every value given."""

    def check_each(flag: str, values: tuple[Any, ...]) -> None:
        for value in values:
            check(flag, value)

    return check_each


def client_cert_mode(flag: str, value: int) -> None:
    if value not in (0, 1, 2):
        raise ConfigError(f"{flag} must be 0 (none), 1 (optional) or 2 (required), got {value!r}")


def octal_mode(flag: str, value: str) -> None:
    """Permission bits as chmod takes them: 660, 0660 or 0o660."""
    if not re.fullmatch(r"(0o?)?[0-7]{1,4}", value):
        raise ConfigError(f"{flag} must be octal permissions like 660, got {value!r}")


_BIND = re.compile(r"unix:.+|fd://[0-9]+|(\[[0-9A-Fa-f:.]+\]|[^:\[\]]*):[0-9]{1,5}")


def bind_address(flag: str, spec: str) -> None:
    """The pattern allows five port digits; the port must also fit in 16 bits."""
    tcp = not spec.startswith(("unix:", "fd://"))
    if not _BIND.fullmatch(spec) or (tcp and int(spec.rpartition(":")[2]) > 65535):
        raise ConfigError(
            f"{flag} must be HOST:PORT, [IPV6]:PORT, unix:PATH or fd://N, got {spec!r}"
        )


def header_line(flag: str, raw: str) -> None:
    """'name: value' that is safe to send as is: a token name, no CR, LF or NUL."""
    name, sep, value = raw.partition(":")
    if not sep or not valid_field(name.encode(), value.encode()):
        raise ConfigError(f"{flag} must look like 'name: value', got {raw!r}")


def url_path(flag: str, path: str) -> None:
    if not path.startswith("/"):
        raise ConfigError(f"{flag} must start with '/', got {path!r}")


def trusted_peers(flag: str, spec: str) -> None:
    """The proxy module parses the list; its error already names the bad entry."""
    try:
        parse_trusted(spec)
    except ValueError as exc:
        raise ConfigError(f"{flag}: {exc}") from None


def setting(
    default: Any,
    help: str,
    *,
    flag: str | None = None,
    check: Check | None = None,
    separator: str = ",",
) -> Any:
    """A `Config` field; `flag=""` makes it the positional argument, `check` its own rule.

    `separator` splits a repeatable setting's environment variable into its values.
    """
    metadata = {"help": help, "flag": flag, "check": check, "separator": separator}
    return field(default=default, metadata=metadata)


@dataclass(frozen=True, slots=True)
class Config:
    app: str | None = setting(
        None, "Application as module:attribute; omitted, the built-in diagnostic app.", flag=""
    )
    host: str = setting("127.0.0.1", "Address to bind.")
    port: int = setting(8000, "Port to bind (0 picks a free port).", check=port_number)
    uds: str | None = setting(
        None, "Bind a Unix domain socket at this path (instead of --host/--port)."
    )
    uds_mode: str | None = setting(
        None,
        "Permissions (octal, e.g. 660) set on Unix socket files this server creates; "
        "omitted, the umask decides.",
        check=octal_mode,
    )
    bind: tuple[str, ...] = setting(
        (),
        "Listen on HOST:PORT, [IPV6]:PORT, unix:PATH or fd://N; repeat for several. "
        "Replaces --host/--port.",
        check=each(bind_address),
    )
    fd: int | None = setting(
        None, "Listen on this inherited socket descriptor (systemd socket activation)."
    )
    backlog: int = setting(2048, "Listen backlog.", check=at_least_one)
    ssl_certfile: str | None = setting(
        None, "TLS certificate chain (PEM), server certificate first; setting it turns on TLS."
    )
    ssl_keyfile: str | None = setting(
        None, "TLS private key (PEM); omitted, the key is read from --ssl-certfile."
    )
    ssl_keyfile_password: str | None = setting(
        None,
        "Password of an encrypted TLS key. Every user sees it in ps: prefer "
        f"--ssl-keyfile-password-file or ${SSL_KEYFILE_PASSWORD_ENV}.",
    )
    ssl_keyfile_password_file: str | None = setting(
        None,
        "File whose first line (its newline stripped) is the password of an encrypted TLS "
        f"key. Without either flag, ${SSL_KEYFILE_PASSWORD_ENV} is read.",
    )
    ssl_ca_certs: str | None = setting(
        None, "CA certificates (PEM) that client certificates are verified against."
    )
    ssl_cert_reqs: int = setting(
        0,
        "Client certificates: 0 not asked for, 1 optional, 2 required (mutual TLS).",
        check=client_cert_mode,
    )
    ssl_ciphers: str = setting(
        "ECDHE+AESGCM:ECDHE+CHACHA20:ECDHE+AES",
        "OpenSSL cipher list for TLS 1.2 (TLS 1.3 always uses OpenSSL's suites); the default "
        "keeps forward-secret suites only.",
    )
    timeout_tls_handshake: float = setting(
        10.0,
        "Deadline in seconds for a TLS handshake; the connection is closed silently after.",
        check=positive,
    )
    app_dir: str = setting(".", "Directory put first on sys.path to import the app.")
    factory: bool = setting(False, "The app attribute is a factory; call it to get the app.")
    interface: Interface = setting(
        "auto",
        "Application interface. auto, decided once at load: an async callable is asgi3, a "
        "sync one taking (environ, start_response) is wsgi (PEP 3333), any other asgi2.",
    )
    workers: int = setting(
        1,
        "Workers: threads in thread mode, processes in process mode; 0 means os.cpu_count().",
        check=non_negative,
    )
    worker_mode: WorkerMode = setting(
        "auto", "auto: threads when the GIL is disabled, processes when it is enabled."
    )
    threads: int = setting(
        1, "Sync worker threads in each worker process (process mode).", check=at_least_one
    )
    root_path: str = setting(
        "", "ASGI root_path (WSGI SCRIPT_NAME), for apps mounted below a URL prefix."
    )
    lifespan: LifespanMode = setting(
        "auto", "Run the ASGI lifespan protocol (never for WSGI apps)."
    )
    coroutine_driver: CoroutineDriver = setting(
        "auto",
        "How a worker runs an ASGI coroutine: 'eager' steps it without the event loop until it "
        "really awaits; 'loop' runs each request on the thread's loop. auto = eager.",
    )
    limit_max_requests: int | None = setting(
        None,
        "Retire a worker (a thread in thread mode, a process in process mode) gracefully "
        "after this many requests, and start a fresh one.",
        check=at_least_one,
    )
    limit_max_requests_jitter: int = setting(
        0,
        "Add 0..N at random to --limit-max-requests per worker, so they do not retire at once.",
        check=non_negative,
    )
    timeout_keep_alive: float = setting(
        5.0, "Seconds an idle keep-alive connection is kept.", check=positive
    )
    timeout_header_read: float = setting(
        10.0,
        "Deadline in seconds for a whole request head (slow-client defence); 408 after.",
        check=positive,
    )
    timeout_body_read: float = setting(
        30.0,
        "Seconds the request body may stay silent before the request is abandoned.",
        check=positive,
    )
    timeout_write: float = setting(
        30.0, "Seconds a blocked response write may wait.", check=positive
    )
    timeout_graceful_shutdown: float = setting(
        30.0, "Seconds in-flight requests get to finish on shutdown.", check=non_negative
    )
    limit_concurrency: int | None = setting(
        None,
        "Open connections allowed per process; requests on connections past this get 503.",
        check=at_least_one,
    )
    max_body_size: int = setting(
        100 * 1024 * 1024,
        "Largest request body in bytes (413 past it); 0 for no limit.",
        check=non_negative,
    )
    limit_request_line: int = setting(
        8190, "Longest request line in bytes (414 past it).", check=at_least_one
    )
    limit_request_fields: int = setting(
        100, "Most header fields in a request (431 past it).", check=at_least_one
    )
    limit_request_headers_size: int = setting(
        65536,
        "Largest header block in bytes after the request line (431 past it).",
        check=at_least_one,
    )
    access_log: bool = setting(True, "Log one line per request.")
    access_log_format: str | None = setting(
        None,
        "Access line in gunicorn's atoms, e.g. '%(h)s \"%(r)s\" %(s)s %(b)s %(D)s "
        "%({x-request-id}i)s'; omitted, the built-in format.",
    )
    log_config: str | None = setting(
        None,
        "Logging configuration for logging.config: a .json or .yaml/.yml (needs PyYAML) "
        "dictConfig file, or an .ini fileConfig file. Replaces the built-in handlers: the "
        "pounce_sync.error and pounce_sync.access loggers propagate to what it sets up.",
    )
    log_level: LogLevel = setting("info", "Log level.")
    server_header: bool = setting(True, "Send a Server header.")
    date_header: bool = setting(True, "Send a Date header.")
    header: tuple[str, ...] = setting(
        (),
        "Extra response header as 'name: value' (or uvicorn's 'name:value'); repeat the flag "
        "for more.",
        check=each(header_line),
        separator="\n",  # header values hold commas; they never hold a newline
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
        check=trusted_peers,
    )
    metrics_path: str | None = setting(
        None,
        "Path answered by the server itself with Prometheus text metrics, summed over all "
        "worker threads and processes.",
        check=url_path,
    )
    health_path: str | None = setting(
        None,
        "Path answered by the server itself, without the app: 200 while serving, "
        "503 while draining.",
        check=url_path,
    )
    drain_delay: float = setting(
        0.0,
        "Seconds to keep serving after SIGTERM/SIGINT before the drain starts, with the "
        "health path answering 503, so load balancers stop sending first.",
        check=non_negative,
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
        1,
        "Event-loop threads of the AsyncPool in each process (streaming, WebSocket, HTTP/2).",
        check=at_least_one,
    )
    async_backlog: int = setting(
        1024,
        "Handoffs (connections) the AsyncPool of a process holds at once; more get 503.",
        check=at_least_one,
    )
    stream_path: tuple[str, ...] = setting(
        (),
        "Path prefix whose requests go straight to the AsyncPool as streaming responses "
        "(repeatable).",
        check=each(url_path),
    )
    limit_stream_threads: int = setting(
        64,
        "Threads a process may add so that a response found streaming on the sync path "
        "does not hold a worker seat (its worker finishes it, a new thread takes the seat); "
        "past it, such a response holds its worker until it ends. 0: never.",
        check=non_negative,
    )
    ws: bool = setting(True, "Accept WebSocket upgrades (needs wsproto).")
    ws_max_size: int = setting(
        16 * 1024 * 1024,
        "Largest WebSocket message in bytes; bigger ones close with 1009.",
        check=at_least_one,
    )
    ws_ping_interval: float | None = setting(
        20.0, "Seconds between WebSocket pings from the server; 0: no pings.", check=non_negative
    )
    ws_ping_timeout: float | None = setting(
        20.0,
        "Seconds to wait for a pong before closing the WebSocket; 0: never close for that.",
        check=non_negative,
    )
    ws_per_message_deflate: bool = setting(
        True, "Offer permessage-deflate compression to WebSocket clients."
    )
    http2: bool = setting(
        True, "Serve HTTP/2: prior knowledge, h2c upgrade and ALPN h2 (not for WSGI apps)."
    )
    h2_max_concurrent_streams: int = setting(
        100, "Most concurrent HTTP/2 streams per connection.", check=at_least_one
    )
    h2_max_header_list_size: int = setting(
        65536,
        "Largest HTTP/2 header list in bytes (uncompressed) a client may send.",
        check=at_least_one,
    )
    h2_max_inbound_frame_size: int = setting(
        16384,
        "Largest HTTP/2 frame payload the server accepts (16384..16777215).",
        check=h2_frame_size,
    )

    http3: bool = setting(
        False,
        "Serve HTTP/3 over QUIC on a UDP port as well (Python 3.14+ with bengal-zoomies; "
        "needs --ssl-certfile with an ECDSA P-256 key). TLS responses advertise it (Alt-Svc).",
    )
    http3_port: int | None = setting(
        None,
        "UDP port of HTTP/3; omitted, the TCP listener's port number.",
        check=port_number,
    )
    http3_max_concurrent_streams: int = setting(
        100, "Most concurrent HTTP/3 request streams per connection.", check=at_least_one
    )
    http3_idle_timeout: float = setting(
        30.0,
        "Seconds a QUIC connection may stay silent before it is closed (its max_idle_timeout).",
        check=positive,
    )

    def __post_init__(self) -> None:
        """Each field's own check in declaration order, then the rules across fields.

        None is every optional setting's "not set", so it is never checked.
        """
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            for check in _FIELD_CHECKS[f.name]:
                check(flag_for(f.name), value)
        for rule in CROSS_FIELD_CHECKS:
            rule(self)

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
        """--header fields, and Alt-Svc once the HTTP/3 port is bound (run sets it)."""
        pairs = (raw.partition(":") for raw in self.header)
        fields = [
            (name.strip().lower().encode(), value.strip().encode()) for name, _, value in pairs
        ]
        if self.http3 and self.http3_port:
            fields.append((b"alt-svc", f'h3=":{self.http3_port}"; ma=86400'.encode()))
        return fields


def choices(name: str) -> tuple[Any, ...]:
    """The values setting `name` allows, read from its `Literal[...]` type; () for others."""
    hint = _TYPES[name]
    return typing.get_args(hint) if typing.get_origin(hint) is Literal else ()


_TYPES: dict[str, Any] = typing.get_type_hints(Config)


def _checks_of(name: str, own: Check | None) -> tuple[Check, ...]:
    """A `Literal` setting's values are its first check; the field's own check follows."""
    checks = [one_of(choices(name))] if choices(name) else []
    if own is not None:
        checks.append(own)
    return tuple(checks)


_FIELD_CHECKS = {f.name: _checks_of(f.name, f.metadata["check"]) for f in fields(Config)}


def check_value(name: str, value: Any, label: str) -> None:
    """Setting `name`'s own checks on `value`, their errors naming `label` (a file's key,
    an environment variable) instead of the flag."""
    if value is not None:
        for check in _FIELD_CHECKS[name]:
            check(label, value)


def setting_type(name: str) -> type:
    """What setting `name` holds: str, int, float, bool or tuple (of str); None aside."""
    hint = _TYPES[name]
    if isinstance(hint, types.UnionType):
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    if typing.get_origin(hint) is Literal:
        return str
    return typing.get_origin(hint) or hint


# -- rules across fields, checked after every field passed its own ----------------------

_CERTFILE_COMPANIONS = (
    "ssl_keyfile",
    "ssl_keyfile_password",
    "ssl_keyfile_password_file",
    "ssl_ca_certs",
)


def tls_files_need_certfile(config: Config) -> None:
    """A key, its password or client CAs without a certificate would silently serve plain HTTP."""
    if config.ssl_certfile is None:
        for name in _CERTFILE_COMPANIONS:
            if getattr(config, name) is not None:
                raise ConfigError(f"{flag_for(name)} needs --ssl-certfile")


def one_key_password(config: Config) -> None:
    """Two passwords given: which one was meant cannot be guessed."""
    if config.ssl_keyfile_password is not None and config.ssl_keyfile_password_file is not None:
        raise ConfigError("give --ssl-keyfile-password or --ssl-keyfile-password-file, not both")


def client_certs_need_certfile(config: Config) -> None:
    if config.ssl_cert_reqs and config.ssl_certfile is None:
        raise ConfigError("--ssl-cert-reqs needs --ssl-certfile")


def client_certs_need_ca_certs(config: Config) -> None:
    """Asking for client certificates means nothing with no CAs to verify them against."""
    if config.ssl_cert_reqs and config.ssl_certfile is not None and config.ssl_ca_certs is None:
        raise ConfigError(
            "--ssl-cert-reqs 1 or 2 needs --ssl-ca-certs to verify client certificates"
        )


def http3_needs_certfile(config: Config) -> None:
    """QUIC always runs TLS 1.3."""
    if config.http3 and config.ssl_certfile is None:
        raise ConfigError("--http3 needs --ssl-certfile and --ssl-keyfile")


CROSS_FIELD_CHECKS: tuple[Callable[[Config], None], ...] = (
    tls_files_need_certfile,
    http3_needs_certfile,
    one_key_password,
    client_certs_need_certfile,
    client_certs_need_ca_certs,
)
