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

_LATEST = (text("last_activity_at DESC"), text("id DESC"))


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (
        UniqueConstraint("id", "app_id"),
        ForeignKeyConstraint(
            ["end_user_id", "app_id"], ["end_users.id", "end_users.app_id"], ondelete="CASCADE"
        ),
        # The assignee is a staff user of the same app (migration 0002).
        ForeignKeyConstraint(["assignee_id", "app_id"], ["staff_users.id", "staff_users.app_id"]),
        CheckConstraint("status IN ('open', 'closed')", name="status"),
        # Lists are newest activity first, (last_activity_at, id) descending, and paged by that
        # pair: the whole app's, by status, by assignee (migration 0004); the end user's own.
        Index("ix_conversations_recent", "app_id", *_LATEST),
        Index("ix_conversations_inbox", "app_id", "status", *_LATEST),
        Index("ix_conversations_end_user", "app_id", "end_user_id", text("last_activity_at DESC")),
        Index(
            "ix_conversations_assignee",
            "app_id",
            "assignee_id",
            *_LATEST,
            postgresql_where=text("assignee_id IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    app_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("apps.id", ondelete="CASCADE"), nullable=False
    )
    end_user_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    subject: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="open")
    assignee_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    # The last allocated `seq`; bumped under the row lock in the inserting transaction.
    last_seq: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    last_activity_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("conversation_id", "seq"),
        UniqueConstraint("conversation_id", "client_msg_id"),
        ForeignKeyConstraint(
            ["conversation_id", "app_id"],
            ["conversations.id", "conversations.app_id"],
            ondelete="CASCADE",
        ),
        CheckConstraint("sender IN ('user', 'agent', 'system')", name="sender"),
        CheckConstraint("seq > 0", name="seq_positive"),
        # A message, or an event the end user sees too: closed, reopened (messaging/timeline.py;
        # notes and the agents' own events are timeline_items, never here).
        CheckConstraint("kind IN ('message', 'event')", name="kind"),
        Index("ix_messages_app_created", "app_id", text("created_at DESC")),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    app_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    conversation_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    seq: Mapped[int] = mapped_column(Integer, nullable=False)
    client_msg_id: Mapped[str] = mapped_column(String(64), nullable=False)
    sender: Mapped[str] = mapped_column(String(16), nullable=False)
    author_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    author_name: Mapped[str | None] = mapped_column(String(255))
    body: Mapped[str] = mapped_column(Text, nullable=False)
    body_html: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = created_at()
    kind: Mapped[str] = mapped_column(String(16), nullable=False, server_default="message")
    # An event's type and details (kind 'event').
    data: Mapped[dict[str, Any] | None] = mapped_column(JSONB)


class ReadMarker(Base):
    """How far a reader (the end user, or one agent) has read a conversation."""

    __tablename__ = "read_markers"
    __table_args__ = (
        ForeignKeyConstraint(
            ["conversation_id", "app_id"],
            ["conversations.id", "conversations.app_id"],
            ondelete="CASCADE",
        ),
        CheckConstraint("reader_type IN ('user', 'agent')", name="reader_type"),
    )

    conversation_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    reader_type: Mapped[str] = mapped_column(String(16), primary_key=True)
    reader_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    app_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    last_read_seq: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
