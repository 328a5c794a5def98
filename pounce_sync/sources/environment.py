"""Settings from environment variables: `POUNCE_SYNC_<SETTING>` for every setting.

`POUNCE_SYNC_WORKERS=4`, `POUNCE_SYNC_HTTP2=false`, `POUNCE_SYNC_APP=main:app`. Booleans
take what click takes (true/false, 1/0, yes/no, on/off, t/f, y/n); a list setting's
values are comma-separated (`POUNCE_SYNC_BIND=127.0.0.1:8000,unix:/run/app.sock`),
except headers, one a line, because header values hold commas. A variable set but
empty counts as unset, as click (and so uvicorn) has it. A `POUNCE_SYNC_` variable
naming no setting is an error: a typo must not be silently ignored.

`POUNCE_SYNC_SSL_KEYFILE_PASSWORD` keeps the meaning it had before these variables:
the key's password, read only when TLS is on and no password flag or file is given
(`server/tls.py`), so it is not one of these settings.
"""

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from pounce_sync.config import SSL_KEYFILE_PASSWORD_ENV, Config, ConfigError

from .values import from_text

ENV_PREFIX = "POUNCE_SYNC_"
_OWN_MEANING = frozenset((SSL_KEYFILE_PASSWORD_ENV,))


def env_var_for(name: str) -> str:
    """The variable of setting `name`: POUNCE_SYNC_ and its name in capitals."""
    return ENV_PREFIX + name.upper()


_SETTINGS = {env_var_for(f.name): f.name for f in fields(Config)}


def settings_from_environ(environ: Mapping[str, str]) -> dict[str, Any]:
    """The settings the variables in `environ` give, checked; errors name the variable."""
    settings: dict[str, Any] = {}
    for variable in sorted(environ):
        if not variable.startswith(ENV_PREFIX) or variable in _OWN_MEANING:
            continue
        text = environ[variable]
        if not text:
            continue
        name = _SETTINGS.get(variable)
        if name is None:
            raise ConfigError(f"{variable} names no setting (see docs/settings.md)")
        settings[name] = from_text(name, text, variable)
    return settings
