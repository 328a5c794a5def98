"""A Flask app for tests/frameworks/test_flask.py, served by pounce-sync and by gunicorn.

`?log=<file>` routes leave a trace in that file (read by the test: the server may be
several processes), `?gate=<file>` makes a stream wait until the test creates it.
"""

import hashlib
import io
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import flask

app = flask.Flask(__name__)
DATA_FILE = Path(os.environ.get("FLASK_TEST_DATA_FILE", "/nonexistent"))


class TracingFile(io.FileIO):
    """A real file whose reads through Python are logged: sendfile(2) never makes one."""

    def __init__(self, path: Path, log: str) -> None:
        super().__init__(path, "rb")
        self.log = log

    def _trace(self, how: str) -> None:
        with open(self.log, "a") as f:
            f.write(how + "\n")

    def read(self, size: int = -1) -> bytes:
        self._trace("read")
        return super().read(size)

    def readinto(self, buffer: Any) -> int:
        self._trace("readinto")
        return super().readinto(buffer)

    def readall(self) -> bytes:
        self._trace("readall")
        return super().readall()


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@app.post("/form")
def form() -> Any:
    files = {
        name: {"filename": f.filename, "type": f.mimetype, "sha256": _digest(f.read())}
        for name, f in flask.request.files.items()
    }
    return {"form": flask.request.form.to_dict(flat=False), "files": files}


@app.get("/file")
def send_path() -> Any:
    return flask.send_file(DATA_FILE, mimetype="application/octet-stream")


@app.get("/traced-file")
def send_traced_file() -> Any:
    """send_file with a file object: no Content-Length from werkzeug, so the body is chunked."""
    traced = TracingFile(DATA_FILE, flask.request.args["log"])
    traced.seek(int(flask.request.args.get("offset", 0)))  # sent from where the file stands
    return flask.send_file(traced, mimetype="application/octet-stream")


@app.get("/stream")
def stream() -> Any:
    gate = flask.request.args.get("gate")

    @flask.stream_with_context
    def generate() -> Any:
        yield f"first {flask.request.path}\n"
        deadline = time.monotonic() + 20
        while gate and not os.path.exists(gate) and time.monotonic() < deadline:
            time.sleep(0.01)
        yield "second\n"

    return flask.Response(generate(), mimetype="text/plain")


@app.post("/upload")
def upload() -> Any:
    """Reads request.stream in pieces, as an app that must not hold a big upload does."""
    digest, total, pieces = hashlib.sha256(), 0, 0
    while piece := flask.request.stream.read(16384):
        digest.update(piece)
        total += len(piece)
        pieces += 1
    return {"bytes": total, "sha256": digest.hexdigest(), "reads": pieces > 0}


@app.get("/boom")
def boom() -> Any:
    raise RuntimeError("flask view failed on purpose")


@app.get("/thread")
def thread() -> Any:
    gil = getattr(sys, "_is_gil_enabled", lambda: True)()
    return {"thread": threading.current_thread().name, "gil": gil}


@app.errorhandler(404)
def not_found(error: Exception) -> Any:
    return {"error": "custom not found", "path": flask.request.path}, 404


@app.errorhandler(500)
def server_error(error: Exception) -> Any:
    return {"error": "custom server error"}, 500
