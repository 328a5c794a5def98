"""How an ASGI app learns that its client went away, on every protocol."""

from typing import Any


class ClientDisconnected(OSError):
    """The client went away (or stopped reading) while the server was writing.

    An OSError, as ASGI 2.4 asks of `send()` once the client has gone.
    """


def disconnect_message() -> dict[str, Any]:
    """A fresh message each time: an app may keep or change what it receives."""
    return {"type": "http.disconnect"}
