"""Access-log lines in gunicorn's format atoms, compiled once per worker.

`compile_format()` turns a format such as `'%(h)s "%(r)s" %(s)s %(b)s'` into a
positional %-template and one small function per atom, so a line costs a few
function calls and one `%`: the format string is never parsed on the request path.
Whether it shows a response header (`{name}o`) is decided once beside it
(`shows_response_headers`): only then do the protocol shells keep the app's headers
(`KeepsResponseHeaders`), which, as gunicorn's, are the app's own as it gave them, not
the server's (Server, Date, X-Request-ID, --header).

`B`/`b` are gunicorn's: the bytes of the response body put on the wire, without the
head or chunked framing, 0 for HEAD, 204 and 304; the built-in line shows the same.

Differences from gunicorn, each on purpose:

- `b` renders `-` for 0, as Apache's CLF `%b` and gunicorn's documentation say;
  gunicorn's code (27.0.1) renders `0` there, because `str(0)` is true.
- `{name}o` joins repeated fields with `, `, as `{name}i` does; gunicorn keeps the
  last.
- An empty query string (`q`) renders `-`, so whitespace-split fields stay aligned.
- A `%` that starts no atom is kept as text instead of failing every line.
"""

import logging
import os
import re
import time
from collections.abc import Callable
from typing import NamedTuple

from pounce_sync.asgi.exchange import ResponseHeaders
from pounce_sync.asgi.scope import split_target
from pounce_sync.config import Config
from pounce_sync.http1 import Request

access_logger = logging.getLogger("pounce_sync.access")


class AccessRecord(NamedTuple):
    """What one access line can show; a NamedTuple because one is made per request."""

    client: tuple[str, int] | None
    request: Request
    status: int
    body_bytes: int  # the response body, without head or framing (`B`)
    elapsed: float  # seconds from the complete request head to the end of the response
    request_id: bytes | None
    response_headers: ResponseHeaders = ()  # the app's; kept only if the format shows them


Atom = Callable[[AccessRecord], object]
AccessFormatter = Callable[[AccessRecord], str]

# %(key)spec, as Python's %-formatting reads it; `%%` is a literal percent sign.
_PLACEHOLDER = re.compile(
    r"%%|%\((?P<key>[^)]*)\)(?P<spec>[-#0 +]*\d*(?:\.\d+)?[diouxXeEfFgGcrsa])"
)
_NUMERIC = frozenset("diouxXeEfFgGc")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class AccessLog:
    """One line per request on every protocol, in --access-log-format or the built-in line.

    Callers test `enabled` first, so a server run with --no-access-log does no work for
    it per request. Immutable once made: worker threads and the pool's loops share one.
    """

    __slots__ = ("_custom", "_line", "enabled", "keeps_response_headers")

    def __init__(self, config: Config) -> None:
        self.enabled = config.access_log
        self._custom = bool(config.access_log_format)
        self._line = line_formatter(config.access_log_format)
        # Read once by each shell's maker, never per request.
        self.keeps_response_headers = self.enabled and shows_response_headers(
            config.access_log_format
        )

    def log(
        self,
        client: tuple[str, int] | None,
        request: Request,
        status: int,
        body_bytes: int,
        started: float,
        request_id: bytes | None,
        response_headers: ResponseHeaders = (),
    ) -> None:
        """`started`: time.perf_counter() when the request head was complete."""
        if not access_logger.isEnabledFor(logging.INFO):
            return
        elapsed = time.perf_counter() - started
        record = AccessRecord(
            client, request, status, body_bytes, elapsed, request_id, response_headers
        )
        access_logger.info(self._line(record))

    def log_websocket(
        self, client: tuple[str, int] | None, request: Request, status: int, started: float
    ) -> None:
        """A WebSocket session, when it ends: the operator's line if set, else its own."""
        if self._custom:
            self.log(client, request, status, 0, started, None)
        elif access_logger.isEnabledFor(logging.INFO):
            access_logger.info(
                '%s - "WebSocket %s" %d %.2fms',
                "%s:%d" % tuple(client) if client else "-",
                request.target.decode("ascii", "replace"),
                status,
                (time.perf_counter() - started) * 1000,
            )


def line_formatter(fmt: str | None) -> AccessFormatter:
    """The access line for --access-log-format, or the built-in line when it is not set."""
    return compile_format(fmt) if fmt else default_line


def default_line(record: AccessRecord) -> str:
    """`client - "METHOD target HTTP/v" status body-bytes 1.23ms[ id=...]`, on every protocol."""
    request = record.request
    return '%s - "%s %s HTTP/%s" %d %d %.2fms%s' % (
        "%s:%d" % record.client if record.client else "-",
        request.method.decode("ascii", "replace"),
        request.target.decode("ascii", "replace"),
        request.http_version.decode("ascii", "replace"),
        record.status,
        record.body_bytes,
        record.elapsed * 1000,
        " id=" + record.request_id.decode("ascii") if record.request_id else "",
    )


def shows_response_headers(fmt: str | None) -> bool:
    """Whether `fmt` has a `%({name}o)s` atom, so the app's response headers must be kept."""
    keys = (match["key"] for match in _PLACEHOLDER.finditer(fmt or ""))
    return any(key is not None and _is_response_header(key) for key in keys)


def _is_response_header(key: str) -> bool:
    return key.startswith("{") and key.endswith("}o")


def compile_format(fmt: str) -> AccessFormatter:
    """Parse `fmt` once; the returned callable renders one line from an `AccessRecord`."""
    template: list[str] = []
    atoms: list[Atom] = []
    end = 0
    for match in _PLACEHOLDER.finditer(fmt):
        template.append(fmt[end : match.start()].replace("%", "%%"))
        end = match.end()
        if match[0] == "%%":
            template.append("%%")
            continue
        template.append("%s")
        atoms.append(_with_spec(atom(match["key"]), match["spec"]))
    template.append(fmt[end:].replace("%", "%%"))
    return _renderer("".join(template), tuple(atoms))


def _renderer(template: str, atoms: tuple[Atom, ...]) -> AccessFormatter:
    def render(record: AccessRecord) -> str:
        return template % tuple([get(record) for get in atoms])

    return render


def _with_spec(get: Atom, spec: str) -> Atom:
    """Honour a width or a numeric conversion; a `-` stays `-` instead of raising."""
    if spec == "s":
        return get
    plain = "%" + spec

    def formatted(record: AccessRecord) -> object:
        value = get(record)
        if spec[-1] in _NUMERIC and not isinstance(value, int | float):
            return value
        return plain % value

    return formatted


def atom(key: str) -> Atom:
    """The function behind one atom; unknown atoms render `-`, as in gunicorn."""
    simple = _ATOMS.get(key)
    if simple is not None:
        return simple
    if key.startswith("{") and key.endswith("}i"):
        name = key[1:-2].lower().encode("latin-1")
        return _request_id if name == b"x-request-id" else _header(name)
    if _is_response_header(key):
        return _response_header(key[1:-2].lower().encode("latin-1"))
    return _dash


# -- the atoms -----------------------------------------------------------------
def _text(value: bytes) -> str:
    """Bytes from the request as log text; quotes escaped as gunicorn does."""
    return value.decode("latin-1").replace('"', '\\"')


def _find_header(request: Request, name: bytes) -> str:
    values = [value for key, value in request.headers if key == name]
    return _text(b", ".join(values)) if values else "-"


def _header(name: bytes) -> Atom:
    return lambda record: _find_header(record.request, name)


def _response_header(name: bytes) -> Atom:
    """The app's field `name` (lower case), any case the app spelled it in."""

    def find(record: AccessRecord) -> str:
        values = [bytes(v) for k, v in record.response_headers if bytes(k).lower() == name]
        return _text(b", ".join(values)) if values else "-"

    return find


def _request_id(record: AccessRecord) -> str:
    """The id --request-id kept or made; without it, the header as the client sent it."""
    if record.request_id is not None:
        return record.request_id.decode("ascii")
    return _find_header(record.request, b"x-request-id")


def _dash(record: AccessRecord) -> str:
    return "-"


def _host(record: AccessRecord) -> str:
    return record.client[0] if record.client else "-"


def _request_line(record: AccessRecord) -> str:
    request = record.request
    return _text(b"%s %s HTTP/%s" % (request.method, request.target, request.http_version))


def _path(record: AccessRecord) -> str:
    return _text(split_target(record.request.target)[0])


def _query(record: AccessRecord) -> str:
    query = split_target(record.request.target)[1]
    return _text(query) if query else "-"


def _status(record: AccessRecord) -> int | str:
    return record.status or "-"  # 0: the app never started a response


def _bytes_or_dash(record: AccessRecord) -> int | str:
    return record.body_bytes or "-"


_clock_cache: tuple[int, str] = (-1, "")


def _timestamp(record: AccessRecord) -> str:
    """`[10/Oct/2000:13:55:36 +0000]` in local time, formatted at most once a second."""
    global _clock_cache
    now = int(time.time())
    second, text = _clock_cache  # one tuple read: safe without a lock, even free-threaded
    if second != now:
        text = _format_time(time.localtime(now))
        _clock_cache = (now, text)
    return text


def _format_time(t: time.struct_time) -> str:
    """English month names whatever the locale, as log parsers expect."""
    offset = t.tm_gmtoff // 60
    sign = "-" if offset < 0 else "+"
    zone = "%s%02d%02d" % (sign, abs(offset) // 60, abs(offset) % 60)
    month = _MONTHS[t.tm_mon - 1]
    clock = "%02d:%02d:%02d" % (t.tm_hour, t.tm_min, t.tm_sec)
    return "[%02d/%s/%d:%s %s]" % (t.tm_mday, month, t.tm_year, clock, zone)


_ATOMS: dict[str, Atom] = {
    "h": _host,
    "l": _dash,
    "u": _dash,
    "t": _timestamp,
    "r": _request_line,
    "m": lambda record: record.request.method.decode("latin-1"),
    "U": _path,
    "q": _query,
    "H": lambda record: "HTTP/" + record.request.http_version.decode("latin-1"),
    "s": _status,
    "B": lambda record: record.body_bytes,
    "b": _bytes_or_dash,
    "f": _header(b"referer"),
    "a": _header(b"user-agent"),
    "T": lambda record: int(record.elapsed),
    "M": lambda record: int(record.elapsed * 1_000),
    "D": lambda record: int(record.elapsed * 1_000_000),
    "L": lambda record: "%.6f" % record.elapsed,
    "p": lambda record: "<%d>" % os.getpid(),  # gunicorn's form
}
