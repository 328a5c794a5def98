"""A Quart app for tests/frameworks/test_quart.py: pages, JSON, a WebSocket, lifespan."""

import os

from quart import Quart, Response, abort, jsonify, request, websocket

from .shared import record, runtime

app = Quart(__name__)


@app.before_serving
async def started() -> None:
    record(f"quart-startup-{os.getpid()}", "started")


@app.after_serving
async def stopped() -> None:
    record(f"quart-shutdown-{os.getpid()}", "stopped")


@app.get("/")
async def index() -> str:
    return "<h1>hello from quart</h1>"


@app.get("/hello/<name>")
async def hello(name: str) -> Response:
    return jsonify(greeting=f"hello {name}", lang=request.args.get("lang", "en"))


@app.post("/json")
async def echo_json() -> Response:
    data = await request.get_json()  # a body that is not JSON: Quart's own 400
    if not isinstance(data, dict):
        abort(422)
    return jsonify(echo=data, keys=sorted(data))


@app.get("/runtime")
async def where() -> Response:
    return jsonify(runtime())


@app.websocket("/ws")
async def ws() -> None:
    await websocket.send_json({"path": websocket.path, "args": dict(websocket.args)})
    while True:
        message = await websocket.receive()
        if message == "bye":
            await websocket.close(1000, "bye")
            return
        await websocket.send(message if isinstance(message, bytes) else f"echo:{message}")
