"""attachment_deletions: the stored objects of deleted attachments, awaiting removal from storage

However an attachment's row goes (its app, conversation, end user or message deleted, and the
cascade takes it; an upload never sent pruned), a trigger queues its objects' keys here in the
same transaction, and one `attachments.purge` job (at most one waiting) to remove them from the
storage backend. Deleting a large app costs the request nothing per file, and a deletion that
rolls back queues nothing. The table holds storage keys only (`{app_id}/{attachment_id}/...`),
like the job tables, so it has no row-level security.

Revision ID: 0130
Revises: 0080
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0130"
down_revision: str | Sequence[str] | None = "0080"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TRIGGER = """
CREATE FUNCTION replyhq_attachments_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO attachment_deletions (key)
  SELECT gone.storage_key || '/original' FROM gone
  UNION ALL
  SELECT gone.storage_key || '/thumbnail' FROM gone WHERE gone.has_thumbnail;
  IF FOUND THEN
    INSERT INTO procrastinate_jobs (queue_name, task_name, priority, lock, queueing_lock, args)
    VALUES ('maintenance', 'attachments.purge', 0, NULL, 'attachments-purge',
            jsonb_build_object('_meta', '{}'::jsonb))
    ON CONFLICT (queueing_lock) WHERE status = 'todo' DO NOTHING;
  END IF;
  RETURN NULL;
END $$;

CREATE TRIGGER attachments_deleted AFTER DELETE ON attachments
REFERENCING OLD TABLE AS gone FOR EACH STATEMENT
EXECUTE FUNCTION replyhq_attachments_deleted();
"""


def upgrade() -> None:
    op.create_table(
        "attachment_deletions",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column(
            "queued_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    op.execute(TRIGGER)


def downgrade() -> None:
    op.execute("DROP TRIGGER attachments_deleted ON attachments")
    op.execute("DROP FUNCTION replyhq_attachments_deleted()")
    op.execute("DELETE FROM procrastinate_jobs WHERE task_name = 'attachments.purge'")
    op.drop_table("attachment_deletions")
