"""The lifespan protocol for the test apps: one implementation they all call.

The apps are imported by the servers under test as top-level modules (with
--app-dir tests), so this is imported as `lifespan_helper`, not relatively.
"""

from collections.abc import Callable
from typing import Any


async def serve_lifespan(
    receive: Any,
    send: Any,
    on_startup: Callable[[], None] | None = None,
    on_shutdown: Callable[[], None] | None = None,
) -> None:
    """Acknowledge startup and shutdown, running the hooks first."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            if on_startup:
                on_startup()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if on_shutdown:
                on_shutdown()
            await send({"type": "lifespan.shutdown.complete"})
            return
