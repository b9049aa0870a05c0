"""The SDK's hottest HTTP routes without FastAPI's per-request machinery (issues 21, 16).

`POST /v1/conversations/{id}/messages` is the request customers send most, and `POST /v1/events`
the one they send most often (every tracked batch). FastAPI spends on each one what the work
itself costs: matching every route's pattern in turn, solving the dependency tree (runtime,
caller, three headers, the sub-response), reading the body through its Request, validating the
answer against the response model again. `HotRoutes` is the innermost pure ASGI middleware: it
answers those requests with the work already resolved (the same route function, the same caller
check `deps.sdk_caller`, the same models), and hands every other request, and any one it would
not answer identically, to FastAPI.

Identical by construction, not by imitation:
- it answers only the ordinary case: a UUID path parameter, a JSON Content-Type, a body that the
  route's model accepts, an X-Device-Id within its bound. Anything else (malformed JSON, a field
  error, a missing or oversized header) goes to FastAPI with the body replayed, which answers its
  error;
- errors raised while answering are rendered by the app's own exception handlers (those
  FastAPI's exception middleware would use; an unexpected one propagates to the access log
  middleware, as from FastAPI);
- the routes stay registered, so the OpenAPI schema is FastAPI's; the route object is put in
  the scope as Starlette does, so the access log and metrics name its template;
- the answer is the response model's JSON (`TypeAdapter.dump_json`, as FastAPI serialises a
  response model), with the RateLimit-* headers after it, as FastAPI merges a sub-response's.

If a route function's parameters change, the fast path turns itself off for that route (logged)
rather than call it wrongly, and tests/test_hot_routes.py fails.
"""

from __future__ import annotations

import inspect
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog
from fastapi import APIRouter
from fastapi.routing import APIRoute
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import NoMatchFound
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from replyhq.analytics import routes as analytics_routes
from replyhq.analytics.schemas import EventBatchIn, EventBatchOut
from replyhq.messaging import routes as messaging_routes
from replyhq.messaging.schemas import MessageIn, MessageOut
from replyhq.web.deps import DEVICE_ID_MAX, client_address, sdk_caller

log = structlog.get_logger(__name__)

_UUID = TypeAdapter(uuid.UUID)
_WANTED = {b"x-app-id", b"x-api-key", b"x-device-id", b"content-type"}

Handler = Callable[[Request, Exception], Awaitable[Response]]


@dataclass(frozen=True, eq=False)  # by identity: a key of HotRoutes' lookups
class Hot:
    """A route the fast path answers: its function (with the parameters it is given, in order:
    the path's UUID parameter if any, then `body`, `caller`, `runtime` and maybe `response`),
    the model of its body and the adapter of its answer."""

    pattern: re.Pattern[str]  # the path; group 1 is the UUID parameter, if the route has one
    example: str  # the path with "x" as the parameter (to ask the app whether it serves it)
    router: APIRouter
    endpoint: Callable[..., Awaitable[Any]]
    parameters: tuple[str, ...]
    body: type[BaseModel]
    out: TypeAdapter[Any]

    @property
    def path_parameter(self) -> str | None:
        return self.parameters[0] if self.pattern.groups else None


SEND = Hot(
    re.compile(r"^/v1/conversations/([^/]+)/messages$"),
    "/v1/conversations/x/messages",
    messaging_routes.router,
    messaging_routes.send_message,
    ("conversation_id", "body", "caller", "runtime", "response"),
    MessageIn,
    TypeAdapter(MessageOut),
)
TRACK = Hot(
    re.compile(r"^/v1/events$"),
    "/v1/events",
    analytics_routes.router,
    analytics_routes.track_events,
    ("body", "caller", "runtime"),
    EventBatchIn,
    TypeAdapter(EventBatchOut),
)
HOT = (SEND, TRACK)


def hot_route(app: Any, hot: Hot) -> APIRoute | None:
    """`hot`'s route, if `app` serves it and its function takes what the fast path gives it.
    (FastAPI puts the router's own APIRoute in the scope, so it is looked up there.)"""
    for route in hot.router.routes:
        if isinstance(route, APIRoute) and route.endpoint is hot.endpoint:
            break
    else:
        return None
    probe = {hot.path_parameter: "x"} if hot.path_parameter else {}
    try:
        served = app.url_path_for(route.name, **probe)
    except NoMatchFound:
        return None
    if served != hot.example or route.methods != {"POST"}:
        return None
    if tuple(inspect.signature(hot.endpoint).parameters) != hot.parameters:
        log.warning("hot_route_disabled", route=route.path, reason="parameters changed")
        return None
    return route


class HotRoutes:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._routes: dict[Hot, APIRoute | None] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        for hot in HOT:
            match = hot.pattern.match(scope["path"])
            if match is not None:
                break
        else:
            await self.app(scope, receive, send)
            return
        if hot not in self._routes:
            self._routes[hot] = hot_route(scope["app"], hot)
        route = self._routes[hot]
        headers: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            if name in _WANTED and name not in headers:  # the first, as Starlette reads them
                headers[name] = value
        content_type = headers.get(b"content-type", b"")
        device_id = headers.get(b"x-device-id", b"")
        path_params: dict[str, Any] = {}
        if hot.path_parameter is not None:
            try:  # as FastAPI reads the path
                path_params[hot.path_parameter] = _UUID.validate_python(match.group(1))
            except ValidationError:
                route = None
        if (
            route is None
            or content_type.split(b";", 1)[0].strip().lower() != b"application/json"
            or len(device_id.decode("latin-1")) > DEVICE_ID_MAX
        ):
            await self.app(scope, receive, send)
            return
        received: list[Message] = []
        body = b""
        while True:
            try:
                message = await receive()
            except HTTPException as exc:  # the body limit's, mid-stream: as FastAPI answers it
                handler = _handler(scope["app"], exc)
                if handler is None:
                    raise
                await (await handler(Request(scope, receive), exc))(scope, receive, send)
                return
            received.append(message)
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        try:
            request_body = hot.body.model_validate_json(body) if body else None
        except ValidationError:
            request_body = None
        if request_body is None:
            await self.app(scope, _replay(received, receive), send)  # FastAPI answers it
            return
        await self._send(scope, receive, send, hot, route, path_params, request_body, headers)

    async def _send(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        hot: Hot,
        route: APIRoute,
        path_params: dict[str, Any],
        body: BaseModel,
        headers: dict[bytes, bytes],
    ) -> None:
        # As Starlette's router leaves the scope for the route (the access log reads "route").
        scope["route"] = route
        scope["endpoint"] = route.endpoint
        scope["path_params"] = {name: str(value) for name, value in path_params.items()}
        app = scope["app"]
        runtime = app.state.runtime
        sub_response = Response()  # what FastAPI gives a route's `response` parameter
        del sub_response.headers["content-length"]
        sub_response.status_code = None  # type: ignore[assignment]
        try:
            caller, verdict = await sdk_caller(
                runtime,
                client_address(Request(scope)),
                _text(headers.get(b"x-app-id")),
                _text(headers.get(b"x-api-key")),
                _text(headers.get(b"x-device-id")),
            )
            sub_response.headers.update(verdict.headers())
            given = {"body": body, "caller": caller, "runtime": runtime, "response": sub_response}
            out = await route.endpoint(
                **path_params, **{name: given[name] for name in hot.parameters if name in given}
            )
        except Exception as exc:
            handler = _handler(app, exc)
            if handler is None:
                raise  # as from FastAPI: the access log middleware answers the fault
            response = await handler(Request(scope, receive), exc)
            await response(scope, receive, send)
            return
        response = Response(
            hot.out.dump_json(out, by_alias=True),
            status_code=sub_response.status_code or route.status_code or 200,
            media_type="application/json",
        )
        response.headers.raw.extend(sub_response.headers.raw)
        await response(scope, receive, send)


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")


def _handler(app: Any, exc: Exception) -> Handler | None:
    """The handler Starlette's exception middleware would pick (by the exception's class); the
    catch-all Exception/500 handler is the server error middleware's, outside every other."""
    handlers: dict[Any, Handler] = app.exception_handlers
    if isinstance(exc, HTTPException) and exc.status_code in handlers:
        return handlers[exc.status_code]
    for cls in type(exc).__mro__:
        if cls is Exception:
            return None
        if cls in handlers:
            return handlers[cls]
    return None


def _replay(received: list[Message], receive: Receive) -> Receive:
    """`receive` that gives back the messages already read, then reads on."""
    pending = list(received)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay
