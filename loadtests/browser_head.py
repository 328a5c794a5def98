"""The `browser` scenario's request heads, in Python: the same bytes `lua/browser.lua` sends.

A Chrome page navigation over HTTP/1.1, cut to 11 fields and about 600 bytes. The target and
the cookie carry a per-thread request counter, so no two requests wrk sends are alike and no
server can reuse anything parsed from the previous head on a connection. `cost_budget.py`
measures the sync path's stages on these heads; tests/bench checks, against a real wrk run,
that the Lua script and this module produce the same bytes for the same (thread, n).
"""

USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/143.0.0.0 Safari/537.36"
)
SEC_CH_UA = '"Chromium";v="143", "Google Chrome";v="143"'
ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
FIELDS = 11  # Host ... Cookie, below


def target(thread: int, n: int) -> str:
    return f"/item/{1000 + n % 9000}?ref=home&v={thread}-{n}"


def cookie(thread: int, n: int) -> str:
    session = f"{thread:08x}{n:08x}9f86d081884c7d65"
    return f"sessionid={session}; csrftoken=Qk3vT9sYbW2n; theme=dark; cart={n % 7}"


def head(host: str, thread: int, n: int) -> bytes:
    """Request `n` (from 1) of wrk thread `thread` (from 1), CRLF CRLF included."""
    lines = [
        f"GET {target(thread, n)} HTTP/1.1",
        f"Host: {host}",
        "Connection: keep-alive",
        f"sec-ch-ua: {SEC_CH_UA}",
        "Upgrade-Insecure-Requests: 1",
        f"User-Agent: {USER_AGENT}",
        f"Accept: {ACCEPT}",
        "Sec-Fetch-Mode: navigate",
        f"Referer: http://{host}/catalog",
        "Accept-Encoding: gzip, deflate, br",
        "Accept-Language: en-GB,en;q=0.9",
        f"Cookie: {cookie(thread, n)}",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")
