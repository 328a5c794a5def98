"""Load the application from a `module:attribute` string, as uvicorn does.

A failure is one line for the user: the exception's message as written and the
line of the application that raised it. The whole traceback stays on the
`AppImportError`'s `__cause__`, logged at `--log-level debug`.
"""

import importlib
import os
import sys
import sysconfig
import traceback
from pathlib import Path
from typing import Any

# pounce_sync/: our frames, never the app's.
_OWN_DIR = str(Path(__file__).resolve().parents[1]) + os.sep
# The standard library and installed packages: frames there are not the app's own code.
_LIBRARY_DIRS = tuple(
    {sysconfig.get_path(name) + os.sep for name in ("stdlib", "platstdlib", "purelib", "platlib")}
)


class AppImportError(Exception):
    """The app could not be loaded; the message is one line for the user."""


def describe_failure(exc: BaseException) -> str:
    """`Type: message (file:line)` in one line; the message's own lines joined by ` | `.

    str, not repr: repr quotes the message and shows its line breaks as `\\n`.
    """
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if isinstance(exc, SyntaxError) and exc.msg:
        lines = [exc.msg]  # str() of a SyntaxError repeats the place given below
    text = type(exc).__name__ + (": " + " | ".join(lines) if lines else "")
    where = failure_location(exc)
    return f"{text} ({where})" if where else text


def failure_location(exc: BaseException) -> str | None:
    """file:line of the last application frame of `exc`'s traceback, if it has one.

    Frames of importlib and of pounce-sync are skipped; of the rest, the last one
    outside the standard library and installed packages is preferred, so a library
    raising on the app's behalf points at the app's call. A SyntaxError names the
    file it could not compile, which is in no frame.
    """
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{exc.filename}:{exc.lineno}"
    frames = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if not frame.filename.startswith(("<frozen ", _OWN_DIR))
    ]
    own = [frame for frame in frames if not frame.filename.startswith(_LIBRARY_DIRS)]
    chosen = own or frames
    return f"{chosen[-1].filename}:{chosen[-1].lineno}" if chosen else None


def import_from_string(import_str: str) -> Any:
    module_name, _, attrs = import_str.partition(":")
    if not module_name or not attrs:
        raise AppImportError(
            f'import string "{import_str}" must be in the format "<module>:<attribute>"'
        )
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name and not module_name.startswith(f"{exc.name}."):
            raise AppImportError(
                f'error while importing "{module_name}": {describe_failure(exc)}'
            ) from exc
        raise AppImportError(f'could not import module "{module_name}"') from exc
    except Exception as exc:
        raise AppImportError(
            f'error while importing "{module_name}": {describe_failure(exc)}'
        ) from exc
    instance: Any = module
    try:
        for attr in attrs.split("."):
            instance = getattr(instance, attr)
    except AttributeError as exc:
        raise AppImportError(f'attribute "{attrs}" not found in module "{module_name}"') from exc
    return instance


def load_app(import_str: str, app_dir: str, factory: bool) -> Any:
    sys.path.insert(0, app_dir)
    app = import_from_string(import_str)
    if factory:
        if not callable(app):
            raise AppImportError(f'factory "{import_str}" is not callable')
        try:
            app = app()
        except Exception as exc:
            raise AppImportError(f'factory "{import_str}" failed: {describe_failure(exc)}') from exc
    if not callable(app):
        raise AppImportError(f'"{import_str}" is not callable; is it an ASGI or WSGI application?')
    return app
