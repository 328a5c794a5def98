"""How often crashed workers may be replaced: at most `limit` restarts in any `window`."""

from collections import deque

RESTART_LIMIT = 5
RESTART_WINDOW = 60.0
_BACKOFF_FIRST = 0.1
_BACKOFF_MAX = 5.0


class RestartBudget:
    """Owned by one supervising thread; no lock."""

    def __init__(self, limit: int = RESTART_LIMIT, window: float = RESTART_WINDOW) -> None:
        self.limit = limit
        self.window = window
        self._times: deque[float] = deque()

    def spend(self, now: float) -> bool:
        """Record a restart at `now`; False when that would exceed the budget."""
        while self._times and self._times[0] <= now - self.window:
            self._times.popleft()
        if len(self._times) >= self.limit:
            return False
        self._times.append(now)
        return True

    def backoff(self) -> float:
        """Seconds to wait before the restart just spent: doubling with recent crashes."""
        recent = max(len(self._times) - 1, 0)
        return min(_BACKOFF_FIRST * (2**recent), _BACKOFF_MAX)
