"""One access-log line and one latency observation per HTTP request (pure ASGI, inside the request
id middleware so that both carry the request id); and the one log line and Sentry event of a
request that fails with an unexpected exception, answered here with the API's 500 body."""

from __future__ import annotations

import time

import sentry_sdk
import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from replyhq.observability.metrics import observe_request
from replyhq.web.middleware import send_error

log = structlog.get_logger("replyhq.access")

# Probes and scrapes would drown the log; they are logged at DEBUG.
_QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
# Fields that authentication binds during a request (see observability.errors.identify).
_REQUEST_FIELDS = ("app_id", "staff_id")
# The body of every 500, as web/errors.py renders it.
INTERNAL_ERROR: dict[str, object] = {
    "error": "Something went wrong on our side.",
    "code": "INTERNAL_ERROR",
}


def route_of(scope: Scope) -> str:
    """The route template (`/v1/conversations/{conversation_id}`), never the raw path: metric
    labels stay bounded whatever clients send."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "<unmatched>"


class AccessLogMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering
        answered = False

        async def send_and_watch(message: Message) -> None:
            nonlocal status, answered
            if message["type"] == "http.response.start":
                status, answered = message["status"], True
            await send(message)

        bound_before = set(structlog.contextvars.get_contextvars())
        try:
            await self.app(scope, receive, send_and_watch)
        except Exception as exc:
            # Here, unlike further out, the request's id and app are still bound: the one line
            # and the Sentry event about this fault carry them.
            status = 500
            log.exception("unhandled_error", method=scope["method"], path=scope["path"])
            sentry_sdk.capture_exception(exc)
            if answered:
                raise
            await send_error(send, 500, INTERNAL_ERROR)
        finally:
            seconds = time.perf_counter() - started
            route = route_of(scope)
            observe_request(scope["method"], route, status, seconds)
            path = scope["path"]
            client = scope.get("client")
            (log.debug if path in _QUIET_PATHS else log.info)(
                "request",
                method=scope["method"],
                path=path,
                route=route,
                status=status,
                duration_ms=round(seconds * 1000, 2),
                client=client[0] if client else None,
            )
            # What authentication bound belongs to this request only.
            stale = [k for k in _REQUEST_FIELDS if k not in bound_before]
            structlog.contextvars.unbind_contextvars(*stale)
