"""join the main chain again: 0110 (push queue) and 0121 (attachments and search joined) both
followed 0070

0110 landed after 0121 with 0070 as its parent; they touch different tables, so either order is
right. Nothing to do but make one head of the main chain again (0100_jobs stays its own branch),
for the next migration to follow.

Revision ID: 0111
Revises: 0110, 0121
Create Date: 2026-12-03
"""

from collections.abc import Sequence

revision: str = "0111"
down_revision: str | Sequence[str] | None = ("0110", "0121")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
