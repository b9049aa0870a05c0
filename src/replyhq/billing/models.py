"""Billing's tables: one subscription per app, Stripe's events as received, usage counters per
app and month, the end users counted in a month, and the notices (e-mails) already sent."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Uuid,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from replyhq.db.base import Base, created_at

STATUSES = ("trialing", "active", "past_due", "canceled")


class Subscription(Base):
    """An app's plan and its state as Stripe last told it. Made at sign-up, or by the first
    look or the periodic notices job; its trial runs from then (billing/service.py)."""

    __tablename__ = "billing_subscriptions"
    __table_args__ = (
        CheckConstraint(f"status IN {STATUSES!r}", name="status"),
        CheckConstraint("plan IN ('starter', 'growth', 'business')", name="plan"),
    )

    app_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("apps.id", ondelete="CASCADE"), primary_key=True
    )
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="trialing")
    plan: Mapped[str | None] = mapped_column(String(16))
    trial_ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    stripe_customer_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    stripe_subscription_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    stripe_price_id: Mapped[str | None] = mapped_column(String(255))
    current_period_end: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancel_at_period_end: Mapped[bool] = mapped_column(
        Boolean, nullable=False, server_default="false"
    )
    # Stripe's `created` of the newest event applied: an older one never overwrites it.
    stripe_event_created: Mapped[int] = mapped_column(
        BigInteger, nullable=False, server_default="0"
    )
    # The latest invoice whose payment failed (its e-mail is sent once, by billing.notices).
    payment_failed_invoice: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )


class StripeEvent(Base):
    """Every webhook event, stored before it is applied (by the billing.apply_event job): its id
    is unique, so a second delivery of it stores and applies nothing."""

    __tablename__ = "billing_events"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(100), nullable=False)
    stripe_created: Mapped[int] = mapped_column(BigInteger, nullable=False)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    # The app it concerns, once applying found it (until then only the system role sees it).
    app_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("apps.id", ondelete="CASCADE")
    )
    received_at: Mapped[datetime] = created_at()
    applied_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str | None] = mapped_column(String(32))


class Usage(Base):
    """What an app used in a month (UTC): written by the usage meter's flushes, never scanned
    from the messages."""

    __tablename__ = "billing_usage"

    app_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("apps.id", ondelete="CASCADE"), primary_key=True
    )
    period: Mapped[date] = mapped_column(Date, primary_key=True)
    messages: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    mau: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")


class ActiveUser(Base):
    """An end user counted in a month's MAU (their first message of the month put them here)."""

    __tablename__ = "billing_active_users"

    app_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("apps.id", ondelete="CASCADE"), primary_key=True
    )
    period: Mapped[date] = mapped_column(Date, primary_key=True)
    end_user_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)


class Notice(Base):
    """A billing e-mail already sent to an app's owners (`kind`: trial:10, payment_failed:<inv>,
    usage:<month>:messages:80 ...): each is sent once."""

    __tablename__ = "billing_notices"

    app_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("apps.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(100), primary_key=True)
    sent_at: Mapped[datetime] = created_at()
