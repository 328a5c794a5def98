"""What the server needs to start HTTP/3, importable on every Python: no zoomies here.

`http3_unavailable` says, in one line, why `--http3` cannot run on this interpreter,
without importing zoomies (pounce_sync must not import it on 3.11 or 3.13t). The
`QuicEndpoint` is what the server hands the pool: a bound UDP socket and the PEM
credentials zoomies loads.
"""

import importlib.metadata
import importlib.util
import socket
import sys
from dataclasses import dataclass

ZOOMIES_VERSION = "0.3.3"  # the version quic_compat's fixes are written for


@dataclass(frozen=True, slots=True)
class QuicEndpoint:
    """A bound UDP socket for QUIC, and the certificate and unencrypted key for zoomies."""

    sock: socket.socket
    certificate: bytes
    private_key: bytes


def http3_unavailable() -> str | None:
    """Why HTTP/3 cannot be served here, or None when it can."""
    if sys.version_info < (3, 14):
        return f"--http3 needs Python 3.14 or later (this is {sys.version.split()[0]})"
    if importlib.util.find_spec("zoomies") is None:
        return "--http3 needs bengal-zoomies: pip install 'pounce-sync' on Python 3.14"
    try:
        version = importlib.metadata.version("bengal-zoomies")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    if version != ZOOMIES_VERSION:
        return f"--http3 needs bengal-zoomies {ZOOMIES_VERSION}, found {version}"
    return None


def load_credentials(
    certfile: str, keyfile: str | None, password: str | None
) -> tuple[bytes, bytes]:
    """The certificate (PEM) and the key as unencrypted PKCS#8 PEM; ValueError says why not.

    zoomies' TLS signs with ECDSA P-256 only and loads keys without a password.
    Called only where `http3_unavailable()` is None (cryptography comes with zoomies).
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    with open(certfile, "rb") as f:
        chain = f.read()
    with open(keyfile or certfile, "rb") as f:
        key_pem = f.read()
    try:
        key = serialization.load_pem_private_key(key_pem, password.encode() if password else None)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"cannot load the TLS key for HTTP/3: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ValueError(
            "--http3 needs an ECDSA P-256 TLS key (bengal-zoomies signs with no other)"
        )
    plain = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return chain, plain
