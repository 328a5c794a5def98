"""Default response headers (Date, Server), rebuilt at most once a second per worker thread."""

import time
from email.utils import formatdate

Header = tuple[bytes, bytes]


class DefaultHeaders:
    """Owned by one worker thread, so it needs no lock.

    The list it returns is shared by every response within the same second; the
    response writer only reads it.
    """

    __slots__ = ("_date", "_headers", "_second", "_server")

    def __init__(self, server: bytes | None, date: bool) -> None:
        self._server = server
        self._date = date
        self._second = -1
        self._headers: list[Header] = self._build(0.0)

    def get(self) -> list[Header]:
        if not self._date:
            return self._headers
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._headers = self._build(now)
        return self._headers

    def _build(self, now: float) -> list[Header]:
        headers = []
        if self._server is not None:
            headers.append((b"server", self._server))
        if self._date:
            headers.append((b"date", formatdate(now, usegmt=True).encode("ascii")))
        return headers
