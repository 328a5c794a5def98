"""Runs pounce_sync.run() with an app object, as an embedding program would."""

import sys

import pounce_sync


async def app(scope, receive, send) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"embedded"})


if __name__ == "__main__":
    sys.exit(pounce_sync.run(app, host="127.0.0.1", port=0, workers=2, worker_mode="thread"))
