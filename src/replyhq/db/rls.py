"""SQL that migrations use to make a table tenant-owned and to grant the runtime role."""

from __future__ import annotations

from alembic import op

# NULLIF: after a transaction-local set_config ends, the setting reads '' rather than NULL.
# Each setting is read in a sub-select, which PostgreSQL runs once per query (an InitPlan) and
# compares to every row as a parameter. Read bare, current_setting() and the cast ran for every
# row a query touched: a page of conversations with unread counts took half again as long as
# without RLS (see migration 0003 and docs/benchmarks.md).
TENANT = "(SELECT NULLIF(current_setting('app.current_tenant', true), '')::uuid)"
SYSTEM = "(SELECT current_setting('app.system', true) = 'on')"
# The form migrations 0001 and 0002 first created; kept for 0003's downgrade and the benchmark.
TENANT_PER_ROW = "NULLIF(current_setting('app.current_tenant', true), '')::uuid"
SYSTEM_PER_ROW = "current_setting('app.system', true) = 'on'"


def tenant_predicate(column: str = "app_id", *, per_row: bool = False) -> str:
    """The condition a tenant table's rows must meet to be seen or written."""
    if per_row:
        return f"{column} = {TENANT_PER_ROW} OR {SYSTEM_PER_ROW}"
    return f"{column} = {TENANT} OR {SYSTEM}"


def enable_tenant_rls(table: str, column: str = "app_id") -> None:
    """Row-level security, forced even for the owner: rows of the bound tenant only."""
    predicate = tenant_predicate(column)
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON {table} USING ({predicate}) WITH CHECK ({predicate})"
    )


def alter_tenant_rls(table: str, column: str = "app_id", *, per_row: bool = False) -> None:
    """Replace the policy's condition in place (one statement: no moment without a policy)."""
    predicate = tenant_predicate(column, per_row=per_row)
    op.execute(
        f"ALTER POLICY tenant_isolation ON {table} USING ({predicate}) WITH CHECK ({predicate})"
    )


def disable_tenant_rls(table: str) -> None:
    op.execute(f"DROP POLICY IF EXISTS tenant_isolation ON {table}")
    op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")


def grant_runtime_role(role: str, password: str | None) -> None:
    """Create the runtime role if needed and give it data access only (no DDL, no bypass)."""
    op.execute(
        f"""
        DO $$ BEGIN
          IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN
            CREATE ROLE "{role}" LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
          END IF;
        END $$
        """
    )
    if password:
        escaped = password.replace("'", "''")
        op.execute(f"ALTER ROLE \"{role}\" PASSWORD '{escaped}'")
    op.execute(f'GRANT USAGE ON SCHEMA public TO "{role}"')
    op.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO "{role}"')
    op.execute(f'GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO "{role}"')
    op.execute(
        "ALTER DEFAULT PRIVILEGES IN SCHEMA public "
        f'GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO "{role}"'
    )
    op.execute(
        f'ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO "{role}"'
    )
    op.execute(f'REVOKE ALL ON alembic_version FROM "{role}"')
