"""The job that sends a campaign, a chunk per transaction."""

from __future__ import annotations

import structlog

from replyhq.campaigns import service
from replyhq.jobs.registry import JobRun, job

log = structlog.get_logger(__name__)


@job("campaigns.send", queue="default")
async def send_campaign(run: JobRun, app_id: str, campaign_id: str) -> None:
    """Safe to run again: each chunk commits its people with their messages, so a rerun skips
    them; it ends when no one is left (done) or the campaign was stopped."""
    import uuid

    app, campaign = uuid.UUID(app_id), uuid.UUID(campaign_id)
    total = 0
    while True:
        async with run.tenant_session(app) as session:
            sent = await service.send_chunk(session, app, campaign)
        total += sent
        if not sent:
            break
    log.info("campaign_sent", campaign_id=campaign_id, sent=total)
