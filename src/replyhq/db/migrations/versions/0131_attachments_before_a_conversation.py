"""attachments.conversation_id may be NULL: an end user's upload made before the conversation
exists (POST /v1/attachments), for the first message of a new one (POST /v1/conversations
{first_message: {attachment_ids}}), which gives it the conversation when it is sent

Revision ID: 0131
Revises: 0130
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0131"
down_revision: str | Sequence[str] | None = "0130"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.alter_column("attachments", "conversation_id", nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM attachments WHERE conversation_id IS NULL")
    op.alter_column("attachments", "conversation_id", nullable=False)
