"""Prometheus metrics kept in shared memory: exact, lock-free, across threads and processes.

Every worker thread owns a block of 64-bit cells in one anonymous shared mapping,
made before any worker process is forked. Only the owning thread writes its
cells, so no increment is ever lost (under free-threading or not) and nothing on
the request path takes a lock; a scrape, from any worker, sums all blocks. A
restarted thread or process takes over its predecessor's block, so counters
never go backwards.
"""

import mmap
from dataclasses import dataclass

METHODS = (b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"PATCH", b"OPTIONS")
_METHOD_INDEX = {m: i for i, m in enumerate(METHODS)}
_OTHER_METHOD = len(METHODS)
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# A worker thread's block: requests by (method, status class), histogram buckets
# (the last one +Inf), the latency sum in microseconds, and in-flight (0 or 1).
_REQUESTS = 0
_N_REQUESTS = (len(METHODS) + 1) * len(STATUS_CLASSES)
_BUCKET0 = _REQUESTS + _N_REQUESTS
_SUM_US = _BUCKET0 + len(BUCKETS) + 1
_IN_FLIGHT = _SUM_US + 1
THREAD_CELLS = _IN_FLIGHT + 1
# A worker process's block: gauges it refreshes five times a second, its thread restarts,
# and its AsyncPool's figures (PoolStats.snapshot() keys; the first six are counters).
_OPEN, _PARKED, _THREAD_RESTARTS = range(3)
POOL_KEYS = (
    "handoffs_streaming",
    "handoffs_websocket",
    "handoffs_http2",
    "handoffs_pending_write",
    "handoffs_http3",
    "rejected",
    "active_streaming",
    "active_websocket",
    "active_http2",
    "active_pending_write",
    "active_http3",
    "h2_streams",
    "h3_streams",
)
_POOL_COUNTERS = 6
_POOL = 3
PROCESS_CELLS = _POOL + len(POOL_KEYS)
_PROCESS_RESTARTS = 0  # the supervisor's one cell


@dataclass(frozen=True, slots=True)
class MetricsLayout:
    processes: int
    threads: int  # per process

    @property
    def size(self) -> int:
        cells = self.processes * (self.threads * THREAD_CELLS + PROCESS_CELLS) + 1
        return cells * 8


class SharedMetrics:
    """The mapping and its layout; views into it are handed to the writers."""

    def __init__(self, layout: MetricsLayout) -> None:
        self.layout = layout
        self._map = mmap.mmap(-1, layout.size)  # anonymous and shared with forked children
        self.cells = memoryview(self._map).cast("q")

    def thread(self, process: int, thread: int) -> "ThreadMetrics":
        base = (process * self.layout.threads + thread) * THREAD_CELLS
        return ThreadMetrics(self.cells, base)

    def process(self, process: int) -> "ProcessMetrics":
        layout = self.layout
        base = layout.processes * layout.threads * THREAD_CELLS + process * PROCESS_CELLS
        return ProcessMetrics(self.cells, base)

    def count_process_restart(self) -> None:
        """Written by the supervisor only."""
        self.cells[len(self.cells) - 1] += 1

    def render(self) -> bytes:
        return render(self)


class ThreadMetrics:
    """One worker thread's cells; only that thread calls these."""

    __slots__ = ("_base", "_cells")

    def __init__(self, cells: memoryview, base: int) -> None:
        self._cells = cells
        self._base = base

    def started(self) -> None:
        self._cells[self._base + _IN_FLIGHT] = 1

    def finished(self, method: bytes, status: int, seconds: float) -> None:
        cells, base = self._cells, self._base
        cells[base + _IN_FLIGHT] = 0
        # `in` and [] rather than .get(): see pounce_sync/http1/field_names.py.
        method_index = _METHOD_INDEX[method] if method in _METHOD_INDEX else _OTHER_METHOD  # noqa: SIM401
        status_class = min(max(status // 100, 1), 5) - 1
        cells[base + _REQUESTS + method_index * len(STATUS_CLASSES) + status_class] += 1
        bucket = 0
        while bucket < len(BUCKETS) and seconds > BUCKETS[bucket]:
            bucket += 1
        cells[base + _BUCKET0 + bucket] += 1
        cells[base + _SUM_US] += int(seconds * 1_000_000)


class ProcessMetrics:
    __slots__ = ("_base", "_cells")

    def __init__(self, cells: memoryview, base: int) -> None:
        self._cells = cells
        self._base = base

    def set_connections(self, open_: int, parked: int) -> None:
        self._cells[self._base + _OPEN] = open_
        self._cells[self._base + _PARKED] = parked

    def count_thread_restart(self) -> None:
        self._cells[self._base + _THREAD_RESTARTS] += 1

    def pool_counters(self) -> list[int]:
        """The pool counters as left by this block's earlier owner: a replacement adds to them."""
        base = self._base + _POOL
        return [self._cells[base + i] for i in range(_POOL_COUNTERS)]

    def set_pool(self, snapshot: dict[str, int], counters_before: list[int]) -> None:
        base = self._base + _POOL
        for i, key in enumerate(POOL_KEYS):
            before = counters_before[i] if i < _POOL_COUNTERS else 0
            self._cells[base + i] = before + snapshot[key]


def _sum_threads(metrics: SharedMetrics, offset: int) -> int:
    layout, cells = metrics.layout, metrics.cells
    return sum(cells[t * THREAD_CELLS + offset] for t in range(layout.processes * layout.threads))


def _sum_processes(metrics: SharedMetrics, offset: int) -> int:
    layout, cells = metrics.layout, metrics.cells
    base = layout.processes * layout.threads * THREAD_CELLS
    return sum(cells[base + p * PROCESS_CELLS + offset] for p in range(layout.processes))


def render(metrics: SharedMetrics) -> bytes:
    """Prometheus text exposition format 0.0.4."""
    out = [
        "# HELP pounce_requests_total Requests answered, by method and status class.",
        "# TYPE pounce_requests_total counter",
    ]
    names = [m.decode() for m in METHODS] + ["other"]
    for m, method in enumerate(names):
        for c, status_class in enumerate(STATUS_CLASSES):
            value = _sum_threads(metrics, _REQUESTS + m * len(STATUS_CLASSES) + c)
            if value:
                out.append(
                    f'pounce_requests_total{{method="{method}",status="{status_class}"}} {value}'
                )
    out += [
        "# HELP pounce_request_duration_seconds Time from request head to response end.",
        "# TYPE pounce_request_duration_seconds histogram",
    ]
    cumulative = 0
    for b, bound in enumerate((*BUCKETS, float("inf"))):
        cumulative += _sum_threads(metrics, _BUCKET0 + b)
        le = "+Inf" if bound == float("inf") else repr(bound)
        out.append(f'pounce_request_duration_seconds_bucket{{le="{le}"}} {cumulative}')
    out.append(f"pounce_request_duration_seconds_sum {_sum_threads(metrics, _SUM_US) / 1e6}")
    out.append(f"pounce_request_duration_seconds_count {cumulative}")
    gauges = (
        ("pounce_requests_in_flight", "Requests being served.", _sum_threads(metrics, _IN_FLIGHT)),
        ("pounce_connections_open", "Open client connections.", _sum_processes(metrics, _OPEN)),
        (
            "pounce_connections_parked",
            "Idle connections parked in the poller.",
            _sum_processes(metrics, _PARKED),
        ),
    )
    for name, help_text, value in gauges:
        out += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {value}"]
    out += _render_pool(metrics)
    out += [
        "# HELP pounce_worker_restarts_total Crashed workers replaced.",
        "# TYPE pounce_worker_restarts_total counter",
        f'pounce_worker_restarts_total{{kind="thread"}} '
        f"{_sum_processes(metrics, _THREAD_RESTARTS)}",
        f'pounce_worker_restarts_total{{kind="process"}} {metrics.cells[len(metrics.cells) - 1]}',
    ]
    return ("\n".join(out) + "\n").encode()


def _render_pool(metrics: SharedMetrics) -> list[str]:
    def pool(key: str) -> int:
        return _sum_processes(metrics, _POOL + POOL_KEYS.index(key))

    kinds = ("streaming", "websocket", "http2", "pending_write", "http3")
    out = [
        "# HELP pounce_handoffs_total Connections handed to the AsyncPool, by kind.",
        "# TYPE pounce_handoffs_total counter",
        *(f'pounce_handoffs_total{{kind="{k}"}} {pool("handoffs_" + k)}' for k in kinds),
        "# HELP pounce_handoffs_rejected_total Handoffs refused (503) with the pool full.",
        "# TYPE pounce_handoffs_rejected_total counter",
        f"pounce_handoffs_rejected_total {pool('rejected')}",
        "# HELP pounce_pool_connections Connections the AsyncPool holds (its backlog), by kind.",
        "# TYPE pounce_pool_connections gauge",
        *(f'pounce_pool_connections{{kind="{k}"}} {pool("active_" + k)}' for k in kinds),
        "# HELP pounce_http2_streams Open HTTP/2 streams.",
        "# TYPE pounce_http2_streams gauge",
        f"pounce_http2_streams {pool('h2_streams')}",
        "# HELP pounce_http3_streams Open HTTP/3 request streams.",
        "# TYPE pounce_http3_streams gauge",
        f"pounce_http3_streams {pool('h3_streams')}",
    ]
    return out
