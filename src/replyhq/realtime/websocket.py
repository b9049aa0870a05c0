"""The websocket protocol `replyhq serve` gives uvicorn: its own, minus the handshake's leftovers,
with its writes coalesced.

uvicorn's protocol keeps, for a connection's whole life, the handshake's request and response
(headers included) and the ASGI scope with the headers again and a copy of the app's state. Once
the app has accepted, only the scope's type, the peer's address and the path are read (Engine.IO
answers by the type; uvicorn's log lines name the peer and the path). Dropping the rest saves
~2 KiB per idle socket (docs/benchmarks-realtime.md).

It also writes every frame at once, a system call each: a third of the server's CPU in a fan-out
profile, where Engine.IO hands a socket several packets in a row. Once accepted, the socket's
frames of one event-loop iteration go out in one write.

And Engine.IO hands every packet to a writer task through a queue: per delivery, a queue put, a
task switch and a task for `asyncio.wait_for`, most of what a fan-out still cost. A socket
served by this protocol writes a packet itself when nothing is queued before it (DirectSocket)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from engineio import packet as eio_packet
from engineio.async_socket import AsyncSocket
from uvicorn._types import ASGISendEvent
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState

KEPT_IN_SCOPE = frozenset({"type", "client", "root_path", "path", "query_string"})


class LeanWebSocketProtocol(WebSocketsSansIOProtocol):
    async def send(self, message: ASGISendEvent) -> None:
        await super().send(message)
        if message["type"] == "websocket.accept" and self.handshake_complete:
            # The app read the headers when the request started (Engine.IO copies them into its
            # environ before it accepts); the response has just been written.
            del self.request, self.response
            for key in [k for k in self.scope if k not in KEPT_IN_SCOPE]:
                del self.scope[key]  # type: ignore[misc]
            self.transport = CoalescingTransport(self.transport, self.loop)  # type: ignore[assignment]

    def send_now(self, data: str | bytes) -> bool:
        """Write a text (or binary) frame as send() does, if that needs no waiting: False when
        writes are paused (the peer reads slower than we write) or the connection is closing."""
        if not (self.writable.is_set() and self.handshake_complete) or (
            self.disconnected or self.close_sent or self.initial_response is not None
        ):
            return False
        try:
            if isinstance(data, str):
                self.conn.send_text(data.encode())
            else:
                self.conn.send_binary(data)
        except InvalidState:  # the peer's close frame has been read
            return False
        self.transport.write(b"".join(self.conn.data_to_send()))
        return True


class DirectSocket(AsyncSocket):  # type: ignore[misc]
    """An Engine.IO socket that, once upgraded to a websocket of LeanWebSocketProtocol, writes a
    packet at once when nothing is waiting before it (queued, or held by Engine.IO's writer task
    while writes are paused), and otherwise queues it for that writer as Engine.IO does. Order
    is kept: a packet is written directly only when every earlier one has been written.

    Engine.IO makes its sockets itself; the server turns each into this class as it connects
    (realtime/server.py)."""

    _protocol: LeanWebSocketProtocol | None = None
    _writer_sending = 0  # sends of Engine.IO's writer task in progress

    async def send(self, pkt: eio_packet.Packet) -> None:
        protocol = self._protocol
        if protocol is None or not self.upgraded or self.closing:
            await super().send(pkt)  # polling, upgrading, or closing: Engine.IO's way
        elif self._writer_sending or not self.queue.empty():
            await super().send(pkt)  # behind packets not yet written
        elif await self.check_ping_timeout() and not protocol.send_now(pkt.encode()):
            await self.queue.put(pkt)  # paused: the writer sends it once the peer reads again

    async def poll(self) -> list[eio_packet.Packet]:
        if self._protocol is None or not self.upgraded:
            return await super().poll()  # type: ignore[no-any-return]
        # The websocket writer's wait, without Engine.IO's timeout (and its task per wake-up):
        # the reader has its own and, when it gives up, queues None to end this writer.
        first = await self.queue.get()
        self.queue.task_done()
        packets = [first]
        while first is not None and not self.queue.empty():
            pkt = self.queue.get_nowait()
            self.queue.task_done()
            if pkt is None:
                self.queue.put_nowait(None)
                break
            packets.append(pkt)
        return [] if first is None else packets

    async def _websocket_handler(self, ws: Any) -> None:
        protocol = getattr(getattr(ws, "asgi_send", None), "__self__", None)
        if not isinstance(protocol, LeanWebSocketProtocol):
            await super()._websocket_handler(ws)  # served by another ASGI server
            return
        self._protocol = protocol
        try:
            await super()._websocket_handler(_CountedSends(ws, self))
        finally:
            self._protocol = None


class _CountedSends:
    """Engine.IO's websocket, counting its writer's sends in progress on the socket."""

    __slots__ = ("_socket", "_ws")

    def __init__(self, ws: Any, socket: DirectSocket) -> None:
        self._ws = ws
        self._socket = socket

    async def send(self, message: str | bytes) -> None:
        self._socket._writer_sending += 1
        try:
            await self._ws.send(message)
        finally:
            self._socket._writer_sending -= 1

    def __getattr__(self, name: str) -> Any:  # wait, close
        return getattr(self._ws, name)


class CoalescingTransport:
    """A transport whose writes of one event-loop iteration reach the socket as one write, in
    order. Every write of the protocol goes through it (data, pings, pongs, close frames), and
    close() writes what is pending first, so no frame overtakes another."""

    __slots__ = ("_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] | None = None

    def write(self, data: bytes) -> None:
        if self._pending is None:
            self._pending = [data]
            self._loop.call_soon(self._flush)
        else:
            self._pending.append(data)

    def writelines(self, chunks: Iterable[bytes]) -> None:
        self.write(b"".join(chunks))

    def _flush(self) -> None:
        pending, self._pending = self._pending, None
        if pending and not self._transport.is_closing():
            self._transport.write(b"".join(pending))

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:  # is_closing, pause_reading, get_extra_info...
        return getattr(self._transport, name)


# uvicorn's websocket options wherever ReplyHQ is served (`replyhq serve`, the tests' servers).
WEBSOCKET_OPTIONS: dict[str, Any] = {
    "ws": LeanWebSocketProtocol,
    # As socket.io's own server: compression costs ~40 KiB per idle socket
    # (bench/bench_realtime.py) for small JSON frames that gain little from it.
    "ws_per_message_deflate": False,
    # Engine.IO's own ping/pong already finds dead sockets; uvicorn's websocket pings on top
    # doubled the idle traffic and wake-ups of every socket.
    "ws_ping_interval": None,
}
