"""push: a queue of conversations awaiting a push decision, drained in batches; nothing queued
where nothing can be delivered

- push_queue (tenant table): one row per conversation whose agent replies await a decision,
  due at `due_at` (now, or the end of a hold or of quiet hours); `recheck` after a hold; `claim`
  the drain deciding it (which removes the row when done, unless a reply came meanwhile);
- the agent-reply trigger of 0040 queued one `push.deliver` job per reply for every app, even one
  without push credentials nor e-mail fallback. It now adds the conversation to push_queue only
  when something could reach the person: the app has push credentials and the person a device
  with a push token, or the app's e-mail fallback is on and the person has an e-mail address;
  and then, only if no drain of the app is waiting already, one `push.drain` job for the app
  (at most one waits per app: it takes every conversation due when it runs);
- `push.deliver` jobs of the old trigger still waiting run as before: the job now puts its
  conversation in the queue and drains its app.

Revision ID: 0110
Revises: 0070
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from replyhq.db.rls import disable_tenant_rls, enable_tenant_rls

revision: str = "0110"
down_revision: str | Sequence[str] | None = "0070"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TRIGGER = """
CREATE OR REPLACE FUNCTION replyhq_push_after_agent_reply() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  -- One statement (each one of PL/pgSQL costs): the app's credentials and the person's tokens,
  -- or the e-mail fallback and the person's address.
  IF NOT EXISTS (
    SELECT 1 FROM conversations c JOIN end_users u ON u.id = c.end_user_id AND u.app_id = c.app_id
    WHERE c.app_id = NEW.app_id AND c.id = NEW.conversation_id
      AND ((EXISTS (SELECT 1 FROM push_credentials p WHERE p.app_id = NEW.app_id)
            AND EXISTS (SELECT 1 FROM devices d WHERE d.app_id = NEW.app_id
                        AND d.end_user_id = c.end_user_id AND d.push_token IS NOT NULL))
           OR (COALESCE(u.email, '') <> ''
               AND COALESCE((SELECT s.email_fallback_minutes FROM push_settings s
                             WHERE s.app_id = NEW.app_id), 5) > 0))
  ) THEN
    RETURN NULL;  -- nothing could reach them: no push, no e-mail
  END IF;
  -- Waiting already (a hold, quiet hours): this reply joins that decision. Being decided by a
  -- drain right now, which may not see this reply: due again at once, and that drain leaves it.
  INSERT INTO push_queue (app_id, conversation_id)
  VALUES (NEW.app_id, NEW.conversation_id)
  ON CONFLICT (app_id, conversation_id) DO UPDATE
    SET claim = NULL, due_at = now(), recheck = false
    WHERE push_queue.claim IS NOT NULL;
  IF FOUND THEN
    INSERT INTO procrastinate_jobs (queue_name, task_name, priority, lock, queueing_lock, args)
    VALUES ('push', 'push.drain', 0, NULL, 'push-drain:' || NEW.app_id,
            jsonb_build_object('app_id', NEW.app_id, '_meta', '{}'::jsonb))
    ON CONFLICT (queueing_lock) WHERE status = 'todo' DO NOTHING;
  END IF;
  RETURN NULL;
END $$;
"""

OLD_TRIGGER = """
CREATE OR REPLACE FUNCTION replyhq_push_after_agent_reply() RETURNS trigger
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
"""


def upgrade() -> None:
    op.create_table(
        "push_queue",
        sa.Column("app_id", sa.Uuid(), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=False),
        sa.Column(
            "due_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("recheck", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("claim", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["conversation_id", "app_id"],
            ["conversations.id", "conversations.app_id"],
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("app_id", "conversation_id"),
    )
    op.create_index("ix_push_queue_due", "push_queue", ["app_id", "due_at"])
    enable_tenant_rls("push_queue")
    op.execute(TRIGGER)


def downgrade() -> None:
    op.execute(OLD_TRIGGER)
    op.execute("DELETE FROM procrastinate_jobs WHERE task_name = 'push.drain' AND status = 'todo'")
    disable_tenant_rls("push_queue")
    op.drop_table("push_queue")
