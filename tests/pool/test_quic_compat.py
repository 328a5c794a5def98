"""The zoomies 0.3.3 fixes, one at a time, against aioquic's own pieces as the reference.

Each test fails on zoomies' code as released: run with the fix taken out, it fails.
"""

import sys

import pytest

from async_pool import quic_wire as wire

if sys.version_info < (3, 14):
    pytest.skip("zoomies and aioquic exist on Python 3.14", allow_module_level=True)

import pylsqpack
import zoomies
from aioquic.quic.crypto import CryptoPair as AioquicPair
from zoomies.crypto.quic_crypto import CryptoPair as ZoomiesPair

from async_pool import quic_compat
from async_pool.qpack_static import STATIC_TABLE, decode_field_section, encode_field_section

CID = bytes.fromhex("8394c8f03e515708")  # RFC 9001 A.1's connection ID
LONG_HEADER = bytes.fromhex("c300000001088394c8f03e5157080000") + wire.varint(4 + 20 + 16)
SHORT_HEADER = bytes([0x43]) + CID + (7).to_bytes(4, "big")
PAYLOAD = bytes([0x01]) + bytes(19)  # PING, then PADDING


def _pairs(fixed: bool) -> tuple[ZoomiesPair, AioquicPair]:
    ours = (quic_compat.RFC9001Protection if fixed else ZoomiesPair)()
    ours.setup_initial(cid=CID, is_client=False)
    theirs = AioquicPair()
    theirs.setup_initial(cid=CID, is_client=True, version=1)
    return ours, theirs


@pytest.mark.parametrize("header", [LONG_HEADER, SHORT_HEADER], ids=["long", "short"])
def test_packets_we_seal_open_with_aioquic(header: bytes) -> None:
    ours, theirs = _pairs(fixed=True)
    packet = ours.encrypt_packet(header, PAYLOAD, 7)
    pn_offset = len(header) + (0 if header[0] & 0x80 else -4)
    _, payload, pn = theirs.decrypt_packet(packet, pn_offset, 7)
    assert (payload, pn) == (PAYLOAD, 7)


def test_zoomies_own_sealing_does_not_open_with_aioquic() -> None:
    """The defect itself: without fix 1 aioquic rejects the packet."""
    ours, theirs = _pairs(fixed=False)
    packet = ours.encrypt_packet(LONG_HEADER, PAYLOAD, 7)
    with pytest.raises(Exception):  # noqa: B017 - aioquic's CryptoError
        theirs.decrypt_packet(packet, len(LONG_HEADER), 7)


def test_packets_aioquic_seals_with_a_two_byte_number_open_here() -> None:
    server = quic_compat.RFC9001Protection()
    server.setup_initial(cid=CID, is_client=False)
    client = AioquicPair()
    client.setup_initial(cid=CID, is_client=True, version=1)
    header = (
        bytes.fromhex("c100000001088394c8f03e5157080000") + wire.varint(2 + 20 + 16) + b"\x00\x02"
    )
    packet = client.encrypt_packet(header, PAYLOAD, 2)
    _, payload, pn = server.decrypt_packet(packet, len(header) - 2, 2)
    assert (payload, pn) == (PAYLOAD, 2)


def test_fixes_refuse_another_zoomies_version(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(zoomies, "__version__", "0.3.4")
    with pytest.raises(quic_compat.ZoomiesVersionError, match=r"0\.3\.3"):
        quic_compat.check_version()


def test_static_table_is_rfc_9204s() -> None:
    """zoomies' table swaps :status 500 and 503 and shifts entries from 72 on."""
    for index, entry in enumerate(STATIC_TABLE):
        decoder = pylsqpack.Decoder(0, 0)
        block = b"\x00\x00" + (bytes([0xC0 | index]) if index < 63 else bytes([0xFF, index - 63]))
        assert decoder.feed_header(0, block)[1] == [entry]


def test_field_sections_round_trip_with_ls_qpack() -> None:
    headers = [
        (b":method", b"POST"),
        (b":path", b"/a?b=1"),
        (b"x-custom-thing", b"hello world"),
        (b"content-type", b"application/json"),
        (b"server", b"pounce-sync"),
    ]
    _, block = pylsqpack.Encoder().encode(0, headers)  # Huffman names and values
    assert decode_field_section(block) == headers
    assert pylsqpack.Decoder(0, 0).feed_header(0, encode_field_section(headers))[1] == headers
