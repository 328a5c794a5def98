"""The server side of zoomies' TLS 1.3 handshake with RFC 8446's key schedule, and ALPN.

zoomies 0.3.3 builds and parses the handshake messages right but derives its
secrets its own way, so its handshake completes only against zoomies:
"derived" is expanded over an empty context instead of Hash(""), the handshake
traffic secrets are expanded with "c hs"/"s hs" from the handshake secret with no
transcript, the server's Finished key comes from a transcript through
CertificateVerify instead of through ServerHello, and one "s ap traffic" secret
stands for both directions of 1-RTT. Its EncryptedExtensions lack the length of
their extension list (RFC 8446 4.3.1), and it never answers the client's ALPN offer
(RFC 9001 8.1). `ServerTls` keeps zoomies' other message builders and its parser
of the ClientHello, and replaces the two methods that derive and check secrets.

zoomies' connection installs keys from one "handshake secret" and one "traffic
secret"; here each is the client's and the server's secret of that epoch joined
(64 bytes), which `quic_compat.RFC9001Protection` splits. Session tickets, PSK and
0-RTT are not offered: this server makes no tickets, so every handshake is full.
"""

import hmac as std_hmac
import os
from hashlib import sha256

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, x25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from zoomies.crypto import tls as ztls
from zoomies.encoding import Buffer
from zoomies.packet.transport_params import pull_quic_transport_parameters

ALPN_H3 = b"h3"
_EXT_ALPN = 0x0010
_EMPTY_HASH = sha256(b"").digest()
_ZEROS = bytes(32)


def _expand(secret: bytes, label: bytes, context: bytes) -> bytes:
    return ztls._hkdf_expand_label(secret, label, context, 32)


def _finished(secret: bytes, transcript: bytes) -> bytes:
    """verify_data of a Finished message (RFC 8446 4.4.4)."""
    key = _expand(secret, b"finished", b"")
    return std_hmac.new(key, transcript, sha256).digest()


def offered_protocols(alpn: bytes | None) -> list[bytes]:
    """The protocol names of an ALPN extension's body (RFC 7301 3.1)."""
    if not alpn or len(alpn) < 2:
        return []
    names, pos = [], 2
    while pos < len(alpn):
        size = alpn[pos]
        names.append(alpn[pos + 1 : pos + 1 + size])
        pos += 1 + size
    return names


def alpn_extension(protocol: bytes) -> bytes:
    names = bytes([len(protocol)]) + protocol
    return extension(_EXT_ALPN, len(names).to_bytes(2, "big") + names)


def extension(kind: int, body: bytes) -> bytes:
    return kind.to_bytes(2, "big") + len(body).to_bytes(2, "big") + body


def encrypted_extensions(extensions: list[bytes]) -> bytes:
    """RFC 8446 4.3.1: the extensions as a list with its 2-byte length.

    zoomies' builder leaves that length out (its own parser expects it so).
    """
    joined = b"".join(extensions)
    body = len(joined).to_bytes(2, "big") + joined
    return bytes([ztls.HANDSHAKE_ENCRYPTED_EXTENSIONS]) + len(body).to_bytes(3, "big") + body


def _key_exchange(key_shares: list[tuple[int, bytes]]) -> tuple[tuple[int, bytes], bytes]:
    """Our key share and the shared secret, for the first share of a group we support."""
    for group, data in key_shares:
        if group == ztls.GROUP_X25519:
            x_private = x25519.X25519PrivateKey.generate()
            public = x_private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
            shared = x_private.exchange(x25519.X25519PublicKey.from_public_bytes(data))
            return (group, public), shared
        if group == ztls.GROUP_SECP256R1:
            peer = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), data)
            ec_private = ec.generate_private_key(ec.SECP256R1())
            public = ec_private.public_key().public_bytes(
                Encoding.X962, PublicFormat.UncompressedPoint
            )
            return (group, public), ec_private.exchange(ec.ECDH(), peer)
    raise ValueError("no key share of a supported group (x25519, secp256r1)")


class ServerTls(ztls.QuicTlsContext):
    """zoomies' server handshake with RFC 8446 secrets and ALPN `h3`."""

    def _handle_client_hello(self, msg: bytes) -> bytes:
        hello = ztls._parse_client_hello_full(msg)
        self._client_random = hello.random
        self._legacy_session_id = hello.session_id
        params = hello.extensions.get(ztls.QUIC_TP_EXT_TYPE)
        if params is not None:
            self._peer_transport_params = pull_quic_transport_parameters(Buffer(data=params))
        key_share, shared = _key_exchange(hello.key_share)
        server_hello = ztls._build_server_hello(os.urandom(32), hello.session_id, key_share)
        transcript = [msg, server_hello]

        early = ztls._hkdf_extract(_ZEROS, _ZEROS)
        handshake = ztls._hkdf_extract(_expand(early, b"derived", _EMPTY_HASH), shared)
        hello_hash = sha256(b"".join(transcript)).digest()
        client_hs = _expand(handshake, b"c hs traffic", hello_hash)
        server_hs = _expand(handshake, b"s hs traffic", hello_hash)

        ours = [extension(ztls.QUIC_TP_EXT_TYPE, self._quic_transport_params or b"")]
        if ALPN_H3 in offered_protocols(hello.extensions.get(_EXT_ALPN)):
            ours.append(alpn_extension(ALPN_H3))
        extensions = encrypted_extensions(ours)
        certificate = ztls._build_certificate(self._cert.public_bytes(Encoding.DER))
        transcript += [extensions, certificate]
        signed = (
            b" " * 64 + ztls.SERVER_CONTEXT_STRING + b"\x00" + sha256(b"".join(transcript)).digest()
        )
        if not isinstance(self._key, ec.EllipticCurvePrivateKey):
            raise ValueError("the HTTP/3 key must be an ECDSA P-256 key")
        signature = self._key.sign(signed, ec.ECDSA(hashes.SHA256()))
        transcript.append(
            ztls._build_certificate_verify(ztls.SIG_ECDSA_SECP256R1_SHA256, signature)
        )
        finished = ztls._build_finished(_finished(server_hs, sha256(b"".join(transcript)).digest()))
        transcript.append(finished)

        master = ztls._hkdf_extract(_expand(handshake, b"derived", _EMPTY_HASH), _ZEROS)
        through_finished = sha256(b"".join(transcript)).digest()
        self._client_finished = _finished(client_hs, through_finished)
        self._handshake_secret = client_hs + server_hs
        self._traffic_secret = _expand(master, b"c ap traffic", through_finished) + _expand(
            master, b"s ap traffic", through_finished
        )
        return b"".join(transcript[1:])

    def _handle_finished(self, msg: bytes) -> None:
        buf = Buffer(data=msg)
        if buf.pull_uint8() != ztls.HANDSHAKE_FINISHED:
            raise ValueError("expected the client's Finished")
        verify = ztls._pull_block(buf, 3)
        if not std_hmac.compare_digest(verify, self._client_finished):
            raise ValueError("the client's Finished does not verify")
