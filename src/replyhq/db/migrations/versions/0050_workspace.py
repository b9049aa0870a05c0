"""agents' workspace: notes and events in the timeline, labels, saved replies, search

A message gets a `kind`: 'message' (as before) or 'event' (closed, reopened: the end user sees
them); adding a column with a constant default rewrites nothing (PostgreSQL 11+). Notes and the
staff-only events are `timeline_items`, a table no end-user path reads.

Revision ID: 0050
Revises: 0010
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from replyhq.db.rls import disable_tenant_rls, enable_tenant_rls

revision: str = "0050"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _created_at() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
    )


def upgrade() -> None:
    op.add_column(
        "messages",
        sa.Column("kind", sa.String(length=16), server_default="message", nullable=False),
    )
    op.add_column("messages", sa.Column("data", postgresql.JSONB(), nullable=True))
    op.create_check_constraint(op.f("ck_messages_kind"), "messages", "kind IN ('message', 'event')")

    op.create_table(
        "timeline_items",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("app_id", sa.Uuid(), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=False),
        sa.Column("after_seq", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("client_msg_id", sa.String(length=64), nullable=False),
        sa.Column("author_id", sa.Uuid(), nullable=True),
        sa.Column("author_name", sa.String(length=255), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("body_html", sa.Text(), nullable=False),
        sa.Column("data", postgresql.JSONB(), server_default="{}", nullable=False),
        _created_at(),
        sa.CheckConstraint("kind IN ('note', 'event')", name=op.f("ck_timeline_items_kind")),
        sa.ForeignKeyConstraint(
            ["conversation_id", "app_id"],
            ["conversations.id", "conversations.app_id"],
            name=op.f("fk_timeline_items_conversation_id_app_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_timeline_items")),
        sa.UniqueConstraint(
            "conversation_id",
            "client_msg_id",
            name=op.f("uq_timeline_items_conversation_id_client_msg_id"),
        ),
    )
    op.create_index(
        "ix_timeline_items_order",
        "timeline_items",
        ["conversation_id", "after_seq", "created_at"],
    )
    enable_tenant_rls("timeline_items")

    op.create_table(
        "labels",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("app_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("color", sa.String(length=7), nullable=False),
        _created_at(),
        sa.CheckConstraint("color ~ '^#[0-9a-f]{6}$'", name=op.f("ck_labels_color")),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name=op.f("fk_labels_app_id_apps"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_labels")),
        sa.UniqueConstraint("id", "app_id", name=op.f("uq_labels_id_app_id")),
    )
    op.create_index("ix_labels_name", "labels", ["app_id", sa.text("lower(name)")], unique=True)
    enable_tenant_rls("labels")

    op.create_table(
        "conversation_labels",
        sa.Column("conversation_id", sa.Uuid(), nullable=False),
        sa.Column("label_id", sa.Uuid(), nullable=False),
        sa.Column("app_id", sa.Uuid(), nullable=False),
        _created_at(),
        sa.ForeignKeyConstraint(
            ["conversation_id", "app_id"],
            ["conversations.id", "conversations.app_id"],
            name=op.f("fk_conversation_labels_conversation_id_app_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["label_id", "app_id"],
            ["labels.id", "labels.app_id"],
            name=op.f("fk_conversation_labels_label_id_app_id_labels"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("conversation_id", "label_id", name=op.f("pk_conversation_labels")),
    )
    op.create_index("ix_conversation_labels_label", "conversation_labels", ["app_id", "label_id"])
    enable_tenant_rls("conversation_labels")

    op.create_table(
        "saved_replies",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("app_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("shortcut", sa.String(length=32), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        _created_at(),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name=op.f("fk_saved_replies_app_id_apps"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_saved_replies")),
        sa.UniqueConstraint("app_id", "shortcut", name=op.f("uq_saved_replies_app_id_shortcut")),
    )
    enable_tenant_rls("saved_replies")

    # Auto-assignment (replyhq.workspace.assignment).
    op.add_column(
        "staff_users",
        sa.Column("available", sa.Boolean(), server_default=sa.true(), nullable=False),
    )
    op.create_table(
        "assignment_settings",
        sa.Column("app_id", sa.Uuid(), nullable=False),
        sa.Column("mode", sa.String(length=16), server_default="off", nullable=False),
        sa.Column("capacity", sa.Integer(), server_default="10", nullable=False),
        sa.Column("last_assignee_id", sa.Uuid(), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "mode IN ('off', 'round_robin', 'least_busy')", name=op.f("ck_assignment_settings_mode")
        ),
        sa.CheckConstraint("capacity > 0", name=op.f("ck_assignment_settings_capacity")),
        sa.ForeignKeyConstraint(
            ["app_id"],
            ["apps.id"],
            name=op.f("fk_assignment_settings_app_id_apps"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("app_id", name=op.f("pk_assignment_settings")),
    )
    enable_tenant_rls("assignment_settings")

    # Search (replyhq.search): the body's words, kept by PostgreSQL on every insert ('simple':
    # no stemming, any language), GIN-indexed; adding a stored generated column rewrites the
    # table once, here.
    op.execute(
        "ALTER TABLE messages ADD COLUMN search tsvector "
        "GENERATED ALWAYS AS (to_tsvector('simple', body)) STORED"
    )
    op.execute("CREATE INDEX ix_messages_search ON messages USING gin (search)")
    # Under row-level security the planner may use an index for a condition only if its operator
    # is LEAKPROOF (it could otherwise run on other tenants' rows before the policy filters them
    # out); tsvector @@ tsquery is not marked so, which made every search read all of the app's
    # messages. ts_match_vq only compares two already-parsed values and reports nothing but the
    # result, so it is marked here, for this database. Only a superuser may: without one (some
    # managed services), search still works and is still bound to the tenant, but scans the
    # app's messages; docs/search.md says how to mark it by hand.
    op.execute(
        """
        DO $$ BEGIN
          IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
            ALTER FUNCTION pg_catalog.ts_match_vq(tsvector, tsquery) LEAKPROOF;
          ELSE
            RAISE NOTICE 'not a superuser: ts_match_vq left as it is (see docs/search.md)';
          END IF;
        END $$
        """
    )
    for column in ("email", "name"):
        op.execute(
            f"CREATE INDEX ix_end_users_{column}_prefix ON end_users "
            f"(app_id, lower({column}) text_pattern_ops)"
        )


def downgrade() -> None:
    for column in ("email", "name"):
        op.execute(f"DROP INDEX ix_end_users_{column}_prefix")
    op.execute("DROP INDEX ix_messages_search")
    op.drop_column("messages", "search")
    disable_tenant_rls("assignment_settings")
    op.drop_table("assignment_settings")
    op.drop_column("staff_users", "available")
    for table in ("saved_replies", "conversation_labels", "labels", "timeline_items"):
        disable_tenant_rls(table)
        op.drop_table(table)
    op.drop_constraint(op.f("ck_messages_kind"), "messages", type_="check")
    for column in ("data", "kind"):
        op.drop_column("messages", column)
