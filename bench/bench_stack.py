"""What the HTTP stack around the message POST's route costs (issue 21), layer by layer.

The app's own ASGI stack (`create_asgi`: the app body limit and Socket.IO's wrapper, Starlette's
ServerErrorMiddleware, our pure ASGI middleware in their order) is built around a stub that
answers as the route does (201, the message's JSON, the RateLimit-* headers), one layer more at a
time from the inside out, and driven in-process with the generator's request (no sockets: what
uvicorn hands the app). Each row is the CPU time per request (time.process_time) of the stack up
to that layer, and what that layer adds. The access log goes to a file, as the benchmarks' servers
write it. BENCH_STACK_REQUESTS (20,000) per measurement, BENCH_STACK_ROUNDS (3) alternating
rounds, the median kept.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import uvloop
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bench import common
from replyhq.app import create_app
from replyhq.observability.logging import configure_logging
from replyhq.settings import Settings
from replyhq.web.hot import HotRoutes

BODY = b'{"body":"load 1a2b3c4d","client_msg_id":"7f1c6a52-4c1e-4b57-9a55-3f0b2d5f3c11"}'
ANSWER = (
    b'{"id":"0b5d3d2a-52a3-4a8e-8c57-6c0cbe61a1f3","conversation_id":"x","seq":12,'
    b'"sender_type":"end_user","body":"load 1a2b3c4d","created_at":"2026-12-03T18:00:00Z"}'
)


def _scope(conversation: str) -> Scope:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(BODY)).encode()),
        (b"x-app-id", str(uuid.uuid4()).encode()),
        (b"x-api-key", b"pk_" + b"a" * 40),
        (b"x-device-id", b"u1-abcdef-send"),
        (b"host", b"127.0.0.1:8000"),
        (b"connection", b"keep-alive"),
    ]
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "scheme": "http",
        "method": "POST",
        "root_path": "",
        "path": f"/v1/conversations/{conversation}/messages",
        "raw_path": f"/v1/conversations/{conversation}/messages".encode(),
        "query_string": b"",
        "headers": headers,
    }


async def _route_stub(scope: Scope, receive: Receive, send: Send) -> None:
    """What the route's answer puts on the wire (the hot route reads the body first)."""
    while (await receive()).get("more_body"):
        pass
    await send(
        {
            "type": "http.response.start",
            "status": 201,
            "headers": [
                (b"content-length", str(len(ANSWER)).encode()),
                (b"content-type", b"application/json"),
                (b"ratelimit-limit", b"1000000"),
                (b"ratelimit-remaining", b"999999"),
                (b"ratelimit-reset", b"60"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": ANSWER})


def layers(settings: Settings) -> list[tuple[str, Any]]:
    """(name, wrap) from the innermost layer out: the app's own stack, the route excepted."""
    from replyhq.app import create_asgi

    app = create_app(settings)
    wrapped: list[tuple[str, Any]] = []
    for middleware in reversed(app.user_middleware):
        cls, args, kwargs = middleware.cls, middleware.args, middleware.kwargs
        if cls is HotRoutes:
            continue
        wrapped.append((cls.__name__, lambda inner, c=cls, a=args, k=kwargs: c(inner, *a, **k)))
    wrapped.append(("ServerErrorMiddleware", lambda inner: ServerErrorMiddleware(inner)))
    realtime = app.state.realtime

    def outer(inner: ASGIApp) -> ASGIApp:
        app.middleware_stack = inner  # Starlette's app, its stack replaced: what serve runs
        return realtime.asgi(app)

    wrapped.append(("Socket.IO wrapper + app body limit", outer))
    del create_asgi
    return wrapped


async def _drive(app: ASGIApp, scope: Scope, count: int) -> float:
    """CPU seconds per request."""

    async def send(message: Message) -> None:
        pass

    start = time.process_time()
    for _ in range(count):
        given = False

        async def receive() -> Message:
            nonlocal given
            if given:
                await asyncio.sleep(3600)
            given = True
            return {"type": "http.request", "body": BODY, "more_body": False}

        await app(dict(scope), receive, send)
    return (time.process_time() - start) / count


def run() -> list[dict[str, Any]]:
    count = int(os.environ.get("BENCH_STACK_REQUESTS", "20000"))
    rounds = int(os.environ.get("BENCH_STACK_ROUNDS", "3"))
    log_file = Path(tempfile.mkdtemp(prefix="replyhq-bench-stack-")) / "access.log"
    services = common.services()
    settings = Settings(
        database_url=services.postgres_url,
        redis_url=services.redis_url,
        redis_prefix=common.redis_prefix("stack"),
        allowed_origins="http://allowed.example",
    )
    stacks: list[tuple[str, ASGIApp]] = [("route stub", _route_stub)]
    for name, wrap in layers(settings):
        stacks.append((name, wrap(stacks[-1][1])))
    scope = _scope(str(uuid.uuid4()))
    stdout = sys.stdout
    measured: dict[str, list[float]] = {name: [] for name, _ in stacks}
    with log_file.open("w") as log:
        sys.stdout = log  # the access log's lines, as the benchmarks' servers write them
        configure_logging("INFO")
        try:
            for _ in range(rounds):
                for name, app in stacks:
                    measured[name].append(uvloop.run(_drive(app, scope, count)))
        finally:
            sys.stdout = stdout
    lines = sum(1 for _ in log_file.open())
    rows, before = [], 0.0
    for name, _ in stacks:
        cpu = common.median(measured[name]) * 1e6
        rows.append(
            common.row(
                "stack",
                f"+ {name}" if before else name,
                cpu,
                "µs CPU/request",
                note=f"this layer {cpu - before:+.1f} µs" if before else None,
            )
        )
        before = cpu
    rows.append(common.row("stack", "access log lines written", lines, "lines"))
    return rows


if __name__ == "__main__":
    from bench.__main__ import table

    print(table(run()))
