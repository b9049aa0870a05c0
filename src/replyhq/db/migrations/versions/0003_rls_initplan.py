"""tenant policies read the tenant setting once per query

The policies of 0001 and 0002 called current_setting() for every row a query touched; the same
conditions with each setting in a sub-select are evaluated once per query (an InitPlan). Which
rows pass is unchanged. See replyhq.db.rls.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from collections.abc import Sequence

from replyhq.db.rls import alter_tenant_rls

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Every table with a tenant_isolation policy (0001, 0002) and the column it checks.
TENANT_TABLES = {
    "apps": "id",
    "end_users": "app_id",
    "devices": "app_id",
    "conversations": "app_id",
    "messages": "app_id",
    "read_markers": "app_id",
    "staff_users": "app_id",
    "staff_sessions": "app_id",
    "refresh_tokens": "app_id",
    "staff_invites": "app_id",
}


def upgrade() -> None:
    for table, column in TENANT_TABLES.items():
        alter_tenant_rls(table, column)


def downgrade() -> None:
    for table, column in TENANT_TABLES.items():
        alter_tenant_rls(table, column, per_row=True)
