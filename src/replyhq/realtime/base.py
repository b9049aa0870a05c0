"""What both namespaces share: event routing, acknowledgements, the caller's address, and what
each event leaves behind: its log lines' context, one `socket_event` line, the connections gauge."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import socketio
import structlog
from pydantic import BaseModel, ValidationError

from replyhq.errors import AppError, BadRequest, ServiceUnavailable
from replyhq.observability.metrics import SOCKETIO_CONNECTIONS
from replyhq.realtime.access import REVOKED_ACK, Grant
from replyhq.realtime.presence import LiveSession
from replyhq.web.nul import NulCharacter, contains_nul

if TYPE_CHECKING:
    from replyhq.realtime.server import RealtimeServer
    from replyhq.runtime import Runtime

log = structlog.get_logger(__name__)

Model = TypeVar("Model", bound=BaseModel)
_cutting: set[asyncio.Task[Any]] = set()  # disconnects under way (asyncio keeps weak references)
Ack = dict[str, Any]

# What authentication binds during a handshake (observability.errors.identify): it belongs to
# that event only, as to one HTTP request.
_EVENT_FIELDS = ("app_id", "staff_id")


class Refused(socketio.exceptions.ConnectionRefusedError):  # type: ignore[misc]
    """A refused handshake: the client's `connect_error` carries `{code, error}`."""

    def __init__(self, error: AppError) -> None:
        data: dict[str, Any] = {"code": error.code, "error": error.message}
        if error.extra.get("details"):
            data["details"] = error.extra["details"]
        super().__init__(error.message, data)


def _nul_refusal(event: str, args: tuple[Any, ...]) -> Ack | None:
    """PostgreSQL cannot store a NUL: refused in every event's data, as web/nul.py does for HTTP
    (it failed a handshake with no answer at all, an event with INTERNAL_ERROR)."""
    data = args[2:] if event == "connect" else args[1:]  # (sid, environ, auth) / (sid, *data)
    if event == "disconnect" or not contains_nul(data):
        return None
    error = NulCharacter("auth" if event == "connect" else "payload")
    if event == "connect":
        raise Refused(error)
    return {"ok": False, **error.body()}


def parse(model: type[Model], data: Any) -> Model:
    if not isinstance(data, dict):
        raise BadRequest("The event payload must be an object.", code="VALIDATION_ERROR")
    return model.model_validate(data)


# python-socketio keeps each connection's handshake environ for the connection's whole life, but
# after connect only the ASGI scope (the peer's address) is read. The rest (every header decoded
# again, Engine.IO's request-body reader, a class made per request) is ~4 KiB per idle socket.
KEPT_AFTER_CONNECT = frozenset({"asgi.scope", "asgi.receive", "asgi.send"})


def release_handshake(environ: dict[str, Any]) -> None:
    for key in [k for k in environ if k not in KEPT_AFTER_CONNECT]:
        del environ[key]


def address_of(environ: dict[str, Any]) -> str:
    client = environ.get("asgi.scope", {}).get("client")
    return str(client[0]) if client else "unknown"


class Namespace(socketio.AsyncNamespace):  # type: ignore[misc]
    """Routes `a:b` events to `on_a_b` and answers each with `{ok: true, ...}` or
    `{ok: false, code, error}`, whatever the handler raised."""

    def __init__(self, namespace: str, server: RealtimeServer) -> None:
        super().__init__(namespace)
        self.realtime = server

    @property
    def runtime(self) -> Runtime:
        return self.realtime.runtime

    async def trigger_event(self, event: str, *args: Any) -> Any:
        """Run the handler of `event` with a request id of its own and the caller's app (and
        staff user) on every log line; then one `socket_event` line, as an HTTP request has."""
        fields = {"request_id": uuid.uuid4().hex}
        state: dict[str, Any] | None = None  # the socket's session, for its own events
        if event != "connect":  # a handshake's caller is known once it is authenticated
            session = await self.get_session(args[0])
            live: LiveSession | None = session.get("live")
            if event != "disconnect":
                state = session
            if live is not None:
                fields["app_id"] = str(live.app_id)
                if live.kind == "staff":
                    fields["staff_id"] = str(live.person_id)
        bound_before = set(structlog.contextvars.get_contextvars())
        started = time.perf_counter()
        outcome: dict[str, Any] = {"ok": False, "code": "INTERNAL_ERROR"}
        reply: Any = None  # the acknowledgement (or refusal) itself, for the test console
        try:
            with structlog.contextvars.bound_contextvars(**fields):
                try:
                    refusal = None if state is None else await self._refusal(args[0], state, event)
                    if refusal is None:
                        refusal = _nul_refusal(event, args)
                    if refusal is not None:
                        outcome, reply = _outcome(refusal), refusal
                        return refusal
                    result = await super().trigger_event(event.replace(":", "_"), *args)
                    outcome, reply = _outcome(result), result
                    return result
                except Refused as exc:
                    outcome = {"ok": False, "code": exc.error_args.get("data", {}).get("code")}
                    reply = {"ok": False, **exc.error_args.get("data", {})}
                    raise
                finally:
                    self._count(event, outcome["ok"])
                    console = self.realtime.console
                    if console is not None and console.watched and self.namespace == "/":
                        told = reply if isinstance(reply, dict) and "ok" in reply else outcome
                        await self._tell_console(event, args, told)
                    log.info(
                        "socket_event",
                        namespace=self.namespace,
                        socket_event=event,
                        **outcome,
                        duration_ms=round((time.perf_counter() - started) * 1000, 2),
                    )
        finally:
            stale = [k for k in _EVENT_FIELDS if k not in bound_before]
            structlog.contextvars.unbind_contextvars(*stale)
            if event == "connect":  # (sid, environ[, auth])
                release_handshake(args[1])

    async def _tell_console(self, event: str, args: tuple[Any, ...], outcome: Ack) -> None:
        """A device's connect, disconnect or refused event, for its app's test console."""
        console = self.realtime.console
        assert console is not None
        try:
            live = (await self.get_session(args[0])).get("live")
            await console.socket_event(event, args, outcome, live)
        except Exception as exc:  # the console is a convenience; the socket goes on
            log.warning("console_entry_lost", error=str(exc))

    async def _refusal(self, sid: str, state: dict[str, Any], event: str) -> Ack | None:
        """None when the socket may send `event` now: within its rate, and its access holds. A
        socket whose access was revoked is cut; when its access cannot be read (PostgreSQL
        away) the event is refused, the socket kept."""
        grant: Grant | None = state.get("grant")
        try:
            allowed = grant is None or await self.realtime.access.allows(grant)
        except Exception as exc:
            log.warning("socket_access_unchecked", namespace=self.namespace, error=str(exc))
            return {"ok": False, **ServiceUnavailable("Try again shortly.").body()}
        if allowed:
            return self.realtime.limits.refusal(state, event)
        log.info("socket_access_revoked", namespace=self.namespace)
        # After the acknowledgement, which python-socketio sends as this returns: a client
        # already out of the namespace would drop it.
        task = asyncio.create_task(self.disconnect(sid))
        _cutting.add(task)
        task.add_done_callback(_cutting.discard)
        return REVOKED_ACK

    def _count(self, event: str, ok: bool) -> None:
        """socketio_connections: up on an accepted handshake, down on each disconnect (only an
        accepted socket is ever disconnected)."""
        if event == "connect" and ok:
            SOCKETIO_CONNECTIONS.labels(self.namespace).inc()
        elif event == "disconnect":
            SOCKETIO_CONNECTIONS.labels(self.namespace).dec()

    async def answer(self, work: Callable[[], Awaitable[Ack]]) -> Ack:
        try:
            return {"ok": True, **await work()}
        except AppError as exc:
            return {"ok": False, **exc.body()}
        except ValidationError as exc:
            details = [
                {"field": ".".join(str(p) for p in e["loc"]) or "payload", "reason": e["msg"]}
                for e in exc.errors()
            ]
            return {
                "ok": False,
                "code": "VALIDATION_ERROR",
                "error": "The event is invalid.",
                "details": details,
            }
        except Exception:
            log.exception("socket_event_failed", namespace=self.namespace)
            return {"ok": False, "code": "INTERNAL_ERROR", "error": "Something went wrong."}

    async def live(self, sid: str) -> LiveSession:
        session: LiveSession = (await self.get_session(sid))["live"]
        return session


def _outcome(result: Any) -> dict[str, Any]:
    """ok and code of an event's result: its acknowledgement, or None for connect/disconnect."""
    if isinstance(result, dict) and "ok" in result:
        return {"ok": bool(result["ok"]), "code": result.get("code")}
    return {"ok": True, "code": None}


def room_of_user(app_id: uuid.UUID, end_user_id: uuid.UUID) -> str:
    return f"user:{app_id}:{end_user_id}"


def room_of_devices(app_id: uuid.UUID) -> str:
    """Every SDK socket of the app (the messenger's settings go to all of them)."""
    return f"devices:{app_id}"


def room_of_agents(app_id: uuid.UUID) -> str:
    return f"agents:{app_id}"


def signin_key(session_id: uuid.UUID) -> str:
    """Where a staff sign-in is kept in presence, as a device id would be."""
    return f"signin:{session_id}"
