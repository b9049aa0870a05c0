"""conversation lists read in index order, whatever the filter

The inbox and the lists are ordered by (last_activity_at DESC, id DESC) and paged by a row
comparison on the same pair. ix_conversations_inbox had `id` ascending and a status in front, so
a list without a status filter sorted every conversation of the app, and the cursor could not
bound the scan. Now: one index for the unfiltered order, the inbox index with `id` descending, and
the assignee index with `id` so its order is complete too.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LATEST: list[sa.ColumnClause[Any]] = [
    sa.literal_column("last_activity_at DESC"),
    sa.literal_column("id DESC"),
]
ASSIGNED = sa.text("assignee_id IS NOT NULL")


def upgrade() -> None:
    op.create_index("ix_conversations_recent", "conversations", ["app_id", *LATEST])
    op.drop_index("ix_conversations_inbox", table_name="conversations")
    op.create_index("ix_conversations_inbox", "conversations", ["app_id", "status", *LATEST])
    op.drop_index("ix_conversations_assignee", table_name="conversations")
    op.create_index(
        "ix_conversations_assignee",
        "conversations",
        ["app_id", "assignee_id", *LATEST],
        postgresql_where=ASSIGNED,
    )


def downgrade() -> None:
    op.drop_index("ix_conversations_assignee", table_name="conversations")
    op.create_index(
        "ix_conversations_assignee",
        "conversations",
        ["app_id", "assignee_id", sa.literal_column("last_activity_at DESC")],
        postgresql_where=ASSIGNED,
    )
    op.drop_index("ix_conversations_inbox", table_name="conversations")
    op.create_index(
        "ix_conversations_inbox",
        "conversations",
        ["app_id", "status", sa.literal_column("last_activity_at DESC"), "id"],
    )
    op.drop_index("ix_conversations_recent", table_name="conversations")
