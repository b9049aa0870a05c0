"""Tracked events, their per-user daily rollups and each user's latest occurrence of a name (the
app's catalog of event names is summed from the daily rollups: analytics.service.catalog).

`events` and `event_daily_counts` are partitioned by UTC day (migration 0030): neither has a
primary key of its own worth mapping, so they are Core tables; SQL names the parents only.
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Date,
    DateTime,
    Integer,
    String,
    Table,
    Uuid,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from replyhq.db.base import Base

MAX_EVENT_NAME = 100

events = Table(
    "events",
    Base.metadata,
    Column("app_id", Uuid, nullable=False),
    Column("end_user_id", Uuid, nullable=False),
    Column("device_id", String(128), nullable=False),
    Column("platform", String(32)),
    Column("app_version", String(64)),
    Column("name", String(MAX_EVENT_NAME), nullable=False),
    Column("properties", JSONB, nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

event_daily_counts = Table(
    "event_daily_counts",
    Base.metadata,
    Column("app_id", Uuid, primary_key=True),
    Column("name", String(MAX_EVENT_NAME), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("end_user_id", Uuid, primary_key=True),
    Column("count", Integer, nullable=False),
    Column("last_at", DateTime(timezone=True), nullable=False),
    Column("recent", ARRAY(Integer), nullable=False),
)

# When each end user last did each event name (migration 0190), and how many times on that UTC
# day and the days before it (`recent[k]`: that day and the k-1 before, k <= 32; past the
# array's end, its last element; migration 0210), maintained by the ingest flush: "did not do X
# in the last D days" and "did X N times in the last D days" read one row per user who did X.
event_latest = Table(
    "event_latest",
    Base.metadata,
    Column("app_id", Uuid, primary_key=True),
    Column("name", String(MAX_EVENT_NAME), primary_key=True),
    Column("end_user_id", Uuid, primary_key=True),
    Column("last_at", DateTime(timezone=True), nullable=False),
    Column("recent", ARRAY(Integer), nullable=False),
)
