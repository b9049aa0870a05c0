"""Push jobs: decide and send (queued by the agent-reply trigger, migration 0040), retry one
delivery, the e-mail fallback, and the daily clean-up of the log."""

from __future__ import annotations

import datetime as dt
import uuid

import structlog

from replyhq.jobs.registry import JobRun, job
from replyhq.push import delivery, fallback

log = structlog.get_logger(__name__)

# Every delivery is tried at most PUSH_MAX_ATTEMPTS times by push.resend itself (honouring the
# provider's Retry-After); a job that fails anyway (database gone) is retried by the queue.


@job("push.deliver", queue="push")
async def deliver(
    run: JobRun, app_id: str, conversation_id: str, seq: int, recheck: bool = False
) -> None:
    """Decide about, and send, the conversation's undecided agent replies (delivery.py)."""
    await delivery.deliver(run, uuid.UUID(app_id), uuid.UUID(conversation_id), recheck)


@job("push.resend", queue="push")
async def resend(
    run: JobRun, app_id: str, notification_id: str, attempt: int, since: str | None = None
) -> None:
    """One more attempt of a delivery the provider answered with 429 or 5xx."""
    await delivery.resend(
        run,
        uuid.UUID(app_id),
        uuid.UUID(notification_id),
        attempt,
        dt.datetime.fromisoformat(since) if since else None,
    )


@job("push.email_fallback", queue="push")
async def email_fallback(run: JobRun, app_id: str, end_user_id: str) -> None:
    """One e-mail with the person's still-unread replies (fallback.py)."""
    await fallback.send_fallback(run, uuid.UUID(app_id), uuid.UUID(end_user_id))


@job("push.prune", schedule="37 3 * * *", queue="maintenance")
async def prune(run: JobRun, timestamp: int) -> None:
    """Daily: forget push and e-mail fallback decisions older than PUSH_LOG_RETENTION_DAYS."""
    deleted = await delivery.prune(run.runtime)
    log.info("push_log_pruned", deleted=deleted, tick=timestamp)


@job("push.test", queue="push")
async def test_push(run: JobRun, app_id: str, notification_id: str) -> None:
    """Send a test push created in the dashboard to each of its devices."""
    await delivery.send_test(run, uuid.UUID(app_id), uuid.UUID(notification_id))
