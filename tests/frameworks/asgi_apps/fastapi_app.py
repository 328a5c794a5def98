"""A FastAPI app using what real FastAPI services use, for tests/frameworks/test_fastapi.py.

Path and query parameters, pydantic bodies (and their 422s), uploads, streaming and
file responses, background tasks, a WebSocket, a lifespan with state, sync and async
dependencies, custom exception handlers, cookies and redirects.
"""

import asyncio
import hashlib
import os
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import (
    BackgroundTasks,
    Depends,
    FastAPI,
    Form,
    HTTPException,
    Request,
    UploadFile,
    WebSocket,
    WebSocketDisconnect,
)
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, StreamingResponse
from pydantic import BaseModel, Field

from .shared import record, released, runtime, wait_released, work_dir


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, str]]:
    """Startup and shutdown each leave a file naming this process and this boot."""
    boot = uuid.uuid4().hex
    record(f"startup-{os.getpid()}-{boot}", "started")
    yield {"boot": boot, "loop": id(asyncio.get_running_loop())}
    record(f"shutdown-{os.getpid()}-{boot}", "stopped")


app = FastAPI(lifespan=lifespan)


class Item(BaseModel):
    name: str = Field(min_length=1)
    price: float = Field(gt=0)
    tags: list[str] = []


class TeapotError(Exception):
    """A domain error the app turns into its own JSON answer."""

    def __init__(self, flavour: str) -> None:
        self.flavour = flavour


@app.exception_handler(TeapotError)
async def teapot_handler(request: Request, exc: TeapotError) -> JSONResponse:
    return JSONResponse({"error": "teapot", "flavour": exc.flavour}, status_code=418)


@app.get("/items/{item_id}")
async def read_item(item_id: int, q: str | None = None, limit: int = 10) -> dict[str, object]:
    if item_id == 0:
        raise HTTPException(404, "no item 0", headers={"x-missing": "0"})
    return {"item_id": item_id, "q": q, "limit": limit}


@app.post("/items", status_code=201)
async def create_item(item: Item) -> dict[str, object]:
    return {"created": item.model_dump(), "total": item.price * len(item.tags or [""])}


@app.post("/upload")
async def upload(file: UploadFile, note: Annotated[str, Form()]) -> dict[str, object]:
    digest, size = hashlib.sha256(), 0
    while chunk := await file.read(256 * 1024):
        digest.update(chunk)
        size += len(chunk)
    return {
        "filename": file.filename,
        "content_type": file.content_type,
        "size": size,
        "sha256": digest.hexdigest(),
        "note": note,
    }


@app.get("/stream")
async def stream(n: int = 5) -> StreamingResponse:
    async def lines() -> AsyncIterator[bytes]:
        for i in range(n):
            yield b"line %d\n" % i

    return StreamingResponse(lines(), media_type="text/plain")


@app.get("/stream-gated/{token}")
async def stream_gated(token: str) -> StreamingResponse:
    """The second chunk waits for the test, which releases it only after reading the first."""

    async def chunks() -> AsyncIterator[bytes]:
        yield b"first\n"
        for _ in range(3000):
            if released(token):
                yield b"second\n"
                return
            await asyncio.sleep(0.01)
        yield b"never released\n"

    return StreamingResponse(chunks(), media_type="text/plain")


@app.api_route("/file", methods=["GET", "HEAD"])  # FastAPI GET routes answer HEAD with 405
async def file() -> FileResponse:
    return FileResponse(work_dir() / "payload.bin", filename="payload.bin")


def finish_background(token: str) -> None:
    """Runs after the response: it waits for the test, which has the response by then."""
    record(f"background-{token}", "ran" if wait_released(token) else "not released")


@app.post("/background/{token}")
def background(token: str, tasks: BackgroundTasks) -> dict[str, str]:
    tasks.add_task(finish_background, token)
    return {"queued": token}


@app.get("/state")
async def state(request: Request) -> dict[str, object]:
    same_loop = request.state.loop == id(asyncio.get_running_loop())
    return {"boot": request.state.boot, "lifespan_loop": same_loop, **runtime()}


class Settings:
    """A dependency with its own teardown, as a database session would be."""

    def __init__(self) -> None:
        self.opened_on = threading.current_thread().name
        self.closed = False


def sync_settings() -> Iterator[Settings]:
    settings = Settings()
    yield settings
    settings.closed = True


async def async_user(request: Request) -> str:
    await asyncio.sleep(0)  # really suspends: the route's coroutine is resumed by the loop
    return request.headers.get("x-user", "anonymous")


@app.get("/sync")
def sync_route(
    settings: Annotated[Settings, Depends(sync_settings)],
    user: Annotated[str, Depends(async_user)],
) -> dict[str, object]:
    return {"user": user, "closed": settings.closed, **runtime()}


@app.get("/async")
async def async_route(
    settings: Annotated[Settings, Depends(sync_settings)],
    user: Annotated[str, Depends(async_user)],
) -> dict[str, object]:
    await asyncio.sleep(0)
    return {"user": user, "closed": settings.closed, **runtime()}


@app.get("/teapot/{flavour}")
async def teapot(flavour: str) -> None:
    raise TeapotError(flavour)


@app.get("/login")
async def login() -> RedirectResponse:
    response = RedirectResponse("/items/1?q=welcome", status_code=303)
    response.set_cookie("session", "abc123", httponly=True, samesite="strict", max_age=60)
    response.set_cookie("theme", "dark", path="/items")
    return response


@app.websocket("/ws/{room}")
async def ws(websocket: WebSocket, room: str, name: str = "anon") -> None:
    await websocket.accept()
    await websocket.send_json({"room": room, "name": name})
    try:
        while True:
            text = await websocket.receive_text()
            if text == "bye":
                await websocket.close(code=4000, reason="bye " + name)
                return
            await websocket.send_text(f"{room}:{text}")
    except WebSocketDisconnect as exc:
        record(f"ws-closed-{name}", str(exc.code))
