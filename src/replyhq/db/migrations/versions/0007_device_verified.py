"""devices.verified: whether a device's current identity was proven by a user_hash

An unverified device may not speak for a verified person, nor for anyone in an app that requires
verification; the SDK must identify again with a user_hash. Existing devices start unproven: the
code before this revision let a device claim a verified person without proof, so no existing
binding can be trusted, and an SDK that identifies again with its user_hash gets back in.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "devices",
        sa.Column("verified", sa.Boolean(), server_default=sa.false(), nullable=False),
    )


def downgrade() -> None:
    op.drop_column("devices", "verified")
