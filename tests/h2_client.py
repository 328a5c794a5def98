"""An HTTP/2 client for the tests: h2's client side over a real socket.

Used wherever a test speaks HTTP/2 to a server under test (prior knowledge,
after an h2c upgrade, or over TLS with ALPN).
"""

import socket
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events
import h2.settings


@dataclass
class Response:
    status: int = 0
    headers: dict[bytes, bytes] = field(default_factory=dict)
    body: bytearray = field(default_factory=bytearray)
    trailers: dict[bytes, bytes] = field(default_factory=dict)
    ended: bool = False
    reset: int | None = None  # the RST_STREAM error code, if the server reset the stream

    @property
    def done(self) -> bool:
        return self.ended or self.reset is not None


class H2Client:
    """Sends requests and gathers each stream's response from the events h2 reports."""

    def __init__(
        self, sock: socket.socket, settings: dict[int, int] | None = None, *, start: bool = True
    ) -> None:
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self.conn = h2.connection.H2Connection(config)
        if settings:
            self.conn.local_settings = h2.settings.Settings(client=True, initial_values=settings)
        self.sock = sock
        self.responses: dict[int, Response] = {}
        self.server_settings: dict[int, int] = {}
        self.terminated: h2.events.ConnectionTerminated | None = None
        self.auto_ack = True
        if start:
            self.conn.initiate_connection()
            self.flush()

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def request(
        self,
        path: str,
        *,
        method: str = "GET",
        headers: tuple[tuple[str, str], ...] = (),
        end_stream: bool = True,
        flush: bool = True,
    ) -> int:
        stream_id = self.conn.get_next_available_stream_id()
        pseudo = [(":method", method), (":scheme", "http"), (":authority", "h2.test")]
        self.conn.send_headers(stream_id, [*pseudo, (":path", path), *headers], end_stream)
        self.responses[stream_id] = Response()
        if flush:
            self.flush()
        return stream_id

    def send_body(self, stream_id: int, data: bytes, end_stream: bool = True) -> None:
        """All of `data`, never past the server's windows: waits for its WINDOW_UPDATEs."""
        view = memoryview(data)
        while view:
            room = min(
                self.conn.local_flow_control_window(stream_id), self.conn.max_outbound_frame_size
            )
            if not room:
                self.pump()
                continue
            self.conn.send_data(stream_id, view[:room].tobytes())
            view = view[room:]
            self.flush()
        if end_stream:
            self.conn.end_stream(stream_id)
            self.flush()

    def pump(self) -> list[h2.events.Event]:
        """Read once; record what the events say; answer what h2 wants answered."""
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("the server closed the connection")
        return self.receive(data)

    def receive(self, data: bytes) -> list[h2.events.Event]:
        """Bytes read from the socket (here or by another reader): what pump does with them."""
        events = self.conn.receive_data(data)
        for event in events:
            self._record(event)
        self.flush()
        return events

    def _record(self, event: h2.events.Event) -> None:
        response = self.responses.get(getattr(event, "stream_id", 0))
        if isinstance(event, h2.events.ResponseReceived):
            response.status = int(dict(event.headers)[b":status"])
            response.headers = {n: v for n, v in event.headers if not n.startswith(b":")}
        elif isinstance(event, h2.events.DataReceived):
            response.body += event.data
            if self.auto_ack:
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.TrailersReceived):
            response.trailers = dict(event.headers)
        elif isinstance(event, h2.events.StreamEnded):
            response.ended = True
        elif isinstance(event, h2.events.StreamReset):
            response.reset = event.error_code
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            self.server_settings.update({k: v.new_value for k, v in event.changed_settings.items()})
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.terminated = event

    def response(self, stream_id: int) -> Response:
        response = self.responses[stream_id]
        while not response.done:
            self.pump()
        return response

    def wait_terminated(self) -> h2.events.ConnectionTerminated:
        while self.terminated is None:
            self.pump()
        return self.terminated

    def get(self, path: str, headers: tuple[tuple[str, str], ...] = ()) -> Response:
        return self.response(self.request(path, headers=headers))
