"""Paths this process has seen stream on the sync path, so later requests go to the pool.

The first streaming response on an unknown path is finished by the thread that
ran the app, which gives up its worker seat for it (the app never runs twice);
from its first streamed message on, requests for that path are handed to the
AsyncPool before the app runs, so they need no thread at all. Bounded: once
full, nothing more is learned.
"""

import threading


class StreamingPaths:
    def __init__(self, prefixes: tuple[str, ...], limit: int = 1024) -> None:
        self.prefixes = tuple(p.encode() for p in prefixes)
        self._learned: set[bytes] = set()
        self._lock = threading.Lock()
        self._limit = limit
        # Whether any path can match: a plain attribute, read on every request.
        self.active = bool(self.prefixes)

    def learn(self, raw_path: bytes) -> None:
        with self._lock:
            if len(self._learned) < self._limit:
                self._learned.add(raw_path)
                self.active = True

    def reason(self, raw_path: bytes) -> str | None:
        if self.prefixes and raw_path.startswith(self.prefixes):
            return "stream-path"
        if raw_path in self._learned:  # set membership is safe alongside learn()
            return "learned-path"
        return None

    def __len__(self) -> int:
        return len(self._learned)
