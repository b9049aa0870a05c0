"""Periodic upkeep of the events' day partitions."""

from __future__ import annotations

import structlog

from replyhq.analytics import partitions
from replyhq.jobs.registry import JobRun, job

log = structlog.get_logger(__name__)


@job("analytics.partitions", schedule="7 * * * *", queue="maintenance")
async def maintain_partitions(run: JobRun, timestamp: int) -> None:
    """Hourly: make the coming days' partitions, drop those older than EVENT_RETENTION_DAYS."""
    days = run.runtime.settings.event_retention_days
    made, dropped = await partitions.maintain(run.runtime.db, days)
    log.info("event_partitions", made=made, dropped=dropped, retention_days=days, tick=timestamp)
