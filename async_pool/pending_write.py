"""Finish writing a response whose client reads slower than the app wrote it.

The sync worker wrote what the socket had room for and handed the rest here, so
a slow reader costs a buffer and a task, not a worker thread. The write timeout
bounds each wait for the client to take more bytes, as on the sync path.
"""

import asyncio

from .context import PoolContext
from .handoffs import PendingWrite
from .socket_stream import AsyncSocket, ConnectionLost


async def serve_pending_write(handoff: PendingWrite, ctx: PoolContext) -> None:
    stream = AsyncSocket(handoff.conn.sock, asyncio.get_running_loop())
    written = False
    try:
        await stream.send_all(handoff.data, ctx.config.timeout_write)
        written = True
    except (ConnectionLost, TimeoutError):
        pass  # the client left, or stopped reading: nothing more can reach it
    finally:
        keep_alive = written and handoff.keep_alive
        ctx.give_back_or_close(stream, handoff.conn, handoff.buffered, keep_alive)
