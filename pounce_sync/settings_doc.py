"""Render docs/settings.md from the Config declaration: `python -m pounce_sync.settings_doc`."""

from dataclasses import fields

from .config import Config, choices, flag_for

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
    return _HEADER + "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(render(), end="")
