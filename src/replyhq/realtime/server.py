"""The Socket.IO server: one per process, sharing rooms with every other process through Redis.

It is also the process' event sink: domain events recorded by services arrive here after commit
and go to exactly the rooms entitled to them (an end user's devices, an app's agents).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING, Any

import socketio
import structlog
from engineio.async_socket import AsyncSocket
from socketio import packet as sio_packet

from replyhq.events import DomainEvent, Event, Observers, Revoke
from replyhq.messaging.service import Participant
from replyhq.realtime.access import AccessChecks, Grant
from replyhq.realtime.base import room_of_agents
from replyhq.realtime.delivery import DEVICES, STAFF, Delivery, manager_options
from replyhq.realtime.devices import DeviceNamespace
from replyhq.realtime.limits import SocketLimits
from replyhq.realtime.manager import RoutedRedisManager
from replyhq.realtime.presence import LiveSession, PresenceChange, PresenceStore
from replyhq.realtime.staff import StaffNamespace
from replyhq.realtime.websocket import DirectSocket
from replyhq.runtime import cancel_and_wait
from replyhq.settings import Settings
from replyhq.web.middleware import BodyLimitMiddleware
from replyhq.web.origins import OriginGate, forwarded_host

if TYPE_CHECKING:
    from replyhq.onboarding.console import Console
    from replyhq.runtime import Runtime

log = structlog.get_logger(__name__)


class RealtimeServer:
    def __init__(
        self, settings: Settings, redis_url: str, origins: OriginGate | None = None
    ) -> None:
        self.settings = settings
        # Every process on the channel (servers, workers, CLI commands) must use this manager:
        # a stock AsyncRedisManager cannot read its messages (see realtime/manager.py).
        manager = RoutedRedisManager(redis_url, **manager_options(settings))
        self.sio = DirectSocketServer(
            async_mode="asgi",
            client_manager=manager,
            # Never "*": browsers may connect only from ALLOWED_ORIGINS, or from this server's
            # own pages (the dashboard), which a plain list would refuse.
            cors_allowed_origins=_origin_check(origins or OriginGate(settings.origins), self),
            max_http_buffer_size=settings.max_body_bytes,
            ping_interval=settings.socket_ping_interval_seconds,
            ping_timeout=settings.socket_ping_timeout_seconds,
        )
        self._runtime: Runtime | None = None
        self.presence: PresenceStore | None = None
        self.delivery: Delivery | None = None
        self.local: dict[str, LiveSession] = {}
        # What each local socket was let in at, and its namespace (re-checked by _recheck).
        self.grants: dict[str, tuple[str, Grant]] = {}
        self._access: AccessChecks | None = None
        self.limits = SocketLimits(settings)
        self._tasks: list[asyncio.Task[None]] = []
        # Told committed events after their delivery, by name (onboarding's checklist, billing's
        # usage meter, the test console): see replyhq.events.Observers.
        self.observers = Observers()
        # The app's SDK traffic for its test console (replyhq.onboarding.console), when wired.
        self.console: Console | None = None

        self.sio.register_namespace(DeviceNamespace(DEVICES, self))
        self.sio.register_namespace(StaffNamespace(STAFF, self))

    @property
    def runtime(self) -> Runtime:
        assert self._runtime is not None, "realtime server used before start()"
        return self._runtime

    @property
    def access(self) -> AccessChecks:
        assert self._access is not None, "realtime server used before start()"
        return self._access

    def asgi(self, other: Any) -> Any:
        # Engine.IO's polling POSTs get the API's body limit: over it, Engine.IO itself closed
        # the socket and waited for a poll that never came, leaving the POST unanswered.
        # The API's own larger limits (event batches, uploads) hold here too.
        limits = getattr(getattr(other, "state", None), "body_limits", None) or {}
        return BodyLimitMiddleware(
            socketio.ASGIApp(self.sio, other_asgi_app=other, socketio_path="socket.io"),
            self.settings.max_body_bytes,
            **limits,
        )

    async def start(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._access = AccessChecks(runtime.db, self.settings.socket_access_cache_seconds)
        self.presence = PresenceStore(
            runtime.redis, self.settings.redis_prefix, self.settings.presence_ttl_seconds
        )
        self.delivery = Delivery(
            self.sio.manager.emit_all,
            lambda sid, namespace: self.sio.disconnect(sid, namespace=namespace),
            self.presence,
        )
        runtime.db.event_sink = self.deliver
        self.sio.manager.on_resubscribed = self._resync
        self._tasks = [
            asyncio.create_task(self._every(self.presence.ttl / 3, self._heartbeat)),
            asyncio.create_task(self._every(self.presence.ttl / 6, self._sweep)),
            asyncio.create_task(
                self._every(self.settings.socket_access_sweep_seconds, self._recheck)
            ),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            await cancel_and_wait(task)
        await self.sio.manager.stop_listening()
        if self._runtime is not None:
            self._runtime.db.event_sink = None

    # --- sessions and presence --------------------------------------------------------------

    async def joined(self, live: LiveSession, grant: Grant, namespace: str) -> None:
        self.local[live.sid] = live
        self.grants[live.sid] = (namespace, grant)
        try:
            if self.presence is not None and await self.presence.connect(live):
                await self._announce(PresenceChange(live.app_id, live.kind, live.person_id, True))
        except Exception as exc:  # presence is best effort; the socket itself works without it
            log.warning("presence_unavailable", error=str(exc))

    async def left(self, live: LiveSession) -> None:
        self.local.pop(live.sid, None)
        self.grants.pop(live.sid, None)
        try:
            if self.presence is not None and await self.presence.disconnect(live):
                await self._announce(PresenceChange(live.app_id, live.kind, live.person_id, False))
        except Exception as exc:
            log.warning("presence_unavailable", error=str(exc))

    async def _announce(self, change: PresenceChange) -> None:
        key = "user_id" if change.kind == "user" else "agent_id"
        data = {key: str(change.person_id), "online": change.online}
        await self.sio.emit("presence", data, room=room_of_agents(change.app_id), namespace=STAFF)

    async def _heartbeat(self) -> None:
        assert self.presence is not None
        if self.local:
            await self.presence.heartbeat(list(self.local.values()))

    async def _sweep(self) -> None:
        assert self.presence is not None
        for change in await self.presence.sweep():
            await self._announce(change)

    async def _resync(self) -> None:
        """Tell every socket of this process to catch up (`sync`): events published while the
        Redis channel was lost never reached them."""
        log.warning("realtime_resync", sockets=len(self.local))
        for namespace in (DEVICES, STAFF):
            await self.sio.emit("resync", {}, namespace=namespace, ignore_queue=True)

    async def _recheck(self, app_id: uuid.UUID | None = None) -> None:
        """Cut the local sockets (of `app_id`, or all) whose access has moved on since they were
        let in, with each one's access read afresh from PostgreSQL."""
        grants = [
            (sid, namespace, grant)
            for sid, (namespace, grant) in list(self.grants.items())
            if app_id is None or grant.app_id == app_id
        ]
        if app_id is None:
            self.access.prune()
        stale = set(await self.access.stale((sid, grant) for sid, _, grant in grants))
        for sid, namespace, _ in grants:
            if sid in stale and sid in self.grants:
                log.info("socket_access_revoked", namespace=namespace)
                await self.sio.disconnect(sid, namespace=namespace)

    @staticmethod
    async def _every(seconds: float, job: Any) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await job()
            except Exception as exc:  # Redis away: keep trying, sockets keep working
                log.warning("realtime_background_failed", job=job.__name__, error=str(exc))

    # --- delivery -----------------------------------------------------------------------------

    async def typing(
        self,
        app_id: uuid.UUID,
        conversation_id: uuid.UUID,
        who: Participant,
        typing: bool,
        *,
        end_user_id: uuid.UUID,
        skip_sid: str,
    ) -> None:
        data = {
            "conversation_id": str(conversation_id),
            "who": {"type": who.kind, "id": str(who.id), "name": who.name},
            "typing": typing,
        }
        await self.deliver(
            Event(
                "typing",
                app_id,
                data,
                end_user_id=end_user_id if who.kind == "agent" else None,
                agents=True,
            ),
            skip_sid=skip_sid,
        )

    async def deliver(self, event: DomainEvent, skip_sid: str | None = None) -> None:
        assert self.delivery is not None
        if isinstance(event, Revoke) and (event.all_devices or event.device_id is None):
            # This process' own sockets at once, without Redis: access was bumped in PostgreSQL.
            self.access.forget(event.app_id)
            try:
                await self._recheck(event.app_id)
            except Exception as exc:
                log.warning("socket_access_recheck_failed", error=str(exc))
        await self.delivery(event, skip_sid)
        await self.observers.notify(event)


# Names python-socketio (and the Socket.IO clients) use for their own lifecycle. Sent by a client
# as an ordinary event, python-socketio would run the namespace's handler for it: `connect` would
# authenticate again with whatever the client sent, `disconnect` would mark the socket gone.
RESERVED_EVENTS = frozenset({"connect", "connect_error", "disconnect", "disconnecting"})
RESERVED_ACK = {
    "ok": False,
    "code": "RESERVED_EVENT",
    "error": "This event name is reserved by Socket.IO and cannot be sent.",
}


class DirectSocketServer(socketio.AsyncServer):  # type: ignore[misc]
    """python-socketio's server, whose Engine.IO sockets write their packets directly when
    served by our websocket protocol (DirectSocket), and which never hands a client's event
    named like a lifecycle event to a handler."""

    async def _handle_event(self, eio_sid: str, namespace: str | None, id: Any, data: Any) -> None:
        # python-socketio calls this for every EVENT packet a client sends; its own connect and
        # disconnect handling reach the handlers by other paths, so refusing here loses nothing.
        name = data[0] if isinstance(data, list) and data else None
        if not isinstance(name, str) or name in RESERVED_EVENTS:
            log.warning("socket_event_reserved", namespace=namespace or "/", socket_event=name)
            if id is not None:
                await self._send_packet(
                    eio_sid,
                    self.packet_class(
                        sio_packet.ACK, namespace=namespace or "/", data=[RESERVED_ACK], id=id
                    ),
                )
            return
        await super()._handle_event(eio_sid, namespace, id, data)

    async def _handle_eio_connect(self, eio_sid: str, environ: dict[str, Any]) -> Any:
        # Engine.IO has made the socket and not yet served its transport; it has no hook for
        # its socket class. DirectSocket has no __init__ of its own (its two attributes default
        # on the class), so a socket made as Engine.IO's can become one.
        socket = self.eio.sockets.get(eio_sid)
        if type(socket) is AsyncSocket:
            socket.__class__ = DirectSocket
        return await super()._handle_eio_connect(eio_sid, environ)


def _origin_check(gate: OriginGate, server: RealtimeServer | None = None) -> Any:
    """Engine.IO's origin test: ALLOWED_ORIGINS, plus the server's own origin as the Host header
    names it (what Engine.IO allows by default, and what a browser on our own pages sends). A
    refused handshake that names its app (`?app_id=` in the URL) is shown in that app's test
    console."""

    def check(origin: str | None, environ: dict[str, Any]) -> bool:
        if origin is None:
            return False
        host = forwarded_host(environ.get("HTTP_X_FORWARDED_HOST"), environ.get("HTTP_HOST"))
        scheme = environ.get("wsgi.url_scheme", "http").split(",")[0].strip()
        allowed = gate.allows(origin, scheme, host, environ.get("HTTP_SEC_FETCH_SITE"))
        console = server.console if server is not None else None
        # Engine.IO asks twice per request (the refusal, then its CORS headers): report once.
        if (
            not allowed
            and console is not None
            and console.watched
            and not environ.get("replyhq.origin_reported")
        ):
            environ["replyhq.origin_reported"] = True
            task = asyncio.get_running_loop().create_task(
                console.origin_refused(origin, environ.get("QUERY_STRING", ""))
            )
            _origin_reports.add(task)
            task.add_done_callback(_origin_reports.discard)
        return allowed

    return check


_origin_reports: set[asyncio.Task[None]] = set()
