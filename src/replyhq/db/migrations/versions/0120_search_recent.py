"""search: the newest matches from an index alone; private notes searchable by the staff

Migration 0050's search read every match from the table to rank it (one heap block per match:
a common word cost seconds on a million messages). The search now ranks only the newest matches
(replyhq.search.service), which these indexes give without reading the table:

- `ix_messages_search_recent`: the app's messages newest first, carrying their id,
  conversation and words (`INCLUDE`), so that walking it with `search @@ query` as a filter is an
  index-only scan bounded by the app id. It covers bodies of at most 400 bytes (nearly every chat
  message), whose `tsvector` is certain to fit in a btree entry (a long body's would not: the
  insert would fail); the longer ones have their own GIN index, `ix_messages_search_long`.
- Statistics on the body's length tell the planner how rare long messages are.
- Notes (`timeline_items`, kind 'note') get the same: a generated `search` column, a GIN index
  and the newest-first covering index. Staff-only events are not searchable.

Building the indexes reads the tables once (a few seconds per million messages); adding the
generated column rewrites `timeline_items`.

Revision ID: 0120
Revises: 0090
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0120"
down_revision: str | Sequence[str] | None = "0090"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Also in replyhq.search.service: the queries repeat these conditions so that the planner may
# use the partial indexes.
SHORT = 400


def upgrade() -> None:
    op.execute(
        "CREATE INDEX ix_messages_search_recent ON messages (app_id, created_at DESC) "
        f"INCLUDE (id, conversation_id, search) "
        f"WHERE kind = 'message' AND octet_length(body) <= {SHORT}"
    )
    op.execute(
        "CREATE INDEX ix_messages_search_long ON messages USING gin (search) "
        f"WHERE kind = 'message' AND octet_length(body) > {SHORT}"
    )
    op.execute("CREATE STATISTICS st_messages_body_bytes ON (octet_length(body)) FROM messages")

    op.execute(
        "ALTER TABLE timeline_items ADD COLUMN search tsvector "
        "GENERATED ALWAYS AS (to_tsvector('simple', body)) STORED"
    )
    op.execute(
        "CREATE INDEX ix_timeline_items_search ON timeline_items USING gin (search) "
        "WHERE kind = 'note'"
    )
    op.execute(
        "CREATE INDEX ix_timeline_items_search_recent ON timeline_items (app_id, created_at DESC) "
        f"INCLUDE (id, conversation_id, search) "
        f"WHERE kind = 'note' AND octet_length(body) <= {SHORT}"
    )
    op.execute(
        "CREATE STATISTICS st_timeline_items_body_bytes ON (octet_length(body)) FROM timeline_items"
    )


def downgrade() -> None:
    op.execute("DROP STATISTICS st_timeline_items_body_bytes")
    op.execute("DROP INDEX ix_timeline_items_search_recent")
    op.execute("DROP INDEX ix_timeline_items_search")
    op.execute("ALTER TABLE timeline_items DROP COLUMN search")
    op.execute("DROP STATISTICS st_messages_body_bytes")
    op.execute("DROP INDEX ix_messages_search_long")
    op.execute("DROP INDEX ix_messages_search_recent")
