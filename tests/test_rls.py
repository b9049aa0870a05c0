"""The tenant policies (replyhq.db.rls) read the tenant setting once per query, not per row."""

from __future__ import annotations

from sqlalchemy import text

from replyhq.db import Database
from tests.conftest import Tenant


async def test_policies_evaluate_the_settings_once_per_query(db: Database, tenant: Tenant) -> None:
    async with db.engine.connect() as connection:
        tables = (
            await connection.execute(
                text(
                    "SELECT relname FROM pg_class WHERE relrowsecurity "
                    "AND relnamespace = 'public'::regnamespace "
                    # A partition is read through its parent (migration 0030), never by name.
                    "AND NOT relispartition ORDER BY relname"
                )
            )
        ).scalars()
        tables = list(tables)
    assert "messages" in tables
    async with db.tenant_session(tenant.id) as session:
        for table in tables:
            plan = "\n".join(
                (await session.execute(text(f"EXPLAIN SELECT * FROM {table}"))).scalars()
            )
            # Read per row, current_setting() shows in the scan's filter; read in a sub-select
            # it is an InitPlan whose result the filter compares as a parameter.
            assert "InitPlan" in plan, (table, plan)
            assert "current_setting" not in plan, (table, plan)
