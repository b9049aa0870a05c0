"""Pure ASGI middleware: request ids and the body size limit (checked before anything parses)."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence

import structlog
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from replyhq.errors import PayloadTooLarge

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


async def send_error(
    send: Send,
    status: int,
    body: dict[str, object],
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class RequestIdMiddleware:
    """Accepts a sane `X-Request-Id` or makes one; binds it to every log line; echoes it back."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = b""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                given = value  # the last one given
        text = given.decode("latin-1")
        request_id = text if _REQUEST_ID.match(text) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        header = (b"x-request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        # bind and reset by token: structlog's bound_contextvars() reads the whole context
        # first, which cost more than the rest of this layer.
        tokens = structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            structlog.contextvars.reset_contextvars(**tokens)


def _too_large(max_bytes: int) -> dict[str, object]:
    # Made only when refusing: an exception built for every request was 1 % of a send's CPU.
    return PayloadTooLarge(f"The request body is larger than {max_bytes} bytes.").body()


class BodyTooLarge(HTTPException):
    """An HTTPException so that FastAPI re-raises it while parsing, rather than calling it a 400."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"The request body is larger than {max_bytes} bytes.")


class BodyLimitMiddleware:
    """413 for bodies over `max_bytes`: at once from Content-Length, else while streaming.

    Starlette's own limiter answers only once the body is read, and in plain text; this one
    refuses before authentication or any parsing, in the error shape of the API.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        paths: dict[str, int] | None = None,
        patterns: Sequence[tuple[re.Pattern[str], int]] = (),
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.paths = paths or {}  # exact paths with a limit of their own
        self.patterns = list(patterns)  # path patterns with a limit of their own (uploads)

    def _limit(self, path: str) -> int:
        limit = self.paths.get(path)
        if limit is not None:
            return limit
        for pattern, pattern_limit in self.patterns:
            if pattern.match(path):
                return pattern_limit
        return self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self._limit(scope["path"])
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None:
            try:
                too_large = int(length) > max_bytes
            except ValueError:
                too_large = True
            if too_large:
                await send_error(send, 413, _too_large(max_bytes), [(b"connection", b"close")])
                return

        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    raise BodyTooLarge(max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await send_error(send, 413, _too_large(max_bytes), [(b"connection", b"close")])
