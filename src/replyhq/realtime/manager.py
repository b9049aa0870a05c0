"""The Redis client manager shared by every process: python-socketio's, minus the wasted decoding.

python-socketio's `AsyncRedisManager` publishes every emit of every process as one JSON document
on one channel; every process receives all of them, decodes each in full (then JSON-encodes its
Socket.IO packet) and only then finds that the room has no member here, or that the message is
its own echo. Per message that is small, but it is paid by every process for every emit of the
cluster, so it grows with the number of processes while useful work does not.

`RoutedRedisManager` publishes the same JSON after a short header line with the sender's host id,
the method, the namespace and the room. A process reads only the header of messages meant for
somewhere else and drops them: its own echoes, and emits to a room (a user's devices, an app's
agents, one socket) with no member in this process. Everything else is handled exactly as
python-socketio does. Delivery to the local members of a room is also done inline instead of one
asyncio task per recipient, and a socket's rooms are indexed so that a disconnect no longer scans
every room of the process.

Every process on the channel must use this class (servers and write-only emitters alike): a
stock manager cannot read the header and would ignore these messages. Plain JSON messages from a
stock manager are still understood, so the switch loses nothing on the receiving side.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import socketio
from engineio import packet as eio_packet
from redis.asyncio import BlockingConnectionPool, Redis
from socketio import packet as sio_packet

from replyhq.runtime import cancel_and_wait

MAGIC = b"RHQ1\n"
RESUBSCRIBE_FIRST_SECONDS = 0.1
RESUBSCRIBE_MAX_SECONDS = 1.0


@dataclass(frozen=True)
class Emit:
    """One emit of RoutedRedisManager.emit_all."""

    event: str
    data: Any
    namespace: str
    room: Any
    skip_sid: Any = None


def header(message: dict[str, Any]) -> bytes:
    """host id, method, namespace and room of a manager message, one per line."""
    fields = (
        message.get("host_id") or "",
        message.get("method") or "",
        json.dumps(message.get("namespace")),
        json.dumps(message.get("room")),
    )
    return MAGIC + "\n".join(fields).encode() + b"\n"


class RoutedRedisManager(socketio.AsyncRedisManager):  # type: ignore[misc]
    """`AsyncRedisManager` that skips, undecoded, the messages this process has nothing to do
    with. Same constructor and channel semantics, plus a bounded blocking pool: with
    `max_connections`, emits past that many at once wait (up to `pool_timeout` seconds) for a
    free connection, where redis-py's default pool raises "Too many connections" past 100 and
    the emit is lost."""

    connected: bool
    redis: Redis | None

    def __init__(
        self,
        *args: Any,
        max_connections: int | None = None,
        pool_timeout: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.max_connections = max_connections
        self.pool_timeout = pool_timeout
        # The rooms of each (namespace, sid): python-socketio finds them by scanning every room
        # of the namespace, so each disconnect cost O(sockets) and a mass disconnect O(sockets²)
        # (minutes of a blocked event loop at 20,000 sockets).
        self._rooms_of: dict[tuple[str, str], set[Any]] = {}
        # Run each time the channel is subscribed again after a loss (see below).
        self.on_resubscribed: Callable[[], Awaitable[None]] | None = None

    def _redis_connect(self) -> None:
        scheme = urlparse(self.redis_url).scheme
        if self.max_connections is None or scheme not in ("redis", "rediss", "unix"):
            super()._redis_connect()  # Sentinel, Valkey, or no bound asked for
            return
        pool = BlockingConnectionPool.from_url(
            self.redis_url,
            max_connections=self.max_connections,
            timeout=self.pool_timeout,
            **self.redis_options,
        )
        self.redis = Redis.from_pool(pool)
        self.pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        self.connected = True

    async def _publish(self, data: dict[str, Any]) -> Any:
        return await self._publish_all([data])

    async def _publish_all(self, messages: Sequence[dict[str, Any]]) -> Any:
        """Publish `messages` in one round trip (several as one pipeline)."""
        payloads = [header(m) + self.json.dumps(m).encode() for m in messages]
        for retries_left in (1, 0):
            try:
                if not self.connected:
                    self._redis_connect()
                assert self.redis is not None
                if len(payloads) == 1:
                    return await self.redis.publish(self.channel, payloads[0])
                async with self.redis.pipeline(transaction=False) as pipeline:
                    for payload in payloads:
                        pipeline.publish(self.channel, payload)
                    return await pipeline.execute()
            except Exception as exc:
                # python-socketio makes a new client for the next attempt. A write-only manager
                # keeps its own, whose pool replaces a broken connection by itself: a new client
                # per failure left the old one's connections open.
                if not self.write_only:
                    self.connected = False
                outcome = "retrying" if retries_left else "giving up"
                self._get_logger().error(
                    f"Cannot publish to redis... {outcome}", extra={"redis_exception": str(exc)}
                )
        return None

    async def stop_listening(self) -> None:
        """End the subscription task python-socketio starts at the first connection (its
        `thread` attribute) and never stops: a server stopped inside a running process (tests,
        an embedding application) kept retrying its channel, and logging errors, forever."""
        listener = getattr(self, "thread", None)
        if isinstance(listener, asyncio.Task):
            await cancel_and_wait(listener)
        self.thread = None

    async def aclose(self) -> None:
        """Close this manager's Redis client and its pool (a later publish opens a new one)."""
        redis, self.redis, self.connected = self.redis, None, False
        if redis is not None:
            await redis.aclose()

    async def _redis_listen_with_retries(self) -> AsyncIterator[Any]:
        """python-socketio's loop, with two changes. It retried a lost subscription after a
        backoff doubling up to 60 s, so processes stayed deaf to each other for up to a minute
        after Redis came back: here the backoff starts at RESUBSCRIBE_FIRST_SECONDS and stays
        under RESUBSCRIBE_MAX_SECONDS (a refused connection costs nothing). And once subscribed
        again after a loss, `on_resubscribed` runs: whatever was published meanwhile never
        arrived here, and the server tells its sockets to catch up."""
        delay = RESUBSCRIBE_FIRST_SECONDS
        lost = False
        while True:
            pubsub = None
            try:
                if self.redis is None or not self.connected:
                    self._redis_connect()
                assert self.redis is not None
                pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
                await pubsub.subscribe(self.channel)
                delay = RESUBSCRIBE_FIRST_SECONDS
                if lost:
                    lost = False
                    self._get_logger().warning("Subscribed to redis again")
                    if self.on_resubscribed is not None:
                        await self.on_resubscribed()
                async for message in pubsub.listen():
                    yield message
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                lost = True
                self._get_logger().error(
                    f"Cannot receive from redis... retrying in {delay} secs",
                    extra={"redis_exception": str(exc)},
                )
            finally:
                if pubsub is not None:
                    with contextlib.suppress(Exception):
                        await pubsub.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(delay)
            delay = min(delay * 2, RESUBSCRIBE_MAX_SECONDS)

    async def _listen(self) -> AsyncIterator[bytes]:
        channel = self.channel.encode()
        async for message in self._redis_listen_with_retries():
            if message["channel"] == channel and message["type"] == "message" and "data" in message:
                body = self.wanted(message["data"])
                if body is not None:
                    yield body

    def wanted(self, data: bytes) -> bytes | None:
        """The JSON body to handle, or None when this process has nothing to do with it."""
        if not data.startswith(MAGIC):
            return data  # a stock manager's message: handle it as python-socketio would
        try:
            host_id, method, namespace, room, body = data[len(MAGIC) :].split(b"\n", 4)
        except ValueError:
            return None
        mine = host_id.decode() == self.host_id
        if method == b"callback":
            return body if mine else None
        if mine:  # its own echo: already handled locally when it was sent
            return None
        if method == b"emit" and not self._has_members(json.loads(namespace), json.loads(room)):
            return None
        return body

    def _has_members(self, namespace: Any, room: Any) -> bool:
        rooms = self.rooms.get(namespace or "/")
        if not rooms:
            return False
        if isinstance(room, str):
            return room in rooms
        if isinstance(room, list):
            return any(r in rooms for r in room)
        return True  # the whole namespace

    # --- rooms ---------------------------------------------------------------------------------

    def basic_enter_room(self, sid: str, namespace: str, room: Any, eio_sid: Any = None) -> None:
        super().basic_enter_room(sid, namespace, room, eio_sid=eio_sid)
        self._rooms_of.setdefault((namespace, sid), set()).add(room)

    def basic_leave_room(self, sid: str, namespace: str, room: Any) -> None:
        super().basic_leave_room(sid, namespace, room)
        rooms = self._rooms_of.get((namespace, sid))
        if rooms is not None:
            rooms.discard(room)
            if not rooms:
                del self._rooms_of[(namespace, sid)]

    def get_rooms(self, sid: str, namespace: str) -> list[Any]:
        return [r for r in self._rooms_of.get((namespace, sid), ()) if r is not None]

    def basic_disconnect(self, sid: str, namespace: str, **kwargs: Any) -> None:
        """python-socketio 5.18's, with the sid's rooms taken from the index."""
        if namespace not in self.rooms:
            return
        for room in list(self._rooms_of.get((namespace, sid), ())):
            self.basic_leave_room(sid, namespace, room)
        self.callbacks.pop(sid, None)
        for pending in (self.pending_connect, self.pending_disconnect):
            if sid in pending.get(namespace, ()):
                pending[namespace].remove(sid)
                if not pending[namespace]:
                    del pending[namespace]

    # --- delivery ------------------------------------------------------------------------------

    async def emit(
        self,
        event: str,
        data: Any,
        namespace: str | None = None,
        room: Any = None,
        skip_sid: Any = None,
        callback: Any = None,
        to: Any = None,
        **kwargs: Any,
    ) -> None:
        if kwargs.get("ignore_queue") and callback is None:
            await self._emit_here(event, data, namespace or "/", to or room, skip_sid)
            return
        await super().emit(
            event,
            data,
            namespace=namespace,
            room=room,
            skip_sid=skip_sid,
            callback=callback,
            to=to,
            **kwargs,
        )

    async def emit_all(self, emits: Sequence[Emit]) -> None:
        """Several emits, as as many emit() calls make them (each delivered here, then sent to
        the other processes), but published in one round trip: a domain event goes to an end
        user's devices and to the app's agents, two rooms in two namespaces."""
        messages = []
        for e in emits:
            data = list(e.data) if isinstance(e.data, tuple) else [e.data]
            if sio_packet.Packet.data_is_binary(data):  # never ours: python-socketio's path
                await self.emit(
                    e.event, e.data, namespace=e.namespace, room=e.room, skip_sid=e.skip_sid
                )
                continue
            message = {
                "method": "emit",
                "event": e.event,
                "data": data,
                "binary": False,
                "namespace": e.namespace,
                "room": e.room,
                "skip_sid": e.skip_sid,
                "callback": None,
                "host_id": self.host_id,
            }
            await self._handle_emit(message)  # here, as AsyncPubSubManager.emit does first
            messages.append(message)
        if messages:
            await self._publish_all(messages)

    async def _handle_emit(self, message: dict[str, Any]) -> None:
        callback = message.get("callback")
        if (callback is not None and len(callback) == 3) or message.get("binary"):
            await super()._handle_emit(message)  # rare paths: python-socketio's own code
            return
        data = message["data"]
        if isinstance(data, list):
            data = data[0] if len(data) == 1 else tuple(data)
        await self._emit_here(
            message["event"],
            data,
            message.get("namespace") or "/",
            message.get("room"),
            message.get("skip_sid"),
        )

    async def _emit_here(
        self, event: str, data: Any, namespace: str, room: Any, skip_sid: Any
    ) -> None:
        """Send to this process' members of `room`: the packet encoded once, then handed to each
        socket's send queue in turn (a queue put, no task per recipient)."""
        if namespace not in self.rooms:
            return
        skip = skip_sid if isinstance(skip_sid, list) else [skip_sid]
        recipients = [
            eio_sid for sid, eio_sid in self.get_participants(namespace, room) if sid not in skip
        ]
        if not recipients:
            return
        if isinstance(data, tuple):
            args = list(data)
        elif data is not None:
            args = [data]
        else:
            args = []
        encoded = self.server.packet_class(
            sio_packet.EVENT, namespace=namespace, data=[event, *args]
        ).encode()
        packets = [
            eio_packet.Packet(eio_packet.MESSAGE, p)
            for p in (encoded if isinstance(encoded, list) else [encoded])
        ]
        for eio_sid in recipients:
            for pkt in packets:
                try:
                    await self.server._send_eio_packet(eio_sid, pkt)
                except Exception:  # a socket closing meanwhile: the others still get it
                    self._get_logger().debug("could not send to %s", eio_sid)
