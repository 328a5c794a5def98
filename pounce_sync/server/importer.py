"""Load the application from a `module:attribute` string, as uvicorn does."""

import importlib
import sys
from typing import Any


class AppImportError(Exception):
    """The app could not be loaded; the message is one line for the user."""


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
            raise AppImportError(f'error while importing "{module_name}": {exc}') from exc
        raise AppImportError(f'could not import module "{module_name}"') from exc
    except Exception as exc:
        raise AppImportError(f'error while importing "{module_name}": {exc!r}') from exc
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
            raise AppImportError(f'factory "{import_str}" failed: {exc!r}') from exc
    if not callable(app):
        raise AppImportError(f'"{import_str}" is not callable; is it an ASGI or WSGI application?')
    return app
