from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    String,
    Uuid,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from replyhq.db.base import Base, created_at, uuid_pk


class Attachment(Base):
    """A file or image in a conversation. The bytes are on the storage backend under
    `storage_key` (and `storage_key + "/thumbnail"`); a download is checked against this row."""

    __tablename__ = "attachments"
    __table_args__ = (
        ForeignKeyConstraint(
            ["conversation_id", "app_id"],
            ["conversations.id", "conversations.app_id"],
            ondelete="CASCADE",
        ),
        CheckConstraint("uploader_type IN ('user', 'agent')", name="uploader"),
        CheckConstraint("kind IN ('image', 'file')", name="kind"),
        CheckConstraint("size >= 0", name="size"),
        Index(
            "ix_attachments_message",
            "app_id",
            "message_id",
            postgresql_where=text("message_id IS NOT NULL"),
        ),
        Index("ix_attachments_conversation", "app_id", "conversation_id"),
        Index("ix_attachments_pending", "created_at", postgresql_where=text("message_id IS NULL")),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    app_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("apps.id", ondelete="CASCADE"), nullable=False
    )
    # None: an end user's upload before the conversation exists (its first message's).
    conversation_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    # The message that carries it; None while uploaded and not yet sent.
    message_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("messages.id", ondelete="CASCADE")
    )
    uploader_type: Mapped[str] = mapped_column(String(16), nullable=False)
    uploader_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    filename: Mapped[str] = mapped_column(String(255), nullable=False)
    # As found in its bytes, never as declared by the uploader.
    content_type: Mapped[str] = mapped_column(String(127), nullable=False)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    kind: Mapped[str] = mapped_column(String(8), nullable=False)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    has_thumbnail: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=false())
    storage_key: Mapped[str] = mapped_column(String(255), nullable=False)
    created_at: Mapped[datetime] = created_at()


class AttachmentDeletion(Base):
    """A stored object whose attachment row was deleted, awaiting removal from the storage
    backend by `attachments.purge`; queued by the attachments table's delete trigger (migration
    0130), whatever deleted the row. Storage keys only: no row-level security."""

    __tablename__ = "attachment_deletions"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), nullable=False)
    queued_at: Mapped[datetime] = created_at()
