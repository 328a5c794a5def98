"""The app served when no app is named: what this interpreter and server are doing."""

import json
import os
import platform
import sys
import sysconfig
import threading
from typing import Any

from .runtime import gil_enabled


def make_diagnostic_app(worker_mode: str, worker_count: int) -> Any:
    async def app(scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        info = {
            "server": "pounce-sync",
            "python": sys.version.split()[0],
            "implementation": platform.python_implementation(),
            "free_threaded_build": bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
            "gil_enabled": gil_enabled(),
            "worker_mode": worker_mode,
            "workers": worker_count,
            "thread": threading.current_thread().name,
            "pid": os.getpid(),
            "path": scope["path"],
        }
        body = json.dumps(info, indent=2).encode() + b"\n"
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app
