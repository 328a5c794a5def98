"""Bind listening sockets; failures become one-line `BindError`s."""

import dataclasses
import errno
import os
import socket
import stat
from typing import Any

from pounce_sync.config import Config
from pounce_sync.worker.context import Listener

from .tls import build_ssl_context

# Set by the --reload parent for its server child: the listening sockets it bound once
# and keeps open across restarts, as descriptors. Popped on reading, so neither the app
# nor a later child of the server sees it.
INHERITED_LISTENERS_ENV = "_POUNCE_SYNC_LISTENER_FDS"


class BindError(Exception):
    """Could not bind; the message is one line for the user."""


def _describe(exc: OSError, where: str) -> str:
    if exc.errno == errno.EADDRINUSE:
        return f"address {where} is already in use"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"permission denied binding {where}"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"cannot bind {where}: address not available on this machine"
    return f"cannot bind {where}: {exc.strerror or exc}"


def _resolve(host: str, port: int, kind: socket.SocketKind) -> tuple[str, Any]:
    """(the address as error lines name it, getaddrinfo's first answer) for binding."""
    host = host.strip("[]")
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if kind == socket.SOCK_DGRAM:
        where = f"udp {where}"
    try:
        infos = socket.getaddrinfo(host, port, type=kind, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise BindError(f"cannot resolve host {host!r}: {exc.strerror}") from exc
    return where, infos[0]


def bind_tcp(host: str, port: int, backlog: int) -> Listener:
    where, (family, kind, proto, _, address) = _resolve(host, port, socket.SOCK_STREAM)
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise BindError(_describe(exc, where)) from exc
    sock.setblocking(False)
    bound_host, bound_port = sock.getsockname()[:2]
    return Listener(sock, "http", (bound_host, bound_port))


def bind_udp(host: str, port: int, count: int) -> list[socket.socket]:
    """`count` UDP sockets on one address for QUIC, all in one SO_REUSEPORT group.

    One per worker process, all bound here before any fork and kept open by the
    supervisor, so the kernel's spreading of clients over them never changes while
    the server runs: a restarting worker's datagrams wait in its socket's queue.
    """
    where, (family, kind, proto, _, address) = _resolve(host, port, socket.SOCK_DGRAM)
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(family, kind, proto)
            socks.append(sock)
            if count > 1:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(address)
            sock.setblocking(False)
    except OSError as exc:
        for sock in socks:
            sock.close()
        raise BindError(_describe(exc, where)) from exc
    return socks


def bind_unix(path: str, backlog: int, mode: int | None = None) -> Listener:
    try:
        if stat.S_ISSOCK(os.stat(path).st_mode):
            os.unlink(path)  # a stale socket from an earlier run
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise BindError(_describe(exc, path)) from exc
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        if mode is not None:
            os.chmod(path, mode)  # before listen(): no client connects under the umask's mode
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise BindError(_describe(exc, f"unix:{path}")) from exc
    sock.setblocking(False)
    return Listener(sock, "http", None, owned_path=path)


def bind_fd(fd: int) -> Listener:
    """An inherited listening socket (systemd socket activation, a process manager)."""
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        if exc.errno == errno.ENOTSOCK:
            raise BindError(f"--fd {fd} is not a socket") from exc
        raise BindError(f"--fd {fd}: {exc.strerror or exc}") from exc
    if sock.type != socket.SOCK_STREAM or not sock.getsockopt(
        socket.SOL_SOCKET, socket.SO_ACCEPTCONN
    ):
        sock.detach()
        raise BindError(f"--fd {fd} is not a listening stream socket")
    sock.setblocking(False)
    if sock.family == socket.AF_UNIX:
        return Listener(sock, "http", None)
    host, port = sock.getsockname()[:2]
    return Listener(sock, "http", (host, port))


def bind_spec(spec: str, backlog: int, uds_mode: int | None = None) -> Listener:
    """One --bind value: HOST:PORT, [IPV6]:PORT, unix:PATH or fd://N."""
    if spec.startswith("unix:"):
        return bind_unix(spec[len("unix:") :], backlog, uds_mode)
    if spec.startswith("fd://"):
        return bind_fd(int(spec[len("fd://") :]))
    host, _, port = spec.rpartition(":")
    return bind_tcp(host, int(port), backlog)


def bind_listeners(config: Config) -> list[Listener]:
    """Bind what `config` asks for; TLS listeners carry the context and say "https".

    Sockets a --reload parent handed down are taken instead of binding anew. The TLS
    context is built first, so bad TLS files leave no socket bound.
    """
    context = build_ssl_context(config)
    inherited = os.environ.pop(INHERITED_LISTENERS_ENV, None)
    if inherited:
        listeners = [bind_fd(int(fd)) for fd in inherited.split(",")]
    else:
        listeners = bind_sockets(config)
    if context is None:
        return listeners
    return [dataclasses.replace(lst, scheme="https", ssl_context=context) for lst in listeners]


def bind_sockets(config: Config) -> list[Listener]:
    """The listening sockets `config` names, in order, without TLS."""
    listeners: list[Listener] = []
    try:
        for spec in config.bind:
            listeners.append(bind_spec(spec, config.backlog, config.uds_permissions))
        if config.fd is not None:
            listeners.append(bind_fd(config.fd))
        if config.uds:
            listeners.append(bind_unix(config.uds, config.backlog, config.uds_permissions))
        if not listeners:
            listeners.append(bind_tcp(config.host, config.port, config.backlog))
    except BindError:
        for listener in listeners:
            listener.sock.close()
        raise
    return listeners


def close_listeners(listeners: list[Listener]) -> None:
    """Close our sockets and remove the Unix socket files we created (the last owner's job)."""
    for listener in listeners:
        listener.sock.close()
        if listener.owned_path:
            try:
                os.unlink(listener.owned_path)
            except OSError:
                pass


def describe_listener(listener: Listener) -> str:
    if listener.server is None:
        return f"unix:{listener.sock.getsockname()}"
    host, port = listener.server
    host = f"[{host}]" if ":" in host else host
    return f"{listener.scheme}://{host}:{port}"
