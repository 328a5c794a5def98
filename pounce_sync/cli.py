"""Command line: flags derived from `Config` fields, errors as one line and exit 2.

No flag may be abbreviated: argparse's prefix matching read uvicorn's `--http h11`
as `--http2` and an app named `h11`. uvicorn's flags with no counterpart here are
refused with a hint (`uvicorn_flags.py`).
"""

import argparse
import itertools
import os
import platform
import sys
import sysconfig
import types
import typing
from collections.abc import Sequence
from dataclasses import MISSING, fields
from typing import Any, NoReturn

from .config import SSL_KEYFILE_PASSWORD_ENV, Config, ConfigError, choices, flag_for
from .sources.config_file import load_config_file
from .sources.env_file import EnvFileError, load_env_file
from .sources.environment import settings_from_environ
from .uvicorn_flags import CLICK_BOOLEANS, UVICORN_ONLY, UVICORN_WS_VALUES, switch_hint
from .version import __version__

_EPILOG = (
    "Subcommand: pounce-sync bench [APP] [options] serves an app in thread mode and in "
    "process mode, drives it with wrk and compares req/s, p99 latency and memory "
    "(pounce-sync bench --help)."
)


class _OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


class _Refused(argparse.Action):
    """A uvicorn flag with no counterpart here: parsing stops with its hint."""

    def __init__(self, option_strings: list[str], dest: str, hint: str, **kwargs: Any) -> None:
        kwargs["default"] = argparse.SUPPRESS
        super().__init__(option_strings, dest, **kwargs)
        self.hint = hint

    def __call__(self, parser: argparse.ArgumentParser, *args: Any) -> NoReturn:
        parser.error(f"{self.option_strings[0]}: {self.hint}")


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
        epilog=_EPILOG,
        allow_abbrev=False,
        argument_default=argparse.SUPPRESS,  # a flag not given leaves its setting to others
    )
    _add_setting_flags(parser)
    _add_source_flags(parser)
    for flag, foreign in UVICORN_ONLY.items():
        nargs = "?" if foreign.takes_value else 0  # "?": the value goes with the flag
        parser.add_argument(
            flag, action=_Refused, nargs=nargs, hint=foreign.hint, help=argparse.SUPPRESS
        )
    parser.add_argument("--version", action="version", version=_version())
    return parser


SOURCE_FLAGS = {
    "--config": (
        "config_file",
        "TOML file of settings, keys named as the settings (workers = 4); pyproject.toml: "
        "its [tool.pounce-sync] table. Environment variables and flags override it.",
    ),
    "--env-file": (
        "env_file",
        "dotenv file (NAME=value lines) whose variables are set before the app is imported, "
        "unless already set; its POUNCE_SYNC_* variables count as settings.",
    ),
}
"""Flags that name where more settings come from; they are not settings themselves."""


def _add_source_flags(parser: argparse.ArgumentParser) -> None:
    for flag, (dest, help_text) in SOURCE_FLAGS.items():
        parser.add_argument(flag, dest=dest, metavar="FILE", help=help_text)


def _version() -> str:
    build = " (free-threaded build)" if sysconfig.get_config_var("Py_GIL_DISABLED") else ""
    python = f"{platform.python_implementation()} {platform.python_version()}{build}"
    return f"pounce-sync {__version__} on {python}"


def _add_setting_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per `Config` field, its type, default, choices and help from the field."""
    hints = typing.get_type_hints(Config)
    for f in fields(Config):
        help_text = f.metadata["help"].replace("%", "%%")  # argparse formats help with %
        if f.metadata.get("flag") == "":
            parser.add_argument(f.name, nargs="?", help=help_text)
            continue
        flag = flag_for(f.name)
        default = f.default if f.default is not MISSING else None
        kind = _base_type(hints[f.name])
        if typing.get_origin(kind) is tuple:
            parser.add_argument(flag, action="append", metavar="VALUE", help=help_text)
        elif kind is bool:
            help_text += f" (default: {'on' if default else 'off'})"
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, help=help_text)
        else:
            parser.add_argument(
                flag,
                type=kind,
                choices=choices(f.name) or None,
                metavar=f.name.upper(),
                help=f"{help_text} (default: {default})",
            )


def _switches(parser: argparse.ArgumentParser) -> set[str]:
    """Our boolean flags, both spellings: they take no value."""
    return {
        flag
        for action in parser._actions
        if isinstance(action, argparse.BooleanOptionalAction)
        for flag in action.option_strings
    }


def refuse_switch_values(parser: argparse.ArgumentParser, argv: Sequence[str]) -> None:
    """uvicorn's `--ws wsproto` or `--ws-per-message-deflate false`: our switches take no value.

    Left to argparse, the value would become the APP argument. A word that could be
    an app (it has a colon) is left alone.
    """
    switches = _switches(parser)
    for flag, following in itertools.pairwise([*argv, ""]):
        if flag == "--":
            return
        name, equals, value = flag.partition("=")
        value = value if equals else following
        values = UVICORN_WS_VALUES if name in ("--ws", "--no-ws") else CLICK_BOOLEANS
        if name in switches and (equals or value.lower() in values):
            parser.error(f"{name} {switch_hint(name)}")


def config_from_args(argv: list[str] | None = None) -> Config:
    return _config_and_flags(argv)[0]


def _config_and_flags(argv: list[str] | None) -> tuple[Config, dict[str, Any]]:
    """The config, from built-in defaults < --config file < environment < flags; and the
    settings the flags gave.

    The env file is loaded first, into os.environ, so the app and worker processes see
    its variables and its POUNCE_SYNC_* ones count as settings.
    """
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    refuse_switch_values(parser, argv)
    flags = vars(parser.parse_args(argv))
    config_file = flags.pop("config_file", None)
    env_file = flags.pop("env_file", None)
    for name, value in flags.items():
        if isinstance(value, list):  # repeatable flags collect lists; Config holds tuples
            flags[name] = tuple(value)
    try:
        if env_file is not None:
            load_env_file(env_file)
        settings = load_config_file(config_file) if config_file is not None else {}
        settings.update(settings_from_environ(os.environ))
        settings.update(flags)
        return Config(**settings), flags
    except (ConfigError, EnvFileError) as exc:
        parser.error(str(exc))


def command_line_warnings(flags: dict[str, Any]) -> tuple[str, ...]:
    """What the command line itself gives away: a password on it is in every user's `ps`.

    Only the command line warns: a config file or an embedding program passing the
    password to `run()` shows it to nobody.
    """
    if flags.get("ssl_keyfile_password") is None:
        return ()
    return (
        "--ssl-keyfile-password is visible to every user in ps; give the password with "
        f"--ssl-keyfile-password-file PATH or ${SSL_KEYFILE_PASSWORD_ENV} instead",
    )


def main(argv: list[str] | None = None) -> NoReturn:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["bench"]:  # a subcommand: its flags are not server settings
        from pounce_sync.bench.runner import main as bench_main

        sys.exit(bench_main(args[1:]))
    config, flags = _config_and_flags(argv)
    if config.reload:  # a parent that restarts the server as a child on every change
        from pounce_sync.server.reload import run_reloader

        sys.exit(run_reloader(config, sys.argv[1:] if argv is None else argv))
    from pounce_sync.server.run import run_config

    sys.exit(run_config(config, startup_warnings=command_line_warnings(flags)))
