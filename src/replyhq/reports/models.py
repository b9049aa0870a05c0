"""The reports' rollups (migration 0080): per app and day in the app's time zone, kept by
triggers in the transaction that changes the raw rows, read by replyhq.reports.service."""

from __future__ import annotations

import uuid
from datetime import date

from sqlalchemy import (
    CHAR,
    CheckConstraint,
    Date,
    Double,
    ForeignKey,
    Integer,
    SmallInteger,
    Uuid,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from replyhq.db.base import Base


class ReportDayMessages(Base):
    """Messages written per local day, in as many rows as the day had concurrent senders: a
    message counts into a row no other transaction holds (migration 0200), so concurrent sends
    of one app do not queue on one row. A day's count is the sum of its rows."""

    __tablename__ = "report_day_messages"

    app_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("apps.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    shard: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    messages: Mapped[int] = mapped_column(Integer, nullable=False)


class _Histogram:
    """Parallel arrays: bucket, count, sum and sum of squares of the values in the bucket."""

    buckets: Mapped[list[int]] = mapped_column(ARRAY(SmallInteger), nullable=False)
    counts: Mapped[list[int]] = mapped_column(ARRAY(Integer), nullable=False)
    sums: Mapped[list[float]] = mapped_column(ARRAY(Double), nullable=False)
    squares: Mapped[list[float]] = mapped_column(ARRAY(Double), nullable=False)


class ReportDayHistogram(_Histogram, Base):
    """A sparse histogram per (local day, metric). Metrics: 's' started (bucket: local hour),
    'f' first-response seconds, 'r' resolution seconds (bucket: replyhq_report_bucket, 2^(1/8)
    wide over 1 + seconds), 'c' ratings (bucket: the score)."""

    __tablename__ = "report_day_histograms"
    __table_args__ = (CheckConstraint("metric IN ('s', 'f', 'r', 'c')", name="metric"),)

    app_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("apps.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    metric: Mapped[str] = mapped_column(CHAR(1), primary_key=True)


class ReportAgentHistogram(_Histogram, Base):
    """An agent's running histogram of a metric ('f', 'r', 'c'): the row of a day holds every
    value up to that day, so a range is the difference of two rows. Rows exist for the days the
    agent has values."""

    __tablename__ = "report_agent_histograms"
    __table_args__ = (CheckConstraint("metric IN ('f', 'r', 'c')", name="metric"),)

    app_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("apps.id", ondelete="CASCADE"), primary_key=True
    )
    metric: Mapped[str] = mapped_column(CHAR(1), primary_key=True)
    staff_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
