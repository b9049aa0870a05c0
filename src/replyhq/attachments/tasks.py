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
    (their rows, then their stored bytes), and whatever else awaits removal from storage."""
    runtime = run.runtime
    storage = storage_of(runtime.resources, runtime.settings)
    deleted = await service.delete_unsent(runtime.db, runtime.settings)
    purged = await service.purge_deleted(runtime.db, storage)
    log.info("attachments_pruned", deleted=deleted, purged=purged, tick=timestamp)


# Queued (at most one waiting) by the attachments table's delete trigger, migration 0130.
@job("attachments.purge", queue="maintenance", queueing_lock="attachments-purge")
async def purge_deleted(run: JobRun) -> None:
    """Remove from the storage backend the files and thumbnails of deleted attachments (an app,
    a conversation or an end user deleted, an unsent upload pruned)."""
    storage = storage_of(run.runtime.resources, run.runtime.settings)
    purged = await service.purge_deleted(run.runtime.db, storage)
    log.info("attachments_purged", objects=purged)
