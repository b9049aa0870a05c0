"""Push jobs: drain an app's queue of conversations awaiting a decision (queued by the
agent-reply trigger, migration 0110, and at the end of a hold or of quiet hours), retry one
delivery, the e-mail fallback, and the daily clean-up of the log."""

from __future__ import annotations

import datetime as dt
import uuid

import structlog
from sqlalchemy import text

from replyhq.jobs.defer import enqueue_unique
from replyhq.jobs.registry import JobRun, job
from replyhq.push import delivery, fallback

log = structlog.get_logger(__name__)

# Every delivery is tried at most PUSH_MAX_ATTEMPTS times by push.resend itself (honouring the
# provider's Retry-After); a job that fails anyway (database gone) is retried by the queue.


@job("push.drain", queue="push")
async def drain(run: JobRun, app_id: str) -> None:
    """Decide about, and send to, every conversation of the app due in push_queue
    (delivery.py). Several may run at once: each claims its own conversations."""
    decided = await delivery.drain(run.runtime, uuid.UUID(app_id))
    log.debug("push_drained", conversations=decided)


@job("push.sweep", schedule="* * * * *", queue="push")
async def sweep(run: JobRun, timestamp: int) -> None:
    """Every minute: a drain for each app with conversations due and no drain coming (one whose
    drain died while it held them, CLAIM_SECONDS before). A safety net: drains are queued by the
    replies' trigger and by the drains themselves."""
    async with run.system_session() as session:
        apps = list(
            await session.scalars(
                text("SELECT DISTINCT app_id FROM push_queue WHERE due_at <= now()")
            )
        )
    for app_id in apps:
        async with run.tenant_session(app_id) as session:
            await enqueue_unique(session, drain, [(f"push-drain:{app_id}", {"app_id": app_id})])
    if apps:
        log.info("push_queue_swept", apps=len(apps), tick=timestamp)


@job("push.deliver", queue="push")
async def deliver(
    run: JobRun, app_id: str, conversation_id: str, seq: int, recheck: bool = False
) -> None:
    """A job of migration 0040's trigger still waiting when 0110 replaced it: its conversation
    joins the queue, and the app's queue is drained."""
    async with run.tenant_session(app_id) as session:
        await session.execute(
            text(
                "INSERT INTO push_queue (app_id, conversation_id, recheck) "
                "SELECT c.app_id, c.id, :recheck FROM conversations c "
                "WHERE c.app_id = :app_id AND c.id = :conversation_id "
                "ON CONFLICT DO NOTHING"
            ),
            {"app_id": app_id, "conversation_id": conversation_id, "recheck": recheck},
        )
    await delivery.drain(run.runtime, uuid.UUID(app_id))


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
