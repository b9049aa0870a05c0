"""The send path's HTTP route without FastAPI's per-request machinery (issue 21).

`POST /v1/conversations/{id}/messages` is the request customers send most. FastAPI spends on each
one what the send itself costs: matching every route's pattern in turn, solving the dependency
tree (runtime, caller, three headers, the sub-response), reading the body through its Request,
validating the answer against the response model again. `HotRoutes` is the innermost pure ASGI
middleware: it answers that one request with the work already resolved (the same route function,
the same caller check `deps.sdk_caller`, the same models), and hands every other request, and any
send it would not answer identically, to FastAPI.

Identical by construction, not by imitation:
- it answers only the ordinary case: a UUID path, a JSON Content-Type, a body that `MessageIn`
  accepts, an X-Device-Id within its bound. Anything else (malformed JSON, a field error, a
  missing or oversized header) goes to FastAPI with the body replayed, which answers its error;
- errors raised while answering are rendered by the app's own exception handlers (those
  FastAPI's exception middleware would use; an unexpected one propagates to the access log
  middleware, as from FastAPI);
- the route stays registered, so the OpenAPI schema is FastAPI's; the route object is put in
  the scope as Starlette does, so the access log and metrics name its template;
- the answer is the response model's JSON (`TypeAdapter.dump_json`, as FastAPI serialises a
  response model), with the RateLimit-* headers after it, as FastAPI merges a sub-response's.

If the route function's parameters change, the fast path turns itself off (logged) rather than
call it wrongly, and tests/test_hot_routes.py fails.
"""

from __future__ import annotations

import inspect
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from fastapi.routing import APIRoute
from pydantic import TypeAdapter, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import NoMatchFound
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from replyhq.messaging import routes as messaging_routes
from replyhq.messaging.schemas import MessageIn, MessageOut
from replyhq.web.deps import DEVICE_ID_MAX, client_address, sdk_caller

log = structlog.get_logger(__name__)

_SEND_PATH = re.compile(r"^/v1/conversations/([^/]+)/messages$")
_SEND_PARAMETERS = ("conversation_id", "body", "caller", "runtime", "response")
_MESSAGE_OUT = TypeAdapter(MessageOut)
_UUID = TypeAdapter(uuid.UUID)
_WANTED = {b"x-app-id", b"x-api-key", b"x-device-id", b"content-type"}

Handler = Callable[[Request, Exception], Awaitable[Response]]


def send_route(app: Any) -> APIRoute | None:
    """The message POST's route, if `app` serves it and its function takes what the fast path
    gives it. (FastAPI puts the router's own APIRoute in the scope, so it is looked up there.)"""
    endpoint = messaging_routes.send_message
    for route in messaging_routes.router.routes:
        if isinstance(route, APIRoute) and route.endpoint is endpoint:
            break
    else:
        return None
    try:
        served = app.url_path_for(route.name, conversation_id="x")
    except NoMatchFound:
        return None
    if served != "/v1/conversations/x/messages" or route.methods != {"POST"}:
        return None
    if tuple(inspect.signature(endpoint).parameters) != _SEND_PARAMETERS:
        log.warning("hot_route_disabled", route=route.path, reason="parameters changed")
        return None
    return route


class HotRoutes:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._route: APIRoute | None = None
        self._looked_up = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        match = _SEND_PATH.match(scope["path"])
        if match is None:
            await self.app(scope, receive, send)
            return
        if not self._looked_up:
            self._route, self._looked_up = send_route(scope["app"]), True
        route = self._route
        headers: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            if name in _WANTED and name not in headers:  # the first, as Starlette reads them
                headers[name] = value
        content_type = headers.get(b"content-type", b"")
        device_id = headers.get(b"x-device-id", b"")
        try:
            conversation_id = _UUID.validate_python(match.group(1))  # as FastAPI reads the path
        except ValidationError:
            conversation_id = None
        if (
            route is None
            or conversation_id is None
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
            request_body = MessageIn.model_validate_json(body) if body else None
        except ValidationError:
            request_body = None
        if request_body is None:
            await self.app(scope, _replay(received, receive), send)  # FastAPI answers it
            return
        await self._send(scope, receive, send, route, conversation_id, request_body, headers)

    async def _send(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        route: APIRoute,
        conversation_id: uuid.UUID,
        body: MessageIn,
        headers: dict[bytes, bytes],
    ) -> None:
        # As Starlette's router leaves the scope for the route (the access log reads "route").
        scope["route"] = route
        scope["endpoint"] = route.endpoint
        scope["path_params"] = {"conversation_id": str(conversation_id)}
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
            out = await route.endpoint(
                conversation_id=conversation_id,
                body=body,
                caller=caller,
                runtime=runtime,
                response=sub_response,
            )
        except Exception as exc:
            handler = _handler(app, exc)
            if handler is None:
                raise  # as from FastAPI: the access log middleware answers the fault
            response = await handler(Request(scope, receive), exc)
            await response(scope, receive, send)
            return
        response = Response(
            _MESSAGE_OUT.dump_json(out, by_alias=True),
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
