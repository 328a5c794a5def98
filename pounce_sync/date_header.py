"""The Date header value, formatted at most once a second per worker thread."""

import time
from email.utils import formatdate


class DateHeader:
    """Owned by one worker thread, so it needs no lock."""

    __slots__ = ("_second", "_value")

    def __init__(self) -> None:
        self._second = -1
        self._value = b""

    def value(self) -> bytes:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._value = formatdate(now, usegmt=True).encode("ascii")
        return self._value
