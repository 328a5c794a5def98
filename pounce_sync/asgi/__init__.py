"""The ASGI ground floor, sans I/O: the scope builder, the proxy step, request IDs.

Used by the sync workers and the AsyncPool alike; imports nothing above the
ground floor (`pounce_sync.http1`, `pounce_sync.config`).
"""
