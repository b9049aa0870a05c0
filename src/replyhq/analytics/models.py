"""Tracked events, their per-user daily rollups and the app's catalog of event names.

`events` and `event_daily_counts` are partitioned by UTC day (migration 0030): neither has a
primary key of its own worth mapping, so they are Core tables; SQL names the parents only.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Table,
    Uuid,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

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
)


class EventName(Base):
    """Every event name an app has sent, with how many times: the dashboard's event picker."""

    __tablename__ = "event_names"

    app_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("apps.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(MAX_EVENT_NAME), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, nullable=False)
    last_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
