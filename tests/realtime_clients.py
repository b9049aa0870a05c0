"""Real Socket.IO clients (python-socketio over websockets) that record what they receive."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

import socketio

EVENTS = [
    "message:new",
    "conversation:updated",
    "typing",
    "read",
    "presence",
    "resync",
    "onboarding:step",
    "note:mention",
    "timeline:item",
    "conversation:labels",
    "agent:availability",
    "console:entries",
    "conversation:rated",
    "messenger:settings",
]


class Recorder:
    """A Socket.IO client that keeps every server event it receives, in order, per event name."""

    def __init__(self) -> None:
        self.client = socketio.AsyncClient(reconnection=False)
        self.events: dict[str, list[Any]] = defaultdict(list)
        self.connect_error: Any = None
        self.disconnected = asyncio.Event()
        self._arrived = asyncio.Condition()
        self.namespace = "/"

    def _listen(self, namespace: str) -> None:
        for name in EVENTS:
            self.client.on(name, self._recorder(name), namespace=namespace)

        async def on_connect_error(data: Any) -> None:
            self.connect_error = data

        async def on_disconnect(*_: Any) -> None:
            self.disconnected.set()

        self.client.on("connect_error", on_connect_error, namespace=namespace)
        self.client.on("disconnect", on_disconnect, namespace=namespace)

    def _recorder(self, name: str) -> Any:
        async def record(data: Any) -> None:
            async with self._arrived:
                self.events[name].append(data)
                self._arrived.notify_all()

        return record

    async def connect(
        self, url: str, auth: dict[str, Any], namespace: str = "/", wait_timeout: float = 5
    ) -> None:
        self.namespace = namespace
        self._listen(namespace)
        await self.client.connect(
            url,
            auth=auth,
            namespaces=[namespace],
            transports=["websocket"],
            wait_timeout=wait_timeout,
        )

    async def call(self, event: str, data: dict[str, Any]) -> Any:
        return await self.client.call(event, data, namespace=self.namespace, timeout=10)

    async def wait_for(self, name: str, count: int = 1, timeout: float = 5) -> list[Any]:
        async def enough() -> None:
            async with self._arrived:
                await self._arrived.wait_for(lambda: len(self.events[name]) >= count)

        await asyncio.wait_for(enough(), timeout)
        return self.events[name]

    async def close(self) -> None:
        await self.client.disconnect()


async def refused(url: str, auth: dict[str, Any], namespace: str = "/") -> Any:
    """The connect_error data of a handshake that must fail."""
    recorder = Recorder()
    try:
        await recorder.connect(url, auth, namespace)
    except socketio.exceptions.ConnectionError:
        return recorder.connect_error["data"]
    await recorder.close()
    raise AssertionError("the handshake was accepted")
