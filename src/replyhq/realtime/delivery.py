"""Delivery of committed domain events to exactly the sockets entitled to them.

Used by server processes (through their Socket.IO server) and by processes that only write, such
as job workers (through a write-only Redis manager): both publish on the same Redis channel, and
the process holding each socket delivers to it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis

from replyhq.events import DomainEvent, Revoke
from replyhq.realtime.base import room_of_agents, room_of_devices, room_of_user, signin_key
from replyhq.realtime.manager import Emit, RoutedRedisManager
from replyhq.realtime.presence import PresenceStore
from replyhq.settings import Settings

DEVICES = "/"
STAFF = "/admin"

EmitAll = Callable[[list[Emit]], Awaitable[Any]]
Disconnect = Callable[[str, str], Awaitable[Any]]


def manager_channel(settings: Settings) -> str:
    return settings.redis_prefix + "socketio"


def manager_options(settings: Settings) -> dict[str, Any]:
    """What every process' Socket.IO manager is built with: the channel, and the same bounded
    Redis pool as the app's own client (runtime.redis_client), its connections named after the
    channel in Redis' CLIENT LIST."""
    channel = manager_channel(settings)
    return {
        "channel": channel,
        "max_connections": settings.redis_max_connections,
        "pool_timeout": settings.redis_pool_timeout_seconds,
        "redis_options": {"client_name": channel},
    }


class Delivery:
    def __init__(self, emit_all: EmitAll, disconnect: Disconnect, presence: PresenceStore) -> None:
        self._emit_all = emit_all
        self._disconnect = disconnect
        self.presence = presence

    async def __call__(self, event: DomainEvent, skip_sid: str | None = None) -> None:
        if isinstance(event, Revoke):
            await self._revoke(event)
            return
        emits = []
        if event.devices:
            emits.append(Emit(event.name, event.data, DEVICES, room_of_devices(event.app_id)))
        elif event.end_user_id is not None:
            room = room_of_user(event.app_id, event.end_user_id)
            emits.append(Emit(event.name, event.data, DEVICES, room, skip_sid))
        if event.agents:
            emits.append(
                Emit(event.name, event.data, STAFF, room_of_agents(event.app_id), skip_sid)
            )
        if emits:  # one Redis round trip for both rooms
            await self._emit_all(emits)

    async def _revoke(self, revoke: Revoke) -> None:
        """Disconnect the sessions concerned, wherever they live (the manager routes by sid)."""
        presence, app_id = self.presence, revoke.app_id
        targets: list[tuple[str, str]] = []
        if revoke.device_id is not None:
            targets += [
                (s, DEVICES) for s in await presence.sids_of_device(app_id, revoke.device_id)
            ]
        if revoke.all_devices:
            targets += [(s, DEVICES) for s in await presence.sids_of_app(app_id, "user")]
        if revoke.unproven_devices:
            person = None if revoke.end_user_id is None else str(revoke.end_user_id)
            targets += [
                (row["sid"], DEVICES)
                for row in await presence.active_sessions(app_id, "user")
                # rows written before sessions said whether they were proven count as unproven
                if row.get("proven") != "1" and person in (None, row["person_id"])
            ]
        if revoke.staff_id is not None:
            sids = await presence.sids_of_person(app_id, "staff", revoke.staff_id)
            targets += [(s, STAFF) for s in sids]
        if revoke.staff_session_id is not None:
            sids = await presence.sids_of_device(app_id, signin_key(revoke.staff_session_id))
            targets += [(s, STAFF) for s in sids]
        for sid, namespace in targets:
            await self._disconnect(sid, namespace)


class WriterSink(Delivery):
    """The event sink of a process without a Socket.IO server (a job worker, a CLI command):
    publishes through a write-only Redis manager, whose connections `aclose` releases."""

    def __init__(self, settings: Settings, redis_url: str, redis: Redis) -> None:
        # The servers' manager class: they read only its messages (see realtime/manager.py).
        self.manager = RoutedRedisManager(redis_url, write_only=True, **manager_options(settings))
        presence = PresenceStore(redis, settings.redis_prefix, settings.presence_ttl_seconds)
        super().__init__(self.manager.emit_all, self.manager.can_disconnect, presence)

    async def aclose(self) -> None:
        await self.manager.aclose()
