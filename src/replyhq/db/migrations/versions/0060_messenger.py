"""messenger: settings and office hours per app, away replies, visitor context, ratings, metrics

`conversation_metrics` holds what reports need per conversation (created, first agent reply,
latest closing and how many closings) and is kept by triggers in the transaction that inserts
the conversation or the message or changes the status, so reports read one narrow row per
conversation instead of scanning messages. The triggers' WHEN clauses keep them out of the way
of an end user's message (no function call) and of the send statement's counter update (only a
status change fires). Existing conversations are filled in from their messages.

Revision ID: 0060
Revises: 0040
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from replyhq.db.rls import disable_tenant_rls, enable_tenant_rls

revision: str = "0060"
down_revision: str | Sequence[str] | None = "0040"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = (
    "messenger_settings",
    "away_replies",
    "visitor_contexts",
    "conversation_metrics",
    "conversation_ratings",
)

TRIGGERS = """
CREATE FUNCTION replyhq_metrics_conversation_created() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO conversation_metrics (conversation_id, app_id, created_at)
  VALUES (NEW.id, NEW.app_id, NEW.created_at);
  RETURN NULL;
END $$;

CREATE TRIGGER metrics_conversation_created AFTER INSERT ON conversations
FOR EACH ROW EXECUTE FUNCTION replyhq_metrics_conversation_created();

-- A closing's time is the status change's updated_at (every writer sets it; now() otherwise).
CREATE FUNCTION replyhq_metrics_status_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.status = 'closed' THEN
    UPDATE conversation_metrics
    SET closed_at = CASE WHEN NEW.updated_at IS DISTINCT FROM OLD.updated_at
                         THEN NEW.updated_at ELSE now() END,
        closed_assignee_id = NEW.assignee_id,
        closings = closings + 1
    WHERE conversation_id = NEW.id;
  ELSE
    UPDATE conversation_metrics SET closed_at = NULL WHERE conversation_id = NEW.id;
  END IF;
  RETURN NULL;
END $$;

CREATE TRIGGER metrics_status_changed AFTER UPDATE OF status ON conversations
FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
EXECUTE FUNCTION replyhq_metrics_status_changed();

CREATE FUNCTION replyhq_metrics_first_response() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  UPDATE conversation_metrics
  SET first_response_at = NEW.created_at, first_responder_id = NEW.author_id
  WHERE conversation_id = NEW.conversation_id AND first_response_at IS NULL;
  RETURN NULL;
END $$;

CREATE TRIGGER metrics_first_response AFTER INSERT ON messages
FOR EACH ROW WHEN (NEW.sender = 'agent')
EXECUTE FUNCTION replyhq_metrics_first_response();
"""

BACKFILL = """
INSERT INTO conversation_metrics (conversation_id, app_id, created_at, first_response_at,
                                  first_responder_id, closed_at, closed_assignee_id, closings)
SELECT c.id, c.app_id, c.created_at, r.created_at, r.author_id,
       CASE WHEN c.status = 'closed' THEN c.updated_at END,
       CASE WHEN c.status = 'closed' THEN c.assignee_id END,
       CASE WHEN c.status = 'closed' THEN 1 ELSE 0 END
FROM conversations c
LEFT JOIN LATERAL (
  SELECT m.created_at, m.author_id FROM messages m
  WHERE m.conversation_id = c.id AND m.sender = 'agent' ORDER BY m.seq LIMIT 1
) r ON true
"""


def _conversation_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["conversation_id", "app_id"],
        ["conversations.id", "conversations.app_id"],
        name=f"fk_{table}_conversation_id_app_id_conversations",
        ondelete="CASCADE",
    )


def _ts(name: str, **kw: object) -> sa.Column[sa.DateTime]:
    return sa.Column(name, sa.DateTime(timezone=True), **kw)  # type: ignore[arg-type]


def upgrade() -> None:
    op.create_table(
        "messenger_settings",
        sa.Column("app_id", sa.Uuid(), nullable=False),
        sa.Column("color", sa.String(7), nullable=False),
        sa.Column("launcher_position", sa.String(8), nullable=False),
        sa.Column("team_name", sa.String(80), nullable=False),
        sa.Column("avatar_url", sa.String(1000)),
        sa.Column("greeting", sa.String(200), nullable=False),
        sa.Column("intro", sa.String(1000), nullable=False),
        sa.Column("language", sa.String(8), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("office_hours_enabled", sa.Boolean(), nullable=False),
        sa.Column("office_hours", postgresql.JSONB(), nullable=False),
        sa.Column("away_message", sa.String(1000), nullable=False),
        sa.Column("auto_reply", sa.Boolean(), nullable=False),
        _ts("updated_at", nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint(
            "launcher_position IN ('left', 'right')",
            name="ck_messenger_settings_launcher_position",
        ),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name="fk_messenger_settings_app_id_apps", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("app_id", name="pk_messenger_settings"),
    )
    op.create_table(
        "away_replies",
        sa.Column("conversation_id", sa.Uuid(), nullable=False),
        _ts("away_since", nullable=False),
        sa.Column("app_id", sa.Uuid(), nullable=False),
        _ts("created_at", nullable=False, server_default=sa.func.now()),
        _conversation_fk("away_replies"),
        sa.PrimaryKeyConstraint("conversation_id", "away_since", name="pk_away_replies"),
    )
    op.create_table(
        "visitor_contexts",
        sa.Column("app_id", sa.Uuid(), nullable=False),
        sa.Column("device_id", sa.String(128), nullable=False),
        sa.Column("page_url", sa.String(2000)),
        sa.Column("page_title", sa.String(300)),
        sa.Column("referrer", sa.String(2000)),
        sa.Column("browser", sa.String(100)),
        sa.Column("os", sa.String(100)),
        sa.Column("user_agent", sa.String(1000)),
        _ts("updated_at", nullable=False, server_default=sa.func.now()),
        sa.ForeignKeyConstraint(
            ["app_id", "device_id"],
            ["devices.app_id", "devices.device_id"],
            name="fk_visitor_contexts_app_id_devices",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("app_id", "device_id", name="pk_visitor_contexts"),
    )
    op.create_table(
        "conversation_metrics",
        sa.Column("conversation_id", sa.Uuid(), nullable=False),
        sa.Column("app_id", sa.Uuid(), nullable=False),
        _ts("created_at", nullable=False),
        _ts("first_response_at"),
        sa.Column("first_responder_id", sa.Uuid()),
        _ts("closed_at"),
        sa.Column("closed_assignee_id", sa.Uuid()),
        sa.Column("closings", sa.Integer(), nullable=False, server_default="0"),
        _conversation_fk("conversation_metrics"),
        sa.PrimaryKeyConstraint("conversation_id", name="pk_conversation_metrics"),
    )
    op.create_index(
        "ix_conversation_metrics_created", "conversation_metrics", ["app_id", "created_at"]
    )
    op.create_index(
        "ix_conversation_metrics_closed",
        "conversation_metrics",
        ["app_id", "closed_at"],
        postgresql_where=sa.text("closed_at IS NOT NULL"),
    )
    op.create_table(
        "conversation_ratings",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("app_id", sa.Uuid(), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=False),
        sa.Column("closing", sa.Integer(), nullable=False),
        sa.Column("score", sa.SmallInteger(), nullable=False),
        sa.Column("comment", sa.Text()),
        sa.Column("assignee_id", sa.Uuid()),
        _ts("created_at", nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("score BETWEEN 1 AND 5", name="ck_conversation_ratings_score"),
        _conversation_fk("conversation_ratings"),
        sa.PrimaryKeyConstraint("id", name="pk_conversation_ratings"),
        sa.UniqueConstraint(
            "conversation_id", "closing", name="uq_conversation_ratings_conversation_id_closing"
        ),
    )
    op.create_index(
        "ix_conversation_ratings_created", "conversation_ratings", ["app_id", "created_at"]
    )
    for table in TABLES:
        enable_tenant_rls(table)
    op.execute(TRIGGERS)
    # The tables' owner (this migration's role) reads through their policies while they are
    # FORCEd; lifted for the backfill only, inside this transaction.
    backfilled = ("conversations", "messages", "conversation_metrics")
    for table in backfilled:
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
    op.execute(BACKFILL)
    for table in backfilled:
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS metrics_first_response ON messages")
    op.execute("DROP TRIGGER IF EXISTS metrics_status_changed ON conversations")
    op.execute("DROP TRIGGER IF EXISTS metrics_conversation_created ON conversations")
    op.execute("DROP FUNCTION IF EXISTS replyhq_metrics_first_response()")
    op.execute("DROP FUNCTION IF EXISTS replyhq_metrics_status_changed()")
    op.execute("DROP FUNCTION IF EXISTS replyhq_metrics_conversation_created()")
    for table in reversed(TABLES):
        disable_tenant_rls(table)
        op.drop_table(table)
