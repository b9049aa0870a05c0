"""system role: cross-tenant access by a role of its own, not by a setting

Until now a tenant policy also let through any transaction that had set `app.system = on`, and the
runtime role could set it itself by SQL: any SQL it could be made to run could read every tenant.
Now the policies check the tenant only, and a second policy on each tenant table lets one role,
DATABASE_SYSTEM_ROLE (created here, like the runtime role: data access only, no BYPASSRLS), see
every row. The runtime role is not a member of it and cannot become it (SET ROLE needs
membership). replyhq.db.Database.system_session() connects as it.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from replyhq.db.rls import (
    allow_system_role,
    alter_tenant_rls,
    create_role,
    grant_data_access,
    system_role,
)

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _tenant_tables() -> dict[str, str]:
    """Every table with a tenant policy, and the column it checks (`apps` is its own tenant)."""
    rows = op.get_bind().execute(
        sa.text(
            "SELECT tablename FROM pg_policies "
            "WHERE schemaname = 'public' AND policyname = 'tenant_isolation' ORDER BY tablename"
        )
    )
    return {name: "id" if name == "apps" else "app_id" for (name,) in rows}


def upgrade() -> None:
    attributes = op.get_context().config.attributes  # type: ignore[union-attr]
    role = system_role()
    create_role(role, attributes.get("system_role_password"))
    grant_data_access(role)
    for table, column in _tenant_tables().items():
        alter_tenant_rls(table, column)
        allow_system_role(table, role)


def downgrade() -> None:
    # The role stays: it belongs to the cluster, and other databases may use it.
    for table, column in _tenant_tables().items():
        op.execute(f"DROP POLICY IF EXISTS system_access ON {table}")
        alter_tenant_rls(table, column, system_setting=True)
