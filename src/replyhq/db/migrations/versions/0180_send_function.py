"""send_from_device: the SDK's send as one server-side function that binds its tenant itself

The message POST (and a device's socket `message:send`) ran the tenant binding and the send
statement as a pipeline of two commands up to one Sync (Database.tenant_statement). On the
client, psycopg's pipeline machinery cost more than the statement's own round trip. The function
`replyhq_send_from_device` binds `app.current_tenant` for the transaction (set_config, local) and
returns the send statement's row: one command (Database.tenant_function). It is not SECURITY
DEFINER: it runs as the runtime role, so row-level security applies with the tenant it binds,
exactly as before. The text is replyhq.messaging.statements' (rendered at upgrade time);
tests/test_tenancy.py fails if the statement changes without a migration that renders it again.

Revision ID: 0180
Revises: 0131
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from alembic import op

from replyhq.messaging import statements

revision: str = "0180"
down_revision: str | Sequence[str] | None = "0131"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(statements.sent_type())
    op.execute(statements.send_from_device_function())


def downgrade() -> None:
    op.execute(f"DROP FUNCTION {statements.SEND_FROM_DEVICE}")
    op.execute("DROP TYPE replyhq_sent")
