from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    ForeignKeyConstraint,
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
    conversation_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
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
