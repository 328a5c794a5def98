"""Counters of the pool, exact under free-threading: every change holds one lock.

Handoffs and their ends are rare next to requests, so one lock costs nothing
that matters; the metrics endpoint reads a snapshot.
"""

import threading
from collections import Counter

KINDS = ("streaming", "websocket", "http2", "pending_write", "http3")


class PoolStats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._handoffs: Counter[str] = Counter()
        self._rejected = 0
        self._active: Counter[str] = Counter()
        self._h2_streams = 0
        self._h3_streams = 0

    def accepted(self, kind: str) -> None:
        with self._lock:
            self._handoffs[kind] += 1
            self._active[kind] += 1

    def rejected(self) -> None:
        with self._lock:
            self._rejected += 1

    def finished(self, kind: str) -> None:
        with self._lock:
            self._active[kind] -= 1

    def h2_stream(self, delta: int) -> None:
        with self._lock:
            self._h2_streams += delta

    def h3_stream(self, delta: int) -> None:
        with self._lock:
            self._h3_streams += delta

    def snapshot(self) -> dict[str, int]:
        """Flat name -> value, e.g. handoffs_websocket, active_http2, rejected."""
        with self._lock:
            values = {f"handoffs_{k}": self._handoffs[k] for k in KINDS}
            values.update({f"active_{k}": self._active[k] for k in KINDS})
            values["rejected"] = self._rejected
            values["h2_streams"] = self._h2_streams
            values["h3_streams"] = self._h3_streams
        return values
