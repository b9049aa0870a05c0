"""Billing e-mails to an app's owners, each sent once (billing_notices' primary key is the proof):
trial reminders on days 10, 12 and 14, a failed payment, and 80 % / 100 % of a monthly limit.
Found by the periodic billing.notices job, so a notice missed while the worker was down is sent
when it comes back (within NOTICE_WINDOW for reminders, which stop mattering after that)."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from replyhq.accounts.team import list_team
from replyhq.billing.models import Notice, Subscription, Usage
from replyhq.billing.service import BILLING_PAGE, month_start, standing, utcnow
from replyhq.db import Database
from replyhq.mail.service import link, send_mail
from replyhq.settings import Settings

TRIAL_REMINDER_DAYS = (10, 12, 14)
NOTICE_WINDOW = dt.timedelta(days=2)

_ENSURE_ALL = text(
    """
    INSERT INTO billing_subscriptions (app_id, status, trial_ends_at)
    SELECT id, 'trialing', now() + make_interval(days => :days) FROM apps
    ON CONFLICT (app_id) DO NOTHING
    """
)


@dataclass(frozen=True)
class Mail:
    kind: str
    subject: str
    paragraphs: list[str]
    label: str
    send: bool = True  # False: only recorded as done (an 80 % mail made moot by the 100 % one)


async def _owners(session: AsyncSession, app_id: uuid.UUID) -> list[str]:
    return [s.email for s in await list_team(session, app_id) if s.role == "OWNER" and s.active]


async def _send_once(
    session: AsyncSession, settings: Settings, app_id: uuid.UUID, mail: Mail
) -> bool:
    """Mail the app's owners unless this notice was sent before; whether it was sent now."""
    claimed = await session.scalar(
        pg_insert(Notice)
        .values(app_id=app_id, kind=mail.kind)
        .on_conflict_do_nothing()
        .returning(Notice.kind)
    )
    if claimed is None or not mail.send:
        return False
    for owner in await _owners(session, app_id):
        await send_mail(
            session,
            owner,
            "billing_notice",
            {
                "subject": mail.subject,
                "paragraphs": mail.paragraphs,
                "label": mail.label,
                "link": link(settings, BILLING_PAGE),
            },
            app_id=app_id,
        )
    return True


def _trial_mail(day: int, trial_days: int, ends_at: dt.datetime) -> Mail:
    left = trial_days - day
    when = ends_at.strftime("%d %B %Y")
    if left > 0:
        subject = f"Your ReplyHQ trial ends in {left} days"
        text_ = (
            f"Your free trial ends on {when}. Choose a plan to keep starting new conversations "
            "after that; the ones already open keep working."
        )
    else:
        subject = "Your ReplyHQ trial has ended"
        text_ = (
            "Your free trial has ended: new conversations are refused until you choose a plan. "
            "Conversations already open keep working."
        )
    return Mail(f"trial:{day}", subject, [text_], "Choose a plan")


def _usage_mail(period: dt.date, metric: str, level: int, limit: int) -> Mail:
    what = "messages" if metric == "messages" else "monthly active users"
    month = period.strftime("%B %Y")
    if level >= 100:
        subject = f"Your app reached its plan's {what} for {month}"
        body = (
            f"Your app has reached the {limit:,} {what} of its plan for {month}: new "
            "conversations are refused until you upgrade or the month ends. Conversations "
            "already open keep working."
        )
    else:
        subject = f"Your app used {level} % of its plan's {what} for {month}"
        body = (
            f"Your app has used {level} % of the {limit:,} {what} of its plan for {month}. At "
            "100 %, new conversations are refused until you upgrade or the month ends."
        )
    return Mail(f"usage:{period.isoformat()}:{metric}:{level}", subject, [body], "See usage")


async def send_due_notices(
    db: Database, settings: Settings, now: dt.datetime | None = None
) -> list[tuple[uuid.UUID, str]]:
    """Send every notice due now (each once); the (app, kind) of those sent."""
    if not settings.billing_enabled:
        return []
    now = now or utcnow()
    period = month_start(now)
    sent: list[tuple[uuid.UUID, str]] = []
    async with db.system_session() as session:
        # Every app has its row (and trial) from here on, looked at or not.
        await session.execute(_ENSURE_ALL, {"days": settings.billing_trial_days})
        rows = (
            await session.execute(
                select(Subscription, Usage)
                .outerjoin(Usage, (Usage.app_id == Subscription.app_id) & (Usage.period == period))
                .execution_options(populate_existing=True)
            )
        ).all()
    trial = dt.timedelta(days=settings.billing_trial_days)
    for subscription, usage in rows:
        due: list[Mail] = []
        if subscription.status == "trialing" and subscription.stripe_subscription_id is None:
            started = subscription.trial_ends_at - trial
            for day in TRIAL_REMINDER_DAYS:
                at = started + dt.timedelta(days=day)
                if day == TRIAL_REMINDER_DAYS[-1]:
                    at = subscription.trial_ends_at  # the last one says it has ended
                if at <= now < at + NOTICE_WINDOW:
                    due.append(
                        _trial_mail(day, settings.billing_trial_days, subscription.trial_ends_at)
                    )
        if subscription.payment_failed_invoice:
            due.append(
                Mail(
                    f"payment_failed:{subscription.payment_failed_invoice}",
                    "A payment for ReplyHQ failed",
                    [
                        "Stripe could not charge your card for ReplyHQ. It will try again over "
                        "the next days; update your card under Manage payment so that your "
                        "subscription is not canceled."
                    ],
                    "Manage payment",
                )
            )
        if usage is not None:
            found = standing(
                status=subscription.status,
                plan_key=subscription.plan,
                has_stripe_subscription=subscription.stripe_subscription_id is not None,
                trial_ends_at=subscription.trial_ends_at,
                messages=usage.messages,
                mau=usage.mau,
                now=now,
            )
            for metric, level in found.warnings:
                limit = getattr(found.limits, metric)
                due.append(_usage_mail(period, metric, level, limit))
                if level == 100:  # the 80 % mail is moot now: never send it late
                    moot = _usage_mail(period, metric, 80, limit)
                    due.append(Mail(moot.kind, moot.subject, moot.paragraphs, moot.label, False))
        if not due:
            continue
        async with db.tenant_session(subscription.app_id) as session:
            for mail in due:
                if await _send_once(session, settings, subscription.app_id, mail):
                    sent.append((subscription.app_id, mail.kind))
    return sent
