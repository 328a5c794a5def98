"""Render docs/settings.md from the Config declaration: `python -m pounce_sync.settings_doc`."""

from dataclasses import fields

from .config import Config, choices, flag_for
from .uvicorn_flags import UVICORN_ONLY

_HEADER = """# Settings

Every setting is a field of `pounce_sync.config.Config`; the command-line flags
and this page are both generated from that one declaration (regenerate with
`python -m pounce_sync.settings_doc > docs/settings.md`; a test checks it is current).
Boolean settings take `--name` / `--no-name`.

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
    return _HEADER + "\n".join(rows) + "\n" + _uvicorn_section()


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
