"""Client address, scheme and host from a trusted reverse proxy's headers. Pure: no I/O.

Only a peer listed in --forwarded-allow-ips may speak for the client. Walking the
chain of addresses from the right (the hop nearest to us), every trusted proxy is
skipped and the first address not trusted is the client: a client cannot forge
its way past the proxies by sending its own X-Forwarded-For. RFC 7239 `Forwarded`
wins over the X-Forwarded-* fields when both are present.
"""

import ipaddress
from dataclasses import dataclass
from typing import Any

Headers = tuple[tuple[bytes, bytes], ...]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_SCHEMES = {"http", "https", "ws", "wss"}


@dataclass(frozen=True, slots=True)
class TrustedProxies:
    everyone: bool
    networks: tuple[Network, ...]

    def trusts(self, host: str | None) -> bool:
        if host is None:
            return True  # a Unix socket: its file permissions decide who may connect
        if self.everyone:
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.networks)


def parse_trusted(spec: str) -> TrustedProxies:
    """'127.0.0.1,10.0.0.0/8,::1' or '*'; raises ValueError naming the bad entry."""
    items = [item.strip() for item in spec.split(",") if item.strip()]
    if "*" in items:
        return TrustedProxies(True, ())
    networks = []
    for item in items:
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError as exc:
            raise ValueError(f"not an IP address or network: {item!r}") from exc
    return TrustedProxies(False, tuple(networks))


@dataclass(frozen=True, slots=True)
class Forwarded:
    """What the proxies say about one hop: the client's address, scheme and host."""

    client: str | None = None
    scheme: str | None = None
    host: bytes | None = None


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def _node_host(node: str) -> str:
    """RFC 7239 node: '192.0.2.1', '192.0.2.1:80', '[2001:db8::1]:4711' -> the address."""
    node = _unquote(node)
    if node.startswith("["):
        return node[1 : node.find("]")]
    return node.rsplit(":", 1)[0] if node.count(":") == 1 else node


def _forwarded_elements(value: str) -> list[Forwarded]:
    elements = []
    for element in value.split(","):
        pairs = {}
        for pair in element.split(";"):
            key, sep, raw = pair.partition("=")
            if sep:
                pairs[key.strip().lower()] = _unquote(raw)
        host = pairs.get("host")
        elements.append(
            Forwarded(
                client=_node_host(pairs["for"]) if "for" in pairs else None,
                scheme=pairs.get("proto"),
                host=host.encode("latin-1") if host else None,
            )
        )
    return elements


def _x_forwarded_elements(fields: dict[bytes, bytes]) -> list[Forwarded]:
    chain = [a.strip() for a in fields.get(b"x-forwarded-for", b"").decode("latin-1").split(",")]
    proto = fields.get(b"x-forwarded-proto", b"").decode("latin-1").split(",")[0].strip()
    host = fields.get(b"x-forwarded-host", b"").split(b",")[0].strip()
    # X-Forwarded-Proto and -Host are what the client used to reach the first proxy;
    # every hop of the chain carries them.
    hops = [Forwarded(_node_host(a), proto or None, host or None) for a in chain if a]
    return hops or [Forwarded(None, proto or None, host or None)]


def apply_to_scope(scope: dict[str, Any], forwarded: Forwarded) -> None:
    """Put what a trusted proxy said into an http scope."""
    if forwarded.client is not None:
        scope["client"] = (forwarded.client, 0)
    if forwarded.scheme is not None:
        scope["scheme"] = _http_scheme(forwarded.scheme)
    if forwarded.host is not None:
        scope["headers"] = [
            (name, forwarded.host if name == b"host" else value) for name, value in scope["headers"]
        ]


def apply_to_environ(environ: dict[str, Any], forwarded: Forwarded) -> None:
    """Put what a trusted proxy said into a WSGI environ; the proxy gives no client port."""
    if forwarded.client is not None:
        environ["REMOTE_ADDR"] = forwarded.client
        environ.pop("REMOTE_PORT", None)
    if forwarded.scheme is not None:
        environ["wsgi.url_scheme"] = _http_scheme(forwarded.scheme)
    if forwarded.host is not None:
        environ["HTTP_HOST"] = forwarded.host.decode("latin-1")


def _http_scheme(scheme: str) -> str:
    """A proxy may name the WebSocket schemes; an http request's scheme is their HTTP one."""
    return {"ws": "http", "wss": "https"}.get(scheme, scheme)


def resolve(trusted: TrustedProxies, peer: str | None, headers: Headers) -> Forwarded | None:
    """The client hop the proxies describe, or None if the peer may not speak for it."""
    fields = {n: v for n, v in headers if n == b"forwarded" or n.startswith(b"x-forwarded-")}
    if not fields or not trusted.trusts(peer):  # cheap test first: most requests have none
        return None
    if b"forwarded" in fields:
        hops = _forwarded_elements(fields[b"forwarded"].decode("latin-1"))
    else:
        hops = _x_forwarded_elements(fields)
    chosen = hops[0]
    for hop in reversed(hops):
        chosen = hop
        if hop.client is not None and not trusted.trusts(hop.client):
            break  # the first hop not vouched for by a trusted proxy is the client
    scheme = chosen.scheme.lower() if chosen.scheme else None
    return Forwarded(chosen.client, scheme if scheme in _SCHEMES else None, chosen.host)
