"""attachments: files and images sent in conversations

The bytes live on the storage backend (a local directory or S3-compatible object storage,
ATTACHMENT_STORAGE); this table holds what a download is checked against: the app (row-level
security), the conversation, who uploaded it and the message that carries it (NULL while it is
uploaded and not yet sent).

Revision ID: 0070
Revises: 0090
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from replyhq.db.rls import disable_tenant_rls, enable_tenant_rls

revision: str = "0070"
down_revision: str | Sequence[str] | None = "0090"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "attachments",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column(
            "app_id", sa.Uuid(), sa.ForeignKey("apps.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("conversation_id", sa.Uuid(), nullable=False),
        sa.Column(
            "message_id", sa.Uuid(), sa.ForeignKey("messages.id", ondelete="CASCADE"), nullable=True
        ),
        sa.Column("uploader_type", sa.String(16), nullable=False),
        sa.Column("uploader_id", sa.Uuid(), nullable=True),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("content_type", sa.String(127), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("width", sa.Integer()),
        sa.Column("height", sa.Integer()),
        sa.Column("has_thumbnail", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("storage_key", sa.String(255), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id", "app_id"],
            ["conversations.id", "conversations.app_id"],
            name="fk_attachments_conversation_id_app_id_conversations",
            ondelete="CASCADE",
        ),
        sa.CheckConstraint("uploader_type IN ('user', 'agent')", name="ck_attachments_uploader"),
        sa.CheckConstraint("kind IN ('image', 'file')", name="ck_attachments_kind"),
        sa.CheckConstraint("size >= 0", name="ck_attachments_size"),
    )
    op.create_index(
        "ix_attachments_message",
        "attachments",
        ["app_id", "message_id"],
        postgresql_where=sa.text("message_id IS NOT NULL"),
    )
    op.create_index("ix_attachments_conversation", "attachments", ["app_id", "conversation_id"])
    # The clean-up of uploads never sent reads the pending ones by age.
    op.create_index(
        "ix_attachments_pending",
        "attachments",
        ["created_at"],
        postgresql_where=sa.text("message_id IS NULL"),
    )
    enable_tenant_rls("attachments")


def downgrade() -> None:
    disable_tenant_rls("attachments")
    op.drop_table("attachments")
