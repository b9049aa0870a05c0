"""analytics: `event_latest`, per app, event name and end user, when they last did it

"Did (or did not) do X in the last D days" asked the daily counts for every (day, user) row of
X in the window (a `not_exists` over 30 days: 382,255 index entries at 10 million events); the
latest occurrence answers it from one row per user who did X. The ingest flush maintains it in
the statement that writes the events and their daily counts (upsert with greatest()); the
segment compiler reads it for event conditions without a property field, count or timeframe in
hours (replyhq.segments.compile). Tenant-owned like the daily counts; backfilled here from the
daily counts in one statement.

Revision ID: 0190
Revises: 0200
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from alembic import op

from replyhq.db.rls import disable_tenant_rls, enable_tenant_rls

revision: str = "0190"
down_revision: str | Sequence[str] | None = "0200"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE event_latest (
            app_id uuid NOT NULL,
            name varchar(100) NOT NULL,
            end_user_id uuid NOT NULL,
            last_at timestamptz NOT NULL,
            PRIMARY KEY (app_id, name, end_user_id)
        )
        """
    )
    # "in the last D days": the users of a name from a time on, read from the index alone.
    op.execute(
        "CREATE INDEX ix_event_latest_time ON event_latest (app_id, name, last_at) "
        "INCLUDE (end_user_id)"
    )
    enable_tenant_rls("event_latest")
    # The owner reads every app's daily counts (as migration 0080's backfill does).
    for table in ("event_daily_counts", "event_latest"):
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
    op.execute(
        "INSERT INTO event_latest (app_id, name, end_user_id, last_at) "
        "SELECT app_id, name, end_user_id, max(last_at) FROM event_daily_counts "
        "GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
    )
    for table in ("event_daily_counts", "event_latest"):
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    op.execute("ANALYZE event_latest")


def downgrade() -> None:
    disable_tenant_rls("event_latest")
    op.execute("DROP TABLE event_latest")
