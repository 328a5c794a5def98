"""Which interface an application speaks, decided once at load: ASGI 3, ASGI 2 or WSGI.

The workers never ask per request: the resolved interface is written into the
frozen config, and an ASGI 2 app is wrapped into an ASGI 3 one here.
"""

import inspect
from typing import Any


def resolve_interface(app: Any, requested: str) -> tuple[str, Any, str]:
    """(interface, the app to serve, why) for `--interface requested`."""
    if requested == "auto":
        interface, why = detect_interface(app)
        why = f"auto: {why}"
    else:
        interface, why = requested, f"--interface {requested}"
    if interface == "asgi2":
        app = asgi2_to_asgi3(app)
    return interface, app, why


def detect_interface(app: Any) -> tuple[str, str]:
    """("asgi3" | "asgi2" | "wsgi", why).

    A class is never asgi3 here: calling it builds an instance, as an ASGI 2 class
    or a PEP 3333 class-based WSGI app does, even when its `__call__` is async.
    """
    if inspect.iscoroutinefunction(app) or _async_call(app):
        return "asgi3", "an async callable"
    if _positional_parameters(app) == 2:
        return "wsgi", "a sync callable of two arguments, environ and start_response"
    return "asgi2", "a sync callable, not of two arguments: app(scope) gives an instance"


def _async_call(app: Any) -> bool:
    """An instance whose class's __call__ is a coroutine function (Starlette, Django ASGI)."""
    return not inspect.isclass(app) and inspect.iscoroutinefunction(type(app).__call__)


def _positional_parameters(app: Any) -> int | None:
    """How many positional parameters `app` declares; None if any number or unknown."""
    try:
        parameters = inspect.signature(app).parameters.values()
    except (TypeError, ValueError):  # a builtin or extension type without a signature
        return None
    count = 0
    for parameter in parameters:
        if parameter.kind is parameter.VAR_POSITIONAL:
            return None
        if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            count += 1
    return count


def asgi2_to_asgi3(app: Any) -> Any:
    """ASGI 2 (`app(scope)` returns an instance awaited with receive and send) as ASGI 3."""

    async def asgi3(scope: dict[str, Any], receive: Any, send: Any) -> None:
        instance = app(scope)
        await instance(receive, send)

    return asgi3
