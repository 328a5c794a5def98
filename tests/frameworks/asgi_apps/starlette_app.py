"""A Starlette app for tests/frameworks/test_starlette.py: static files, server-sent
events, both kinds of middleware, and request.is_disconnected()."""

import asyncio
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .shared import record, released, runtime, work_dir

WAIT_STEPS = 3000  # 30 s of 10 ms polls: long enough for any test, short enough to end


class TaggingMiddleware(BaseHTTPMiddleware):
    """The usual BaseHTTPMiddleware: reads the request, adds a response header."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        response.headers["x-base-middleware"] = request.method + " " + request.url.path
        return response


class CountingMiddleware:
    """A pure ASGI middleware: wraps `send` and adds a header to the start message."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def tagged_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), (b"x-asgi-middleware", b"seen")]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, tagged_send)


async def events(request: Request) -> StreamingResponse:
    """Server-sent events, the way dashboards stream them."""
    count = int(request.query_params.get("n", "5"))

    async def lines() -> AsyncIterator[str]:
        for i in range(count):
            yield f'id: {i}\nevent: tick\ndata: {{"n": {i}}}\n\n'

    return StreamingResponse(
        lines(), media_type="text/event-stream", headers={"cache-control": "no-cache"}
    )


async def gated_events(request: Request) -> StreamingResponse:
    """One event, then the next only once the test has read the first and released it."""
    token = request.path_params["token"]

    async def lines() -> AsyncIterator[str]:
        yield "data: first\n\n"
        for _ in range(WAIT_STEPS):
            if released(token):
                yield "data: second\n\n"
                return
            await asyncio.sleep(0.01)
        yield "data: never released\n\n"

    return StreamingResponse(lines(), media_type="text/event-stream")


async def endless_events(request: Request) -> StreamingResponse:
    """SSE until the client goes: the app polls is_disconnected() and records that it saw it."""
    token = request.path_params["token"]

    async def lines() -> AsyncIterator[str]:
        for i in range(WAIT_STEPS):
            if await request.is_disconnected():
                record(f"disconnected-{token}", f"after {i} events")
                return
            yield f"data: {i}\n\n"
            await asyncio.sleep(0.01)
        record(f"disconnected-{token}", "never")

    return StreamingResponse(lines(), media_type="text/event-stream")


async def wait_for_disconnect(request: Request) -> Response:
    """A slow handler that gives up when its client leaves, before answering."""
    token = request.path_params["token"]
    await request.body()
    record(f"waiting-{token}", "waiting")
    for _ in range(WAIT_STEPS):
        if await request.is_disconnected():
            record(f"disconnected-{token}", "before the response")
            return PlainTextResponse("nobody is listening")
        await asyncio.sleep(0.01)
    record(f"disconnected-{token}", "never")
    return PlainTextResponse("timed out")


async def connected(request: Request) -> Response:
    """is_disconnected() while the client waits for the answer: False."""
    await request.body()
    return JSONResponse({"disconnected": await request.is_disconnected()})


async def echo(request: Request) -> Response:
    body = await request.body()
    return JSONResponse({"length": len(body), "method": request.method})


async def where(request: Request) -> Response:
    return JSONResponse(runtime())


async def boom(request: Request) -> Response:
    raise RuntimeError("boom")


tagged = Starlette(
    routes=[
        Route("/events", events),
        Route("/events/gated/{token}", gated_events),
        Route("/echo", echo, methods=["GET", "POST"]),
        Route("/runtime", where),
        Route("/boom", boom),
        Mount("/static", StaticFiles(directory=work_dir() / "static", html=True)),
    ],
    middleware=[Middleware(TaggingMiddleware), Middleware(CountingMiddleware)],
)
# request.is_disconnected() never sees a disconnect below a BaseHTTPMiddleware, under
# any server: its receive() runs in a task group that the check's cancelled scope ends
# at once. The routes that rely on it are served without one.
bare = Starlette(
    routes=[
        Route("/bare/events/endless/{token}", endless_events),
        Route("/bare/wait/{token}", wait_for_disconnect, methods=["POST"]),
        Route("/bare/connected", connected, methods=["POST"]),
    ],
    middleware=[Middleware(CountingMiddleware)],
)


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """/bare/... to the app without BaseHTTPMiddleware; the rest (and lifespan) to `tagged`."""
    target = bare if scope.get("path", "").startswith("/bare/") else tagged
    await target(scope, receive, send)
