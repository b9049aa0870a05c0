"""users: an index on each app's end users newest first, `(app_id, created_at, id)`

A segment preview's sample is the newest 20 people the segment selects, and the members of a
saved segment (`GET /admin/api/users?segment=`) are listed newest first a page at a time. With
this index both read the app's people in that order and stop once they have their page, where
they read and sorted every one of the app's people (replyhq.segments.service). A backward scan
of it serves `ORDER BY created_at DESC, id DESC`.

Revision ID: 0240
Revises: 0230
Create Date: 2026-12-04
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0240"
down_revision: str | Sequence[str] | None = "0230"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_end_users_newest", "end_users", ["app_id", "created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_end_users_newest", table_name="end_users")
