"""The job that sends the event-triggered messages an app's tracked events claimed."""

from __future__ import annotations

import uuid

import structlog

from replyhq.jobs.registry import JobRun, job
from replyhq.triggered import service

log = structlog.get_logger(__name__)

TASK = "triggered_messages.send"
QUEUE = "messages"


@job(TASK, queue=QUEUE)
async def send_triggered(run: JobRun, app_id: str) -> None:
    """Queued by the ingest statement that claimed someone (replyhq.analytics.ingest). Sends
    every claim of the app not yet sent, a chunk per transaction; safe to run again or side by
    side (claims are taken SKIP LOCKED and marked sent in the chunk's transaction)."""
    app = uuid.UUID(app_id)
    handled = 0
    while True:
        async with run.tenant_session(app) as session:
            count = await service.send_pending(session, app)
        handled += count
        if count < service.CHUNK:
            break
    log.info("triggered_messages_sent", handled=handled)
