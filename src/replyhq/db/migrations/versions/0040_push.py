"""push: device push addresses, per-app credentials and rules, agents' preferences, the log

- devices get `push_provider` and `push_keys` beside the `push_token` identify already stored
  (unused until now; its provider is taken from the platform: iOS is APNs, the rest FCM);
- push_credentials (encrypted), push_settings, agent_notification_prefs, push_notifications:
  tenant tables with row-level security;
- a trigger queues `push.deliver` for each agent reply in the transaction that stores it, so that
  no code on the send path changes and no reply is forgotten by a crash after its commit. The
  job's queueing lock is the conversation's: replies arriving while one waits join it (collapsed
  into one notification), and its lock runs a conversation's jobs one at a time.

Revision ID: 0040
Revises: 0050
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from replyhq.db.rls import disable_tenant_rls, enable_tenant_rls

revision: str = "0040"
down_revision: str | Sequence[str] | None = "0050"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = "0100"  # the trigger writes procrastinate_jobs

TABLES = ["push_credentials", "push_settings", "agent_notification_prefs", "push_notifications"]

TRIGGER = """
CREATE FUNCTION replyhq_push_after_agent_reply() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO procrastinate_jobs (queue_name, task_name, priority, lock, queueing_lock, args)
  VALUES ('push', 'push.deliver', 0,
          'push:' || NEW.conversation_id, 'push:' || NEW.conversation_id,
          jsonb_build_object('app_id', NEW.app_id, 'conversation_id', NEW.conversation_id,
                             'seq', NEW.seq, '_meta', '{}'::jsonb))
  ON CONFLICT (queueing_lock) WHERE status = 'todo' DO NOTHING;
  RETURN NULL;
END $$;

CREATE TRIGGER push_after_agent_reply AFTER INSERT ON messages
FOR EACH ROW WHEN (NEW.sender = 'agent')
EXECUTE FUNCTION replyhq_push_after_agent_reply();
"""


def _timestamps() -> list[sa.Column[object]]:
    return [
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
    ]


def upgrade() -> None:
    op.add_column("devices", sa.Column("push_provider", sa.String(16), nullable=True))
    op.add_column("devices", sa.Column("push_keys", postgresql.JSONB(), nullable=True))
    op.add_column(
        "devices", sa.Column("push_token_updated_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.execute(
        "UPDATE devices SET push_provider = CASE WHEN platform = 'ios' THEN 'apns' ELSE 'fcm' END,"
        " push_token_updated_at = last_seen_at WHERE push_token IS NOT NULL"
    )
    op.create_index("ix_devices_push_token", "devices", ["push_token"], postgresql_using="hash")

    op.create_table(
        "push_credentials",
        sa.Column("app_id", sa.Uuid(), nullable=False),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("secret", sa.LargeBinary(), nullable=False),
        sa.Column("details", postgresql.JSONB(), server_default="{}", nullable=False),
        *_timestamps(),
        sa.CheckConstraint("provider IN ('fcm', 'apns', 'webpush')", name="provider"),
        sa.ForeignKeyConstraint(["app_id"], ["apps.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("app_id", "provider"),
    )
    op.create_table(
        "push_settings",
        sa.Column("app_id", sa.Uuid(), nullable=False),
        sa.Column("quiet_hours_start", sa.Time(), nullable=True),
        sa.Column("quiet_hours_end", sa.Time(), nullable=True),
        sa.Column("default_timezone", sa.String(64), server_default="UTC", nullable=False),
        sa.Column("hourly_limit", sa.Integer(), server_default="10", nullable=False),
        sa.Column("collapse_seconds", sa.Integer(), server_default="60", nullable=False),
        sa.Column("email_fallback_minutes", sa.Integer(), server_default="5", nullable=False),
        sa.Column("email_link", sa.String(2048), nullable=True),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(["app_id"], ["apps.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("app_id"),
    )
    op.create_table(
        "agent_notification_prefs",
        sa.Column("staff_id", sa.Uuid(), nullable=False),
        sa.Column("app_id", sa.Uuid(), nullable=False),
        sa.Column("desktop", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("sound", sa.Boolean(), server_default="true", nullable=False),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["staff_id", "app_id"], ["staff_users.id", "staff_users.app_id"], ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("staff_id"),
    )
    op.create_table(
        "push_notifications",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("app_id", sa.Uuid(), nullable=False),
        sa.Column("end_user_id", sa.Uuid(), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=True),
        sa.Column("parent_id", sa.Uuid(), nullable=True),
        sa.Column("channel", sa.String(8), nullable=False),
        sa.Column("decision", sa.String(24), nullable=False),
        sa.Column("reason", sa.Text(), server_default="", nullable=False),
        sa.Column("seq_to", sa.Integer(), nullable=True),
        sa.Column("message_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("device_id", sa.String(128), nullable=True),
        sa.Column("provider", sa.String(16), nullable=True),
        sa.Column("status", sa.String(16), nullable=True),
        sa.Column("provider_status", sa.Integer(), nullable=True),
        sa.Column("provider_response", sa.Text(), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        *_timestamps(),
        sa.CheckConstraint("channel IN ('push', 'email', 'test')", name="channel"),
        sa.ForeignKeyConstraint(["app_id"], ["apps.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["end_user_id", "app_id"], ["end_users.id", "end_users.app_id"], ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id", "app_id"],
            ["conversations.id", "conversations.app_id"],
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["parent_id"], ["push_notifications.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_push_notifications_person",
        "push_notifications",
        ["app_id", "end_user_id", sa.text("created_at DESC")],
    )
    op.create_index(
        "ix_push_notifications_conversation",
        "push_notifications",
        ["app_id", "conversation_id", "channel", sa.text("seq_to DESC")],
    )
    op.create_index("ix_push_notifications_created", "push_notifications", ["created_at"])
    for table in TABLES:
        enable_tenant_rls(table)
    op.execute(TRIGGER)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS push_after_agent_reply ON messages")
    op.execute("DROP FUNCTION IF EXISTS replyhq_push_after_agent_reply()")
    for table in reversed(TABLES):
        disable_tenant_rls(table)
        op.drop_table(table)
    op.drop_index("ix_devices_push_token", table_name="devices")
    op.drop_column("devices", "push_token_updated_at")
    op.drop_column("devices", "push_keys")
    op.drop_column("devices", "push_provider")
