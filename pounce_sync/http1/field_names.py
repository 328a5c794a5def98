"""The field names clients and apps send most, in the spellings they send them.

A name in `KNOWN_NAMES` is a valid token by construction, so neither the parser
nor the response writer matches it against the grammar; any other name takes
the general path, which checks it. The set is built once at import and never
changes, so threads share it without locks.

A frozenset, not a dict mapping each spelling to its lower case: on free-threaded
CPython 3.13, `dict.get` with a bytes key costs about 20 us from a thread other
than the one that built the dict, against 0.1 us for `in` on a set or a dict
(measured; see docs/benchmarks.md), and the worker threads are never the one
that imported this module.
"""

# Canonical spellings; each is also accepted all lower-case (HTTP/2-style clients,
# curl's -H users, Chrome's client hints) and as written here.
_NAMES = (
    # RFC 9110 / 9111 / 9112 request fields
    "Host",
    "Connection",
    "Keep-Alive",
    "Content-Length",
    "Content-Type",
    "Content-Encoding",
    "Transfer-Encoding",
    "TE",
    "Trailer",
    "Upgrade",
    "Expect",
    "Accept",
    "Accept-Encoding",
    "Accept-Language",
    "Accept-Charset",
    "Authorization",
    "Proxy-Authorization",
    "Cache-Control",
    "Pragma",
    "Cookie",
    "Date",
    "From",
    "If-Match",
    "If-None-Match",
    "If-Modified-Since",
    "If-Unmodified-Since",
    "If-Range",
    "Range",
    "Max-Forwards",
    "Origin",
    "Referer",
    "User-Agent",
    "Via",
    "Priority",
    "Forwarded",
    "DNT",
    # browsers
    "Upgrade-Insecure-Requests",
    "Sec-Fetch-Site",
    "Sec-Fetch-Mode",
    "Sec-Fetch-User",
    "Sec-Fetch-Dest",
    "Sec-Fetch-Storage-Access",
    "Sec-Purpose",
    "Purpose",
    "Sec-GPC",
    "Sec-CH-UA",
    "Sec-CH-UA-Mobile",
    "Sec-CH-UA-Platform",
    "Sec-CH-UA-Platform-Version",
    "Sec-CH-UA-Arch",
    "Sec-CH-UA-Bitness",
    "Sec-CH-UA-Model",
    "Sec-CH-UA-Full-Version-List",
    "Sec-CH-Prefers-Color-Scheme",
    "Save-Data",
    "Device-Memory",
    "Downlink",
    "ECT",
    "RTT",
    "Viewport-Width",
    "X-Requested-With",
    # WebSocket and HTTP/2 upgrades
    "Sec-WebSocket-Key",
    "Sec-WebSocket-Version",
    "Sec-WebSocket-Extensions",
    "Sec-WebSocket-Protocol",
    "HTTP2-Settings",
    # proxies and load balancers
    "X-Forwarded-For",
    "X-Forwarded-Proto",
    "X-Forwarded-Host",
    "X-Forwarded-Port",
    "X-Forwarded-Prefix",
    "X-Real-IP",
    "X-Request-ID",
    "X-Correlation-ID",
    "X-Amzn-Trace-Id",
    "Traceparent",
    "Tracestate",
    # responses
    "Age",
    "Allow",
    "Content-Disposition",
    "Content-Language",
    "Content-Location",
    "Content-Range",
    "Content-Security-Policy",
    "ETag",
    "Expires",
    "Last-Modified",
    "Link",
    "Location",
    "Refresh",
    "Retry-After",
    "Server",
    "Set-Cookie",
    "Vary",
    "WWW-Authenticate",
    "Accept-Ranges",
    "Alt-Svc",
    "Strict-Transport-Security",
    "Referrer-Policy",
    "Permissions-Policy",
    "Cross-Origin-Opener-Policy",
    "Cross-Origin-Embedder-Policy",
    "Cross-Origin-Resource-Policy",
    "X-Content-Type-Options",
    "X-Frame-Options",
    "X-XSS-Protection",
    "Access-Control-Allow-Origin",
    "Access-Control-Allow-Credentials",
    "Access-Control-Allow-Headers",
    "Access-Control-Allow-Methods",
    "Access-Control-Expose-Headers",
    "Access-Control-Max-Age",
    "Access-Control-Request-Headers",
    "Access-Control-Request-Method",
    "Timing-Allow-Origin",
    "Server-Timing",
    "X-Powered-By",
    "X-Process-Time",
)


def _spellings(name: str) -> set[str]:
    # Browsers send client hints lower-case and most others in the canonical case.
    return {name, name.lower(), "-".join(part.capitalize() for part in name.split("-"))}


KNOWN_NAMES: frozenset[bytes] = frozenset(
    spelling.encode("ascii") for name in _NAMES for spelling in _spellings(name)
)
