"""WSGI (PEP 3333) on the sync path: the app is called directly in the worker thread.

WSGI is blocking, which is what a sync worker is: no event loop, no handoff, a
streaming response streams from the worker. The request body and the response
go through the same `HTTPCycle` as on the ASGI path (lazy body reads, chunked or
Content-Length, the body limit, 100-continue on the first read, framing, HEAD,
keep-alive), so both interfaces behave alike on the wire.
"""

import logging
import os
import stat
import sys
from collections.abc import Callable, Coroutine, Iterable, Iterator
from typing import Any, TypeVar
from urllib.parse import unquote_to_bytes

from pounce_sync.asgi.disconnect import ClientDisconnected
from pounce_sync.asgi.proxy import TrustedProxies, apply_to_environ, resolve
from pounce_sync.asgi.scope import split_target
from pounce_sync.config import Config
from pounce_sync.http1 import BodyFraming, LocalProtocolError, Request

from .asgi_http import HTTPCycle
from .connection import Connection

error_log = logging.getLogger("pounce_sync.error")

T = TypeVar("T")
Environ = dict[str, Any]
Write = Callable[[bytes], None]
StartResponse = Callable[..., Write]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]
Client = tuple[str, int] | None

# What hypercorn answers for WSGI apps, and what ASGI asks for a close before accept.
WEBSOCKET_REFUSED = "403 Forbidden"
WEBSOCKET_REFUSED_BODY = b"This server runs a WSGI application, which cannot take a WebSocket.\n"


def call_now(coro: Coroutine[Any, Any, T]) -> T:
    """The result of a coroutine that completes without suspending.

    HTTPCycle's `receive()` (while the body lasts) and `send()` never suspend on
    the sync path; stepping them here keeps WSGI on their public interface
    without an event loop.
    """
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coro.close()
    raise RuntimeError("an HTTPCycle call suspended on the WSGI path")


class BodyReadError(OSError):
    """The request body cannot be read on; the server has already answered if it could."""


class RequestBody:
    """wsgi.input: takes the body from the connection only as the app reads it."""

    __slots__ = ("_buffer", "_cycle", "_done")

    def __init__(self, cycle: HTTPCycle, framing: BodyFraming) -> None:
        self._cycle = cycle
        self._buffer = bytearray()
        self._done = framing is BodyFraming.NONE

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            while self._pull():
                pass
            size = len(self._buffer)
        while len(self._buffer) < size and self._pull():
            pass
        return self._take(size)

    def readline(self, size: int | None = -1) -> bytes:
        limit = -1 if size is None else size
        searched = 0
        while True:
            end = self._buffer.find(b"\n", searched)
            if end >= 0:
                length = end + 1
                break
            searched = len(self._buffer)
            if 0 <= limit <= searched or not self._pull():
                length = searched
                break
        return self._take(length if limit < 0 else min(length, limit))

    def readlines(self, hint: int = -1) -> list[bytes]:
        lines: list[bytes] = []
        total = 0
        for line in self:
            lines.append(line)
            total += len(line)
            if 0 < hint <= total:
                break
        return lines

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def _take(self, size: int) -> bytes:
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def _pull(self) -> bool:
        """One more piece of the body into the buffer; False at its end."""
        if self._done:
            return False
        message = call_now(self._cycle.receive())
        if message["type"] != "http.request":  # the cycle answered 413, 408 or 400, or gone
            raise BodyReadError("the request body could not be read")
        self._done = not message["more_body"]
        self._buffer += message["body"]
        return True


class WSGIResponse:
    """start_response, write() and the returned iterable of one request, onto HTTPCycle.

    The head waits for the first body bytes (PEP 3333), so until then the app may
    replace it (start_response with exc_info) or fail into a clean 500.
    """

    __slots__ = ("_headers", "_status", "cycle", "head_sent")

    def __init__(self, cycle: HTTPCycle) -> None:
        self.cycle = cycle
        self._status = 0
        self._headers: list[tuple[bytes, bytes]] = []
        self.head_sent = False

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Write:
        if exc_info is not None:
            try:
                if self.head_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None  # no reference cycle through the traceback
        elif self._status:
            raise RuntimeError("start_response called a second time without exc_info")
        self._status = _status_code(status)
        self._headers = [_encode_header(header) for header in headers]
        return self.write

    def write(self, data: bytes) -> None:
        """The write() callable; also how each block of the returned iterable goes out."""
        if data:
            self._send(data, True)

    def send_result(self, result: Iterable[bytes]) -> None:
        if not self.head_sent and type(result) in (list, tuple):
            # The whole body is in hand: one message, sent with a Content-Length.
            self._send(b"".join(result), False)  # type: ignore[arg-type]
            return
        if type(result) is FileWrapper and self.cycle.conn.zero_copy and self._send_file(result):
            result = ()  # the file went with sendfile(2): only the body's end is left
        for block in result:
            if not self.head_sent and block and len(block) == self._declared_length():
                # The first block is the whole body the app declared (what frameworks
                # return for a plain response): one message, not a stream, so it is
                # written without waiting and holds nothing (see HTTPCycle).
                self._send(block, False)
            else:
                self.write(block)
        if not self.cycle.response_complete:
            self._send(b"", False)

    def _send_file(self, wrapper: "FileWrapper") -> bool:
        """A wrapped regular file's bytes, copied by the kernel; False for any other file.

        As gunicorn does: the app's Content-Length, if it gave one, says how many bytes
        go; otherwise the rest of the file, from where it stands, as one chunk.
        """
        found = wrapper.regular_file()
        if found is None:
            return False
        fd, offset, left = found
        declared = self._declared_length()
        self._start()
        self.cycle.send_file(fd, offset, left if declared is None else declared)
        return True

    def _declared_length(self) -> int | None:
        for name, value in self._headers:
            if name.lower() == b"content-length":
                return int(value) if value.isdigit() else None
        return None

    def _send(self, data: bytes, more_body: bool) -> None:
        if type(data) is not bytes:
            data = _as_bytes(data)
        if not self.head_sent:
            self._start()
        message = {"type": "http.response.body", "body": data, "more_body": more_body}
        call_now(self.cycle.send(message))

    def _start(self) -> None:
        """Give the cycle the head; it goes out with the first body bytes."""
        if not self._status:
            raise LocalProtocolError("response body before start_response was called")
        self.head_sent = True
        start = {"type": "http.response.start", "status": self._status}
        start["headers"] = self._headers
        call_now(self.cycle.send(start))


def _status_code(status: str) -> int:
    code = status[:3] if type(status) is str else ""
    if not (code.isascii() and code.isdigit() and status[3:4] in ("", " ")):
        raise LocalProtocolError(f"invalid WSGI status {status!r}")
    return int(code)


def _encode_header(header: tuple[str, str]) -> tuple[bytes, bytes]:
    """As bytes, the value without optional whitespace at its ends (RFC 9110 5.5).

    Django's handler sends each cookie as `c.output(header="")`, which begins with a
    space; gunicorn strips SP and HTAB from both ends, so apps rely on it.
    """
    name, value = header
    if type(name) is not str or type(value) is not str:
        raise LocalProtocolError(f"WSGI response headers must be pairs of str, got {header!r}")
    return name.encode("latin-1"), value.strip(" \t").encode("latin-1")


def _as_bytes(data: Any) -> bytes:
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise LocalProtocolError(f"WSGI response body must be bytes, got {type(data).__name__}")


class FileWrapper:
    """wsgi.file_wrapper: a file-like object's contents, read in blocks.

    A regular file on a plain TCP connection is not read at all: `WSGIResponse` has the
    kernel copy it to the socket (sendfile(2)), as gunicorn does.
    """

    __slots__ = ("blksize", "filelike")

    def __init__(self, filelike: Any, blksize: int = 65536) -> None:
        self.filelike = filelike
        self.blksize = blksize

    def __iter__(self) -> Iterator[bytes]:
        read, blksize = self.filelike.read, self.blksize
        while block := read(blksize):
            yield block

    def regular_file(self) -> tuple[int, int, int] | None:
        """(descriptor, position, bytes left) if the wrapped object is a regular file;
        None for anything else (BytesIO, a pipe, a file-like object without fileno)."""
        filelike = self.filelike
        try:
            fd = filelike.fileno()
            status = os.fstat(fd)
            # tell(), not the descriptor's offset: a buffered file may have read ahead.
            tell = getattr(filelike, "tell", None)
            offset = tell() if tell is not None else os.lseek(fd, 0, os.SEEK_CUR)
        except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both
            return None
        if not stat.S_ISREG(status.st_mode):
            return None
        return fd, offset, max(status.st_size - offset, 0)

    def close(self) -> None:
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()


def refuse_websocket(environ: Environ, start_response: StartResponse) -> list[bytes]:
    """Answers `Upgrade: websocket` in the app's place: WSGI has no way to hold one."""
    start_response(WEBSOCKET_REFUSED, [("Content-Type", "text/plain; charset=utf-8")])
    return [WEBSOCKET_REFUSED_BODY]


# Fields with an environ key of their own; every other name becomes HTTP_<NAME>.
_FIXED_KEYS = {b"content-type": "CONTENT_TYPE", b"content-length": "CONTENT_LENGTH"}
_KEYS_MAX = 1024  # per worker: the names come from clients


def _environ_key(name: bytes) -> str:
    """The environ key of a field name; "" drops the field.

    With `_` in a name, X-User and X_User would meet as HTTP_X_USER, a way around a
    proxy that strips X-User; such fields are dropped, as nginx does by default.
    """
    if b"_" in name:
        return ""
    return "HTTP_" + name.decode("latin-1").upper().replace("-", "_")


class WSGIGateway:
    """One worker's WSGI side: each request's environ, and the app called on it once."""

    def __init__(
        self,
        app: WSGIApp,
        config: Config,
        trusted: TrustedProxies | None,
        fail: Callable[[HTTPCycle], bool],
    ) -> None:
        self.app = app
        self._trusted = trusted
        # Field name -> environ key, owned by this worker's thread (no lock), bounded.
        self._keys: dict[bytes, str] = dict(_FIXED_KEYS)
        self._fail = fail  # the ASGI path's: 500 if nothing was sent yet
        # The server resolved "auto" at start-up: the config names the mode it chose.
        multiprocess = config.worker_count > 1 and config.worker_mode == "process"
        self._base: Environ = {
            "SCRIPT_NAME": config.root_path.rstrip("/").encode().decode("latin-1"),
            "wsgi.version": (1, 0),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": multiprocess,
            "wsgi.run_once": False,
            "wsgi.input_terminated": True,  # chunked bodies end on their own (werkzeug reads)
            "wsgi.file_wrapper": FileWrapper,
        }

    def serve(
        self, conn: Connection, request: Request, cycle: HTTPCycle, request_id: bytes | None
    ) -> tuple[bool, Client]:
        """Run one request; (the response is complete, the client address for the log)."""
        environ, client = self.environ(conn, request, cycle, request_id)
        websocket = request.upgrade == b"websocket" and request.method == b"GET"
        app = refuse_websocket if websocket else self.app
        return self._run(app, environ, WSGIResponse(cycle)), client

    def environ(
        self, conn: Connection, request: Request, cycle: HTTPCycle, request_id: bytes | None
    ) -> tuple[Environ, Client]:
        raw_path, query = split_target(request.target)
        if b"%" in raw_path:
            raw_path = unquote_to_bytes(raw_path)
        server = conn.server or ("localhost", 80)  # a Unix socket has no address of its own
        environ = self._base.copy()
        environ["REQUEST_METHOD"] = request.method.decode("latin-1")
        environ["PATH_INFO"] = raw_path.decode("latin-1")
        environ["QUERY_STRING"] = query.decode("latin-1")
        environ["RAW_URI"] = request.target.decode("latin-1")  # as sent, as gunicorn offers it
        environ["SERVER_NAME"] = server[0]
        environ["SERVER_PORT"] = str(server[1])
        environ["SERVER_PROTOCOL"] = "HTTP/" + request.http_version.decode("ascii")
        environ["wsgi.url_scheme"] = conn.scheme
        environ["wsgi.input"] = RequestBody(cycle, request.framing)
        self._add_headers(environ, request.headers)
        client = conn.client
        if client is not None:
            environ["REMOTE_ADDR"] = client[0]
            environ["REMOTE_PORT"] = str(client[1])
        if request_id is not None:
            environ["pounce_sync.request_id"] = request_id.decode("ascii")
        if self._trusted is not None and request.forwarded:
            peer = client[0] if client else None
            forwarded = resolve(self._trusted, peer, request.headers)
            if forwarded is not None:
                apply_to_environ(environ, forwarded)
                if forwarded.client is not None:
                    client = (forwarded.client, 0)  # as the ASGI path logs it
        return environ, client

    def _add_headers(self, environ: Environ, headers: Iterable[tuple[bytes, bytes]]) -> None:
        keys = self._keys
        for name, value in headers:
            # `in` and [] rather than .get(): see pounce_sync/http1/field_names.py.
            key = keys[name] if name in keys else None  # noqa: SIM401
            if key is None:
                key = _environ_key(name)
                if len(keys) < _KEYS_MAX:
                    keys[name] = key
            if not key:
                continue
            text = value.decode("latin-1")
            known = environ.get(key)
            if known is None:
                environ[key] = text
            else:  # repeated fields are one list; cookies are joined as a Cookie header is
                environ[key] = known + ("; " if key == "HTTP_COOKIE" else ", ") + text

    def _run(self, app: WSGIApp, environ: Environ, response: WSGIResponse) -> bool:
        """Call the app once and send what it returns; True if the response is complete."""
        cycle = response.cycle
        try:
            result = app(environ, response.start_response)
            try:
                response.send_result(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        except ClientDisconnected:
            return False
        except Exception as exc:
            if cycle.disconnected:  # the body could not be read: answered (413, 408) or gone
                error_log.debug("WSGI request ended early: %r", exc)
                return False
            if isinstance(exc, LocalProtocolError):
                error_log.error("Invalid response from WSGI application: %s", exc)
            else:
                error_log.exception("Exception in WSGI application")
            return self._fail(cycle)
        return not cycle.disconnected
