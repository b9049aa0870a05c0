"""What both namespaces share: event routing, acknowledgements, and the caller's address."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import socketio
import structlog
from pydantic import BaseModel, ValidationError

from replyhq.errors import AppError, BadRequest
from replyhq.realtime.presence import LiveSession

if TYPE_CHECKING:
    from replyhq.realtime.server import RealtimeServer
    from replyhq.runtime import Runtime

log = structlog.get_logger(__name__)

Model = TypeVar("Model", bound=BaseModel)
Ack = dict[str, Any]


class Refused(socketio.exceptions.ConnectionRefusedError):  # type: ignore[misc]
    """A refused handshake: the client's `connect_error` carries `{code, error}`."""

    def __init__(self, error: AppError) -> None:
        super().__init__(error.message, {"code": error.code, "error": error.message})


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
        try:
            return await super().trigger_event(event.replace(":", "_"), *args)
        finally:
            if event == "connect":  # (sid, environ[, auth])
                release_handshake(args[1])

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


def room_of_user(app_id: uuid.UUID, end_user_id: uuid.UUID) -> str:
    return f"user:{app_id}:{end_user_id}"


def room_of_agents(app_id: uuid.UUID) -> str:
    return f"agents:{app_id}"


def signin_key(session_id: uuid.UUID) -> str:
    """Where a staff sign-in is kept in presence, as a device id would be."""
    return f"signin:{session_id}"
