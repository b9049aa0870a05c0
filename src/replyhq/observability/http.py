"""One access-log line and one latency observation per HTTP request (pure ASGI, inside the request
id middleware so that both carry the request id); and the one log line and Sentry event of a
request that fails with an unexpected exception, answered here with the API's 500 body."""

from __future__ import annotations

import time

import sentry_sdk
import structlog
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from replyhq.observability.metrics import observe_request
from replyhq.web.middleware import send_error

log = structlog.get_logger("replyhq.access")

# Probes and scrapes would drown the log; they are logged at DEBUG.
_QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
# Fields that authentication binds during a request (see observability.errors.identify).
_REQUEST_FIELDS = ("app_id", "staff_id")
# The body of a 500 when the app has no handler of its own (web/errors.py renders the same).
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
            # Answered here rather than by Starlette outside every middleware: the request's id
            # and app are still bound, so the one log line and Sentry event of the fault carry
            # them. The app's own handler for unexpected errors still renders and logs it.
            status = 500
            sentry_sdk.capture_exception(exc)
            if answered:
                log.exception("unhandled_error", method=scope["method"], path=scope["path"])
                raise
            await self._answer_fault(scope, receive, send, exc)
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

    async def _answer_fault(
        self, scope: Scope, receive: Receive, send: Send, exc: Exception
    ) -> None:
        app = scope.get("app")
        handlers = getattr(app, "exception_handlers", {})
        handler = handlers.get(Exception) or handlers.get(500)
        if handler is None:
            log.exception("unhandled_error", method=scope["method"], path=scope["path"])
            await send_error(send, 500, INTERNAL_ERROR)
            return
        response = await handler(Request(scope, receive), exc)
        if "x-request-id" in response.headers:
            del response.headers["x-request-id"]  # the request id middleware adds it on the way
        await response(scope, receive, send)
