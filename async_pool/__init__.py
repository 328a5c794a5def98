"""The AsyncPool: asyncio event-loop threads that own long-lived and multiplexed connections.

Streaming HTTP/1.1, WebSocket and HTTP/2 connections, and the ends of responses
that a slow reader could not take at once, are handed here by the sync
workers through typed handoff objects (`handoffs`). The application runs once per
request, here or on the sync path, never both. HTTP/3 is not a handoff: the pool owns its UDP
endpoint (`http3`). This package reuses the sans-I/O
HTTP/1.1 codec and never imports the server's lifecycle modules.
"""

from .handoffs import (
    ClientSocket,
    Handoff,
    HTTP2Connection,
    PendingWrite,
    StreamingRequest,
    WebSocketUpgrade,
)
from .http3_setup import QuicEndpoint, http3_unavailable, load_credentials
from .pool import AsyncPool
from .stats import PoolStats

__all__ = [
    "AsyncPool",
    "ClientSocket",
    "HTTP2Connection",
    "Handoff",
    "PendingWrite",
    "PoolStats",
    "QuicEndpoint",
    "StreamingRequest",
    "WebSocketUpgrade",
    "http3_unavailable",
    "load_credentials",
]
