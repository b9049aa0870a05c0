"""The NUL character is refused wherever a request carries text, before any route runs (and in
Socket.IO events: realtime/base.py uses contains_nul).

PostgreSQL's text and jsonb cannot store U+0000, so a NUL that reached a query failed it (a 500)
after authentication and rate limits had run. One check here covers every route, present and
future: the path, the query string, the headers and JSON or form bodies (the body is at most
MAX_BODY_BYTES: this middleware runs inside the body limit).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from replyhq.errors import AppError, BadRequest
from replyhq.web.middleware import send_error

# A JSON string writes NUL as the escape \u0000: one backslash (or an odd run of them; an even
# run is escaped backslashes followed by the plain letters "u0000").
_ESCAPED_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")

# Called with the request and its body when a request is refused for a NUL; it may raise an
# AppError to answer instead (a sign-in refused this way still counts as a failed sign-in).
RefusalHook = Callable[[Scope, bytes], Awaitable[None]]


class NulCharacter(BadRequest):
    code = "NUL_CHARACTER"
    message = "Text must not contain the NUL character (\\u0000)."

    def __init__(self, where: str) -> None:
        super().__init__(details=[{"field": where, "reason": "contains the NUL character"}])


def contains_nul(value: object) -> bool:
    """Whether decoded data (a Socket.IO payload: dicts, lists, strings) holds a NUL anywhere,
    keys included; without recursion, whatever its nesting."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, (list, tuple)):
            pending.extend(item)
    return False


def _outside_body(scope: Scope) -> str | None:
    """Where a NUL sits in the request line or headers, if anywhere."""
    if "\x00" in scope["path"]:
        return "path"
    query: bytes = scope.get("query_string", b"")
    if b"%00" in query or b"\x00" in query:
        return "query"
    for _, value in scope["headers"]:
        if b"\x00" in value:
            return "headers"
    return None


def _body_kind(scope: Scope) -> str | None:
    """How to read the body for a NUL: "json", "form", or None (not text FastAPI would parse)."""
    content_type = b""
    for name, value in scope["headers"]:
        if name == b"content-type":
            content_type = value.lower()
            break
    # FastAPI parses a body without a Content-Type as JSON.
    if not content_type or b"json" in content_type:
        return "json"
    if content_type.startswith(b"application/x-www-form-urlencoded"):
        return "form"
    if content_type.startswith(b"text/"):
        return "text"
    return None


def _body_has_nul(body: bytes, kind: str) -> bool:
    if b"\x00" in body:
        return True
    if kind == "json":
        return b"\\u0000" in body and _ESCAPED_NUL.search(body) is not None
    return kind == "form" and b"%00" in body


class NulRefusalMiddleware:
    """400 NUL_CHARACTER for a request with a NUL in its path, query, headers or body."""

    def __init__(
        self,
        app: ASGIApp,
        on_refused: Mapping[str, RefusalHook] | None = None,
        binary: Sequence[re.Pattern[str]] = (),
    ) -> None:
        self.app = app
        self.on_refused = dict(on_refused or {})  # by path
        # Paths whose body is a file's bytes (uploads): streamed to storage, never read here.
        self.binary = list(binary)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        where = _outside_body(scope)
        body = b""
        kind = _body_kind(scope)
        if any(p.match(scope["path"]) for p in self.binary):
            kind = None
        if kind is not None and scope["method"] not in ("GET", "HEAD", "OPTIONS"):
            read = await _read_body(receive)
            if read is None:
                return  # the client has gone
            body = read
            receive = _replay(body, receive)
            if where is None and _body_has_nul(body, kind):
                where = "body"
        if where is None:
            await self.app(scope, receive, send)
            return
        await self._refuse(scope, body, NulCharacter(where), send)

    async def _refuse(self, scope: Scope, body: bytes, error: AppError, send: Send) -> None:
        hook = self.on_refused.get(scope["path"])
        if hook is not None:
            try:
                await hook(scope, body)
            except AppError as answer:
                error = answer
        headers = [(k.lower().encode(), v.encode()) for k, v in error.headers.items()]
        await send_error(send, error.status_code, error.body(), headers)


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands the app the body already read, then listens for a disconnect."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
