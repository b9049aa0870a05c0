"""send_from_device keeps PostgreSQL's cached plan (plan_cache_mode back to its default)

Migration 0181 made the send function plan its statement for every call's values, because the
generic plan PostgreSQL kept had been made on tables without statistics, where every index that
starts with `app_id` costs the same as the unique one (row-level security's
`app_id = (SELECT current_setting(...))` reaches them all) and the newest wins: a send then read
its whole app. That planning was about 2 of the send's 3 ms of database CPU. With statistics the
cached plan takes the unique indexes and PostgreSQL makes it again after every ANALYZE, which
autovacuum (on by default) runs as tables grow: so ReplyHQ now requires autovacuum, or a
scheduled ANALYZE where it is off (docs/operations.md; `replyhq migrate` and the server's
startup warn when it is off).
End to end with statistics kept current: database CPU per message 1.3-1.8 against 2.6-3.4 ms,
ceiling 1.19-1.24x (docs/benchmarks.md, issue 21).

Revision ID: 0230
Revises: 0220
Create Date: 2026-12-04
"""

from collections.abc import Sequence

from alembic import op

from replyhq.messaging import statements

revision: str = "0230"
down_revision: str | Sequence[str] | None = "0220"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FUNCTION = (
    f"{statements.SEND_FROM_DEVICE}(uuid, uuid, text, uuid, text, text, text, text, boolean)"
)


def upgrade() -> None:
    op.execute(f"ALTER FUNCTION {_FUNCTION} RESET plan_cache_mode")


def downgrade() -> None:
    op.execute(f"ALTER FUNCTION {_FUNCTION} SET plan_cache_mode = force_custom_plan")
