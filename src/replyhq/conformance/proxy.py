"""A TCP proxy between a client under test and the server that injects the faults of the
conformance rules: cut every connection, refuse new ones for a while, and (on websocket
connections, whose frames it reads) duplicate, hold back or drop one server-to-client frame,
and note every handshake's `auth`.

Websocket compression is removed from the client's handshake (the proxy strips
Sec-WebSocket-Extensions) so that the frames stay readable; nothing else is changed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

HEAD_END = b"\r\n\r\n"
MAX_HEAD = 64 * 1024


@dataclass
class Frame:
    raw: bytes
    opcode: int
    payload: bytes

    def event(self) -> tuple[str, Any] | None:
        """(name, data) of a Socket.IO event on namespace `/` (`42[...]`), else None."""
        if self.opcode != 1 or not self.payload.startswith(b"42["):
            return None
        try:
            packet = json.loads(self.payload[2:])
        except ValueError:
            return None
        if isinstance(packet, list) and packet and isinstance(packet[0], str):
            return packet[0], packet[1] if len(packet) > 1 else None
        return None

    def handshake(self) -> dict[str, Any] | None:
        """The `auth` of a client's Socket.IO CONNECT on namespace `/` (`40{...}`), else None."""
        if self.opcode != 1 or not self.payload.startswith(b"40{"):
            return None
        try:
            auth = json.loads(self.payload[2:])
        except ValueError:
            return None
        return auth if isinstance(auth, dict) else None

    def ack(self) -> Any:
        """The data of a Socket.IO acknowledgement on `/` (`43<id>[...]`), else None."""
        if self.opcode != 1 or not self.payload.startswith(b"43"):
            return None
        body = self.payload[2:].lstrip(b"0123456789")
        try:
            packet = json.loads(body)
        except ValueError:
            return None
        return packet[0] if isinstance(packet, list) and packet else None


async def read_frame(reader: asyncio.StreamReader) -> Frame:
    head = await reader.readexactly(2)
    length = head[1] & 0x7F
    extended = b""
    if length == 126:
        extended = await reader.readexactly(2)
        length = int.from_bytes(extended, "big")
    elif length == 127:
        extended = await reader.readexactly(8)
        length = int.from_bytes(extended, "big")
    mask = await reader.readexactly(4) if head[1] & 0x80 else b""
    raw = await reader.readexactly(length)
    payload = bytes(b ^ mask[i % 4] for i, b in enumerate(raw)) if mask else raw
    return Frame(head + extended + mask + raw, head[0] & 0x0F, payload)


@dataclass(eq=False)  # kept in a set, by identity
class Connection:
    client: asyncio.StreamWriter
    server: asyncio.StreamWriter
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def close(self) -> None:
        for writer in (self.client, self.server):
            with contextlib.suppress(Exception):
                writer.transport.abort()


class FaultProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.connections: set[Connection] = set()
        self.refuse_until = 0.0
        # One-shot faults on the next matching server -> client frame.
        self.duplicate_next_message = False
        self.hold_next_message = False
        self.drop_next_send_ack = False
        self.events: list[tuple[str, Any]] = []  # every server event seen, for the schemas
        self.acks: list[Any] = []
        self.handshakes: list[dict[str, Any]] = []  # every `auth` a client connected with
        self.dropped_ack = asyncio.Event()
        self._held: Frame | None = None
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def cut(self) -> None:
        """Every open connection dies at once, as when a network drops or a server restarts."""
        for connection in list(self.connections):
            connection.close()
        self.connections.clear()

    def refuse(self, seconds: float) -> None:
        """Cut everything and close new connections at once for `seconds` (a server down)."""
        self.refuse_until = time.monotonic() + seconds
        self.cut()

    @property
    def websockets(self) -> int:
        return len(self.connections)

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        if time.monotonic() < self.refuse_until:
            client_w.transport.abort()
            return
        try:
            server_r, server_w = await asyncio.open_connection(*self.target)
        except OSError:
            client_w.transport.abort()
            return
        connection = Connection(client_w, server_w)
        try:
            head = await client_r.readuntil(HEAD_END)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            connection.close()
            return
        lines = head.split(b"\r\n")
        upgrade = any(line.lower().startswith(b"upgrade: websocket") for line in lines)
        if upgrade:
            lines = [
                line for line in lines if not line.lower().startswith(b"sec-websocket-extensions")
            ]
            self.connections.add(connection)
        server_w.write(b"\r\n".join(lines))
        connection.tasks = [
            asyncio.create_task(
                self._client_frames(client_r, server_w)
                if upgrade
                else self._pipe(client_r, server_w)
            ),
            asyncio.create_task(
                self._frames(server_r, client_w) if upgrade else self._pipe(server_r, client_w)
            ),
        ]
        await asyncio.wait(connection.tasks, return_when=asyncio.FIRST_COMPLETED)
        connection.close()
        self.connections.discard(connection)
        for task in connection.tasks:
            task.cancel()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            while chunk := await reader.read(65536):
                writer.write(chunk)
                await writer.drain()

    async def _frames(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            writer.write(await reader.readuntil(HEAD_END))  # the 101 response
            while True:
                frame = await read_frame(reader)
                for raw in self._decide(frame):
                    writer.write(raw)
                await writer.drain()

    async def _client_frames(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Client -> server websocket frames, forwarded as they are; handshakes are noted (the
        identity rules read which device id and user a client connected as)."""
        with contextlib.suppress(Exception):
            while True:
                frame = await read_frame(reader)
                auth = frame.handshake()
                if auth is not None:
                    self.handshakes.append(auth)
                writer.write(frame.raw)
                await writer.drain()

    def _decide(self, frame: Frame) -> list[bytes]:
        """What to forward for this frame, after the armed faults."""
        event = frame.event()
        if event is not None:
            self.events.append(event)
            if event[0] == "message:new":
                if self.hold_next_message:
                    self.hold_next_message = False
                    self._held = frame
                    return []
                if self._held is not None:  # the held one now arrives after this one
                    held, self._held = self._held, None
                    return [frame.raw, held.raw]
                if self.duplicate_next_message:
                    self.duplicate_next_message = False
                    return [frame.raw, frame.raw]
            return [frame.raw]
        ack = frame.ack()
        if ack is not None:
            self.acks.append(ack)
            if self.drop_next_send_ack and isinstance(ack, dict) and "created" in ack:
                self.drop_next_send_ack = False
                self.dropped_ack.set()
                return []
        return [frame.raw]
