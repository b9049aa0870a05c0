from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from replyhq.db.base import Base, created_at, uuid_pk


class EndUser(Base):
    """A person using a customer's app: identified by the customer's `external_id`, or anonymous."""

    __tablename__ = "end_users"
    __table_args__ = (
        UniqueConstraint("app_id", "external_id"),
        UniqueConstraint("id", "app_id"),
        # Newest first, a page at a time (segment samples and members; migration 0240).
        Index("ix_end_users_newest", "app_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    app_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("apps.id", ondelete="CASCADE"), nullable=False
    )
    external_id: Mapped[str | None] = mapped_column(String(255))
    name: Mapped[str | None] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(320))
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    verified: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    # What their devices say of them, kept by a trigger on `devices` (migration 0250) for
    # segments: the latest `last_seen_at` (NULL: no device), every platform and locale.
    last_seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    platforms: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False, server_default="{}")
    locales: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False, server_default="{}")

    @property
    def anonymous(self) -> bool:
        return self.external_id is None


class Device(Base):
    """One installation of the customer's app, named by the SDK's `X-Device-Id`."""

    __tablename__ = "devices"
    __table_args__ = (
        UniqueConstraint("app_id", "device_id"),
        ForeignKeyConstraint(
            ["end_user_id", "app_id"], ["end_users.id", "end_users.app_id"], ondelete="CASCADE"
        ),
        Index("ix_devices_end_user", "app_id", "end_user_id"),
        # A token moving to another device is taken off the old one (tokens can be 4 KB: hash).
        Index("ix_devices_push_token", "push_token", postgresql_using="hash"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    app_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("apps.id", ondelete="CASCADE"), nullable=False
    )
    device_id: Mapped[str] = mapped_column(String(128), nullable=False)
    end_user_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    platform: Mapped[str] = mapped_column(String(32), nullable=False)
    app_version: Mapped[str | None] = mapped_column(String(64))
    locale: Mapped[str | None] = mapped_column(String(35))
    timezone: Mapped[str | None] = mapped_column(String(64))
    # Its push address (replyhq.push): `fcm` or `apns` token, or a Web Push endpoint whose
    # subscription keys (p256dh, auth) are in push_keys. One per device.
    push_provider: Mapped[str | None] = mapped_column(String(16))
    push_token: Mapped[str | None] = mapped_column(String(4096))
    push_keys: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    push_token_updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Its current identity was proven by a user_hash (see replyhq.users.service.may_speak).
    verified: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    created_at: Mapped[datetime] = created_at()
    last_seen_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
