"""Command line: flags derived from `Config` fields, errors as one line and exit 2."""

import argparse
import sys
import types
import typing
from dataclasses import MISSING, fields
from typing import Any, NoReturn

from .config import Config, ConfigError, choices, flag_for


class _OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _base_type(annotation: Any) -> type:
    """`int | None` -> int, `Literal[...]` -> str."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _base_type(args[0])
    if typing.get_origin(annotation) is typing.Literal:
        return str
    return annotation


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(
        prog="pounce-sync",
        description="Serve an ASGI or WSGI application on blocking worker threads.",
    )
    hints = typing.get_type_hints(Config)
    for f in fields(Config):
        help_text = f.metadata["help"].replace("%", "%%")  # argparse formats help with %
        if f.metadata.get("flag") == "":
            parser.add_argument(f.name, nargs="?", default=f.default, help=help_text)
            continue
        flag = flag_for(f.name)
        default = f.default if f.default is not MISSING else None
        kind = _base_type(hints[f.name])
        if typing.get_origin(kind) is tuple:
            parser.add_argument(
                flag, action="append", default=None, metavar="VALUE", help=help_text
            )
        elif kind is bool:
            parser.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=default, help=help_text
            )
        else:
            parser.add_argument(
                flag,
                type=kind,
                default=default,
                choices=choices(f.name) or None,
                metavar=f.name.upper(),
                help=f"{help_text} (default: {default})",
            )
    return parser


def config_from_args(argv: list[str] | None = None) -> Config:
    parser = build_parser()
    settings = vars(parser.parse_args(argv))
    for name, value in settings.items():
        if isinstance(value, list):  # repeatable flags collect lists; Config holds tuples
            settings[name] = tuple(value)
    settings = {name: value for name, value in settings.items() if value is not None}
    try:
        return Config(**settings)
    except ConfigError as exc:
        parser.error(str(exc))


def main(argv: list[str] | None = None) -> NoReturn:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["bench"]:  # a subcommand: its flags are not server settings
        from pounce_sync.bench.runner import main as bench_main

        sys.exit(bench_main(args[1:]))
    config = config_from_args(argv)
    if config.reload:  # a parent that restarts the server as a child on every change
        from pounce_sync.server.reload import run_reloader

        sys.exit(run_reloader(config, sys.argv[1:] if argv is None else argv))
    from pounce_sync.server.run import run_config

    sys.exit(run_config(config))
