"""Push tables: each app's provider credentials (encrypted), its delivery settings, agents'
desktop notification preferences, and the log of every push and e-mail fallback decision.

A device's push token lives on its `devices` row (users.models.Device: push_provider,
push_token, push_keys): one per device, so replacing it is an update and a device that changes
hands or logs out loses it with one statement."""

from __future__ import annotations

import uuid
from datetime import datetime, time
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    Time,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from replyhq.db.base import Base, created_at, uuid_pk

PROVIDERS = ("fcm", "apns", "webpush")


class PushCredential(Base):
    """One provider's credentials for one app: `secret` is a Fernet token (the service-account
    JSON, the .p8 key, the VAPID private key), `details` what may be shown (ids, not keys)."""

    __tablename__ = "push_credentials"
    __table_args__ = (CheckConstraint("provider IN ('fcm', 'apns', 'webpush')", name="provider"),)

    app_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("apps.id", ondelete="CASCADE"), primary_key=True
    )
    provider: Mapped[str] = mapped_column(String(16), primary_key=True)
    secret: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )


class PushSettings(Base):
    """An app's delivery rules; an app without a row has the defaults."""

    __tablename__ = "push_settings"

    app_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("apps.id", ondelete="CASCADE"), primary_key=True
    )
    quiet_hours_start: Mapped[time | None] = mapped_column(Time)
    quiet_hours_end: Mapped[time | None] = mapped_column(Time)
    default_timezone: Mapped[str] = mapped_column(String(64), nullable=False, server_default="UTC")
    hourly_limit: Mapped[int] = mapped_column(Integer, nullable=False, server_default="10")
    collapse_seconds: Mapped[int] = mapped_column(Integer, nullable=False, server_default="60")
    email_fallback_minutes: Mapped[int] = mapped_column(Integer, nullable=False, server_default="5")
    # Where the fallback e-mail's button leads ({conversation_id} is replaced): the web
    # messenger's page or the app's universal link. Unset: the e-mail says to open the app.
    email_link: Mapped[str | None] = mapped_column(String(2048))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )


class AgentNotificationPrefs(Base):
    """Whether a staff member's dashboard shows desktop notifications and plays a sound."""

    __tablename__ = "agent_notification_prefs"
    __table_args__ = (
        ForeignKeyConstraint(
            ["staff_id", "app_id"], ["staff_users.id", "staff_users.app_id"], ondelete="CASCADE"
        ),
    )

    staff_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    app_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    desktop: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="true")
    sound: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="true")
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )


class PushNotification(Base):
    """One decision about reaching a person (`device_id` NULL: sent, skipped and why, for
    which messages), or one delivery of a sent decision to one device (`parent_id` set) with the
    provider's answer verbatim and the latency from the message's commit."""

    __tablename__ = "push_notifications"
    __table_args__ = (
        ForeignKeyConstraint(
            ["end_user_id", "app_id"], ["end_users.id", "end_users.app_id"], ondelete="CASCADE"
        ),
        ForeignKeyConstraint(
            ["conversation_id", "app_id"],
            ["conversations.id", "conversations.app_id"],
            ondelete="CASCADE",
        ),
        CheckConstraint("channel IN ('push', 'email', 'test')", name="channel"),
        # A person's log, newest first; the hourly cap counts their recent sends.
        Index("ix_push_notifications_person", "app_id", "end_user_id", text("created_at DESC")),
        # What a conversation's messages have had decided (push.deliver, the e-mail fallback).
        Index(
            "ix_push_notifications_conversation",
            "app_id",
            "conversation_id",
            "channel",
            text("seq_to DESC"),
        ),
        Index("ix_push_notifications_created", "created_at"),  # the 30-day clean-up
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    app_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("apps.id", ondelete="CASCADE"), nullable=False
    )
    end_user_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    conversation_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    parent_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("push_notifications.id", ondelete="CASCADE")
    )
    channel: Mapped[str] = mapped_column(String(8), nullable=False)
    decision: Mapped[str] = mapped_column(String(24), nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    seq_to: Mapped[int | None] = mapped_column(Integer)
    message_count: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    title: Mapped[str | None] = mapped_column(Text)
    body: Mapped[str | None] = mapped_column(Text)
    device_id: Mapped[str | None] = mapped_column(String(128))
    provider: Mapped[str | None] = mapped_column(String(16))
    status: Mapped[str | None] = mapped_column(String(16))
    provider_status: Mapped[int | None] = mapped_column(Integer)
    provider_response: Mapped[str | None] = mapped_column(Text)
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )


class PushQueue(Base):
    """A conversation whose agent replies await a push decision (delivery.py): put here by the
    replies' trigger (migration 0110), due now or at the end of a hold or of quiet hours, taken
    by the app's drain (`claim`)."""

    __tablename__ = "push_queue"
    __table_args__ = (
        ForeignKeyConstraint(
            ["conversation_id", "app_id"],
            ["conversations.id", "conversations.app_id"],
            ondelete="CASCADE",
        ),
        Index("ix_push_queue_due", "app_id", "due_at"),
    )

    app_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    conversation_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    due_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    recheck: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    claim: Mapped[uuid.UUID | None] = mapped_column(Uuid)
