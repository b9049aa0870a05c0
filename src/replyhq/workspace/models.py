"""Tables of the agents' workspace (migration 0050): labels on conversations, saved replies."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
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


class Label(Base):
    __tablename__ = "labels"
    __table_args__ = (
        UniqueConstraint("id", "app_id"),
        CheckConstraint("color ~ '^#[0-9a-f]{6}$'", name="color"),
        Index("ix_labels_name", "app_id", text("lower(name)"), unique=True),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    app_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("apps.id", ondelete="CASCADE"), nullable=False
    )
    name: Mapped[str] = mapped_column(String(50), nullable=False)
    color: Mapped[str] = mapped_column(String(7), nullable=False)
    created_at: Mapped[datetime] = created_at()


class ConversationLabel(Base):
    __tablename__ = "conversation_labels"
    __table_args__ = (
        ForeignKeyConstraint(
            ["conversation_id", "app_id"],
            ["conversations.id", "conversations.app_id"],
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(
            ["label_id", "app_id"], ["labels.id", "labels.app_id"], ondelete="CASCADE"
        ),
        # The inbox filtered by a label.
        Index("ix_conversation_labels_label", "app_id", "label_id"),
    )

    conversation_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    label_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    app_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    created_at: Mapped[datetime] = created_at()


class SavedReply(Base):
    __tablename__ = "saved_replies"
    __table_args__ = (UniqueConstraint("app_id", "shortcut"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    app_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("apps.id", ondelete="CASCADE"), nullable=False
    )
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    shortcut: Mapped[str] = mapped_column(String(32), nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )


class AssignmentSettings(Base):
    """How an app's new conversations find an assignee (replyhq.workspace.assignment)."""

    __tablename__ = "assignment_settings"
    __table_args__ = (
        CheckConstraint("mode IN ('off', 'round_robin', 'least_busy')", name="mode"),
        CheckConstraint("capacity > 0", name="capacity"),
    )

    app_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("apps.id", ondelete="CASCADE"), primary_key=True
    )
    mode: Mapped[str] = mapped_column(String(16), nullable=False, server_default="off")
    capacity: Mapped[int] = mapped_column(Integer, nullable=False, server_default="10")
    # Round robin's place: the staff user assigned last.
    last_assignee_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )


class TimelineItem(Base):
    """What only the app's staff see in a conversation's timeline: private notes, and events
    other than closed/reopened (assigned, unassigned, labels). Kept out of `messages` so that no
    end-user path can reach them and the end user's `seq` stays gap-free; placed in the timeline
    after the message `after_seq` (the conversation's last seq when written), then by time."""

    __tablename__ = "timeline_items"
    __table_args__ = (
        ForeignKeyConstraint(
            ["conversation_id", "app_id"],
            ["conversations.id", "conversations.app_id"],
            ondelete="CASCADE",
        ),
        UniqueConstraint("conversation_id", "client_msg_id"),
        CheckConstraint("kind IN ('note', 'event')", name="kind"),
        Index("ix_timeline_items_order", "conversation_id", "after_seq", "created_at"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    app_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    conversation_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    after_seq: Mapped[int] = mapped_column(Integer, nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    client_msg_id: Mapped[str] = mapped_column(String(64), nullable=False)
    author_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    author_name: Mapped[str | None] = mapped_column(String(255))
    body: Mapped[str] = mapped_column(Text, nullable=False)
    body_html: Mapped[str] = mapped_column(Text, nullable=False)
    data: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    created_at: Mapped[datetime] = created_at()
