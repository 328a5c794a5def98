"""The AsyncPool: asyncio event-loop threads that own long-lived and multiplexed connections.

Streaming HTTP/1.1, WebSocket, HTTP/2 and HTTP/3 are handed here from the sync
workers through typed handoff objects (see DESIGN.md, "Handoffs"). Nothing is
implemented yet: the sync path streams responses to the end itself meanwhile.
This package must never import the server's lifecycle modules.
"""
