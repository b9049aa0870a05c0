"""Tracking events for an end user's device, and what the app has tracked so far."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from replyhq.analytics.ingest import EventWriter, Row, to_json
from replyhq.analytics.models import event_daily_counts
from replyhq.analytics.partitions import cutoff
from replyhq.analytics.schemas import (
    MAX_FUTURE_DAYS,
    MAX_PAST_DAYS,
    AttributeKeyOut,
    CatalogOut,
    EventBatchIn,
    EventNameOut,
)
from replyhq.errors import BadRequest
from replyhq.events import Event
from replyhq.users.models import EndUser

CATALOG_LIMIT = 500
# Committed tracked events, told to the process' observers (the test console): heard by no
# socket as such.
TRACKED = "events:tracked"


def rows_of(batch: EventBatchIn, retention_days: int, now: datetime | None = None) -> list[Row]:
    """The batch's rows, each with its time; 400 (and nothing stored) for a timestamp more than
    a day ahead or further back than 30 days (or than retention keeps)."""
    now = now or datetime.now(UTC)
    earliest = max(
        now - timedelta(days=MAX_PAST_DAYS),
        datetime.combine(cutoff(retention_days, now), datetime.min.time(), UTC),
    )
    latest = now + timedelta(days=MAX_FUTURE_DAYS)
    rows: list[Row] = []
    problems: list[dict[str, str]] = []
    for index, event in enumerate(batch.events):
        at = event.timestamp or now
        if at > latest:
            problems.append(
                {"field": f"events.{index}.timestamp", "reason": "more than a day in the future"}
            )
        elif at < earliest:
            problems.append(
                {"field": f"events.{index}.timestamp", "reason": "older than events are accepted"}
            )
        rows.append(Row(event.name, to_json(event.properties), at))
    if problems:
        raise BadRequest(
            "An event's timestamp is out of range: at most 30 days back, 1 day ahead.",
            code="VALIDATION_ERROR",
            details=problems,
        )
    return rows


async def track(
    writer: EventWriter,
    app_id: uuid.UUID,
    device_id: str,
    batch: EventBatchIn,
    retention_days: int,
    *,
    transport: str = "http",
) -> int:
    """Store the batch's events for the device's end user; returns once they are committed.
    401 for a device that has not identified (or may not speak for its user). Once committed,
    the process' observers hear `events:tracked` (the test console shows each event)."""
    rows = rows_of(batch, retention_days)
    await writer.write(app_id, device_id, rows)
    sink = writer.db.event_sink
    if sink is not None:
        tracked = [
            {"name": e.name, "properties": e.properties, "timestamp": r.occurred_at.isoformat()}
            for e, r in zip(batch.events, rows, strict=True)
        ]
        data = {"device_id": device_id, "transport": transport, "events": tracked}
        await sink(Event(TRACKED, app_id, data))
    return len(rows)


async def catalog(session: AsyncSession, app_id: uuid.UUID) -> CatalogOut:
    """Event names (with how many are kept, and the latest) and attribute keys (with how many
    users have each): what the segment builder offers. Names are counted from the daily counts
    when asked, rather than kept in a row that every flush of the app would update."""
    counts = event_daily_counts.c
    total = func.sum(counts.count)
    names = await session.execute(
        select(counts.name, total, func.max(counts.last_at))
        .where(counts.app_id == app_id)
        .group_by(counts.name)
        .order_by(total.desc(), counts.name)
        .limit(CATALOG_LIMIT)
    )
    keys_of = func.jsonb_object_keys(EndUser.attributes).table_valued("key").render_derived("k")
    key = keys_of.c.key
    keys = await session.execute(
        select(key, func.count().label("users"))
        .select_from(EndUser)
        .join(keys_of, true())
        .where(EndUser.app_id == app_id)
        .group_by(key)
        .order_by(func.count().desc(), key)
        .limit(CATALOG_LIMIT)
    )
    return CatalogOut(
        events=[EventNameOut(name=n, count=c, last_at=at) for n, c, at in names],
        attributes=[AttributeKeyOut(key=k, users=u) for k, u in keys],
    )
