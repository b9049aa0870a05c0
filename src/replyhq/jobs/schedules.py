"""Periodic jobs of the queue itself. Each runs once per tick across all workers."""

from __future__ import annotations

import datetime as dt

import structlog

from replyhq.jobs import admin
from replyhq.jobs.registry import JobRun, job

log = structlog.get_logger(__name__)


@job("jobs.prune", schedule="17 3 * * *", queue="maintenance")
async def prune_finished_jobs(run: JobRun, timestamp: int) -> None:
    """Daily: forget finished jobs older than JOB_RETENTION_DAYS (dead ones included)."""
    days = run.runtime.settings.job_retention_days
    async with run.runtime.db.engine.begin() as connection:
        deleted = await admin.prune(connection, dt.timedelta(days=days))
    log.info("jobs_pruned", deleted=deleted, older_than_days=days, tick=timestamp)
