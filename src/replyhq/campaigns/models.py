"""Campaigns: one in-app message from a named agent to every member of a segment, once each."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, ForeignKey, Integer, String, Text, UniqueConstraint, Uuid
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from replyhq.db.base import Base, created_at, uuid_pk

STATUSES = ("sending", "stopped", "done")


class Campaign(Base):
    __tablename__ = "campaigns"
    __table_args__ = (UniqueConstraint("id", "app_id"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    app_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("apps.id", ondelete="CASCADE"), nullable=False
    )
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    segment_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    query: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)  # as when launched
    sender_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    sender_name: Mapped[str | None] = mapped_column(String(255))
    body: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="sending")
    created_at: Mapped[datetime] = created_at()
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class CampaignMessage(Base):
    """One person reached by a campaign: the primary key makes it once per person."""

    __tablename__ = "campaign_messages"

    campaign_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    end_user_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    app_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("apps.id", ondelete="CASCADE"), nullable=False
    )
    conversation_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    seq: Mapped[int] = mapped_column(Integer, nullable=False)
    sent_at: Mapped[datetime] = created_at()
