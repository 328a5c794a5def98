"""`--env-file`: a dotenv file's variables put into the environment before the app loads.

uvicorn does this with python-dotenv; this is a small reader of our own for the same
files, so the server needs no extra package. What a line may be:

    # a comment, and blank lines
    NAME=value                    unquoted: trimmed; ` # ...` after it is a comment
    export NAME=value             the shell's `export ` prefix is allowed
    NAME='single quoted'          literal, except \\' and \\\\; may span lines
    NAME="double quoted\\n"        escapes \\n \\t \\r \\" \\\\ \\' \\a \\b \\f \\v; may span lines
    NAME=${OTHER}-${MISSING:-x}   ${VAR} and ${VAR:-default}, in unquoted and double-quoted
                                  values: the environment, else an earlier line of the file
                                  (the environment wins, as it does for the values set)

Names are letters, digits and `_` (and `.`, `-`, which python-dotenv also takes), not
starting with a digit. Anything else is an error naming the file and line, where
python-dotenv warns and skips. Single-quoted values are not expanded (python-dotenv
expands them; shells and docker compose do not). As with python-dotenv (and so
uvicorn), a variable already set in the environment keeps its value.
"""

import os
import re
from collections.abc import Mapping, MutableMapping

_NAME = r"[A-Za-z_][A-Za-z0-9_.\-]*"
_ASSIGNMENT = re.compile(rf"[ \t]*(?:export[ \t]+)?({_NAME})[ \t]*=[ \t]*")
_BLANK = re.compile(r"[ \t]*(?:#[^\n]*)?(?:\n|$)")
_SINGLE = re.compile(r"'((?:\\.|[^'\\])*)'", re.DOTALL)
_DOUBLE = re.compile(r'"((?:\\.|[^"\\])*)"', re.DOTALL)
_UNQUOTED = re.compile(r"[^\n]*")
_DOUBLE_ESCAPES = re.compile(r"\\(.)", re.DOTALL)
_ESCAPED = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "f": "\f", "v": "\v"}
_VARIABLE = re.compile(r"\$\{([^}:]*)(?::-([^}]*))?\}")


class EnvFileError(ValueError):
    """The file cannot be read or a line is not NAME=VALUE; one line naming file:line."""


def parse_env(text: str, source: str, environ: Mapping[str, str]) -> dict[str, str]:
    """The file's variables in order, `${...}` expanded against `environ`; no I/O."""
    text = text.removeprefix("\ufeff").replace("\r\n", "\n")
    values: dict[str, str] = {}
    pos = 0
    while pos < len(text):
        line = text.count("\n", 0, pos) + 1
        blank = _BLANK.match(text, pos)
        if blank is not None and blank.end() > pos:
            pos = blank.end()
            continue
        assignment = _ASSIGNMENT.match(text, pos)
        if assignment is None:
            raise EnvFileError(f"{source}:{line}: expected NAME=VALUE, got {_line_at(text, pos)!r}")
        name = assignment[1]
        value, pos = _value(text, assignment.end(), source, line, {**values, **environ})
        values[name] = value
    return values


def _value(
    text: str, pos: int, source: str, line: int, known: Mapping[str, str]
) -> tuple[str, int]:
    """The value starting at `pos` and where the next line starts."""
    quote = text[pos : pos + 1]
    if quote in ("'", '"'):
        found = (_SINGLE if quote == "'" else _DOUBLE).match(text, pos)
        if found is None:
            raise EnvFileError(f"{source}:{line}: {quote} is never closed")
        rest = _BLANK.match(text, found.end())
        if rest is None:
            extra = _line_at(text, found.end())
            raise EnvFileError(f"{source}:{line}: unexpected {extra!r} after the closing {quote}")
        raw = found[1]
        if quote == "'":
            return re.sub(r"\\([\\'])", r"\1", raw), rest.end()
        return _expand(_DOUBLE_ESCAPES.sub(_unescape, raw), known), rest.end()
    found = _UNQUOTED.match(text, pos)
    assert found is not None  # matches the empty string too
    raw = re.sub(r"[ \t]+#.*", "", found[0]).rstrip()
    if raw.startswith("#"):  # NAME= # comment: empty (NAME=#x keeps "#x", as dotenv)
        raw = "" if pos > 0 and text[pos - 1] in " \t" else raw
    return _expand(raw, known), found.end() + 1


def _unescape(escape: re.Match[str]) -> str:
    char = escape[1]
    if char in _ESCAPED:
        return _ESCAPED[char]
    return char if char in "\"'\\" else escape[0]  # unknown escapes stay as written


def _expand(value: str, known: Mapping[str, str]) -> str:
    def variable(found: re.Match[str]) -> str:
        return known.get(found[1]) or found[2] or ""

    return _VARIABLE.sub(variable, value)


def _line_at(text: str, pos: int) -> str:
    end = text.find("\n", pos)
    return text[pos : len(text) if end < 0 else end].strip()


def load_env_file(path: str, environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Read `path` and set its variables that `environ` (os.environ) does not have yet.

    Returns every variable the file defines.
    """
    target = os.environ if environ is None else environ
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise EnvFileError(f"--env-file {path!r}: cannot read it: {reason}") from None
    values = parse_env(text, path, target)
    for name, value in values.items():
        target.setdefault(name, value)
    return values
