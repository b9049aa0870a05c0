"""apps.access_generation: bumped whenever every device session of an app must end

Key rotation and turning identity verification on bump it in the transaction of the change. Each
device socket remembers the generation it was let in at and is cut once it moves, whether or not
the Redis message announcing the change was heard (see replyhq.realtime.access). Staff sockets
use staff_users.token_version the same way.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "apps",
        sa.Column("access_generation", sa.Integer(), server_default="1", nullable=False),
    )


def downgrade() -> None:
    op.drop_column("apps", "access_generation")
