"""GET /metrics: Prometheus text format, optionally behind a bearer token (METRICS_TOKEN)."""

from __future__ import annotations

import asyncio
import hmac
from typing import Annotated

import structlog
from fastapi import APIRouter, Header, Response
from prometheus_client import CONTENT_TYPE_LATEST

from replyhq.errors import Unauthorized
from replyhq.jobs import admin
from replyhq.observability.metrics import QueueDepth, render
from replyhq.runtime import Runtime
from replyhq.web.deps import RuntimeDep

log = structlog.get_logger(__name__)

router = APIRouter(tags=["operations"])


async def _queue_depth(runtime: Runtime) -> list[tuple[str, str, int]]:
    """Read at scrape time: the queue is shared, so every process reports the same figures.
    A slow or unreachable database leaves them out rather than failing the scrape."""
    try:
        async with asyncio.timeout(2):
            async with runtime.db.engine.connect() as connection:
                return await admin.queue_depth(connection)
    except Exception as exc:
        log.warning("queue_depth_unavailable", error=repr(exc))
        return []


@router.get("/metrics", response_class=Response)
async def metrics(
    runtime: RuntimeDep, authorization: Annotated[str | None, Header()] = None
) -> Response:
    """Prometheus metrics of this server (all its processes when run with `--workers N`)."""
    token = runtime.settings.metrics_token
    if token:
        given = (authorization or "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise Unauthorized("A valid metrics bearer token is required.", code="METRICS_TOKEN")
    depth = await _queue_depth(runtime)
    body = await asyncio.to_thread(render, QueueDepth(depth))
    return Response(body, media_type=CONTENT_TYPE_LATEST)
