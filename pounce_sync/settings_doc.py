"""Render docs/settings.md from the Config declaration: `python -m pounce_sync.settings_doc`."""

from dataclasses import fields

from .cli import SOURCE_FLAGS
from .config import SSL_KEYFILE_PASSWORD_ENV, Config, choices, flag_for
from .sources.environment import ENV_PREFIX
from .uvicorn_flags import UVICORN_ONLY

_HEADER = """# Settings

Every setting is a field of `pounce_sync.config.Config`; the command-line flags
and this page are both generated from that one declaration (regenerate with
`python -m pounce_sync.settings_doc > docs/settings.md`; a test checks it is current).
Boolean settings take `--name` / `--no-name`.

## Where settings come from

Each setting is taken from the first of these that gives it:

1. the command line: the flags below;
2. an environment variable `{prefix}<NAME>`, the setting's name in capitals
   (`{prefix}WORKERS=4`, `{prefix}HTTP2=false`, `{prefix}APP=main:app`).
   Booleans take true/false, 1/0, yes/no, on/off; a list setting's values are
   comma-separated (`{prefix}BIND=127.0.0.1:8000,unix:/run/app.sock`), except
   `{prefix}HEADER`, one header a line, as header values hold commas. Set but
   empty counts as unset; a `{prefix}` variable that names no setting is an error.
   `{password}` keeps its own meaning: the TLS key's password when
   no password flag or file is given. The `--env-file` file's variables count
   too, below those already in the environment;
3. the `--config` file (TOML), keys named as the settings, with `-` or `_`;
4. the built-in default.

A bad value anywhere is one line on stderr naming the flag, the variable or the
file and key, and exit code 2.

| flag | meaning |
|---|---|
{sources}

## Settings

| flag | default | meaning |
|---|---|---|
"""


def _flag(name: str, default: object) -> str:
    if name == "app":
        return "`APP` (positional)"
    flag = flag_for(name)
    return f"`{flag}` / `--no-{flag[2:]}`" if isinstance(default, bool) else f"`{flag}`"


def render() -> str:
    rows = []
    for f in fields(Config):
        default = f.default
        shown = "—" if default is None or default == "" else f"`{default}`"
        help_text = f.metadata["help"].replace("|", "\\|")
        if allowed := choices(f.name):
            help_text += " One of: " + ", ".join(f"`{c}`" for c in allowed) + "."
        rows.append(f"| {_flag(f.name, default)} | {shown} | {help_text} |")
    return _header() + "\n".join(rows) + "\n" + _uvicorn_section()


def _header() -> str:
    sources = "\n".join(f"| `{flag}` | {text} |" for flag, (_, text) in SOURCE_FLAGS.items())
    return _HEADER.format(prefix=ENV_PREFIX, password=SSL_KEYFILE_PASSWORD_ENV, sources=sources)


_UVICORN_HEADER = """
## Coming from uvicorn

uvicorn's flags mostly have the same name here (`--app-dir`, `--workers`,
`--log-config`, `--proxy-headers`, ...). Boolean settings take no value:
`--ws-per-message-deflate false` is `--no-ws-per-message-deflate`, and `--ws`
/ `--no-ws` only turns WebSocket on or off (it always runs on wsproto). No flag
may be abbreviated. These uvicorn flags have no counterpart; each is refused
with this answer and exit code 2:

| uvicorn flag | answer |
|---|---|
"""


def _uvicorn_section() -> str:
    rows = [f"| `{flag}` | {foreign.hint} |" for flag, foreign in UVICORN_ONLY.items()]
    return _UVICORN_HEADER + "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(render(), end="")
