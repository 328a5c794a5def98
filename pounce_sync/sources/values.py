"""A setting's value from outside the command line: a config file's TOML value or an
environment variable's text, converted to the setting's type and checked.

Each error is one `ConfigError` line that names where the value came from (`label`:
the file and key, or the variable), never the flag the user did not type.
"""

from typing import Any

from pounce_sync.config import Config, ConfigError, check_value, setting_type

_TRUE = frozenset(("1", "true", "t", "yes", "y", "on"))
BOOLEAN_WORDS = _TRUE | frozenset(("0", "false", "f", "no", "n", "off"))
"""What click (and so uvicorn) takes for a boolean, lowercase; so do the variables."""
_WHAT = {
    str: "a string",
    int: "a whole number",
    float: "a number",
    bool: "true or false",
    tuple: "a list of strings",
}
_SEPARATORS = {f.name: f.metadata["separator"] for f in Config.__dataclass_fields__.values()}


def _wrong(label: str, name: str, value: Any) -> ConfigError:
    return ConfigError(f"{label} must be {_WHAT[setting_type(name)]}, got {value!r}")


def from_toml(name: str, value: Any, label: str) -> Any:
    """TOML already has types; only an int for a float setting and a string for a list
    one are widened."""
    kind = setting_type(name)
    if kind is float and type(value) is int:
        value = float(value)
    elif kind is tuple and isinstance(value, str):
        value = (value,)
    elif kind is tuple and isinstance(value, list):
        if not all(isinstance(item, str) for item in value):
            raise _wrong(label, name, value)
        value = tuple(value)
    if type(value) is not kind:  # bool is an int subclass: `workers = true` is wrong
        raise _wrong(label, name, value)
    check_value(name, value, label)
    return value


def from_text(name: str, text: str, label: str) -> Any:
    """An environment variable's text: numbers and booleans parsed as the command line
    and click do; a list setting's values split on its separator (a comma, or a newline
    for headers), blanks dropped."""
    kind = setting_type(name)
    value: Any = text
    if kind is bool:
        if text.lower() not in BOOLEAN_WORDS:
            raise _wrong(label, name, text)
        value = text.lower() in _TRUE
    elif kind in (int, float):
        try:
            value = kind(text)
        except ValueError:
            raise _wrong(label, name, text) from None
    elif kind is tuple:
        parts = (part.strip() for part in text.split(_SEPARATORS[name]))
        value = tuple(part for part in parts if part)
    check_value(name, value, label)
    return value
