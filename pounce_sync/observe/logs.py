"""Logging set-up: errors to stderr, access lines to stdout, thread names in both.

The server logs to two loggers, `pounce_sync.error` (start-up, shutdown, failures;
uvicorn's `uvicorn.error`) and `pounce_sync.access` (one line per request;
uvicorn's `uvicorn.access`). A `--log-config` file replaces the built-in handlers:
both loggers then have none of their own and propagate, so a file that
configures only the root logger receives everything, as with uvicorn.
`--log-level` still sets both loggers' level; a file that names them may set
its own.
"""

import json
import logging
import logging.config
import sys
from pathlib import Path
from typing import Any

TRACE = 5
logging.addLevelName(TRACE, "TRACE")

ERROR_LOGGER = "pounce_sync.error"
ACCESS_LOGGER = "pounce_sync.access"
_FORMAT = "%(asctime)s [%(levelname)s] [%(threadName)s] %(message)s"


class LogConfigError(Exception):
    """--log-config could not be applied; the message is one line for the user."""


def configure_logging(level: str, log_config: str | None = None) -> None:
    """The built-in handlers at `level`, or the `log_config` file in their place."""
    numeric = TRACE if level == "trace" else getattr(logging, level.upper())
    if log_config is None:
        _configure_builtin(numeric)
    else:
        _hand_over(numeric)
        _apply_config_file(Path(log_config))


def _configure_builtin(level: int) -> None:
    formatter = logging.Formatter(_FORMAT)
    for name, stream in ((ERROR_LOGGER, sys.stderr), (ACCESS_LOGGER, sys.stdout)):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        handler = logging.StreamHandler(stream)
        handler.setFormatter(formatter)
        logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = False


def _hand_over(level: int) -> None:
    """Our loggers without handlers of their own, propagating to what the file sets up."""
    for name in (ERROR_LOGGER, ACCESS_LOGGER):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.setLevel(level)
        logger.propagate = True


def _apply_config_file(path: Path) -> None:
    if not path.is_file():
        raise LogConfigError(f"--log-config {path}: no such file")
    try:
        suffix = path.suffix.lower()
        if suffix == ".json":
            _dict_config(path, json.loads(path.read_text()))
        elif suffix in (".yaml", ".yml"):
            _dict_config(path, _load_yaml(path))
        else:
            logging.config.fileConfig(path, disable_existing_loggers=False)
    except LogConfigError:
        raise
    except Exception as exc:  # anything a user's file can make logging.config raise
        raise LogConfigError(f"--log-config {path}: {_one_line(exc)}") from exc


def _one_line(exc: BaseException) -> str:
    """dictConfig wraps the real cause ("Unable to configure handler 'file'"): show both."""
    message = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, KeyError):  # fileConfig's word for a missing section or option
        message = f"missing {message}"
    if exc.__cause__ is not None:
        message += f": {_one_line(exc.__cause__)}"
    return message


def _dict_config(path: Path, config: Any) -> None:
    if not isinstance(config, dict):
        raise LogConfigError(f"--log-config {path}: the file must hold a dictConfig mapping")
    # Our loggers exist from import time; the stdlib default would silence them.
    config.setdefault("disable_existing_loggers", False)
    logging.config.dictConfig(config)


def _load_yaml(path: Path) -> Any:
    try:
        import yaml
    except ImportError:
        raise LogConfigError(
            f"--log-config {path}: YAML files need PyYAML (pip install pyyaml)"
        ) from None
    return yaml.safe_load(path.read_text())
