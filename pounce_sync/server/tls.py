"""TLS set-up: the server's SSLContext, built once at start-up from the settings.

Pure set-up: this module reads the certificate, key and CA files and touches no
connection. In process mode the context is built before the workers are forked,
so they all share it (and its session-ticket keys: a session resumes on any worker).

Failures are `TLSConfigError`s whose message names the file and what is wrong with
it. OpenSSL itself says "PEM lib" for most of them, so the files are checked in the
order OpenSSL reads them.

An encrypted key's password comes from the first of: --ssl-keyfile-password (which
every user sees in `ps`), the first line of --ssl-keyfile-password-file, and
$POUNCE_SYNC_SSL_KEYFILE_PASSWORD; the environment is read only when TLS is on.
"""

import os
import ssl
from dataclasses import dataclass

from pounce_sync.config import SSL_KEYFILE_PASSWORD_ENV, Config
from pounce_sync.worker.connection import ServerSSLSocket


class TLSConfigError(Exception):
    """The TLS files or settings cannot be used; the message is one line for the user."""


@dataclass(frozen=True, slots=True)
class KeyPassword:
    """An encrypted key's password and where it came from, which a wrong one's error names."""

    value: str | bytes
    source: str


def key_password(config: Config) -> KeyPassword | None:
    """The password from the flag, the file or the environment, in that order; None: none."""
    if config.ssl_keyfile_password is not None:
        return KeyPassword(config.ssl_keyfile_password, "--ssl-keyfile-password")
    path = config.ssl_keyfile_password_file
    if path is not None:
        source = f"password in --ssl-keyfile-password-file {path!r}"
        return KeyPassword(_read_password_file(path), source)
    from_env = os.environ.get(SSL_KEYFILE_PASSWORD_ENV)
    if from_env:  # set but empty counts as unset, as shells and unit files make it easy
        return KeyPassword(from_env, SSL_KEYFILE_PASSWORD_ENV)
    return None


def _read_password_file(path: str) -> bytes:
    """The file's first line without its line ending, as bytes: no encoding to guess."""
    try:
        with open(path, "rb") as f:
            first = f.readline()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise TLSConfigError(f"cannot read --ssl-keyfile-password-file {path!r}: {reason}") from exc
    return first.removesuffix(b"\n").removesuffix(b"\r")


def build_ssl_context(config: Config) -> ssl.SSLContext | None:
    """The server context for `config`, or None when TLS is off."""
    if config.ssl_certfile is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_RENEGOTIATION  # client-initiated renegotiation is a DoS lever
    context.sslsocket_class = ServerSSLSocket
    # h2 first: a client that speaks both gets HTTP/2, served on the AsyncPool.
    context.set_alpn_protocols(["h2", "http/1.1"] if config.serves_http2 else ["http/1.1"])
    _set_ciphers(context, config.ssl_ciphers)
    _load_chain(context, config)
    context.verify_mode = ssl.VerifyMode(config.ssl_cert_reqs)
    if config.ssl_ca_certs is not None:
        _load_ca_certs(context, config.ssl_ca_certs)
    return context


def _set_ciphers(context: ssl.SSLContext, ciphers: str) -> None:
    try:
        context.set_ciphers(ciphers)
    except ssl.SSLError as exc:
        raise TLSConfigError(f"--ssl-ciphers {ciphers!r} selects no usable cipher") from exc


def _load_chain(context: ssl.SSLContext, config: Config) -> None:
    certfile, keyfile = config.ssl_certfile, config.ssl_keyfile
    assert certfile is not None
    _check_readable(certfile, "certificate")
    if keyfile is not None:
        _check_readable(keyfile, "key")
    key_source = keyfile or certfile
    password = key_password(config)
    asked = False

    def give_password() -> str | bytes:
        nonlocal asked
        asked = True
        # Never None: OpenSSL would then prompt for the password on the terminal.
        return "" if password is None else password.value

    try:
        context.load_cert_chain(certfile, keyfile, give_password)
    except ssl.SSLError as exc:
        raise TLSConfigError(_chain_error(exc, certfile, key_source, password, asked)) from exc
    except OSError as exc:
        raise TLSConfigError(f"cannot load TLS certificate {certfile!r}: {exc}") from exc


def _chain_error(
    exc: ssl.SSLError, certfile: str, key_source: str, password: KeyPassword | None, asked: bool
) -> str:
    if exc.reason == "KEY_VALUES_MISMATCH":
        return f"TLS key {key_source!r} does not belong to certificate {certfile!r}"
    if asked and password is None:
        return (
            f"TLS key {key_source!r} is encrypted; give its password with "
            f"--ssl-keyfile-password-file or ${SSL_KEYFILE_PASSWORD_ENV}"
        )
    if asked:
        return f"wrong {password.source} for TLS key {key_source!r}"
    if not _has_certificate(certfile):
        return f"no PEM certificate in {certfile!r}"
    return f"no usable PEM private key in {key_source!r}"


def _has_certificate(path: str) -> bool:
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_verify_locations(cafile=path)
    except (ssl.SSLError, OSError):
        return False
    return True


def _load_ca_certs(context: ssl.SSLContext, path: str) -> None:
    _check_readable(path, "CA certificates")
    try:
        context.load_verify_locations(cafile=path)
    except (ssl.SSLError, OSError) as exc:
        raise TLSConfigError(f"no usable PEM CA certificate in {path!r}") from exc


def _check_readable(path: str, what: str) -> None:
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise TLSConfigError(f"cannot read TLS {what} file {path!r}: {reason}") from exc
