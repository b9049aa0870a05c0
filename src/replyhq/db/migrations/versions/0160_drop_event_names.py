"""analytics: drop `event_names`, the catalog row that every flush of an app updated

Every flush of an app's events upserted one row per event name into `event_names` (its count and
latest time). A row lock is held until the commit, so an app's concurrent flushes queued on it,
each waiting for the other's WAL fsync: the flush concurrency meant to share an fsync did not.
The dashboard's catalog now sums `event_daily_counts` when asked (replyhq.analytics.service
`catalog`), and no flush writes a row every flush shares. The downgrade makes the table again
from the daily counts (of the days still kept).

Revision ID: 0160
Revises: 0180
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from alembic import op

from replyhq.db.rls import disable_tenant_rls, enable_tenant_rls

revision: str = "0160"
down_revision: str | Sequence[str] | None = "0180"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    disable_tenant_rls("event_names")
    op.execute("DROP TABLE event_names")


def downgrade() -> None:
    op.execute(
        """
        CREATE TABLE event_names (
            app_id uuid NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
            name varchar(100) NOT NULL,
            count bigint NOT NULL,
            last_at timestamptz NOT NULL,
            PRIMARY KEY (app_id, name)
        )
        """
    )
    op.execute(
        "INSERT INTO event_names (app_id, name, count, last_at) "
        "SELECT app_id, name, sum(count), max(last_at) FROM event_daily_counts GROUP BY 1, 2"
    )
    enable_tenant_rls("event_names")
