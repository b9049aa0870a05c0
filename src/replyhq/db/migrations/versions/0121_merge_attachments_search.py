"""join the main chain again: 0070 (attachments) and 0120 (search) both followed 0090

Both landed the same hour with 0090 as their parent; they touch different tables, so either
order is right. Nothing to do but make one head of the main chain again (0100_jobs stays its own
branch), for the next migration to follow.

Revision ID: 0121
Revises: 0070, 0120
Create Date: 2026-12-03
"""

from collections.abc import Sequence

revision: str = "0121"
down_revision: str | Sequence[str] | None = ("0070", "0120")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
