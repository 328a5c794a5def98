"""TLS test helpers: throwaway certificates, an https server process, a byte-exact client.

The certificates are made with the openssl command into a temporary directory
for each test session, so no key is ever committed.
"""

import re
import socket
import ssl
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .server_process import TESTS_DIR, ServerProcess

KEY_PASSWORD = "correct horse"
_LISTENING_TLS = re.compile(r"Listening on https://(\S+):(\d+)")
_EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
_LEAF_EXTENSIONS = """\
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = {usage}
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
"""


@dataclass(frozen=True)
class Certs:
    ca: str
    server_cert: str
    server_key: str
    server_key_encrypted: str  # server_key under KEY_PASSWORD
    client_cert: str
    client_key: str


def _openssl(openssl: str, *args: str) -> None:
    subprocess.run([openssl, *args], check=True, capture_output=True, timeout=60)


def make_certs(openssl: str, directory: Path) -> Certs:
    """A CA, a server certificate for localhost / 127.0.0.1, a client certificate."""
    d = directory
    _openssl(
        openssl, "req", "-x509", *_EC_KEY, "-keyout", str(d / "ca.key"), "-out",
        str(d / "ca.pem"), "-days", "2", "-subj", "/CN=pounce-sync test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-addext", "subjectKeyIdentifier=hash",
    )  # fmt: skip
    leaves = {
        "server": "serverAuth\nsubjectAltName = DNS:localhost, IP:127.0.0.1",
        "client": "clientAuth",
    }
    for serial, (name, usage) in enumerate(leaves.items(), start=2):
        (d / f"{name}.ext").write_text(_LEAF_EXTENSIONS.format(usage=usage))
        _openssl(
            openssl, "req", "-new", *_EC_KEY, "-keyout", str(d / f"{name}.key"),
            "-out", str(d / f"{name}.csr"), "-subj", f"/CN={name}",
        )  # fmt: skip
        _openssl(
            openssl, "x509", "-req", "-in", str(d / f"{name}.csr"), "-CA", str(d / "ca.pem"),
            "-CAkey", str(d / "ca.key"), "-set_serial", str(serial), "-days", "2",
            "-extfile", str(d / f"{name}.ext"), "-out", str(d / f"{name}.pem"),
        )  # fmt: skip
    _openssl(
        openssl, "pkey", "-in", str(d / "server.key"), "-aes256",
        "-passout", f"pass:{KEY_PASSWORD}", "-out", str(d / "server-encrypted.key"),
    )  # fmt: skip
    return Certs(
        ca=str(d / "ca.pem"),
        server_cert=str(d / "server.pem"),
        server_key=str(d / "server.key"),
        server_key_encrypted=str(d / "server-encrypted.key"),
        client_cert=str(d / "client.pem"),
        client_key=str(d / "client.key"),
    )


def client_context(certs: Certs, *, client_cert: bool = False) -> ssl.SSLContext:
    """Verifies the server against the test CA; optionally presents the client certificate."""
    context = ssl.create_default_context(cafile=certs.ca)
    if client_cert:
        context.load_cert_chain(certs.client_cert, certs.client_key)
    return context


class TLSServerProcess(ServerProcess):
    """A pounce-sync subprocess that listens with TLS (it announces an https:// address)."""

    def _read(self, stream, lines: list[str]) -> None:
        for line in stream:
            lines.append(line)
            m = _LISTENING_TLS.search(line)
            if m:
                self.host, self.port = m[1].strip("[]"), int(m[2])
                self._listening.set()

    def connect_tls(
        self, context: ssl.SSLContext, timeout: float = 30.0, *, server_hostname: str = "localhost"
    ) -> ssl.SSLSocket:
        return context.wrap_socket(self.connect(timeout), server_hostname=server_hostname)


@contextmanager
def running_tls_server(
    certs: Certs,
    *args: str,
    app: str = "apps:app",
    key: str | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[TLSServerProcess]:
    """pounce-sync with TLS and the test apps, on a free port of 127.0.0.1."""
    argv = [
        "--host", "127.0.0.1", "--port", "0", "--app-dir", str(TESTS_DIR), "--no-access-log",
        "--ssl-certfile", certs.server_cert, "--ssl-keyfile", key or certs.server_key,
        *args, app,
    ]  # fmt: skip
    server = TLSServerProcess(argv, env=env).wait_listening()
    try:
        yield server
    finally:
        server.kill()


class BIOClient:
    """A TLS client over a raw socket, so a test decides exactly which bytes go out when."""

    def __init__(self, sock: socket.socket, context: ssl.SSLContext) -> None:
        self.sock = sock
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self.tls = context.wrap_bio(self._incoming, self._outgoing, server_hostname="localhost")

    def client_hello(self) -> bytes:
        """The first flight, not sent: the handshake goes no further."""
        try:
            self.tls.do_handshake()
        except ssl.SSLWantReadError:
            pass
        return self._outgoing.read()

    def handshake(self) -> None:
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.sock.sendall(self._outgoing.read())
                self._receive()
        self.sock.sendall(self._outgoing.read())

    def records(self, plaintext: bytes) -> bytes:
        """`plaintext` encrypted, for the caller to send (or to send in pieces)."""
        self.tls.write(plaintext)
        return self._outgoing.read()

    def sendall(self, plaintext: bytes) -> None:
        self.sock.sendall(self.records(plaintext))

    def recv(self, bufsize: int) -> bytes:
        """Plaintext as it comes, for a ResponseReader (which takes this for a socket)."""
        while True:
            try:
                return self.tls.read(bufsize)
            except ssl.SSLWantReadError:
                self._receive()

    def gettimeout(self) -> float | None:
        return self.sock.gettimeout()

    def settimeout(self, value: float | None) -> None:
        self.sock.settimeout(value)

    def _receive(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("the server closed the connection")
        self._incoming.write(data)
