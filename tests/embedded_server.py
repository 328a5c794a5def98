"""Runs pounce_sync.run() with an app object, as an embedding program would.

`embedded_server.py wsgi` serves a WSGI app object instead of the ASGI one.
"""

import sys

import pounce_sync


async def app(scope, receive, send) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"embedded"})


def wsgi_app(environ, start_response) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"embedded wsgi"]


if __name__ == "__main__":
    served = wsgi_app if sys.argv[1:] == ["wsgi"] else app
    sys.exit(pounce_sync.run(served, host="127.0.0.1", port=0, workers=2, worker_mode="thread"))
