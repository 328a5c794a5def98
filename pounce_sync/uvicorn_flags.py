"""uvicorn's flags that mean nothing here, and the one line each is answered with.

People start pounce-sync with the flags they used for uvicorn. A flag that takes
a value would otherwise lose it to the APP argument (`--http h11` read as the app
`h11`), and the error would be about something else. Each entry says what
pounce-sync has instead, or that there is nothing to set; the command line
refuses the flag with that hint and exit code 2. The flags uvicorn and
pounce-sync share (`--app-dir`, `--workers`, `--log-config`, `--env-file`, ...) are not
here.
"""

from dataclasses import dataclass

from .sources.values import BOOLEAN_WORDS


@dataclass(frozen=True, slots=True)
class ForeignFlag:
    """A uvicorn flag with no counterpart here; `hint` is the whole answer."""

    takes_value: bool
    hint: str


UVICORN_ONLY: dict[str, ForeignFlag] = {
    "--http": ForeignFlag(
        True,
        "there is no HTTP implementation to choose: pounce-sync parses HTTP/1.1 itself; "
        "HTTP/2 is --http2 / --no-http2 (on by default)",
    ),
    "--loop": ForeignFlag(
        True,
        "there is no event loop to choose: requests run on blocking worker threads "
        "(--coroutine-driver says how an ASGI coroutine is stepped there); the AsyncPool "
        "runs asyncio's own loop",
    ),
    "--use-colors": ForeignFlag(
        False, "log lines are never coloured; --log-config sets a formatter of your own"
    ),
    "--no-use-colors": ForeignFlag(False, "log lines are never coloured: nothing to turn off"),
    "--h11-max-incomplete-event-size": ForeignFlag(
        True,
        "the parser is pounce-sync's own, not h11: a request head is bounded by "
        "--limit-request-line and --limit-request-headers-size",
    ),
    "--timeout-notify": ForeignFlag(
        True,
        "not a uvicorn command-line flag either: uvicorn's gunicorn worker sets it from "
        "gunicorn's --timeout, and so does ours (gunicorn -k pounce_sync.gunicorn.Worker "
        "--timeout N); alone, pounce-sync's supervisor watches its workers",
    ),
    "--timeout-worker-healthcheck": ForeignFlag(
        True,
        "meaningless here: worker processes are not pinged; the supervisor restarts one that "
        "exits (at most 5 restarts in 60 s)",
    ),
    "--ws-max-queue": ForeignFlag(
        True,
        "not adjustable: a WebSocket holds at most 16 messages the app has not received, then "
        "stops reading the socket; --ws-max-size bounds each message",
    ),
    "--reload-delay": ForeignFlag(
        True, "not adjustable: --reload looks for changed files every 0.25 s"
    ),
    "--ssl-version": ForeignFlag(
        True,
        "not adjustable: TLS 1.2 is the least version accepted, newer ones are negotiated; "
        "--ssl-ciphers sets the TLS 1.2 ciphers",
    ),
}

# What uvicorn's `--ws` takes: here `--ws` / `--no-ws` is a switch and wsproto serves.
UVICORN_WS_VALUES = frozenset(("auto", "none", "websockets", "websockets-sansio", "wsproto"))
# What click accepts as a boolean value (uvicorn's `--ws-per-message-deflate BOOL`).
CLICK_BOOLEANS = BOOLEAN_WORDS


def switch_hint(flag: str) -> str:
    """For a value given to one of our switches, which take none."""
    name = flag.removeprefix("--no-").removeprefix("--")
    if name == "ws":
        return (
            "takes no value here: WebSocket always runs on wsproto in the AsyncPool; "
            "--ws accepts upgrades (the default), --no-ws refuses them"
        )
    return f"takes no value here: --{name} turns it on, --no-{name} turns it off"
