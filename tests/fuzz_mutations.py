"""Seeded mutations of HTTP/1.1 requests, for the parser fuzz test and loadtests/fuzz_wire.py.

Everything is drawn from one `random.Random`, so a seed names a run: the same seed
gives the same inputs on every machine. `POUNCE_FUZZ_SEED` changes the seed of a run
(CI keeps the fixed default; a failure message prints the seed and the input).
"""

import os
import random

DEFAULT_SEED = 20240914


def seed_from_env() -> int:
    return int(os.environ.get("POUNCE_FUZZ_SEED", DEFAULT_SEED))


# Valid requests the mutations start from: each framing, trailers, extensions, pipelining.
SEEDS: tuple[bytes, ...] = (
    b"GET /path?q=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: fuzz\r\n"
    b"Accept: */*\r\nConnection: keep-alive\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    b'5;name=value\r\nhello\r\n6;q="a b"\r\n world\r\n0\r\nX-Sum: 1\r\n\r\n',
    b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n",
    b"GET /a HTTP/1.1\r\nHost: a\r\n\r\nPOST /b HTTP/1.1\r\nHost: a\r\n"
    b"Content-Length: 3\r\n\r\nabcGET /c HTTP/1.1\r\nHost: a\r\n\r\n",
    b"PUT /f HTTP/1.1\r\nHost: a:8080\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"1\r\nx\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n",
)

# Bytes and tokens that sit on a framing decision; inserted far more often than chance.
INTERESTING = (
    b"\r",
    b"\n",
    b"\r\n",
    b"\x00",
    b" ",
    b"\t",
    b":",
    b";",
    b",",
    b'"',
    b"=",
    b"0",
    b"f",
    b"-",
    b"+",
    b"\x7f",
    b"\xff",
    b"\r\n\r\n",
    b"0\r\n\r\n",
    b"Content-Length: 5\r\n",
    b"Content-Length: 0\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"Transfer-Encoding: identity\r\n",
    b"Host: b\r\n",
    b"\r\n ",
    b"FFFFFFFFFFFFFFFF",
    b"00000000000000000",
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
)


def _flip(rng: random.Random, data: bytes) -> bytes:
    i = rng.randrange(len(data))
    return data[:i] + bytes([data[i] ^ (1 << rng.randrange(8))]) + data[i + 1 :]


def _replace_byte(rng: random.Random, data: bytes) -> bytes:
    i = rng.randrange(len(data))
    return data[:i] + bytes([rng.randrange(256)]) + data[i + 1 :]


def _insert(rng: random.Random, data: bytes) -> bytes:
    i = rng.randrange(len(data) + 1)
    return data[:i] + rng.choice(INTERESTING) + data[i:]


def _overwrite(rng: random.Random, data: bytes) -> bytes:
    token = rng.choice(INTERESTING)
    i = rng.randrange(len(data))
    return data[:i] + token + data[i + len(token) :]


def _delete(rng: random.Random, data: bytes) -> bytes:
    i = rng.randrange(len(data))
    return data[:i] + data[i + rng.randint(1, 8) :]


def _duplicate(rng: random.Random, data: bytes) -> bytes:
    i = rng.randrange(len(data))
    j = min(len(data), i + rng.randint(1, 32))
    return data[:j] + data[i:j] + data[j:]


def _splice(rng: random.Random, data: bytes) -> bytes:
    other = rng.choice(SEEDS)
    return data[: rng.randrange(len(data) + 1)] + other[rng.randrange(len(other)) :]


def _truncate(rng: random.Random, data: bytes) -> bytes:
    return data[: rng.randrange(len(data) + 1)]


MUTATIONS = (_flip, _replace_byte, _insert, _insert, _overwrite, _delete, _duplicate, _splice)


def mutate(rng: random.Random, data: bytes, rounds: int = 3) -> bytes:
    """1..rounds mutations of `data`; now and then a truncation at the end."""
    for _ in range(rng.randint(1, rounds)):
        data = rng.choice(MUTATIONS)(rng, data) if data else rng.choice(SEEDS)
    if rng.random() < 0.05:
        data = _truncate(rng, data)
    return data


def split_points(rng: random.Random, data: bytes, pieces: int) -> list[bytes]:
    """`data` cut at up to `pieces - 1` random points (pieces may be empty-free only)."""
    if len(data) < 2 or pieces < 2:
        return [data]
    cuts = sorted(rng.sample(range(1, len(data)), min(pieces - 1, len(data) - 1)))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
