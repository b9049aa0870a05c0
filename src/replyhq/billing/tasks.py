"""Billing's jobs: applying a stored Stripe event, and the periodic notices."""

from __future__ import annotations

import structlog

from replyhq.billing import notices, stripe_events
from replyhq.jobs.registry import JobRun, job

log = structlog.get_logger(__name__)


@job("billing.apply_event", queue="billing")
async def apply_event(run: JobRun, event_id: str) -> None:
    """Apply one stored webhook event; a failure (Stripe unreachable) is retried with backoff."""
    await stripe_events.apply_event(run.runtime.db, run.runtime.settings, event_id)


@job("billing.notices", schedule="* * * * *", queue="billing")
async def send_notices(run: JobRun, timestamp: int) -> None:
    """Every minute: trial reminders, payment-failed and usage e-mails that are due (once each)."""
    sent = await notices.send_due_notices(run.runtime.db, run.runtime.settings)
    if sent:
        log.info("billing_notices_sent", count=len(sent), tick=timestamp)
