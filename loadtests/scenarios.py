"""Benchmark scenarios, one row each: an app from apps.py plus the load that drives it.

A scenario's `load` says which client measures it and so which columns its table has:
"wrk" (HTTP/1.1 req/s and latency), "h2load" (HTTP/2 cleartext with prior knowledge) or
"sse" (Server-Sent Events fan-out: events delivered, not req/s).
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

HERE = Path(__file__).resolve().parent

LoadKind = Literal["wrk", "h2load", "sse"]


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    app: str  # ASGI import string, resolved with loadtests/ as the server's working directory
    summary: str
    load: LoadKind = "wrk"
    wsgi_app: str | None = None  # the WSGI twin, for WSGI servers; None: they have no figures
    path: str = "/"  # also the path of the readiness check
    script: Path | None = None  # a wrk Lua script, e.g. to send a request body
    wrk_args: tuple[str, ...] = ()  # extra wrk flags for this scenario only
    hold_idle: bool = False  # hold --idle-connections idle keep-alive connections meanwhile
    baseline: str | None = None  # ratios divide by this one when --baseline has no figures

    def app_for(self, interface: Literal["asgi", "wsgi"]) -> str | None:
        return self.app if interface == "asgi" else self.wsgi_app


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("hello", "apps:hello", 'GET / -> 13-byte "Hello, world!"', wsgi_app="apps:hello_wsgi"),
    Scenario(
        "hello-varied",
        "apps:hello",
        "hello with a different target per request (GET /?n=1, /?n=2, ...): no head repeats",
        wsgi_app="apps:hello_wsgi",
        script=HERE / "lua" / "varied.lua",
    ),
    Scenario(
        "browser",
        "apps:hello",
        "browser-like GET, ~620 bytes, 11 fields (lua/browser.lua); target and cookie "
        "change on every request",
        wsgi_app="apps:hello_wsgi",
        script=HERE / "lua" / "browser.lua",
    ),
    Scenario(
        "json",
        "apps:json_app",
        "GET / -> small JSON document serialised per request",
        wsgi_app="apps:json_wsgi",
    ),
    Scenario("big", "apps:big", "GET / -> 64 KiB body", wsgi_app="apps:big_wsgi"),
    Scenario(
        "upload",
        "apps:upload",
        "POST / with a 1 MiB body, read in full",
        wsgi_app="apps:upload_wsgi",
        script=HERE / "lua" / "upload.lua",
    ),
    Scenario(
        "idle-keepalive",
        "apps:hello",
        "hello while --idle-connections idle keep-alive connections are held open",
        wsgi_app="apps:hello_wsgi",
        hold_idle=True,
    ),
    Scenario(
        "h2load",
        "apps:hello",
        "hello over HTTP/2 cleartext (prior knowledge), h2load",
        load="h2load",
        baseline="hypercorn",
    ),
    Scenario(
        "fastapi-sync",
        "fastapi_app:sync_app",
        'FastAPI `def` route -> {"ok": true}: anyio.to_thread on every request',
    ),
    Scenario(
        "fastapi-async",
        "fastapi_app:async_app",
        'FastAPI `async def` route -> {"ok": true}',
    ),
    Scenario(
        "sse",
        "sse_app:app",
        "SSE fan-out: --sse-subscribers streams, one event each 100 ms",
        load="sse",
        path="/?interval=0.01&n=1",  # readiness check: one event, then the stream ends
    ),
)

# browser is the figure of record (docs/benchmarks.md); hello is the server's floor.
DEFAULT_SCENARIOS = ("browser", "hello")
BY_NAME = {scenario.name: scenario for scenario in SCENARIOS}
