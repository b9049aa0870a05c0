"""The websocket protocol `replyhq serve` gives uvicorn: its own, minus the handshake's leftovers,
with its writes coalesced.

uvicorn's protocol keeps, for a connection's whole life, the handshake's request and response
(headers included) and the ASGI scope with the headers again and a copy of the app's state. Once
the app has accepted, only the scope's type, the peer's address and the path are read (Engine.IO
answers by the type; uvicorn's log lines name the peer and the path). Dropping the rest saves
~2 KiB per idle socket (docs/benchmarks-realtime.md).

It also writes every frame at once, a system call each: a third of the server's CPU in a fan-out
profile, where Engine.IO hands a socket several packets in a row. Once accepted, the socket's
frames of one event-loop iteration go out in one write."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from uvicorn._types import ASGISendEvent
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

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
