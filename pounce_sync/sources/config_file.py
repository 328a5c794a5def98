"""`--config FILE`: settings from a TOML file, keys named as the settings are.

    workers = 4
    bind = ["0.0.0.0:8000", "unix:/run/app.sock"]
    timeout-keep-alive = 10      # `-` or `_`, as you like
    header = ["X-Served-By: edge-1"]

Every setting may be given; a list setting also takes one string. A file named
pyproject.toml holds them in its `[tool.pounce-sync]` table instead. An unknown key,
a value of the wrong type or one its setting refuses is an error naming the file and
the key. The command line and `POUNCE_SYNC_*` variables override the file.
"""

import tomllib
from dataclasses import fields
from pathlib import Path
from typing import Any

from pounce_sync.config import Config, ConfigError

from .values import from_toml

_NAMES = frozenset(f.name for f in fields(Config))


def load_config_file(path: str) -> dict[str, Any]:
    """The settings `path` gives, each converted and checked."""
    try:
        with open(path, "rb") as f:
            document = tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"--config {path!r}: cannot read it: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    table: Any = document
    if Path(path).name == "pyproject.toml":
        table = document.get("tool", {}).get("pounce-sync")
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: no [tool.pounce-sync] table")
        path = f"{path} [tool.pounce-sync]"
    return settings_from_table(table, path)


def settings_from_table(table: dict[str, Any], source: str) -> dict[str, Any]:
    """A parsed TOML table's settings; `source` names the file in errors. No I/O."""
    settings: dict[str, Any] = {}
    for key, value in table.items():
        name = key.replace("-", "_")
        label = f"{source}: {key}"
        if name not in _NAMES:
            raise ConfigError(f"{label}: no such setting (see docs/settings.md)")
        if name in settings:
            raise ConfigError(f"{label}: given twice (with - and with _)")
        settings[name] = from_toml(name, value, label)
    return settings
