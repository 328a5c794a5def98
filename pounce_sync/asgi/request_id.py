"""X-Request-ID: keep a sane one from the client, or make one."""

import os
import re

# Sane: what tracing systems put there (UUIDs, hex, base64-ish ids), bounded in length.
_SANE = re.compile(rb"[A-Za-z0-9._:/+=-]{1,200}")


def find_or_make_request_id(headers: tuple[tuple[bytes, bytes], ...]) -> bytes:
    for name, value in headers:
        if name == b"x-request-id" and _SANE.fullmatch(value):
            return value
    return os.urandom(16).hex().encode("ascii")
