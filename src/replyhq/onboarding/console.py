"""The test console: a live stream of one app's SDK traffic for its OWNERs and ADMINs.

Entries (`console:entries {entries: [...]}` on /admin, batched every 0.1 s at most, to the room
`console:<app id>`, which only a member with `settings:read` who sent `console:subscribe`
joins), each `{id, at, type, device_id, user_id, data}`
with `type` one of connect, connect_refused, disconnect, identify, message, typing, event (a
tracked event), refused (an HTTP call or a socket event refused, with its code and reason: a bad
key, a wrong user_hash, a rate limit, the plan's limit, a browser origin not allowed...).
Secrets never appear:
entries are built from named fields, never from headers, and `redact` blanks any key that names
a credential.

It costs nothing when nobody watches: every source asks `watching(app_id)`, a set lookup, before
building anything (the committed-event observer is not even called: replyhq.events.Observers
asks first), and the HTTP middleware checks only that the set is empty. When somebody watches,
the request queues a tuple; the entry is built and sent by one task per process.

Which apps are watched, in any process, is kept in one Redis sorted set
(member `<app id>:<process>`, scored by when it lapses): each process with watchers renews its
own members and every process reads the set once a second, so a console opened in one process
hears traffic handled by any other within a second (at once in its own).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import structlog
from redis.asyncio import Redis
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from replyhq.analytics.service import TRACKED
from replyhq.events import Event
from replyhq.runtime import cancel_and_wait
from replyhq.web.origins import REFUSED_ORIGIN

if TYPE_CHECKING:
    from replyhq.realtime.presence import LiveSession

log = structlog.get_logger(__name__)

STAFF = "/admin"
ENTRY = "console:entries"
BATCH_SECONDS = 0.1
MAX_BATCH = 500
REFRESH_SECONDS = 1.0
LAPSE_SECONDS = 10.0  # a process that stops renewing (it died) stops counting after this
QUEUE = 10_000  # entries waiting to be sent, per process
SECRET_KEYS = frozenset(
    {
        "api_key",
        "user_hash",
        "push_token",
        "token",
        "access_token",
        "refresh_token",
        "password",
        "secret_key",
        "sdk_key",
        "identity_secret",
        "authorization",
    }
)


# An entry as the request leaves it: app, time (epoch seconds), type, device, user, data.
_Queued = tuple[uuid.UUID, float, str, str | None, str | None, dict[str, Any] | None]


def room_of_console(app_id: uuid.UUID) -> str:
    return f"console:{app_id}"


def redact(data: Any) -> Any:
    """`data` with every value under a credential's name replaced by "[redacted]"."""
    if isinstance(data, Mapping):
        return {
            k: "[redacted]" if str(k).lower() in SECRET_KEYS else redact(v) for k, v in data.items()
        }
    if isinstance(data, list):
        return [redact(v) for v in data]
    return data


def _app_id(raw: Any) -> uuid.UUID | None:
    if not isinstance(raw, str) or len(raw) > 64:
        return None
    try:
        return uuid.UUID(raw)
    except ValueError:
        return None


def _text(value: Any, limit: int = 256) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


class Console:
    def __init__(self, prefix: str) -> None:
        self._redis: Redis | None = None
        self._key = prefix + "console-watchers"
        self._me = uuid.uuid4().hex
        self._emit: Any = None  # the Socket.IO server's emit: reaches every process' sockets
        self._local: dict[uuid.UUID, set[str]] = {}
        self._remote: frozenset[uuid.UUID] = frozenset()
        self.watched: frozenset[uuid.UUID] = frozenset()
        self._task: asyncio.Task[None] | None = None
        # Entries wait here for one sender, in order: the request that made one never waits on
        # its delivery (a full queue drops entries rather than slow the traffic it shows).
        self._queue: asyncio.Queue[_Queued] = asyncio.Queue(QUEUE)
        self._sender: asyncio.Task[None] | None = None

    # --- who watches -----------------------------------------------------------------------

    def watching(self, app_id: uuid.UUID | None) -> bool:
        return app_id is not None and app_id in self.watched

    def _recompute(self) -> None:
        self.watched = frozenset(self._local) | self._remote

    async def subscribe(self, sid: str, app_id: uuid.UUID) -> None:
        self._local.setdefault(app_id, set()).add(sid)
        self._recompute()
        try:
            assert self._redis is not None, "console used before start()"
            await self._redis.zadd(self._key, {self._member(app_id): time.time() + LAPSE_SECONDS})
        except Exception as exc:  # this process' traffic still reaches the console
            log.warning("console_watch_not_shared", error=str(exc))

    async def unsubscribe(self, sid: str, app_id: uuid.UUID) -> None:
        sids = self._local.get(app_id)
        if sids is None:
            return
        sids.discard(sid)
        if sids:
            return
        del self._local[app_id]
        self._recompute()
        try:
            assert self._redis is not None, "console used before start()"
            await self._redis.zrem(self._key, self._member(app_id))
        except Exception as exc:
            log.warning("console_watch_not_shared", error=str(exc))

    def _member(self, app_id: uuid.UUID) -> str:
        return f"{app_id}:{self._me}"

    async def refresh(self) -> None:
        """Renew this process' watches and read everyone's (one pipeline)."""
        now = time.time()
        assert self._redis is not None, "console used before start()"
        async with self._redis.pipeline(transaction=False) as pipe:
            if self._local:
                pipe.zadd(self._key, {self._member(a): now + LAPSE_SECONDS for a in self._local})
            pipe.zremrangebyscore(self._key, "-inf", now)
            pipe.zrange(self._key, 0, -1)
            results = await pipe.execute()
        members = results[-1]
        remote = set()
        for member in members:
            text = member.decode() if isinstance(member, bytes) else str(member)
            app_id = _app_id(text.split(":", 1)[0])
            if app_id is not None:
                remote.add(app_id)
        self._remote = frozenset(remote)
        self._recompute()

    def start(self, redis: Redis, emit: Any) -> None:
        self._redis, self._emit = redis, emit
        self._task = asyncio.create_task(self._run(), name="console-watchers")
        self._sender = asyncio.create_task(self._send(), name="console-entries")

    async def stop(self) -> None:
        for task in (self._task, self._sender):
            if task is not None:
                await cancel_and_wait(task)
        if self._local and self._redis is not None:
            try:
                await self._redis.zrem(self._key, *(self._member(a) for a in self._local))
            except Exception as exc:
                log.warning("console_watch_not_shared", error=str(exc))

    async def _run(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception as exc:  # Redis away: local watchers still work
                log.warning("console_refresh_failed", error=str(exc))
            await asyncio.sleep(REFRESH_SECONDS)

    # --- entries ---------------------------------------------------------------------------

    def publish(
        self,
        app_id: uuid.UUID,
        kind: str,
        *,
        device_id: str | None = None,
        user_id: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        """Queue an entry for `app_id`'s watchers (nothing when nobody watches it). The request
        pays for a tuple and a queue slot: the entry itself (its id, its time in ISO form, the
        redaction) is made by the sender, off the request's path."""
        if app_id not in self.watched or self._emit is None:
            return
        try:
            self._queue.put_nowait((app_id, time.time(), kind, device_id, user_id, data))
        except asyncio.QueueFull:
            log.warning("console_entry_dropped", reason="queue full")

    async def _send(self) -> None:
        """Entries go out in batches, one `console:entries` per app every BATCH_SECONDS at most:
        a busy app's console costs one emit per batch, not one per call."""
        while True:
            batch = [await self._queue.get()]
            await asyncio.sleep(BATCH_SECONDS)
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            for app_id, entries in entries_by_app(batch).items():
                try:
                    await self._emit(
                        ENTRY, {"entries": entries}, room=room_of_console(app_id), namespace=STAFF
                    )
                except Exception as exc:  # a convenience: the traffic itself goes on
                    log.warning("console_entry_lost", error=str(exc))

    # The committed events the console shows (its observer is told only these, and only for
    # the apps somebody watches: replyhq.events.Observers).
    EVENTS = ("device:identified", "message:new", "typing", TRACKED)

    async def observe(self, event: Event) -> None:
        """Committed domain events: identifies, messages, typing, tracked events."""
        data = event.data
        if event.name == "device:identified":
            self.publish(
                event.app_id,
                "identify",
                device_id=data.get("device_id"),
                user_id=data.get("user_id"),
                data=data,
            )
        elif event.name == "message:new":
            message = data.get("message", {})
            author = message.get("author") or {}
            self.publish(
                event.app_id,
                "message",
                user_id=author.get("id") if message.get("sender") == "user" else None,
                data={
                    "sender": message.get("sender"),
                    "conversation_id": message.get("conversation_id"),
                    "seq": message.get("seq"),
                    "client_msg_id": message.get("client_msg_id"),
                    "body": message.get("body"),
                },
            )
        elif event.name == "typing" and (data.get("who") or {}).get("type") == "user":
            self.publish(
                event.app_id,
                "typing",
                user_id=data["who"].get("id"),
                data={"conversation_id": data.get("conversation_id"), "typing": data.get("typing")},
            )
        elif event.name == TRACKED:
            transport = data.get("transport")
            for tracked in data.get("events", ()):
                self.publish(
                    event.app_id,
                    "event",
                    device_id=data.get("device_id"),
                    data={
                        "name": tracked.get("name"),
                        "properties": tracked.get("properties") or {},
                        "timestamp": tracked.get("timestamp"),
                        "transport": transport,
                    },
                )

    async def socket_event(
        self, event: str, args: tuple[Any, ...], outcome: dict[str, Any], live: LiveSession | None
    ) -> None:
        """A device socket's connect (accepted or refused), disconnect, or refused event."""
        app_id: uuid.UUID | None
        device_id: str | None
        person: str | None
        if live is not None:
            app_id, device_id = live.app_id, live.device_id
            person = str(live.person_id)
        else:  # a refused handshake: the app and device it claimed
            auth = args[2] if len(args) > 2 and isinstance(args[2], dict) else {}
            app_id, device_id = _app_id(auth.get("app_id")), _text(auth.get("device_id"))
            person = _text(auth.get("user_id"))
        if app_id is None or app_id not in self.watched:
            return
        if event == "connect":
            kind = "connect" if outcome.get("ok") else "connect_refused"
        elif event == "disconnect":
            kind = "disconnect"
        elif not outcome.get("ok"):
            kind = "refused"
        else:
            return
        data: dict[str, Any] = {"transport": "socket"}
        if event not in ("connect", "disconnect"):
            data["event"] = event
        if not outcome.get("ok"):
            data.update(code=outcome.get("code"), reason=outcome.get("error"))
        self.publish(app_id, kind, device_id=device_id, user_id=person, data=data)

    async def origin_refused(self, origin: str, query: str) -> None:
        """A socket handshake from a page whose origin is not in ALLOWED_ORIGINS, naming its
        app in the URL (`?app_id=`): the browser's own preflights name no app."""
        values = parse_qs(query[:2048]).get("app_id") or [""]
        app_id = _app_id(values[0])
        if app_id is None or app_id not in self.watched:
            return
        self.publish(
            app_id,
            "connect_refused",
            data={
                "transport": "socket",
                "code": "ORIGIN_REFUSED",
                "reason": f"The page's origin {origin[:200]} is not in ALLOWED_ORIGINS.",
                "origin": origin[:200],
            },
        )


def entries_by_app(batch: list[_Queued]) -> dict[uuid.UUID, list[dict[str, Any]]]:
    """The queued entries made whole (id, ISO time, redacted data), grouped by app, in order."""
    by_app: dict[uuid.UUID, list[dict[str, Any]]] = {}
    for app_id, at, kind, device_id, user_id, data in batch:
        by_app.setdefault(app_id, []).append(
            {
                "id": uuid.uuid4().hex,
                "at": datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z"),
                "type": kind,
                "device_id": device_id,
                "user_id": user_id,
                "data": redact(data or {}),
            }
        )
    return by_app


class ConsoleRefusals:
    """ASGI middleware: a refused /v1 call (4xx) of a watched app becomes a console entry, with
    its code and reason, and so does any HTTP request of a watched app from a browser origin
    not in ALLOWED_ORIGINS (`ORIGIN_REFUSED`, marked by the CORS middleware inside this one).
    The app is the one the request names, proven or not (a bad key is exactly what the console
    is for): its X-App-Id header, else an `app_id` in its query string, which is all a CORS
    preflight or a `no-cors` probe can carry. A bare preflight names no app: it is only logged.
    Nothing is read or wrapped while nobody watches."""

    def __init__(self, app: ASGIApp, console: Console) -> None:
        self.app = app
        self.console = console

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        console = self.console
        if not console.watched or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        app_id = _app_id(headers.get("x-app-id")) or _query_app_id(scope)
        if app_id is None or not console.watching(app_id):
            await self.app(scope, receive, send)
            return
        status = 0
        body = bytearray()

        async def spy(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body" and 400 <= status < 500:
                body.extend(message.get("body", b"")[: max(0, 4096 - len(body))])
            await send(message)

        await self.app(scope, receive, spy)
        path = str(scope.get("path", ""))
        common = {"transport": "http", "method": scope.get("method"), "path": path}
        device_id = _text(headers.get("x-device-id"), 128)
        origin = scope.get(REFUSED_ORIGIN)
        if isinstance(origin, str):
            preflight = scope.get("method") == "OPTIONS" and bool(
                headers.get("access-control-request-method")
            )
            console.publish(
                app_id,
                "refused",
                device_id=device_id,
                data={
                    **common,
                    "status": status,
                    "code": "ORIGIN_REFUSED",
                    "reason": _origin_reason(origin[:200], preflight),
                    "origin": origin[:200],
                },
            )
        elif 400 <= status < 500 and path.startswith("/v1/"):
            console.publish(
                app_id,
                "refused",
                device_id=device_id,
                data={**common, "status": status, **_reason(bytes(body))},
            )


def _query_app_id(scope: Scope) -> uuid.UUID | None:
    query: bytes = scope.get("query_string", b"")
    if b"app_id=" not in query:
        return None
    return _app_id((parse_qs(query[:2048].decode("latin-1")).get("app_id") or [""])[0])


def _origin_reason(origin: str, preflight: bool) -> str:
    if preflight:
        return (
            f"The page's origin {origin} is not in ALLOWED_ORIGINS: the browser's preflight was "
            "refused, so the call itself was never sent."
        )
    return (
        f"The page's origin {origin} is not in ALLOWED_ORIGINS: the browser does not let the "
        "page read this answer."
    )


def _reason(body: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(body)
    except ValueError:
        return {}
    if not isinstance(parsed, dict):
        return {}
    out = {"code": parsed.get("code"), "reason": parsed.get("error")}
    if "retry_after" in parsed:
        out["retry_after"] = parsed["retry_after"]
    return out
