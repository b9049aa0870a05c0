"""Day partitions of `events` and `event_daily_counts`: made ahead, dropped after retention.

Both go through the SECURITY DEFINER functions of migration 0030 (the runtime and system roles
have no DDL rights); those clamp whatever they are asked to a sane range. When days are dropped,
so are the `event_latest` rows (with their recent counts) of people whose latest occurrence was
in one: segment queries already ignore them (they count from the oldest day kept), and the
table stays one row per person and name seen within retention.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import text

from replyhq.analytics.schemas import MAX_FUTURE_DAYS, MAX_PAST_DAYS
from replyhq.db import Database

AHEAD_DAYS = 3  # partitions made ahead of today (an accepted timestamp reaches 1 day ahead)

_ENSURE = text("SELECT replyhq_ensure_event_partitions(:first, :last)")
_DROP = text("SELECT replyhq_drop_event_partitions(:before)")
# Rollup rows, not raw events: at most one per person and event name.
_TRIM_LATEST = text("DELETE FROM event_latest WHERE last_at < :before")


def utc_today(now: datetime | None = None) -> date:
    return (now or datetime.now(UTC)).astimezone(UTC).date()


def cutoff(retention_days: int, now: datetime | None = None) -> date:
    """The first day kept: partitions of earlier days are dropped."""
    return utc_today(now) - timedelta(days=retention_days - 1)


async def maintain(db: Database, retention_days: int) -> tuple[int, int]:
    """Make the partitions an accepted event may need, drop those past retention; (made,
    dropped). The periodic job's work, safe to run at any time and more than once."""
    today = utc_today()
    first = max(today - timedelta(days=MAX_PAST_DAYS + 1), cutoff(retention_days))
    async with db.system_session() as session:
        made = int(
            await session.scalar(_ENSURE, {"first": first, "last": today + timedelta(AHEAD_DAYS)})
            or 0
        )
    first_kept = cutoff(retention_days)
    async with db.system_session() as session:
        dropped = int(await session.scalar(_DROP, {"before": first_kept}) or 0)
    if dropped:
        async with db.system_session() as session:
            before = datetime.combine(first_kept, time.min, UTC)
            await session.execute(_TRIM_LATEST, {"before": before})
    return made, dropped


async def ensure_for(db: Database, app_id: uuid.UUID, first: datetime, last: datetime) -> None:
    """Make the partitions of the days from `first` to `last` (an insert met none)."""
    low = max(utc_today(first), utc_today() - timedelta(days=MAX_PAST_DAYS + 1))
    high = min(utc_today(last), utc_today() + timedelta(days=MAX_FUTURE_DAYS + 1))
    async with db.tenant_session(app_id) as session:
        await session.execute(_ENSURE, {"first": low, "last": high})
