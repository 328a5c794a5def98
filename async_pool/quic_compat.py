"""bengal-zoomies 0.3.3 made to talk to QUIC stacks other than itself: each defect, its fix.

zoomies 0.3.3 only ever talked to zoomies. Against aioquic and ngtcp2 it fails at
the first packet; docs/http3.md has the evidence. The fixes below are the narrowest
found, each named for the defect it works around and each tested by a test that
fails without it (tests/pool/test_quic_compat.py). They apply to 0.3.3 only
(`ZOOMIES_FIXED`); any other version is refused at start-up rather than run with
fixes written for code that is not there.

1. Packet protection (RFC 9001 5.3-5.4). zoomies puts the packet number inside the
   AEAD plaintext, leaves it out of the associated data, builds the nonce from the
   number it expects rather than the one received, always reads 4-byte numbers
   and claims 1-byte ones in long headers. `RFC9001Protection` replaces the three
   methods of its `CryptoPair` that seal and open packets; key derivation stays.
2. Transport parameters (RFC 9000 7.3). The server must send
   original_destination_connection_id and initial_source_connection_id; zoomies
   sends neither, and aioquic closes with TRANSPORT_PARAMETER_ERROR.
3. Frames zoomies does not know (MAX_DATA, MAX_STREAM_DATA, MAX_STREAMS, the
   *_BLOCKED frames, NEW_TOKEN) are skipped as if length-prefixed, so the frames
   after them in a packet are lost although the packet is acknowledged. They are
   taken out before zoomies parses; the credit ones go to the adapter.
4. ACKs of Initial and Handshake packets are applied to whatever space the
   connection state names, and the server is in 1-RTT state after the ClientHello:
   they mark application packets acknowledged and leave the handshake spaces
   in flight for ever. They are applied to their own space here.
5. A lost STREAM frame is re-queued as new data and sent at the stream's current
   end, corrupting the stream. It is re-sent at its own offset here.
6. The TLS 1.3 key schedule (RFC 8446 7.1) and ALPN (RFC 9001 8.1): see
   `quic_tls`, whose `ServerTls` this module installs.

7. Every Initial packet puts the server back in the Handshake state, also the
   client's late ACK of the server's Initial after the handshake: from then on
   zoomies sends no stream data at all. The 1-RTT state is kept here.
8. The peer's CONNECTION_CLOSE is not acted on: the connection stayed until its
   idle timeout (30 s by default), holding a slot of --async-backlog. It is taken
   out here and ends the connection at once.
zoomies also never extends the client's credit (MAX_DATA, MAX_STREAM_DATA,
MAX_STREAMS) and cannot reset a stream; the adapter writes those frames through
`queue_frames`.
"""

from dataclasses import replace
from typing import Any

import zoomies
import zoomies.core.connection as zconn
from cryptography.exceptions import InvalidTag
from zoomies.core import QuicConfiguration, QuicConnection
from zoomies.crypto.quic_crypto import CryptoContext, CryptoPair
from zoomies.encoding import Buffer
from zoomies.events import QuicEvent
from zoomies.frames.ack import pull_ack_frame
from zoomies.frames.stream import StreamFrame, push_stream_frame
from zoomies.packet.header import decode_packet_number
from zoomies.packet.transport_params import (
    QuicTransportParameters,
    push_quic_transport_parameters,
)
from zoomies.primitives import StreamId
from zoomies.recovery import PacketSpace, SentPacket, SentStreamFrame

from . import quic_wire as wire
from .quic_tls import ServerTls

ZOOMIES_FIXED = "0.3.3"
PN_LEN = 4  # zoomies writes every packet number in 4 bytes
SAMPLE = 16


class ZoomiesVersionError(RuntimeError):
    """The installed zoomies is not the one these fixes were written and tested for."""


def check_version() -> None:
    if zoomies.__version__ != ZOOMIES_FIXED:
        raise ZoomiesVersionError(
            f"HTTP/3 needs bengal-zoomies {ZOOMIES_FIXED} (its interop fixes are for that "
            f"version), found {zoomies.__version__}"
        )


# -- 1. packet protection --------------------------------------------------------------
def _nonce(iv: bytes, packet_number: int) -> bytes:
    return (int.from_bytes(iv, "big") ^ packet_number).to_bytes(len(iv), "big")


def _mask(ctx: CryptoContext, sample: bytes) -> bytes:
    if len(sample) < SAMPLE:
        raise InvalidTag  # too short to be a protected packet: dropped like a forged one
    return ctx._hp_encrypt(sample)


class RFC9001Protection(CryptoPair):
    """zoomies' key schedule, with packets sealed and opened as RFC 9001 5.3-5.4 say."""

    def encrypt_packet(
        self, plain_header: bytes, plain_payload: bytes, packet_number: int
    ) -> bytes:
        long = plain_header[0] & 0x80
        if long:  # zoomies' long headers stop before the packet number
            pn = packet_number.to_bytes(PN_LEN, "big")
            header = bytes([plain_header[0] | (PN_LEN - 1)]) + plain_header[1:] + pn
        else:  # its short headers carry the 4-byte number already
            header = plain_header
        pn_offset = len(header) - PN_LEN
        send = self._send
        assert send._aead is not None and send._iv is not None
        sealed = send._aead.encrypt(_nonce(send._iv, packet_number), plain_payload, header)
        mask = _mask(send, sealed[:SAMPLE])  # the sample starts 4 bytes after the number
        first = header[0] ^ (mask[0] & (0x0F if long else 0x1F))
        masked_pn = bytes(b ^ m for b, m in zip(header[pn_offset:], mask[1:], strict=False))
        return bytes([first]) + header[1:pn_offset] + masked_pn + sealed

    def setup_handshake(self, handshake_secret: bytes, is_client: bool, version: int = 1) -> None:
        self._install(handshake_secret, is_client, super().setup_handshake)

    def setup_1rtt(self, traffic_secret: bytes, is_client: bool, version: int = 1) -> None:
        self._install(traffic_secret, is_client, super().setup_1rtt)

    def _install(self, secrets: bytes, is_client: bool, zoomies_own: Any) -> None:
        """`ServerTls` hands the client's and the server's secret joined; zoomies' own
        client hands one secret, derived its way, which zoomies' own method expands."""
        if len(secrets) != 64:
            zoomies_own(secrets, is_client)
            return
        client, server = secrets[:32], secrets[32:]
        self._recv.setup(secret=server if is_client else client)
        self._send.setup(secret=client if is_client else server)

    def decrypt_packet(
        self, packet: bytes, encrypted_offset: int, expected_packet_number: int
    ) -> tuple[bytes, bytes, int]:
        return _open(self._recv, packet, encrypted_offset, expected_packet_number)

    def decrypt_packet_with_phase(
        self, packet: bytes, encrypted_offset: int, expected_packet_number: int
    ) -> tuple[bytes, bytes, int, int]:
        """Current keys only: a peer's key update (RFC 9001 6) is not followed."""
        header, payload, pn = _open(self._recv, packet, encrypted_offset, expected_packet_number)
        return header, payload, pn, (header[0] >> 2) & 1


def _open(
    ctx: CryptoContext, packet: bytes, encrypted_offset: int, expected: int
) -> tuple[bytes, bytes, int]:
    """Remove header protection, then open the payload; `packet` is exactly one packet.

    zoomies hands the offset after its length field for long headers (where the
    number starts) and 4 bytes past the connection ID for short ones.
    """
    long = packet[0] & 0x80
    pn_offset = encrypted_offset if long else encrypted_offset - PN_LEN
    mask = _mask(ctx, packet[pn_offset + 4 : pn_offset + 4 + SAMPLE])
    first = packet[0] ^ (mask[0] & (0x0F if long else 0x1F))
    pn_len = (first & 0x03) + 1
    truncated = bytes(
        b ^ m for b, m in zip(packet[pn_offset : pn_offset + pn_len], mask[1:], strict=False)
    )
    pn = decode_packet_number(int.from_bytes(truncated, "big"), pn_len * 8, expected)
    header = bytes([first]) + packet[1:pn_offset] + truncated
    assert ctx._aead is not None and ctx._iv is not None
    payload = ctx._aead.decrypt(_nonce(ctx._iv, pn), packet[pn_offset + pn_len :], header)
    return header, payload, pn


# -- the connection ----------------------------------------------------------------------
class ServerQuic(QuicConnection):
    """A zoomies server connection with fixes 2-5 and the frames the adapter writes.

    `credit_events` lists (stream_id or None, new limit) for each MAX_STREAM_DATA
    or MAX_DATA the peer sent since the adapter last emptied it.
    """

    def __init__(self, config: QuicConfiguration, *, max_streams: int) -> None:
        super().__init__(config)
        self._max_streams = max_streams
        self.credit_events: list[tuple[int | None, int]] = []

    # 2. transport parameters
    def _build_transport_params_bytes(self) -> bytes:
        config = self._config
        params = QuicTransportParameters(
            original_destination_connection_id=self._original_destination_cid or self._our_cid,
            initial_source_connection_id=self._our_cid,
            max_idle_timeout=int(config.idle_timeout * 1000) or None,
            initial_max_data=config.max_data,
            initial_max_stream_data_bidi_local=config.max_stream_data,
            initial_max_stream_data_bidi_remote=config.max_stream_data,
            initial_max_stream_data_uni=config.max_stream_data,
            initial_max_streams_bidi=self._max_streams,
            initial_max_streams_uni=8,  # control, QPACK encoder and decoder, and spares
        )
        buf = Buffer()
        push_quic_transport_parameters(buf, params)
        return buf.data

    # 7. state
    def _handle_initial_server(self, data: bytes, offset: int, header: Any, events: Any) -> None:
        """A late Initial (the client's ACK of ours) must not take us out of 1-RTT."""
        prior = self._state
        super()._handle_initial_server(data, offset, header, events)
        if prior == zconn.ConnectionState.ONE_RTT and self._state != zconn.ConnectionState.CLOSED:
            self._state = prior

    @property
    def peer_params(self) -> QuicTransportParameters | None:
        tls = self._tls_ctx
        return tls._peer_transport_params if tls is not None else None

    # 3 and 4. frames
    def _parse_payload_frames(
        self,
        payload: bytes,
        events: list[QuicEvent],
        *,
        is_0rtt: bool = False,
        datagram_addr: tuple[str, int] | None = None,
        crypto_level: str = "initial",
    ) -> None:
        """Hand zoomies runs of the frames it parses right; take the others out."""
        space = self._application_space if datagram_addr is not None or is_0rtt else None
        if space is None:
            space = self._handshake_space if crypto_level == "handshake" else self._initial_space
        start = pos = 0
        while pos < len(payload):
            try:
                ftype, body, end = wire.frame_span(payload, pos)
            except ValueError:
                break  # what zoomies would do: the rest of the payload is dropped
            if ftype in _TAKEN:
                if start < pos and not self._zoomies_frames(
                    payload[start:pos], events, is_0rtt, datagram_addr, crypto_level
                ):
                    return
                self._take(ftype, payload, body, space)
                start = end
            pos = end
        if start < pos:
            self._zoomies_frames(payload[start:pos], events, is_0rtt, datagram_addr, crypto_level)

    def _zoomies_frames(
        self,
        frames: bytes,
        events: list[QuicEvent],
        is_0rtt: bool,
        addr: tuple[str, int] | None,
        level: str,
    ) -> bool:
        super()._parse_payload_frames(
            frames, events, is_0rtt=is_0rtt, datagram_addr=addr, crypto_level=level
        )
        return self._state != zconn.ConnectionState.CLOSED

    def _take(self, ftype: int, payload: bytes, body: int, space: PacketSpace) -> None:
        if ftype in (wire.ACK, wire.ACK_ECN):
            ack = pull_ack_frame(Buffer(data=payload[body:]))
            if space is self._application_space:
                self._process_ack(ack)  # zoomies' RTT, congestion and loss for 1-RTT
            else:
                space.on_ack_received(list(ack.ranges))
        elif ftype == wire.MAX_DATA:
            (limit,) = wire.varints(payload, body, 1)
            if limit > self._peer_max_data:
                self._peer_max_data = limit
                self.credit_events.append((None, limit))
        elif ftype == wire.MAX_STREAM_DATA:
            stream_id, limit = wire.varints(payload, body, 2)
            self.credit_events.append((stream_id, limit))
        elif ftype in (wire.CONNECTION_CLOSE, wire.CONNECTION_CLOSE_APP):
            # The peer closed (RFC 9000 10.2.2): nothing more is sent, the connection's
            # state goes at once instead of lingering until the idle timeout.
            self._state = zconn.ConnectionState.CLOSED
        # MAX_STREAMS: the server opens no bidirectional streams; *_BLOCKED and
        # NEW_TOKEN need no answer.

    # 5. loss
    def _retransmit_lost(self, lost: list[SentPacket], space: PacketSpace) -> None:
        rest = []
        for packet in lost:
            stream_frames = [f for f in packet.frames if isinstance(f, SentStreamFrame)]
            for frame in stream_frames:
                self._resend(frame)
            if len(stream_frames) < len(packet.frames):
                others = tuple(f for f in packet.frames if not isinstance(f, SentStreamFrame))
                rest.append(replace(packet, frames=others))
        super()._retransmit_lost(rest, space)

    def _resend(self, frame: SentStreamFrame) -> None:
        stream = self._streams.get(frame.stream_id)
        if stream is None or self._state == zconn.ConnectionState.CLOSED:
            return
        data = stream._send.get_data(frame.offset, frame.length)
        if len(data) != frame.length:
            return
        buf = Buffer()
        resent = StreamFrame(StreamId(frame.stream_id), frame.offset, data, frame.fin)
        push_stream_frame(buf, resent)
        self._send_queue.append(self._encrypt_short_packet(buf.data, (frame,)))

    # what the adapter writes
    def queue_frames(self, frames: bytes) -> None:
        """Frames zoomies has no call for, in one 1-RTT packet (not re-sent if lost)."""
        if self._one_rtt_crypto is None or not self._peer_cid:
            return
        if self._state == zconn.ConnectionState.CLOSED:
            return
        self._send_queue.append(self._encrypt_short_packet(frames))

    def raise_receive_limit(self, limit: int) -> None:
        """Tell the peer it may send `limit` bytes on the connection in all (MAX_DATA)."""
        self._local_max_data = limit
        self.queue_frames(wire.max_data_frame(limit))

    def raise_stream_receive_limit(self, stream_id: int, limit: int) -> None:
        stream = self._get_or_create_stream(StreamId(stream_id))
        stream._recv.set_max_stream_data(limit)
        self.queue_frames(wire.max_stream_data_frame(stream_id, limit))

    @property
    def peer_data_room(self) -> int:
        """Bytes of stream data the peer's connection window takes now."""
        if self._peer_max_data <= 0:
            return 0
        return self._peer_max_data - self._peer_data_sent

    @property
    def queued_bytes(self) -> int:
        """Stream bytes zoomies holds that congestion control has not let out yet."""
        return self._stream_send_queue_bytes

    @property
    def closed(self) -> bool:
        return self._state == zconn.ConnectionState.CLOSED

    @property
    def handshake_done(self) -> bool:
        return self._state == zconn.ConnectionState.ONE_RTT

    @property
    def cids(self) -> tuple[bytes, ...]:
        return tuple(self._our_cids)


_TAKEN = frozenset(
    {
        wire.ACK,
        wire.ACK_ECN,
        wire.MAX_DATA,
        wire.MAX_STREAM_DATA,
        wire.MAX_STREAMS_BIDI,
        wire.MAX_STREAMS_UNI,
        wire.DATA_BLOCKED,
        wire.STREAM_DATA_BLOCKED,
        wire.STREAMS_BLOCKED_BIDI,
        wire.STREAMS_BLOCKED_UNI,
        0x07,  # NEW_TOKEN
        wire.CONNECTION_CLOSE,
        wire.CONNECTION_CLOSE_APP,
    }
)


def install() -> None:
    """Fixes 1 and 6, in the two names zoomies' connection module makes them by.

    The fixed classes keep zoomies' key schedule and handshake, so a zoomies client
    in the same process still talks to this server (it offers no ALPN).
    """
    check_version()
    zconn.CryptoPair = RFC9001Protection
    zconn.QuicTlsContext = ServerTls
