"""send_from_device plans each call for its values (plan_cache_mode = force_custom_plan)

Inside replyhq_send_from_device (migration 0180) plpgsql caches the send statement's plan, and
after five calls PostgreSQL may keep a generic plan, made for no values in particular and, on a
new database, while its tables were nearly empty. Under `bench e2e` that plan cost the database
more CPU per send as the tables grew (its backends' on-CPU share 0.7 -> 2.0 -> 3.4 over three
rounds), against 0.2-0.6 with a plan made per call: ceiling 382 / 260 / 300 msg/s against
319 / 201 / 180, p99 at 200 msg/s 28 and 123 ms against 360 and 1,299 (docs/benchmarks.md).
The setting is the function's own: nothing else changes. Migration 0230 takes it off again.

Revision ID: 0181
Revises: 0160
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from alembic import op

from replyhq.messaging import statements

revision: str = "0181"
down_revision: str | Sequence[str] | None = "0160"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FUNCTION = (
    f"{statements.SEND_FROM_DEVICE}(uuid, uuid, text, uuid, text, text, text, text, boolean)"
)


def upgrade() -> None:
    op.execute(f"ALTER FUNCTION {_FUNCTION} SET plan_cache_mode = force_custom_plan")


def downgrade() -> None:
    op.execute(f"ALTER FUNCTION {_FUNCTION} RESET plan_cache_mode")
