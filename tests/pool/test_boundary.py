"""The AsyncPool reuses the codec and the config, never the server's lifecycle modules."""

import subprocess
import sys

LIFECYCLE = (
    "pounce_sync.server.lifecycle",
    "pounce_sync.server.supervisor",
    "pounce_sync.worker.sync_worker",
    "pounce_sync.worker.idle_poller",
    "pounce_sync.server.lifespan",
)


def test_async_pool_imports_no_lifecycle_module() -> None:
    code = (
        "import sys, async_pool, async_pool.http1_stream, async_pool.websocket, async_pool.http2\n"
        f"print(','.join(m for m in {LIFECYCLE!r} if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == ""
