"""An HTTP/3 client for the tests: aioquic's QUIC and HTTP/3, over a real UDP socket.

aioquic is another QUIC stack than the server's (bengal-zoomies), which is the
point: the tests prove the server talks to clients that are not itself.
"""

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aioquic.asyncio import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ConnectionTerminated, QuicEvent, StreamReset

Headers = list[tuple[bytes, bytes]]


@dataclass
class Response:
    status: int = 0
    headers: Headers = field(default_factory=list)
    body: bytes = b""
    trailers: Headers = field(default_factory=list)
    reset: int | None = None  # the server's RESET_STREAM code
    done: asyncio.Event = field(default_factory=asyncio.Event)
    chunks: int = 0  # DATA events, to see a response arrive in pieces


class H3Client(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.h3 = H3Connection(self._quic)
        self.responses: dict[int, Response] = {}
        self.terminated: ConnectionTerminated | None = None
        self.goaway = asyncio.Event()

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, ConnectionTerminated):
            self.terminated = event
            for response in self.responses.values():
                response.done.set()
        if isinstance(event, StreamReset) and event.stream_id in self.responses:
            self.responses[event.stream_id].reset = event.error_code
            self.responses[event.stream_id].done.set()
        for h3_event in self.h3.handle_event(event):
            self._on_h3(h3_event)

    def _on_h3(self, event) -> None:
        response = self.responses.get(getattr(event, "stream_id", -1))
        if response is None:
            return
        if isinstance(event, HeadersReceived):
            if response.status:
                response.trailers = list(event.headers)
            else:
                response.headers = list(event.headers)
                response.status = int(dict(event.headers)[b":status"])
        elif isinstance(event, DataReceived):
            response.body += event.data
            response.chunks += 1
        if getattr(event, "stream_ended", False):
            response.done.set()

    def start(
        self, method: str, path: str, body: bytes | None = None, headers: Headers = (), end=True
    ) -> int:
        """Send a request's head (and body); returns its stream id."""
        stream_id = self._quic.get_next_available_stream_id()
        self.responses[stream_id] = Response()
        head = [
            (b":method", method.encode()),
            (b":scheme", b"https"),
            (b":authority", b"localhost"),
            (b":path", path.encode()),
            *headers,
        ]
        self.h3.send_headers(stream_id, head, end_stream=body is None and end)
        if body is not None:
            self.h3.send_data(stream_id, body, end_stream=end)
        self.transmit()
        return stream_id

    async def response(self, stream_id: int, timeout: float = 20.0) -> Response:
        response = self.responses[stream_id]
        async with asyncio.timeout(timeout):
            await response.done.wait()
        return response

    async def request(self, method: str, path: str, body: bytes | None = None) -> Response:
        return await self.response(self.start(method, path, body))


@asynccontextmanager
async def h3_connect(
    port: int, ca: str | None = None, connect_timeout: float = 10.0, **config
) -> AsyncIterator[H3Client]:
    configuration = QuicConfiguration(
        is_client=True,
        alpn_protocols=H3_ALPN,
        verify_mode=ssl.CERT_REQUIRED if ca else ssl.CERT_NONE,
        server_name="localhost",
        idle_timeout=config.pop("idle_timeout", 10.0),
        **config,
    )
    if ca:
        configuration.load_verify_locations(ca)
    async with asyncio.timeout(connect_timeout):
        manager = connect("127.0.0.1", port, configuration=configuration, create_protocol=H3Client)
        client = await manager.__aenter__()
    try:
        yield client
    finally:
        await manager.__aexit__(None, None, None)
