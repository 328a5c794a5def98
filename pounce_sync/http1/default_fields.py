"""Default response fields (Date, Server), encoded at most once a second per worker thread."""

import time
from email.utils import formatdate

from pounce_sync.http1 import encode_fields


class DefaultHeaders:
    """Owned by one worker thread, so it needs no lock."""

    __slots__ = ("_date", "_encoded", "_extra", "_second", "_server")

    def __init__(
        self, server: bytes | None, date: bool, extra: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        self._server = server
        self._date = date
        self._extra = extra or []  # --header values
        self._second = -1
        self._encoded = self._encode(0.0)

    def get(self) -> bytes:
        """Header lines, CRLF-terminated, ready to follow the status line."""
        if not self._date:
            return self._encoded
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._encoded = self._encode(now)
        return self._encoded

    def _encode(self, now: float) -> bytes:
        headers = []
        if self._server is not None:
            headers.append((b"server", self._server))
        if self._date:
            headers.append((b"date", formatdate(now, usegmt=True).encode("ascii")))
        return encode_fields([*headers, *self._extra])
