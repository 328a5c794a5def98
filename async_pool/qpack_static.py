"""QPACK (RFC 9204) field sections with the static table only, sans I/O.

The server advertises a dynamic table of capacity 0, so a client's field sections
may reference the static table and literals only, and ours do the same: no
encoder or decoder stream is needed. zoomies 0.3.3 has a QPACK codec, but its
static table is wrong from index 28 on (the two 5xx statuses swapped, several
values in the wrong case or place), its stateless path writes no field-section
prefix, and its decoder ignores Huffman-coded names; docs/http3.md has the
details. Huffman decoding is zoomies' (checked against ls-qpack in the tests).
"""

from zoomies.h3.huffman import huffman_decode

# RFC 9204 Appendix A.
STATIC_TABLE: tuple[tuple[bytes, bytes], ...] = (
    (b":authority", b""),
    (b":path", b"/"),
    (b"age", b"0"),
    (b"content-disposition", b""),
    (b"content-length", b"0"),
    (b"cookie", b""),
    (b"date", b""),
    (b"etag", b""),
    (b"if-modified-since", b""),
    (b"if-none-match", b""),
    (b"last-modified", b""),
    (b"link", b""),
    (b"location", b""),
    (b"referer", b""),
    (b"set-cookie", b""),
    (b":method", b"CONNECT"),
    (b":method", b"DELETE"),
    (b":method", b"GET"),
    (b":method", b"HEAD"),
    (b":method", b"OPTIONS"),
    (b":method", b"POST"),
    (b":method", b"PUT"),
    (b":scheme", b"http"),
    (b":scheme", b"https"),
    (b":status", b"103"),
    (b":status", b"200"),
    (b":status", b"304"),
    (b":status", b"404"),
    (b":status", b"503"),
    (b"accept", b"*/*"),
    (b"accept", b"application/dns-message"),
    (b"accept-encoding", b"gzip, deflate, br"),
    (b"accept-ranges", b"bytes"),
    (b"access-control-allow-headers", b"cache-control"),
    (b"access-control-allow-headers", b"content-type"),
    (b"access-control-allow-origin", b"*"),
    (b"cache-control", b"max-age=0"),
    (b"cache-control", b"max-age=2592000"),
    (b"cache-control", b"max-age=604800"),
    (b"cache-control", b"no-cache"),
    (b"cache-control", b"no-store"),
    (b"cache-control", b"public, max-age=31536000"),
    (b"content-encoding", b"br"),
    (b"content-encoding", b"gzip"),
    (b"content-type", b"application/dns-message"),
    (b"content-type", b"application/javascript"),
    (b"content-type", b"application/json"),
    (b"content-type", b"application/x-www-form-urlencoded"),
    (b"content-type", b"image/gif"),
    (b"content-type", b"image/jpeg"),
    (b"content-type", b"image/png"),
    (b"content-type", b"text/css"),
    (b"content-type", b"text/html; charset=utf-8"),
    (b"content-type", b"text/plain"),
    (b"content-type", b"text/plain;charset=utf-8"),
    (b"range", b"bytes=0-"),
    (b"strict-transport-security", b"max-age=31536000"),
    (b"strict-transport-security", b"max-age=31536000; includesubdomains"),
    (b"strict-transport-security", b"max-age=31536000; includesubdomains; preload"),
    (b"vary", b"accept-encoding"),
    (b"vary", b"origin"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-xss-protection", b"1; mode=block"),
    (b":status", b"100"),
    (b":status", b"204"),
    (b":status", b"206"),
    (b":status", b"302"),
    (b":status", b"400"),
    (b":status", b"403"),
    (b":status", b"421"),
    (b":status", b"425"),
    (b":status", b"500"),
    (b"accept-language", b""),
    (b"access-control-allow-credentials", b"FALSE"),
    (b"access-control-allow-credentials", b"TRUE"),
    (b"access-control-allow-headers", b"*"),
    (b"access-control-allow-methods", b"get"),
    (b"access-control-allow-methods", b"get, post, options"),
    (b"access-control-allow-methods", b"options"),
    (b"access-control-expose-headers", b"content-length"),
    (b"access-control-request-headers", b"content-type"),
    (b"access-control-request-method", b"get"),
    (b"access-control-request-method", b"post"),
    (b"alt-svc", b"clear"),
    (b"authorization", b""),
    (b"content-security-policy", b"script-src 'none'; object-src 'none'; base-uri 'none'"),
    (b"early-data", b"1"),
    (b"expect-ct", b""),
    (b"forwarded", b""),
    (b"if-range", b""),
    (b"origin", b""),
    (b"purpose", b"prefetch"),
    (b"server", b""),
    (b"timing-allow-origin", b"*"),
    (b"upgrade-insecure-requests", b"1"),
    (b"user-agent", b""),
    (b"x-forwarded-for", b""),
    (b"x-frame-options", b"deny"),
    (b"x-frame-options", b"sameorigin"),
)

_EXACT = {entry: index for index, entry in reversed(list(enumerate(STATIC_TABLE)))}
_NAMES = {name: index for index, (name, _) in reversed(list(enumerate(STATIC_TABLE)))}
Headers = list[tuple[bytes, bytes]]


class QpackError(ValueError):
    """A field section this decoder cannot take (RFC 9204 QPACK_DECOMPRESSION_FAILED)."""


def _prefixed_int(value: int, bits: int, flags: int) -> bytes:
    """RFC 7541 5.1 integer with an N-bit prefix; `flags` fill the bits above it."""
    limit = (1 << bits) - 1
    if value < limit:
        return bytes([flags | value])
    out = [flags | limit]
    value -= limit
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _pull_int(data: bytes, pos: int, bits: int) -> tuple[int, int]:
    if pos >= len(data):
        raise QpackError("truncated field section")
    limit = (1 << bits) - 1
    value = data[pos] & limit
    pos += 1
    if value < limit:
        return value, pos
    shift = 0
    while True:
        if pos >= len(data) or shift > 56:
            raise QpackError("bad integer in field section")
        byte = data[pos]
        pos += 1
        value += (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def _pull_string(data: bytes, pos: int, bits: int) -> tuple[bytes, int]:
    """A string literal whose H flag sits just above its `bits`-bit length prefix."""
    huffman = data[pos] & (1 << bits) if pos < len(data) else 0
    size, pos = _pull_int(data, pos, bits)
    if pos + size > len(data):
        raise QpackError("truncated string in field section")
    raw = data[pos : pos + size]
    try:
        return (huffman_decode(raw) if huffman else raw), pos + size
    except (ValueError, IndexError, KeyError) as exc:
        raise QpackError("bad Huffman string") from exc


def _static(index: int) -> tuple[bytes, bytes]:
    if index >= len(STATIC_TABLE):
        raise QpackError(f"static index {index} out of range")
    return STATIC_TABLE[index]


def decode_field_section(block: bytes) -> Headers:
    """The fields of one HEADERS frame; QpackError for dynamic references or bad input."""
    ric, pos = _pull_int(block, 0, 8)
    _, pos = _pull_int(block, pos, 7)  # delta base: meaningless without a dynamic table
    if ric:
        raise QpackError("dynamic table reference, but its capacity is 0")
    fields: Headers = []
    while pos < len(block):
        first = block[pos]
        if first & 0x80:  # indexed field line: 1 T index(6)
            if not first & 0x40:
                raise QpackError("dynamic table reference")
            index, pos = _pull_int(block, pos, 6)
            fields.append(_static(index))
        elif first & 0x40:  # literal with name reference: 01 N T index(4)
            if not first & 0x10:
                raise QpackError("dynamic table reference")
            index, pos = _pull_int(block, pos, 4)
            value, pos = _pull_string(block, pos, 7)
            fields.append((_static(index)[0], value))
        elif first & 0x20:  # literal with literal name: 001 N H length(3)
            name, pos = _pull_string(block, pos, 3)
            value, pos = _pull_string(block, pos, 7)
            fields.append((name, value))
        else:  # post-base forms refer to the dynamic table
            raise QpackError("dynamic table reference")
    return fields


def encode_field_section(headers: Headers) -> bytes:
    """Static references where the table has the field or its name, literals otherwise."""
    out = [b"\x00\x00"]  # required insert count 0, delta base 0
    for name, value in headers:
        index = _EXACT.get((name, value))
        if index is not None:
            out.append(_prefixed_int(index, 6, 0xC0))
            continue
        index = _NAMES.get(name)
        if index is not None:
            out.append(_prefixed_int(index, 4, 0x50))
        else:
            out.append(_prefixed_int(len(name), 3, 0x20))
            out.append(name)
        out.append(_prefixed_int(len(value), 7, 0x00))
        out.append(value)
    return b"".join(out)


def field_section_size(headers: Headers) -> int:
    """RFC 9114 4.2.2: each field counts its name, value and 32 octets."""
    return sum(len(n) + len(v) + 32 for n, v in headers)
