"""The ASGI lifespan protocol, run on its own thread and event loop.

The app's lifespan coroutine lives from startup to shutdown, so it gets a
thread of its own; the server talks to it through its loop thread-safely.
"""

import asyncio
import logging
import threading
from typing import Any

error_log = logging.getLogger("pounce_sync.error")


class LifespanFailure(Exception):
    """Startup failed; the message is the app's own, shown as one line."""


class Lifespan:
    def __init__(self, app: Any, mode: str) -> None:
        self.app = app
        self.mode = mode
        self.state: dict[str, Any] = {}
        self._loop = asyncio.new_event_loop()
        self._queue: asyncio.Queue[dict[str, Any]] | None = None
        self._started = threading.Event()
        self._stopped = threading.Event()
        self._ready = threading.Event()
        self._failure: str | None = None
        self._supported = True
        self._thread = threading.Thread(target=self._run, name="lifespan", daemon=True)

    def startup(self) -> None:
        if self.mode == "off":
            return
        self._thread.start()
        self._ready.wait()
        error_log.debug("ASGI lifespan: startup sent, waiting for the application")
        self._put({"type": "lifespan.startup"})
        self._started.wait()
        if self._failure is not None:
            raise LifespanFailure(self._failure)
        if self._supported:
            error_log.debug("ASGI lifespan: startup complete")

    def shutdown(self, timeout: float) -> bool:
        """Run lifespan shutdown; False if the app reported a failure."""
        if self.mode == "off" or not self._supported or not self._thread.is_alive():
            return self._failure is None
        error_log.debug("ASGI lifespan: shutdown sent, waiting for the application")
        self._put({"type": "lifespan.shutdown"})
        if not self._stopped.wait(timeout):
            error_log.error("lifespan shutdown did not complete within %.1fs", timeout)
            return False
        if self._failure is None:
            error_log.debug("ASGI lifespan: shutdown complete")
        return self._failure is None

    def _put(self, message: dict[str, Any]) -> None:
        assert self._queue is not None
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, message)
        except RuntimeError:
            pass  # the app already returned and its loop closed: nothing listens

    def _run(self) -> None:
        try:
            self._loop.run_until_complete(self._main())
        finally:
            self._loop.close()

    async def _main(self) -> None:
        self._queue = asyncio.Queue()
        self._ready.set()
        scope = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.0"},
            "state": self.state,
        }
        try:
            await self.app(scope, self._receive, self._send)
        except BaseException as exc:
            self._app_raised(exc)
        finally:
            self._started.set()
            self._stopped.set()

    def _app_raised(self, exc: BaseException) -> None:
        if self._started.is_set() or self.mode == "on":
            error_log.error("Exception in lifespan protocol", exc_info=exc)
            self._failure = self._failure or f"lifespan raised {exc!r}"
        else:
            self._supported = False
            error_log.info("ASGI 'lifespan' protocol appears unsupported.")

    async def _receive(self) -> dict[str, Any]:
        assert self._queue is not None
        return await self._queue.get()

    async def _send(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "lifespan.startup.complete":
            self._started.set()
        elif kind == "lifespan.startup.failed":
            self._failure = message.get("message") or "lifespan startup failed"
            self._started.set()
        elif kind == "lifespan.shutdown.complete":
            self._stopped.set()
        elif kind == "lifespan.shutdown.failed":
            self._failure = message.get("message") or "lifespan shutdown failed"
            error_log.error("lifespan shutdown failed: %s", self._failure)
            self._stopped.set()
        else:
            raise RuntimeError(f"unexpected ASGI message type {kind!r} in lifespan")
