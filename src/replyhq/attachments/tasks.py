"""Attachments' housekeeping."""

from __future__ import annotations

import structlog

from replyhq.attachments import service
from replyhq.attachments.storage import storage_of
from replyhq.jobs.registry import JobRun, job

log = structlog.get_logger(__name__)


@job("attachments.prune", schedule="47 * * * *", queue="maintenance")
async def prune_unsent(run: JobRun, timestamp: int) -> None:
    """Hourly: delete uploads never sent in a message, older than ATTACHMENT_PENDING_HOURS
    (their rows and their stored bytes)."""
    runtime = run.runtime
    storage = storage_of(runtime.resources, runtime.settings)
    deleted = await service.delete_unsent(runtime.db, storage, runtime.settings)
    log.info("attachments_pruned", deleted=deleted, tick=timestamp)
