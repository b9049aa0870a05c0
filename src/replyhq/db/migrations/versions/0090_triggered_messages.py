"""triggered messages: a message to each person who performs an event, at most once per person

`triggered_message_sends` is claimed by the statement that stores tracked events (replyhq.
analytics.ingest): its primary key (the triggered message, the person) is what makes a message
go to a person at most once, whatever the number of concurrent events, requests and processes.
The same statement queues the job that sends the claimed ones, so a claim never waits without
a job. The partial index on active triggers keeps that join to a lookup per event name.

Revision ID: 0090
Revises: 0060
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from alembic import op

from replyhq.db.rls import disable_tenant_rls, enable_tenant_rls

revision: str = "0090"
down_revision: str | Sequence[str] | None = "0060"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("triggered_messages", "triggered_message_sends")


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE triggered_messages (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            app_id uuid NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
            name varchar(100) NOT NULL,
            event_name varchar(100) NOT NULL,
            condition jsonb,
            sender_id uuid NOT NULL,
            sender_name varchar(255),
            body text NOT NULL,
            status varchar(16) NOT NULL DEFAULT 'active',
            created_at timestamptz NOT NULL DEFAULT now(),
            stopped_at timestamptz,
            UNIQUE (id, app_id)
        )
        """
    )
    op.execute("CREATE INDEX ix_triggered_messages_app ON triggered_messages (app_id, created_at)")
    op.execute(
        "CREATE INDEX ix_triggered_messages_event ON triggered_messages (app_id, event_name) "
        "WHERE status = 'active'"
    )
    op.execute(
        """
        CREATE TABLE triggered_message_sends (
            triggered_message_id uuid NOT NULL,
            end_user_id uuid NOT NULL,
            app_id uuid NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
            event_at timestamptz NOT NULL,
            claimed_at timestamptz NOT NULL DEFAULT now(),
            conversation_id uuid,
            seq integer,
            sent_at timestamptz,
            PRIMARY KEY (triggered_message_id, end_user_id),
            FOREIGN KEY (triggered_message_id, app_id)
                REFERENCES triggered_messages (id, app_id) ON DELETE CASCADE
        )
        """
    )
    op.execute(
        "CREATE INDEX ix_triggered_sends_pending ON triggered_message_sends (app_id, claimed_at) "
        "WHERE sent_at IS NULL"
    )
    for table in TABLES:
        enable_tenant_rls(table)


def downgrade() -> None:
    for table in reversed(TABLES):
        disable_tenant_rls(table)
        op.execute(f"DROP TABLE IF EXISTS {table}")
