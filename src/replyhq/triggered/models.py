"""Event-triggered messages: a message from a named agent to each person who performs an event
(optionally only those a segment condition selects), at most once per person."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, ForeignKey, Integer, String, Text, UniqueConstraint, Uuid
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from replyhq.analytics.models import MAX_EVENT_NAME
from replyhq.db.base import Base, created_at, uuid_pk

STATUSES = ("active", "stopped")


class TriggeredMessage(Base):
    __tablename__ = "triggered_messages"
    __table_args__ = (UniqueConstraint("id", "app_id"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    app_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("apps.id", ondelete="CASCADE"), nullable=False
    )
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    event_name: Mapped[str] = mapped_column(String(MAX_EVENT_NAME), nullable=False)
    condition: Mapped[dict[str, Any] | None] = mapped_column(JSONB)  # a segment query
    sender_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    sender_name: Mapped[str | None] = mapped_column(String(255))
    body: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="active")
    created_at: Mapped[datetime] = created_at()
    stopped_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class TriggeredSend(Base):
    """A person who performed the event: claimed by the ingest statement (the primary key makes
    it once per person), then sent by the job (conversation_id set) or, when the condition did
    not select them, deleted (a later event may claim them again)."""

    __tablename__ = "triggered_message_sends"

    triggered_message_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    end_user_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    app_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("apps.id", ondelete="CASCADE"), nullable=False
    )
    event_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    claimed_at: Mapped[datetime] = created_at()
    conversation_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    seq: Mapped[int | None] = mapped_column(Integer)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
