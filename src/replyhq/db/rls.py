"""SQL that migrations use to make a table tenant-owned and to grant the runtime role."""

from __future__ import annotations

from alembic import op

# NULLIF: after a transaction-local set_config ends, the setting reads '' rather than NULL.
TENANT = "NULLIF(current_setting('app.current_tenant', true), '')::uuid"
SYSTEM = "current_setting('app.system', true) = 'on'"


def enable_tenant_rls(table: str, column: str = "app_id") -> None:
    """Row-level security, forced even for the owner: rows of the bound tenant only."""
    predicate = f"{column} = {TENANT} OR {SYSTEM}"
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON {table} USING ({predicate}) WITH CHECK ({predicate})"
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
