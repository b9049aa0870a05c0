"""Smart delivery: after an agent's reply is committed, decide per person whether and when to
push, record the decision with its reason, and send.

The job `push.deliver` (queued by a trigger in the reply's own transaction, one waiting per
conversation) looks at every reply of the conversation the person has neither read nor had a
decision about, and decides, in this order:

1. read: they read them already (e.g. during the hold) → nothing to send;
2. no_device: no device of theirs has a push address;
3. online: they have a live socket. The first time, the decision is *held* for PUSH_HOLD_SECONDS
   and taken again; still online then (they see replies live), nothing is sent;
4. quiet_hours: it is within the app's quiet hours in the person's time zone → taken again when
   they end (replies arriving meanwhile join it);
5. rate_limited: the person had `hourly_limit` pushes in the last hour;
6. collapsed: this conversation was pushed less than `collapse_seconds` ago → taken again then,
   when every reply since makes one notification ("3 new messages from Acme");
7. sent: one notification per device, each delivery logged with the provider's answer.

`held`, `quiet_hours` and `collapsed` wait (a later decision covers their replies); the others
are final. An unread reply also schedules the e-mail fallback (fallback.py).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import time
import uuid
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from replyhq.jobs.defer import enqueue
from replyhq.jobs.registry import JobRun
from replyhq.push import credentials as credentials_store
from replyhq.push import rules, tokens
from replyhq.push.models import PushNotification, PushSettings
from replyhq.push.senders import Notification, Outcome, Senders
from replyhq.realtime.presence import PresenceStore
from replyhq.runtime import Runtime

log = structlog.get_logger(__name__)

FINAL = ("sent", "read", "online", "no_device", "rate_limited", "failed")

_CONVERSATION = text(
    """
    SELECT c.end_user_id, a.name AS app_name, u.email,
           COALESCE((SELECT r.last_read_seq FROM read_markers r
                     WHERE r.conversation_id = c.id AND r.reader_type = 'user'
                       AND r.reader_id = c.end_user_id), 0) AS read_seq,
           COALESCE((SELECT max(p.seq_to) FROM push_notifications p
                     WHERE p.app_id = c.app_id AND p.conversation_id = c.id
                       AND p.channel = 'push' AND p.parent_id IS NULL
                       AND p.decision = ANY(:final)), 0) AS handled_seq
    FROM conversations c
    JOIN apps a ON a.id = c.app_id
    JOIN end_users u ON u.id = c.end_user_id AND u.app_id = c.app_id
    WHERE c.app_id = :app_id AND c.id = :conversation_id
    """
)

_REPLIES = text(
    """
    SELECT seq, author_name, body, created_at FROM messages
    WHERE app_id = :app_id AND conversation_id = :conversation_id AND sender = 'agent'
      AND seq > :after
    ORDER BY seq DESC LIMIT 100
    """
)

# Devices that may speak for the person (users.service.may_speak): only those receive their
# notifications. Newest first: the person's time zone is their latest device's.
_DEVICES = text(
    """
    SELECT d.device_id, d.push_provider, d.push_token, d.push_keys, d.timezone
    FROM devices d
    JOIN end_users u ON u.id = d.end_user_id AND u.app_id = d.app_id
    JOIN apps a ON a.id = d.app_id
    WHERE d.app_id = :app_id AND d.end_user_id = :end_user_id
      AND (d.verified OR NOT (u.verified OR a.identity_verification_required))
    ORDER BY d.last_seen_at DESC
    LIMIT 20
    """
)


@dataclass(frozen=True)
class Device:
    device_id: str
    provider: str | None
    token: str | None
    keys: dict[str, str] | None
    timezone: str | None


@dataclass(frozen=True)
class Rules:
    quiet_hours_start: dt.time | None = None
    quiet_hours_end: dt.time | None = None
    default_timezone: str = "UTC"
    hourly_limit: int = 10
    collapse_seconds: int = 60
    email_fallback_minutes: int = 5
    email_link: str | None = None


async def app_rules(session: AsyncSession, app_id: uuid.UUID) -> Rules:
    row = await session.get(PushSettings, app_id)
    if row is None:
        return Rules()
    return Rules(
        row.quiet_hours_start,
        row.quiet_hours_end,
        row.default_timezone,
        row.hourly_limit,
        row.collapse_seconds,
        row.email_fallback_minutes,
        row.email_link,
    )


async def devices_of(
    session: AsyncSession, app_id: uuid.UUID, end_user_id: uuid.UUID
) -> list[Device]:
    rows = await session.execute(_DEVICES, {"app_id": app_id, "end_user_id": end_user_id})
    return [
        Device(r.device_id, r.push_provider, r.push_token, r.push_keys, r.timezone) for r in rows
    ]


def senders_of(runtime: Runtime) -> Senders:
    senders = runtime.resources.get("push")
    if senders is None:
        senders = runtime.resources["push"] = Senders(runtime.settings)
    assert isinstance(senders, Senders)
    return senders


def _record(session: AsyncSession, **values: Any) -> uuid.UUID:
    row_id = uuid.uuid4()
    session.add(PushNotification(id=row_id, **values))
    return row_id


async def deliver(
    run: JobRun, app_id: uuid.UUID, conversation_id: uuid.UUID, recheck: bool
) -> None:
    """One decision for the conversation's undecided replies (see the module's docstring)."""
    from replyhq.push import fallback, tasks  # tasks imports this module

    runtime = run.runtime
    settings = runtime.settings
    deliveries: list[tuple[uuid.UUID, Device]] = []
    async with run.tenant_session(app_id) as session:
        found = (
            await session.execute(
                _CONVERSATION,
                {"app_id": app_id, "conversation_id": conversation_id, "final": list(FINAL)},
            )
        ).first()
        if found is None:
            return  # deleted since
        person = found.end_user_id
        # The replies after the earlier of the two markers: those not decided yet say whether
        # there is anything to do; every unread one goes in the text, since a notification
        # replaces the conversation's earlier one on the device (collapse key).
        newest_first = await session.execute(
            _REPLIES,
            {
                "app_id": app_id,
                "conversation_id": conversation_id,
                "after": min(found.handled_seq, found.read_seq),
            },
        )
        replies = list(reversed(newest_first.all()))
        if not any(r.seq > found.handled_seq for r in replies):
            return  # decided already (a repeated job)
        unread = [r for r in replies if r.seq > found.read_seq]
        last_seq = replies[-1].seq
        base = {
            "app_id": app_id,
            "end_user_id": person,
            "conversation_id": conversation_id,
            "channel": "push",
            "seq_to": last_seq,
            "message_count": len(unread),
        }
        if not unread:
            reason = "read during the hold" if recheck else "read before a push was due"
            _record(session, decision="read", reason=reason, **base)
            return
        rules_ = await app_rules(session, app_id)
        await fallback.schedule(session, rules_, app_id, person, found.email)
        devices = await devices_of(session, app_id, person)
        pushable = [d for d in devices if d.token]
        if not pushable:
            _record(
                session, decision="no_device", reason="no device of theirs has a push token", **base
            )
            return

        async def wait(decision: str, reason: str, delay: float) -> None:
            _record(session, decision=decision, reason=reason, **base)
            await enqueue(
                session,
                tasks.deliver,
                delay=dt.timedelta(seconds=max(0.0, delay)),
                queueing_lock=f"push:{conversation_id}",
                app_id=app_id,
                conversation_id=conversation_id,
                seq=last_seq,
                recheck=decision == "held",
            )

        presence = PresenceStore(
            runtime.redis, settings.redis_prefix, settings.presence_ttl_seconds
        )
        (online,) = await presence.online(app_id, "user", [person])
        if online:
            if not recheck:
                hold = settings.push_hold_seconds
                await wait("held", f"online: decided again in {hold:g} s", hold)
            else:
                _record(
                    session,
                    decision="online",
                    reason="still online after the hold: they see replies live",
                    **base,
                )
            return
        now = dt.datetime.now(dt.UTC)
        tz_name = next((d.timezone for d in devices if d.timezone), None)
        tz = rules.zone(tz_name, rules_.default_timezone)
        ends = rules.quiet_until(now, tz, rules_.quiet_hours_start, rules_.quiet_hours_end)
        if ends is not None:
            local = now.astimezone(tz).strftime("%H:%M")
            await wait(
                "quiet_hours",
                f"{local} in {tz.key} is within quiet hours; sent at their end if still unread",
                (ends - now).total_seconds(),
            )
            return
        sent_last_hour, last_sent = (
            await session.execute(
                select(
                    func.count().filter(
                        PushNotification.created_at > func.now() - dt.timedelta(hours=1)
                    ),
                    func.max(PushNotification.created_at).filter(
                        PushNotification.conversation_id == conversation_id
                    ),
                ).where(
                    PushNotification.app_id == app_id,
                    PushNotification.end_user_id == person,
                    PushNotification.channel == "push",
                    PushNotification.parent_id.is_(None),
                    PushNotification.decision == "sent",
                    PushNotification.created_at
                    > func.now() - dt.timedelta(hours=1, seconds=rules_.collapse_seconds),
                )
            )
        ).one()
        if sent_last_hour >= rules_.hourly_limit:
            _record(
                session,
                decision="rate_limited",
                reason=f"{sent_last_hour} pushes in the last hour (limit {rules_.hourly_limit})",
                **base,
            )
            return
        if last_sent is not None:
            due = last_sent + dt.timedelta(seconds=rules_.collapse_seconds)
            if due > now:
                await wait(
                    "collapsed",
                    f"pushed {(now - last_sent).total_seconds():.0f} s ago: replies until "
                    f"{rules_.collapse_seconds} s after it go in one notification",
                    (due - now).total_seconds(),
                )
                return
        title, body = rules.summary(found.app_name, [(r.author_name, r.body) for r in unread])
        committed = unread[0].created_at
        parent = _record(
            session,
            decision="sent",
            reason=f"offline{' after the hold' if recheck else ''}",
            title=title,
            body=body,
            **base,
        )
        for device in pushable:
            row = _record(
                session,
                app_id=app_id,
                end_user_id=person,
                conversation_id=conversation_id,
                parent_id=parent,
                channel="push",
                decision="delivery",
                device_id=device.device_id,
                provider=device.provider,
                status="pending",
                seq_to=last_seq,
                message_count=len(unread),
            )
            deliveries.append((row, device))
        creds = await credentials_store.load(session, settings, app_id)
    # Committed: the decision stands even if the sends below are cut short (at most once).
    note = Notification(title, body, str(conversation_id), {"seq": str(last_seq)})
    await send_all(runtime, app_id, creds, note, deliveries, since=committed)


async def send_all(
    runtime: Runtime,
    app_id: uuid.UUID,
    creds: dict[str, credentials_store.Credentials],
    note: Notification,
    deliveries: list[tuple[uuid.UUID, Device]],
    *,
    since: dt.datetime | None,
    attempt: int = 1,
) -> list[uuid.UUID]:
    """Send to each device at once, then log every answer; the rows' ids."""
    senders = senders_of(runtime)

    async def one(device: Device) -> tuple[Outcome, float]:
        assert device.token is not None and device.provider is not None
        started = time.perf_counter()
        outcome = await senders.send(
            creds.get(device.provider), device.provider, device.token, device.keys, note
        )
        return outcome, time.perf_counter() - started

    results = await asyncio.gather(*(one(d) for d in deliveries_devices(deliveries)))
    finished = dt.datetime.now(dt.UTC)
    from replyhq.push import tasks

    async with runtime.db.tenant_session(app_id) as session:
        for (row_id, device), (outcome, took) in zip(deliveries, results, strict=True):
            latency = (finished - since).total_seconds() if since is not None else took
            status = {
                "sent": "sent",
                "invalid": "invalid",
                "failed": "failed",
                "retry": "retrying",
            }[outcome.kind]
            if outcome.kind == "retry" and attempt >= runtime.settings.push_max_attempts:
                status = "failed"
            await session.execute(
                update(PushNotification)
                .where(PushNotification.app_id == app_id, PushNotification.id == row_id)
                .values(
                    status=status,
                    provider_status=outcome.status,
                    provider_response=outcome.response,
                    latency_ms=round(latency * 1000),
                    attempts=attempt,
                    updated_at=func.now(),
                )
            )
            if outcome.kind == "invalid" and device.token:
                await tokens.forget_token(session, app_id, device.token)
            if status == "retrying":
                await enqueue(
                    session,
                    tasks.resend,
                    delay=dt.timedelta(seconds=retry_delay(runtime, outcome, attempt)),
                    app_id=app_id,
                    notification_id=row_id,
                    attempt=attempt + 1,
                    since=since,
                )
            log.info(
                "push_delivered",
                provider=device.provider,
                outcome=outcome.kind,
                status=outcome.status,
                latency_ms=round(latency * 1000),
                attempt=attempt,
            )
    return [row_id for row_id, _ in deliveries]


def deliveries_devices(deliveries: list[tuple[uuid.UUID, Device]]) -> list[Device]:
    return [device for _, device in deliveries]


def retry_delay(runtime: Runtime, outcome: Outcome, attempt: int) -> float:
    """The provider's Retry-After when it gave one (capped at an hour), else a doubling,
    jittered back-off from JOB_RETRY_BASE_SECONDS."""
    if outcome.retry_after is not None:
        return min(outcome.retry_after, 3600.0)
    base = runtime.settings.job_retry_base_seconds * 2 ** (attempt - 1)
    jitter = random.uniform(0.5, 1.0)  # noqa: S311
    return float(min(base, runtime.settings.job_retry_max_seconds) * jitter)


async def resend(
    run: JobRun,
    app_id: uuid.UUID,
    notification_id: uuid.UUID,
    attempt: int,
    since: dt.datetime | None,
) -> None:
    """Another attempt of one delivery the provider answered with 429 or 5xx."""
    runtime = run.runtime
    async with run.tenant_session(app_id) as session:
        row = await session.get(PushNotification, notification_id)
        if row is None or row.status != "retrying" or row.parent_id is None:
            return
        parent = await session.get(PushNotification, row.parent_id)
        assert parent is not None
        device = next(
            (
                d
                for d in await devices_of(session, app_id, row.end_user_id)
                if d.device_id == row.device_id
            ),
            None,
        )
        if device is None or not device.token:
            row.status = "cancelled"
            row.provider_response = "the device no longer has a push token"
            return
        creds = await credentials_store.load(session, runtime.settings, app_id)
    note = Notification(
        parent.title or "",
        parent.body or "",
        str(row.conversation_id) if row.conversation_id else None,
        {"seq": str(parent.seq_to)} if parent.seq_to else {},
    )
    await send_all(
        runtime, app_id, creds, note, [(notification_id, device)], since=since, attempt=attempt
    )


async def prune(runtime: Runtime) -> int:
    days = runtime.settings.push_log_retention_days
    async with runtime.db.system_session() as session:
        result = await session.execute(
            text(
                "DELETE FROM push_notifications "
                "WHERE created_at < now() - make_interval(days => :d)"
            ),
            {"d": days},
        )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def send_test(run: JobRun, app_id: uuid.UUID, notification_id: uuid.UUID) -> None:
    runtime = run.runtime
    async with run.tenant_session(app_id) as session:
        parent = await session.get(PushNotification, notification_id)
        if parent is None:
            return
        pending = list(
            await session.scalars(
                select(PushNotification).where(
                    PushNotification.app_id == app_id,
                    PushNotification.parent_id == notification_id,
                    PushNotification.status == "pending",
                )
            )
        )
        devices = {d.device_id: d for d in await devices_of(session, app_id, parent.end_user_id)}
        creds = await credentials_store.load(session, runtime.settings, app_id)
        deliveries = []
        for row in pending:
            device = devices.get(row.device_id or "")
            if device is None or not device.token:
                row.status = "cancelled"
                row.provider_response = "the device no longer has a push token"
            else:
                deliveries.append((row.id, device))
    note = Notification(parent.title or "", parent.body or "", None, {"test": "true"})
    await send_all(runtime, app_id, creds, note, deliveries, since=None)
