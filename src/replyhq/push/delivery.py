"""Smart delivery: after an agent's reply is committed, decide per person whether and when to
push, record the decision with its reason, and send.

The reply's trigger (migration 0110) puts its conversation in `push_queue` (one row per
conversation: replies arriving while it waits join it) and queues one `push.drain` job for the
app unless one is waiting already. A drain claims every conversation due (in rounds of up to
BATCH), gathers what the rules need for all of them at once (replies and read markers, devices,
pushes of the past hour, presence: a few statements and one Redis call per round, not per
reply), decides, records every decision, commits, then sends all the round's notifications
concurrently over pooled connections and logs each answer in one more transaction. Under load
the rounds grow: the work per push falls as the rate rises.

For each conversation, the replies the person has neither read nor had a decision about are
decided in this order:

1. read: they read them already (e.g. during the hold) → nothing to send;
2. no_device: no device of theirs has a push address;
3. online: they have a live socket. The first time, the decision is *held* for PUSH_HOLD_SECONDS
   (the conversation waits in the queue) and taken again; still online then (they see replies
   live), nothing is sent;
4. quiet_hours: it is within the app's quiet hours in the person's time zone → taken again when
   they end (replies arriving meanwhile join it);
5. rate_limited: the person had `hourly_limit` pushes in the last hour;
6. collapsed: this conversation was pushed less than `collapse_seconds` ago: the notification
   showing already leads to it, so nothing more is sent; the next push of the conversation counts
   every unread reply ("3 new messages from Acme");
7. sent: one notification per device, each delivery logged with the provider's answer.

`held` and `quiet_hours` wait (a later decision covers their replies); the others are final. An
unread reply also schedules the e-mail fallback (fallback.py).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import random
import time
import uuid
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import structlog
from psycopg.types.json import Jsonb
from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from replyhq.jobs.defer import enqueue, enqueue_unique
from replyhq.jobs.registry import JobRun
from replyhq.push import credentials as credentials_store
from replyhq.push import rules, tokens
from replyhq.push.models import PushNotification, PushSettings
from replyhq.push.rules import Device, History, Pending, Reply, Rules, decide
from replyhq.push.senders import Notification, Outcome, Senders
from replyhq.realtime.presence import PresenceStore
from replyhq.runtime import Runtime

log = structlog.get_logger(__name__)

FINAL = ("sent", "read", "online", "no_device", "rate_limited", "collapsed", "failed")
BATCH = 200  # conversations claimed per round of a drain
CLAIM_SECONDS = 60
DRAIN_SECONDS = 20  # a drain's rounds, at most, before it hands over to a new job
# After a round that found work, a drain waits this long for more before the next: a round costs
# about the same for 1 conversation as for 10, and replies coming one by one would each get one.
GATHER_SECONDS = 0.05
SEND_CONCURRENCY = 16  # sends in flight at once per round (more cost httpcore more CPU)
DEVICES_PER_PERSON = 20

# A round's first transaction, one round trip (Database.tenant_statements): claim the
# conversations due, then read what their decisions need, each statement seeing the claim.
# The claim lasts CLAIM_SECONDS: a drain that dies leaves them due again then. FOR UPDATE, not
# SKIP LOCKED: a reply being stored locks its conversation's row (its trigger's ON CONFLICT) and,
# having found it waiting, queues no drain; skipped, it would wait for the next reply. The waits
# are a send's commit, or another drain's claim (after which the row is no longer due). The
# statements after the claim see every reply committed before it: a reply committing meanwhile
# waits for this transaction on the claimed row, then finds it claimed (its trigger makes it due
# again, and the decision's transaction leaves it). The decision's transaction removes each
# row, or sets when it is due again, as its last statements: it takes the conversations' locks
# (the log's foreign keys) before the queue's rows, in the order a reply's send does, so that
# the two never deadlock.
_CLAIM = """
    UPDATE push_queue q SET claim = %(claim)s, due_at = now() + make_interval(secs => %(lease)s)
    FROM (SELECT conversation_id FROM push_queue
          WHERE app_id = %(app_id)s AND due_at <= now()
          ORDER BY due_at LIMIT %(limit)s FOR UPDATE) due
    WHERE q.app_id = %(app_id)s AND q.conversation_id = due.conversation_id
    RETURNING q.conversation_id
"""

# The people of the claimed conversations.
_CLAIMED_PEOPLE = """
    SELECT c.end_user_id FROM push_queue q
    JOIN conversations c ON c.app_id = q.app_id AND c.id = q.conversation_id
    WHERE q.app_id = %(app_id)s AND q.claim = %(claim)s
"""

# Per claimed conversation: the person, their read marker, what was decided already, and the
# agent replies after the earlier of the two (newest 100).
_STATE = """
    SELECT c.id AS conversation_id, q.recheck, c.end_user_id, u.email, k.read_seq,
           k.handled_seq, r.replies
    FROM push_queue q
    JOIN conversations c ON c.app_id = q.app_id AND c.id = q.conversation_id
    JOIN end_users u ON u.id = c.end_user_id AND u.app_id = c.app_id
    CROSS JOIN LATERAL (
      SELECT COALESCE((SELECT m.last_read_seq FROM read_markers m
                       WHERE m.conversation_id = c.id AND m.reader_type = 'user'
                         AND m.reader_id = c.end_user_id), 0) AS read_seq,
             COALESCE((SELECT max(p.seq_to) FROM push_notifications p
                       WHERE p.app_id = c.app_id AND p.conversation_id = c.id
                         AND p.channel = 'push' AND p.parent_id IS NULL
                         AND p.decision = ANY(%(final)s)), 0) AS handled_seq
    ) k
    CROSS JOIN LATERAL (
      SELECT COALESCE(json_agg(json_build_array(x.seq, x.author_name, x.body,
                                                extract(epoch FROM x.created_at))
                               ORDER BY x.seq), '[]'::json) AS replies
      FROM (SELECT seq, author_name, body, created_at FROM messages
            WHERE app_id = c.app_id AND conversation_id = c.id AND sender = 'agent'
              AND seq > LEAST(k.read_seq, k.handled_seq)
            ORDER BY seq DESC LIMIT 100) x
    ) r
    WHERE q.app_id = %(app_id)s AND q.claim = %(claim)s
"""

_APP = """
    SELECT a.name, s.quiet_hours_start, s.quiet_hours_end, s.default_timezone, s.hourly_limit,
           s.collapse_seconds, s.email_fallback_minutes, s.email_link
    FROM apps a LEFT JOIN push_settings s ON s.app_id = a.id
    WHERE a.id = %(app_id)s
"""

# Devices that may speak for the person (users.service.may_speak): only those receive their
# notifications. Newest first: the person's time zone is their latest device's.
_DEVICES = f"""
    SELECT d.end_user_id, d.device_id, d.push_provider, d.push_token, d.push_keys, d.timezone
    FROM devices d
    JOIN end_users u ON u.id = d.end_user_id AND u.app_id = d.app_id
    JOIN apps a ON a.id = d.app_id
    WHERE d.app_id = %(app_id)s AND d.end_user_id IN ({_CLAIMED_PEOPLE})
      AND (d.verified OR NOT (u.verified OR a.identity_verification_required))
    ORDER BY d.end_user_id, d.last_seen_at DESC
"""  # noqa: S608 (constant fragments; every value is bound)

# Pushes sent to these people in the past hour (and the longest collapse window, an hour,
# before it), per conversation.
_SENT = f"""
    SELECT end_user_id, conversation_id,
           count(*) FILTER (WHERE created_at > now() - interval '1 hour') AS last_hour,
           max(created_at) AS last_sent
    FROM push_notifications
    WHERE app_id = %(app_id)s AND end_user_id IN ({_CLAIMED_PEOPLE}) AND channel = 'push'
      AND parent_id IS NULL AND decision = 'sent'
      AND created_at > now() - interval '2 hours'
    GROUP BY end_user_id, conversation_id
"""  # noqa: S608 (constant fragments; every value is bound)

_CREDENTIALS = """
    SELECT provider, secret, details, updated_at FROM push_credentials
    WHERE app_id = %(app_id)s
"""

_DONE = text(
    "DELETE FROM push_queue "
    "WHERE app_id = :app_id AND conversation_id = ANY(:ids) AND claim = :claim"
)

_REQUEUE = text(
    "UPDATE push_queue SET due_at = :due_at, recheck = :recheck, claim = NULL "
    "WHERE app_id = :app_id AND conversation_id = :conversation_id AND claim = :claim"
)

# Each delivery's answer, for a round's deliveries at once.
_LOGGED = """
    UPDATE push_notifications p
    SET status = r.status, provider_status = r.provider_status,
        provider_response = r.provider_response, latency_ms = r.latency_ms,
        attempts = r.attempts, updated_at = now()
    FROM jsonb_to_recordset(%(rows)s) AS r(id uuid, status text, provider_status integer,
                                            provider_response text, latency_ms integer,
                                            attempts integer)
    WHERE p.app_id = %(app_id)s AND p.id = r.id
"""

# Devices that may speak for one person (the test push, retries).
_PERSON_DEVICES = text(
    """
    SELECT d.end_user_id, d.device_id, d.push_provider, d.push_token, d.push_keys, d.timezone
    FROM devices d
    JOIN end_users u ON u.id = d.end_user_id AND u.app_id = d.app_id
    JOIN apps a ON a.id = d.app_id
    WHERE d.app_id = :app_id AND d.end_user_id = :end_user_id
      AND (d.verified OR NOT (u.verified OR a.identity_verification_required))
    ORDER BY d.last_seen_at DESC
    LIMIT 20
    """
)


def _rules_of(values: Mapping[str, Any]) -> Rules:
    if values["hourly_limit"] is None:  # no push_settings row: the defaults
        return Rules()
    return Rules(**{f.name: values[f.name] for f in fields(Rules)})


async def app_rules(session: AsyncSession, app_id: uuid.UUID) -> Rules:
    row = await session.get(PushSettings, app_id)
    return (
        Rules() if row is None else _rules_of({f.name: getattr(row, f.name) for f in fields(Rules)})
    )


def _device(row: Mapping[Any, Any]) -> Device:
    return Device(
        row["device_id"], row["push_provider"], row["push_token"], row["push_keys"], row["timezone"]
    )


async def devices_of(
    session: AsyncSession, app_id: uuid.UUID, end_user_id: uuid.UUID
) -> list[Device]:
    rows = await session.execute(_PERSON_DEVICES, {"app_id": app_id, "end_user_id": end_user_id})
    return [_device(r._mapping) for r in rows]


def senders_of(runtime: Runtime) -> Senders:
    senders = runtime.resources.get("push")
    if senders is None:
        senders = runtime.resources["push"] = Senders(runtime.settings)
    assert isinstance(senders, Senders)
    return senders


@dataclass(frozen=True)
class Delivery:
    """One notification to one device, its log row written already."""

    row_id: uuid.UUID
    device: Device
    note: Notification
    since: dt.datetime | None  # the first unread reply's commit (latency), None for a test push


class Drains:
    """The apps this process is draining, each with whether a drain job of it came meanwhile.
    One drain per app and process at a time: a drain job that finds one running leaves its work
    to it (which takes one more round) and returns, so that the rounds grow with the rate rather
    than the drains multiplying, each paying a round's fixed cost for a few pushes."""

    def __init__(self) -> None:
        self.again: dict[uuid.UUID, bool] = {}

    async def aclose(self) -> None:
        pass


def drains_of(runtime: Runtime) -> Drains:
    drains = runtime.resources.get("push-drains")
    if drains is None:
        drains = runtime.resources["push-drains"] = Drains()
    assert isinstance(drains, Drains)
    return drains


async def drain(runtime: Runtime, app_id: uuid.UUID) -> int:
    """Decide about and send to every conversation of the app due in the queue, in rounds,
    until a round finds none and no drain job of the app came during it; the number of
    conversations decided. Past DRAIN_SECONDS a drain hands over to a new job (a worker
    stopping waits for its running jobs)."""
    drains = drains_of(runtime)
    if app_id in drains.again:
        # The drain running takes one more round, which sees what this job was queued for
        # (committed before the job was). No await between its last look at the flag and
        # its leaving: a job never finds it leaving.
        drains.again[app_id] = True
        return 0
    drains.again[app_id] = False
    started = time.monotonic()
    total = 0
    try:
        while True:
            drains.again[app_id] = False
            claimed = await drain_once(runtime, app_id)
            total += claimed
            if not claimed and not drains.again[app_id]:
                return total
            if claimed < BATCH:
                # A reply whose trigger found a drain job waiting queued none, and that job may
                # have run before the reply committed: the next round, a little later, takes it.
                await asyncio.sleep(GATHER_SECONDS)
            if time.monotonic() - started > DRAIN_SECONDS:
                await _hand_over(runtime, app_id)
                return total
    finally:
        del drains.again[app_id]


async def _hand_over(runtime: Runtime, app_id: uuid.UUID) -> None:
    from replyhq.push import tasks

    async with runtime.db.tenant_session(app_id) as session:
        await enqueue_unique(session, tasks.drain, [(f"push-drain:{app_id}", {"app_id": app_id})])


async def drain_once(runtime: Runtime, app_id: uuid.UUID) -> int:
    """One round: claim up to BATCH due conversations, decide, commit, send."""
    from replyhq.push import fallback, tasks  # tasks imports this module

    settings = runtime.settings
    deliveries: list[Delivery] = []
    claim = uuid.uuid4()
    params = {
        "app_id": app_id,
        "claim": claim,
        "limit": BATCH,
        "lease": CLAIM_SECONDS,
        "final": list(FINAL),
    }
    (
        claimed,
        states,
        (app,),
        device_rows,
        sent_rows,
        credential_rows,
    ) = await runtime.db.tenant_statements(
        app_id,
        [
            (_CLAIM, params),
            (_STATE, params),
            (_APP, params),
            (_DEVICES, params),
            (_SENT, params),
            (_CREDENTIALS, params),
        ],
    )
    if not states:  # none claimed, or deleted since (their rows went with them)
        return len(claimed)
    pending = [
        Pending(
            row["conversation_id"],
            row["end_user_id"],
            row["email"],
            row["read_seq"],
            row["handled_seq"],
            [
                Reply(seq, author, body, dt.datetime.fromtimestamp(at, dt.UTC))
                for seq, author, body, at in row["replies"]
            ],
            row["recheck"],
        )
        for row in states
    ]
    rules_ = _rules_of(app)
    people = list({p.person for p in pending})
    devices: dict[uuid.UUID, list[Device]] = defaultdict(list)
    for row in device_rows:
        if len(devices[row["end_user_id"]]) < DEVICES_PER_PERSON:
            devices[row["end_user_id"]].append(_device(row))
    history: dict[uuid.UUID, History] = defaultdict(History)
    for row in sent_rows:
        seen = history[row["end_user_id"]]
        seen.last_hour += row["last_hour"]
        seen.last_sent[row["conversation_id"]] = row["last_sent"]
    presence = PresenceStore(runtime.redis, settings.redis_prefix, settings.presence_ttl_seconds)
    online = dict(zip(people, await presence.online(app_id, "user", people), strict=True))
    now = dt.datetime.now(dt.UTC)
    rows: list[dict[str, Any]] = []
    waits: list[dict[str, Any]] = []
    mail_to: dict[uuid.UUID, str] = {}
    for item in pending:
        decision = decide(
            item,
            rules_=rules_,
            devices=devices.get(item.person, []),
            online=online[item.person],
            history=history[item.person],
            hold=settings.push_hold_seconds,
            now=now,
        )
        if decision is None:
            continue  # decided already (a repeated run)
        if decision.unread and item.email:
            mail_to[item.person] = item.email
        row_id = uuid.uuid4()
        base = {
            "app_id": app_id,
            "end_user_id": item.person,
            "conversation_id": item.conversation_id,
            "channel": "push",
            "seq_to": decision.last_seq,
            "message_count": len(decision.unread),
        }
        record = {
            **base,
            "id": row_id,
            "parent_id": None,
            "decision": decision.decision,
            "reason": decision.reason,
            "title": None,
            "body": None,
            "device_id": None,
            "provider": None,
            "status": None,
        }
        rows.append(record)
        if decision.wait is not None:
            waits.append(
                {
                    "app_id": app_id,
                    "conversation_id": item.conversation_id,
                    "due_at": now + dt.timedelta(seconds=decision.wait),
                    "recheck": decision.decision == "held",
                    "claim": claim,
                }
            )
        if decision.decision != "sent":
            continue
        title, body = rules.summary(app["name"], [(r.author, r.body) for r in decision.unread])
        record.update(title=title, body=body)
        seen = history[item.person]
        seen.last_hour += 1  # the hourly cap counts this round's pushes too
        seen.last_sent[item.conversation_id] = now
        pushable = [d for d in devices[item.person] if d.token]
        note = Notification(title, body, str(item.conversation_id), {"seq": str(decision.last_seq)})
        for device in pushable:
            delivery_id = uuid.uuid4()
            rows.append(
                {
                    **base,
                    "id": delivery_id,
                    "parent_id": row_id,
                    "decision": "delivery",
                    "reason": "",
                    "title": None,
                    "body": None,
                    "device_id": device.device_id,
                    "provider": device.provider,
                    "status": "pending",
                }
            )
            deliveries.append(Delivery(delivery_id, device, note, decision.unread[0].at))
    async with runtime.db.tenant_session(app_id) as session:
        if rows:
            # Decisions first, deliveries after (their parent_id refers to them).
            rows.sort(key=lambda r: r["parent_id"] is not None)
            await session.execute(insert(PushNotification), rows)
        await fallback.schedule_many(session, rules_, app_id, list(mail_to))
        # The queue's rows last (see _CLAIM).
        waiting = {w["conversation_id"] for w in waits}
        done = [r["conversation_id"] for r in claimed if r["conversation_id"] not in waiting]
        if done:
            await session.execute(_DONE, {"app_id": app_id, "ids": done, "claim": claim})
        if waits:
            await session.execute(_REQUEUE, waits)
            wakes = {math.ceil(w["due_at"].timestamp()) for w in waits}
            for second in sorted(wakes):
                await enqueue(
                    session,
                    tasks.drain,
                    delay=dt.timedelta(seconds=max(0.0, second - time.time())),
                    queueing_lock=f"push-wake:{app_id}:{second}",
                    app_id=app_id,
                )
    # Committed: the decisions stand even if the sends below are cut short (at most once).
    if deliveries:
        creds = credentials_store.of_rows(settings, app_id, credential_rows)
        await send_all(runtime, app_id, creds, deliveries)
    return len(claimed)


async def send_all(
    runtime: Runtime,
    app_id: uuid.UUID,
    creds: dict[str, credentials_store.Credentials],
    deliveries: list[Delivery],
    *,
    attempt: int = 1,
) -> list[uuid.UUID]:
    """Send every delivery at once (at most SEND_CONCURRENCY in flight), then log every answer
    in one transaction; the rows' ids."""
    senders = senders_of(runtime)
    gate = asyncio.Semaphore(SEND_CONCURRENCY)

    async def one(item: Delivery) -> tuple[Outcome, float]:
        device = item.device
        assert device.token is not None and device.provider is not None
        async with gate:
            started = time.perf_counter()
            outcome = await senders.send(
                creds.get(device.provider), device.provider, device.token, device.keys, item.note
            )
            return outcome, time.perf_counter() - started

    results = await asyncio.gather(*(one(d) for d in deliveries))
    finished = dt.datetime.now(dt.UTC)
    from replyhq.push import tasks

    updates: list[dict[str, Any]] = []
    invalid: list[str] = []
    retries: list[tuple[Delivery, Outcome]] = []
    for item, (outcome, took) in zip(deliveries, results, strict=True):
        device = item.device
        latency = (finished - item.since).total_seconds() if item.since is not None else took
        status = {
            "sent": "sent",
            "invalid": "invalid",
            "failed": "failed",
            "retry": "retrying",
        }[outcome.kind]
        if outcome.kind == "retry" and attempt >= runtime.settings.push_max_attempts:
            status = "failed"
        updates.append(
            {
                "id": str(item.row_id),
                "status": status,
                "provider_status": outcome.status,
                "provider_response": outcome.response,
                "latency_ms": round(latency * 1000),
                "attempts": attempt,
            }
        )
        if outcome.kind == "invalid" and device.token:
            invalid.append(device.token)
        if status == "retrying":
            retries.append((item, outcome))
        log.info(
            "push_delivered",
            provider=device.provider,
            outcome=outcome.kind,
            status=outcome.status,
            latency_ms=round(latency * 1000),
            attempt=attempt,
        )
    logged = {"app_id": app_id, "rows": Jsonb(updates)}
    if not invalid and not retries:  # the common case: one round trip
        await runtime.db.tenant_statements(app_id, [(_LOGGED, logged)])
        return [item.row_id for item in deliveries]
    async with runtime.db.tenant_session(app_id) as session:
        for token in invalid:
            await tokens.forget_token(session, app_id, token)
        for item, outcome in retries:
            await enqueue(
                session,
                tasks.resend,
                delay=dt.timedelta(seconds=retry_delay(runtime, outcome, attempt)),
                app_id=app_id,
                notification_id=item.row_id,
                attempt=attempt + 1,
                since=item.since,
            )
        await (await session.connection()).exec_driver_sql(_LOGGED, logged)
    return [item.row_id for item in deliveries]


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
        runtime, app_id, creds, [Delivery(notification_id, device, note, since)], attempt=attempt
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
        note = Notification(parent.title or "", parent.body or "", None, {"test": "true"})
        deliveries = []
        for row in pending:
            device = devices.get(row.device_id or "")
            if device is None or not device.token:
                row.status = "cancelled"
                row.provider_response = "the device no longer has a push token"
            else:
                deliveries.append(Delivery(row.id, device, note, None))
    await send_all(runtime, app_id, creds, deliveries)
