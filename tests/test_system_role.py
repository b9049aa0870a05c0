"""Cross-tenant access belongs to the system role alone: the runtime role cannot widen what it sees
by any SQL it can issue (the old `app.system` setting included), while setup, sign-in lookups and
housekeeping still see every tenant through system_session(). Roles are cluster-wide, so creating
them must survive several databases migrating at once."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import Iterator

import httpx
import psycopg
import pytest
from psycopg import sql
from sqlalchemy import text
from sqlalchemy.engine import make_url

from replyhq.db.session import runtime_url
from replyhq.runtime import Runtime
from replyhq.settings import Settings
from tests.conftest import MakeTenant, Servers, identify, start_conversation

TENANT_TABLES = ["apps", "end_users", "devices", "conversations", "messages", "staff_users"]
ESCAPES = [
    "SELECT set_config('app.system', 'on', false)",
    "SET app.system = 'on'",
    "SET SESSION app.system TO 'on'",
]


def _plain(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def test_the_runtime_role_cannot_see_another_tenant_by_any_setting(
    runtime: Runtime, servers: Servers, make_tenant: MakeTenant, client: httpx.AsyncClient
) -> None:
    mine, theirs = await make_tenant("Mine"), await make_tenant("Theirs")
    for tenant in (mine, theirs):
        await identify(client, tenant)
        await start_conversation(client, tenant)
    url = _plain(runtime_url(runtime.settings, servers.database_url))
    with psycopg.connect(url, autocommit=True) as connection:
        assert connection.execute("SELECT current_user").fetchone() == ("replyhq_app",)
        connection.execute("SELECT set_config('app.current_tenant', %s, false)", (str(mine.id),))
        for escape in ESCAPES:
            connection.execute(escape)
            for table in TENANT_TABLES:
                column = "id" if table == "apps" else "app_id"
                query = sql.SQL("SELECT count(*) FROM {} WHERE {} = %s").format(
                    sql.Identifier(table), sql.Identifier(column)
                )
                seen = connection.execute(query, (str(theirs.id),)).fetchone()
                assert seen == (0,), (escape, table)
            # Its own tenant is still there: the check above is not vacuous.
            own = connection.execute("SELECT count(*) FROM conversations").fetchone()
            assert own is not None and own[0] >= 1
        # Nor can it become the system role.
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            connection.execute(f'SET ROLE "{runtime.settings.database_system_role}"')


async def test_system_sessions_still_see_every_tenant(
    runtime: Runtime, make_tenant: MakeTenant
) -> None:
    first, second = await make_tenant("First"), await make_tenant("Second")
    async with runtime.db.system_session() as session:
        user = await session.scalar(text("SELECT current_user"))
        ids = set((await session.execute(text("SELECT id FROM apps"))).scalars())
    assert user == runtime.settings.database_system_role
    assert {first.id, second.id} <= ids
    async with runtime.db.tenant_session(first.id) as session:
        ids = set((await session.execute(text("SELECT id FROM apps"))).scalars())
    assert ids == {first.id}


async def _migrate(url: str, settings: Settings) -> None:
    env = {
        **os.environ,
        "DATABASE_APP_ROLE": settings.database_app_role,
        "DATABASE_SYSTEM_ROLE": settings.database_system_role,
    }
    code = "import sys; from replyhq.db.migrate import upgrade; from replyhq.settings import "
    code += "Settings; upgrade(sys.argv[1], Settings())"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, url, env=env, stderr=asyncio.subprocess.PIPE
    )
    _, errors = await process.communicate()
    assert process.returncode == 0, errors.decode()[-3000:]


@pytest.fixture
def fresh_roles(servers: Servers) -> Iterator[Settings]:
    """Settings naming roles that do not exist yet; they and their databases go afterwards."""
    tag = uuid.uuid4().hex[:8]
    settings = Settings(database_app_role=f"rhq_app_{tag}", database_system_role=f"rhq_sys_{tag}")
    yield settings
    with psycopg.connect(_plain(servers.database_url), autocommit=True) as connection:
        for role in (settings.database_app_role, settings.database_system_role):
            connection.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


async def test_databases_migrating_at_once_all_get_the_roles(
    servers: Servers, fresh_roles: Settings
) -> None:
    base = _plain(servers.database_url)
    names = [f"replyhq_roles_{uuid.uuid4().hex[:8]}" for _ in range(2)]
    with psycopg.connect(base, autocommit=True) as connection:
        for name in names:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    urls = [make_url(base).set(database=n).render_as_string(False) for n in names]
    try:
        # Processes, as in CI: Alembic's `op` and `context` are process-wide.
        await asyncio.gather(*(_migrate(url, fresh_roles) for url in urls))
        for url in urls:
            with psycopg.connect(url) as connection:
                policies = connection.execute(
                    "SELECT count(*) FROM pg_policies WHERE policyname = 'system_access' "
                    "AND %s = ANY(roles)",
                    (fresh_roles.database_system_role,),
                ).fetchone()
                assert policies is not None and policies[0] >= len(TENANT_TABLES)
    finally:
        with psycopg.connect(base, autocommit=True) as connection:
            for name in names:
                connection.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
