"""QUIC wire pieces the HTTP/3 adapter needs and bengal-zoomies does not offer, sans I/O.

Variable-length integers (RFC 9000 16), the span of each frame in a packet
payload (RFC 9000 19), the frames the adapter writes itself (flow-control
credit, stream resets) and the split of one UDP datagram into its coalesced
packets (RFC 9000 12.2). Plain functions over bytes: no zoomies, no sockets,
so they are tested on every interpreter.
"""

VARINT_MAX = (1 << 62) - 1

# Frame types (RFC 9000 19) by name, for the ones the adapter reads or writes.
PADDING = 0x00
ACK = 0x02
ACK_ECN = 0x03
RESET_STREAM = 0x04
STOP_SENDING = 0x05
MAX_DATA = 0x10
MAX_STREAM_DATA = 0x11
MAX_STREAMS_BIDI = 0x12
MAX_STREAMS_UNI = 0x13
DATA_BLOCKED = 0x14
STREAM_DATA_BLOCKED = 0x15
STREAMS_BLOCKED_BIDI = 0x16
STREAMS_BLOCKED_UNI = 0x17
CONNECTION_CLOSE = 0x1C  # a transport error
CONNECTION_CLOSE_APP = 0x1D  # the application's close, e.g. H3_NO_ERROR


def pull_varint(data: bytes, pos: int) -> tuple[int, int]:
    """The integer at `pos` and the position after it; ValueError when truncated."""
    if pos >= len(data):
        raise ValueError("truncated varint")
    size = 1 << (data[pos] >> 6)
    end = pos + size
    if end > len(data):
        raise ValueError("truncated varint")
    value = data[pos] & 0x3F
    for byte in data[pos + 1 : end]:
        value = (value << 8) | byte
    return value, end


def varint(value: int) -> bytes:
    if value < 0x40:
        return value.to_bytes(1, "big")
    if value < 0x4000:
        return (value | 0x4000).to_bytes(2, "big")
    if value < 0x40000000:
        return (value | 0x80000000).to_bytes(4, "big")
    if value <= VARINT_MAX:
        return (value | 0xC000000000000000).to_bytes(8, "big")
    raise ValueError(f"varint out of range: {value}")


def _skip_varints(data: bytes, pos: int, count: int) -> int:
    for _ in range(count):
        _, pos = pull_varint(data, pos)
    return pos


def _skip_bytes(data: bytes, pos: int, size: int) -> int:
    if pos + size > len(data):
        raise ValueError("truncated frame")
    return pos + size


def _ack_end(data: bytes, pos: int, ecn: bool) -> int:
    pos = _skip_varints(data, pos, 2)  # largest acknowledged, delay
    ranges, pos = pull_varint(data, pos)
    pos = _skip_varints(data, pos, 1 + 2 * ranges)
    return _skip_varints(data, pos, 3) if ecn else pos


def _stream_end(data: bytes, pos: int, ftype: int) -> int:
    pos = _skip_varints(data, pos, 1 + bool(ftype & 0x04))  # stream id, offset
    if not ftype & 0x02:
        return len(data)  # no length: the data runs to the end of the packet
    length, pos = pull_varint(data, pos)
    return _skip_bytes(data, pos, length)


def _length_prefixed_end(data: bytes, pos: int, before: int) -> int:
    pos = _skip_varints(data, pos, before)
    length, pos = pull_varint(data, pos)
    return _skip_bytes(data, pos, length)


def _new_connection_id_end(data: bytes, pos: int) -> int:
    pos = _skip_varints(data, pos, 2)
    if pos >= len(data):
        raise ValueError("truncated frame")
    return _skip_bytes(data, pos + 1, data[pos] + 16)  # the id, then the reset token


# Frame types whose body is a fixed number of varints.
_VARINT_BODIES = {
    0x01: 0,  # PING
    0x04: 3,  # RESET_STREAM
    0x05: 2,  # STOP_SENDING
    0x10: 1,  # MAX_DATA
    0x11: 2,  # MAX_STREAM_DATA
    0x12: 1,
    0x13: 1,  # MAX_STREAMS
    0x14: 1,  # DATA_BLOCKED
    0x15: 2,  # STREAM_DATA_BLOCKED
    0x16: 1,
    0x17: 1,  # STREAMS_BLOCKED
    0x19: 1,  # RETIRE_CONNECTION_ID
    0x1E: 0,  # HANDSHAKE_DONE
}


def frame_span(data: bytes, pos: int) -> tuple[int, int, int]:
    """(type, start of body, end) of the frame at `pos`; ValueError if unknown or truncated."""
    ftype, body = pull_varint(data, pos)
    if ftype == PADDING:
        end = body
        while end < len(data) and data[end] == 0:
            end += 1
    elif ftype in _VARINT_BODIES:
        end = _skip_varints(data, body, _VARINT_BODIES[ftype])
    elif ftype in (ACK, ACK_ECN):
        end = _ack_end(data, body, ftype == ACK_ECN)
    elif 0x08 <= ftype <= 0x0F:
        end = _stream_end(data, body, ftype)
    elif ftype == 0x06:  # CRYPTO: offset, length, data
        end = _length_prefixed_end(data, body, 1)
    elif ftype == 0x07:  # NEW_TOKEN
        end = _length_prefixed_end(data, body, 0)
    elif ftype == 0x18:
        end = _new_connection_id_end(data, body)
    elif ftype in (0x1A, 0x1B):  # PATH_CHALLENGE, PATH_RESPONSE
        end = _skip_bytes(data, body, 8)
    elif ftype == 0x1C:  # CONNECTION_CLOSE (transport): code, frame type, reason
        end = _length_prefixed_end(data, body, 2)
    elif ftype == 0x1D:  # CONNECTION_CLOSE (application): code, reason
        end = _length_prefixed_end(data, body, 1)
    elif ftype == 0x30:  # DATAGRAM without length
        end = len(data)
    elif ftype == 0x31:
        end = _length_prefixed_end(data, body, 0)
    else:
        raise ValueError(f"unknown frame type 0x{ftype:x}")
    return ftype, body, end


def varints(data: bytes, pos: int, count: int) -> list[int]:
    values = []
    for _ in range(count):
        value, pos = pull_varint(data, pos)
        values.append(value)
    return values


# -- frames the adapter writes ---------------------------------------------------------
def max_data_frame(limit: int) -> bytes:
    return varint(MAX_DATA) + varint(limit)


def max_stream_data_frame(stream_id: int, limit: int) -> bytes:
    return varint(MAX_STREAM_DATA) + varint(stream_id) + varint(limit)


def max_streams_frame(limit: int) -> bytes:
    return varint(MAX_STREAMS_BIDI) + varint(limit)


def reset_stream_frame(stream_id: int, code: int, final_size: int) -> bytes:
    return varint(RESET_STREAM) + varint(stream_id) + varint(code) + varint(final_size)


def stop_sending_frame(stream_id: int, code: int) -> bytes:
    return varint(STOP_SENDING) + varint(stream_id) + varint(code)


# -- datagrams -------------------------------------------------------------------------
def split_datagram(data: bytes) -> list[bytes]:
    """The QUIC packets coalesced in one datagram (RFC 9000 12.2), in order.

    A long-header packet ends where its Length field says; a short-header packet
    runs to the datagram's end. What cannot be a packet (padding after the last
    one, a truncated header) ends the list.
    """
    packets = []
    pos = 0
    while pos < len(data):
        first = data[pos]
        if not first & 0x40:  # the fixed bit: zeros after a packet are padding
            break
        if not first & 0x80:
            packets.append(data[pos:])
            break
        try:
            end = _long_packet_end(data, pos)
        except ValueError:
            break
        packets.append(data[pos:end])
        pos = end
    return packets


def _long_packet_end(data: bytes, pos: int) -> int:
    kind = (data[pos] >> 4) & 0x03
    at = pos + 5  # first byte, version
    for _ in range(2):  # destination and source connection IDs
        if at >= len(data):
            raise ValueError("truncated header")
        at += 1 + data[at]
    if kind == 0x03:  # Retry: the whole rest
        return len(data)
    if kind == 0x00:  # Initial: a token
        token, at = pull_varint(data, at)
        at += token
    length, at = pull_varint(data, at)
    if at + length > len(data):
        raise ValueError("truncated packet")
    return at + length


def destination_cid(data: bytes, short_lengths: tuple[int, ...]) -> list[bytes]:
    """Candidate destination connection IDs of a datagram, for routing it.

    A long header names its own length; a short header does not, so each length
    the server's IDs have is a candidate.
    """
    if len(data) < 2:
        return []
    if data[0] & 0x80:
        if len(data) < 6 or 6 + data[5] > len(data):
            return []
        return [data[6 : 6 + data[5]]]
    return [data[1 : 1 + n] for n in short_lengths if 1 + n <= len(data)]
