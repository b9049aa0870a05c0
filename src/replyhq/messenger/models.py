"""The messenger's look and hours per app, visitor context, ratings and per-conversation metrics.

`conversation_metrics` is kept by triggers (migration 0060), not by the send path's code: a
conversation's first agent reply and each closing are written in the same transaction as the
message or the status change, so reports never scan messages to find them.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from replyhq.db.base import Base, created_at, uuid_pk


class MessengerSettings(Base):
    """One row per app once its team saved the messenger's settings (defaults until then)."""

    __tablename__ = "messenger_settings"
    __table_args__ = (
        CheckConstraint("launcher_position IN ('left', 'right')", name="launcher_position"),
    )

    app_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("apps.id", ondelete="CASCADE"), primary_key=True
    )
    color: Mapped[str] = mapped_column(String(7), nullable=False)
    launcher_position: Mapped[str] = mapped_column(String(8), nullable=False)
    team_name: Mapped[str] = mapped_column(String(80), nullable=False)
    avatar_url: Mapped[str | None] = mapped_column(String(1000))
    greeting: Mapped[str] = mapped_column(String(200), nullable=False)
    intro: Mapped[str] = mapped_column(String(1000), nullable=False)
    language: Mapped[str] = mapped_column(String(8), nullable=False)
    timezone: Mapped[str] = mapped_column(String(64), nullable=False)
    office_hours_enabled: Mapped[bool] = mapped_column(Boolean, nullable=False)
    # [{"day": 0-6 (Monday 0), "open": "HH:MM", "close": "HH:MM"}], in `timezone`
    office_hours: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, nullable=False)
    away_message: Mapped[str] = mapped_column(String(1000), nullable=False)
    auto_reply: Mapped[bool] = mapped_column(Boolean, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )


class AwayReply(Base):
    """The automatic reply a conversation got in one away period (one at most: the key)."""

    __tablename__ = "away_replies"
    __table_args__ = (
        ForeignKeyConstraint(
            ["conversation_id", "app_id"],
            ["conversations.id", "conversations.app_id"],
            ondelete="CASCADE",
        ),
    )

    conversation_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    away_since: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    app_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    created_at: Mapped[datetime] = created_at()


class VisitorContext(Base):
    """Where a web messenger's device last was: page, referrer, browser, OS (no geo lookup)."""

    __tablename__ = "visitor_contexts"
    __table_args__ = (
        ForeignKeyConstraint(
            ["app_id", "device_id"], ["devices.app_id", "devices.device_id"], ondelete="CASCADE"
        ),
    )

    app_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    device_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    page_url: Mapped[str | None] = mapped_column(String(2000))
    page_title: Mapped[str | None] = mapped_column(String(300))
    referrer: Mapped[str | None] = mapped_column(String(2000))
    browser: Mapped[str | None] = mapped_column(String(100))
    os: Mapped[str | None] = mapped_column(String(100))
    user_agent: Mapped[str | None] = mapped_column(String(1000))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )


class ConversationMetrics(Base):
    """Timestamps reports need, one row per conversation, written by triggers (see module)."""

    __tablename__ = "conversation_metrics"
    __table_args__ = (
        ForeignKeyConstraint(
            ["conversation_id", "app_id"],
            ["conversations.id", "conversations.app_id"],
            ondelete="CASCADE",
        ),
        Index("ix_conversation_metrics_created", "app_id", "created_at"),
        Index(
            "ix_conversation_metrics_closed",
            "app_id",
            "closed_at",
            postgresql_where=text("closed_at IS NOT NULL"),
        ),
    )

    conversation_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    app_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    first_response_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    first_responder_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    # The latest closing (NULL while open) and how many closings there were: a rating belongs
    # to one closing.
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_assignee_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    closings: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")


class ConversationRating(Base):
    """The end user's rating of one closing of a conversation (CSAT, 1-5)."""

    __tablename__ = "conversation_ratings"
    __table_args__ = (
        UniqueConstraint("conversation_id", "closing"),
        ForeignKeyConstraint(
            ["conversation_id", "app_id"],
            ["conversations.id", "conversations.app_id"],
            ondelete="CASCADE",
        ),
        CheckConstraint("score BETWEEN 1 AND 5", name="score"),
        Index("ix_conversation_ratings_created", "app_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    app_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    conversation_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    closing: Mapped[int] = mapped_column(Integer, nullable=False)
    score: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    comment: Mapped[str | None] = mapped_column(Text)
    # The assignee when the conversation was closed: whose work was rated.
    assignee_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    created_at: Mapped[datetime] = created_at()
