"""SQL that migrations use to make a table tenant-owned and to grant the runtime and system roles.

Since migration 0008 a tenant table has two policies: `tenant_isolation` (every role: the rows of
the tenant bound in `app.current_tenant`) and `system_access` (only the system role: every row).
Before, one policy also let through any session that set `app.system = on`, which the runtime role
could do itself by SQL; no setting widens what a role sees any more.
"""

from __future__ import annotations

from alembic import op

# NULLIF: after a transaction-local set_config ends, the setting reads '' rather than NULL.
# Each setting is read in a sub-select, which PostgreSQL runs once per query (an InitPlan) and
# compares to every row as a parameter. Read bare, current_setting() and the cast ran for every
# row a query touched: a page of conversations with unread counts took half again as long as
# without RLS (see migration 0003 and docs/benchmarks.md).
TENANT = "(SELECT NULLIF(current_setting('app.current_tenant', true), '')::uuid)"
SYSTEM = "(SELECT current_setting('app.system', true) = 'on')"
# The `app.system` escape of migrations 0001-0007 (see 0008); kept for their downgrades and the
# benchmark of 0003.
TENANT_PER_ROW = "NULLIF(current_setting('app.current_tenant', true), '')::uuid"
SYSTEM_PER_ROW = "current_setting('app.system', true) = 'on'"


def tenant_predicate(
    column: str = "app_id", *, per_row: bool = False, system_setting: bool = False
) -> str:
    """The condition a tenant table's rows must meet to be seen or written (`system_setting`:
    with the old `app.system` escape, for downgrades)."""
    if per_row:
        return f"{column} = {TENANT_PER_ROW} OR {SYSTEM_PER_ROW}"
    if system_setting:
        return f"{column} = {TENANT} OR {SYSTEM}"
    return f"{column} = {TENANT}"


def enable_tenant_rls(table: str, column: str = "app_id") -> None:
    """Row-level security, forced even for the owner: rows of the bound tenant only, and every
    row for the system role once it exists (migration 0008 creates it and covers every table
    made before)."""
    predicate = tenant_predicate(column)
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON {table} USING ({predicate}) WITH CHECK ({predicate})"
    )
    role = system_role()
    # The role may not exist yet (a fresh cluster, before 0008): 0008 then adds this policy.
    op.execute(
        f"""
        DO $$ BEGIN
          IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN
            CREATE POLICY system_access ON {table} TO "{role}" USING (true) WITH CHECK (true);
          END IF;
        END $$
        """
    )


def system_role() -> str:
    """The system role's name (DATABASE_SYSTEM_ROLE, passed by replyhq.db.migrate)."""
    config = op.get_context().config
    attributes = config.attributes if config is not None else {}
    return str(attributes.get("system_role", "replyhq_system"))


def allow_system_role(table: str, role: str) -> None:
    """Let the system role (and only it) see and write every row of a tenant table."""
    op.execute(f"DROP POLICY IF EXISTS system_access ON {table}")
    op.execute(f'CREATE POLICY system_access ON {table} TO "{role}" USING (true) WITH CHECK (true)')


def alter_tenant_rls(
    table: str, column: str = "app_id", *, per_row: bool = False, system_setting: bool = False
) -> None:
    """Replace the policy's condition in place (one statement: no moment without a policy)."""
    predicate = tenant_predicate(column, per_row=per_row, system_setting=system_setting)
    op.execute(
        f"ALTER POLICY tenant_isolation ON {table} USING ({predicate}) WITH CHECK ({predicate})"
    )


def disable_tenant_rls(table: str) -> None:
    op.execute(f"DROP POLICY IF EXISTS system_access ON {table}")
    op.execute(f"DROP POLICY IF EXISTS tenant_isolation ON {table}")
    op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")


def create_role(role: str, password: str | None) -> None:
    """Create a login role with data access only (no DDL, no bypass), if it does not exist.

    Roles belong to the whole cluster, and the migration lock is per database: several databases
    migrating at once (test runs, CI) may all try to create it. The loser of that race gets a
    unique violation, ignored here like an existing role."""
    op.execute(
        f"""
        DO $$ BEGIN
          IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN
            CREATE ROLE "{role}" LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
          END IF;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
          NULL;
        END $$
        """
    )
    if password:
        escaped = password.replace("'", "''")
        op.execute(f"ALTER ROLE \"{role}\" PASSWORD '{escaped}'")


def grant_data_access(role: str) -> None:
    """SELECT/INSERT/UPDATE/DELETE on every table of this database, now and later (RLS still
    applies), and nothing on the migrations' own bookkeeping."""
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


def grant_runtime_role(role: str, password: str | None) -> None:
    """Create the runtime role if needed and give it data access only (no DDL, no bypass)."""
    create_role(role, password)
    grant_data_access(role)
