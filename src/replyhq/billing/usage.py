"""Usage counted on the hot path for the price of a dictionary update.

The meter observes the process' committed domain events (a realtime observer, told each event
after its delivery: replyhq.events): each `message:new` adds one message to its app's month, and
an end user's message marks them active that month. Every BILLING_USAGE_FLUSH_SECONDS the counts
go to the database in one statement: the month's end users are inserted into
billing_active_users (their primary key makes each count once, across processes), and
billing_usage grows by the messages and by the end users new to the month. No request waits for
it, and nothing scans messages.

A process that dies loses at most one interval of counting (usage is a limit, not an invoice:
Stripe bills the plan, not the count).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
import uuid
from collections import defaultdict
from typing import Any

import structlog
from sqlalchemy import text

from replyhq.billing.service import month_start, utcnow
from replyhq.db import Database
from replyhq.events import DomainEvent, Event

log = structlog.get_logger(__name__)

# End users already written this month by this process (not written again); bounded.
SEEN_LIMIT = 200_000

_FLUSH = text(
    """
    WITH users AS (
        SELECT * FROM unnest(CAST(:user_apps AS uuid[]), CAST(:user_periods AS date[]),
                             CAST(:user_ids AS uuid[])) AS u(app_id, period, end_user_id)
    ), added AS (
        INSERT INTO billing_active_users (app_id, period, end_user_id)
        SELECT app_id, period, end_user_id FROM users
        ON CONFLICT DO NOTHING
        RETURNING app_id, period
    ), new_users AS (
        SELECT app_id, period, count(*) AS n FROM added GROUP BY app_id, period
    ), messages AS (
        SELECT * FROM unnest(CAST(:message_apps AS uuid[]), CAST(:message_periods AS date[]),
                             CAST(:message_counts AS bigint[])) AS m(app_id, period, n)
    )
    INSERT INTO billing_usage (app_id, period, messages, mau)
    SELECT coalesce(m.app_id, u.app_id), coalesce(m.period, u.period),
           coalesce(m.n, 0), coalesce(u.n, 0)
    FROM messages m FULL JOIN new_users u ON u.app_id = m.app_id AND u.period = m.period
    ON CONFLICT (app_id, period) DO UPDATE
    SET messages = billing_usage.messages + excluded.messages,
        mau = billing_usage.mau + excluded.mau
    """
)


class UsageMeter:
    def __init__(self, db: Database, interval: float) -> None:
        self.db = db
        self.interval = interval
        self._messages: dict[tuple[uuid.UUID, dt.date], int] = defaultdict(int)
        self._users: set[tuple[uuid.UUID, dt.date, uuid.UUID]] = set()
        self._seen: set[tuple[uuid.UUID, dt.date, uuid.UUID]] = set()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._period = month_start(utcnow())
        self._period_until = 0.0  # when _period must be worked out again

    def count(
        self, app_id: uuid.UUID, end_user_id: uuid.UUID | None, now: dt.datetime | None = None
    ) -> None:
        """One message of `app_id` (from `end_user_id` when an end user wrote it)."""
        period = self._current_period() if now is None else month_start(now)
        self._messages[(app_id, period)] += 1
        if end_user_id is not None:
            key = (app_id, period, end_user_id)
            if key not in self._seen:
                self._users.add(key)

    def _current_period(self) -> dt.date:
        """This month, worked out once a month rather than per message."""
        if time.time() >= self._period_until:
            now = utcnow()
            self._period = month_start(now)
            following = (self._period.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
            self._period_until = dt.datetime(
                following.year, following.month, 1, tzinfo=dt.UTC
            ).timestamp()
        return self._period

    # The committed events it counts (its observer is told only these: events.Observers).
    EVENTS = ("message:new",)

    async def observe(self, event: DomainEvent) -> None:
        """A realtime observer (told committed `message:new`): counts each new message."""
        if isinstance(event, Event) and event.name == "message:new":
            self._count_event(event)

    def _count_event(self, event: Event) -> None:
        message: dict[str, Any] = event.data.get("message") or {}
        author = message.get("author") or {}
        end_user = event.end_user_id if author.get("type") == "user" else None
        self.count(event.app_id, end_user)

    async def flush(self) -> None:
        """Write what was counted since the last flush (one statement, one transaction)."""
        async with self._lock:
            messages, self._messages = self._messages, defaultdict(int)
            users, self._users = self._users, set()
            if not messages and not users:
                return
            params = {
                "user_apps": [u[0] for u in users],
                "user_periods": [u[1] for u in users],
                "user_ids": [u[2] for u in users],
                "message_apps": [k[0] for k in messages],
                "message_periods": [k[1] for k in messages],
                "message_counts": list(messages.values()),
            }
            try:
                async with self.db.system_session() as session:
                    await session.execute(_FLUSH, params)
            except Exception:
                # Kept for the next flush: counting must survive a database blip.
                for key, n in messages.items():
                    self._messages[key] += n
                self._users |= users
                raise
            if len(self._seen) + len(users) > SEEN_LIMIT:
                self._seen.clear()
            self._seen |= users

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.flush()
            except Exception:
                log.exception("usage_flush_failed")

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="usage-meter")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            await self.flush()
