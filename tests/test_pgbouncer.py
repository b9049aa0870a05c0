"""Behind PgBouncer in transaction pooling mode (Debian's pgbouncer, a process of this test's own
in front of the shared PostgreSQL), each transaction is bound to its tenant and to nothing else,
even with many client connections taking turns on two server connections.

The server runs as docs/benchmarks.md says to run it there: DB_PREPARED_STATEMENTS=false
(PgBouncer 1.18 cannot carry a statement prepared on one server connection to another).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from bench.pgbouncer import BINARY, PgBouncer
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.engine import make_url

from replyhq.app import create_app
from replyhq.apps import service as apps_service
from replyhq.db.session import runtime_url, system_url
from replyhq.runtime import Runtime
from replyhq.settings import Settings
from tests.conftest import Servers, Tenant, make_settings

# CI installs it (.ci/run): there, a missing PgBouncer fails the test instead of skipping it.
pytestmark = pytest.mark.skipif(
    not Path(BINARY).exists() and not os.environ.get("CI"), reason="pgbouncer is not installed"
)

SERVER_CONNECTIONS = 2


@pytest.fixture
def bouncer(servers: Servers) -> Iterator[PgBouncer]:
    base = Settings()
    users = [base.database_app_role, base.database_system_role]
    with PgBouncer(servers.database_url, users, pool_size=SERVER_CONNECTIONS) as running:
        yield running


@pytest.fixture
async def pooled_app(servers: Servers, bouncer: PgBouncer) -> AsyncIterator[FastAPI]:
    plain = make_settings(servers)
    settings = make_settings(
        servers,
        app_database_url=bouncer.url(runtime_url(plain, servers.database_url)),
        system_database_url=bouncer.url(system_url(plain, servers.database_url)),
        db_prepared_statements=False,
        db_pool_size=20,  # client connections: ten times the server connections
    )
    application = create_app(settings)
    async with LifespanManager(application):
        yield application


async def _tenant(runtime: Runtime, name: str) -> Tenant:
    async with runtime.db.system_session() as session:
        app, keys = await apps_service.create_app(session, name, rounds=4)
    return Tenant(app.id, name, keys.sdk_key, keys.secret_key, keys.identity_secret)


async def test_each_transaction_sees_its_own_tenant_through_transaction_pooling(
    pooled_app: FastAPI, bouncer: PgBouncer, servers: Servers
) -> None:
    runtime: Runtime = pooled_app.state.runtime
    transport = httpx.ASGITransport(app=pooled_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        tenants = [await _tenant(runtime, f"Pooled {n}") for n in range(2)]
        conversations: dict[uuid.UUID, str] = {}
        for tenant in tenants:
            sdk = tenant.sdk()
            identified = await client.post("/v1/identify", headers=sdk, json={"platform": "ios"})
            assert identified.status_code == 200, identified.text
            started = await client.post("/v1/conversations", headers=sdk, json={})
            assert started.status_code == 201, started.text
            conversations[tenant.id] = started.json()["id"]

        async def send(tenant: Tenant, n: int) -> httpx.Response:
            return await client.post(
                f"/v1/conversations/{conversations[tenant.id]}/messages",
                headers=tenant.sdk(),
                json={"body": f"{tenant.name} {n}", "client_msg_id": f"m-{n}"},
            )

        async def peek(tenant: Tenant) -> tuple[set[str], str | None]:
            """What a transaction bound to `tenant` sees, and what the next one, bound to nobody,
            finds bound (through a session, so another path than the send's)."""
            async with runtime.db.tenant_session(tenant.id) as session:
                apps = set(
                    (await session.execute(text("SELECT app_id::text FROM conversations")))
                    .scalars()
                    .all()
                )
            async with runtime.db.system_session() as session:
                left = await session.scalar(
                    text("SELECT nullif(current_setting('app.current_tenant', true), '')")
                )
            return apps, left

        # 30 sends and 30 peeks per tenant, all at once, interleaved: far more transactions
        # than server connections, so each server connection serves both tenants in turn.
        work = []
        for n in range(30):
            for tenant in tenants:
                work += [send(tenant, n), peek(tenant)]
        results = await asyncio.gather(*work)
        sends = [r for r in results if isinstance(r, httpx.Response)]
        peeks = [r for r in results if isinstance(r, tuple)]
        assert [r.status_code for r in sends] == [201] * 60, [r.text for r in sends[:3]]
        for tenant in tenants:
            mine = [r for r in sends if r.json()["body"].startswith(tenant.name)]
            assert sorted(r.json()["seq"] for r in mine) == list(range(1, 31))
        for apps, left in peeks:
            assert len(apps) == 1 and apps <= {str(t.id) for t in tenants}
            assert left is None  # nothing bound outlives its transaction
        for tenant in tenants:
            page = await client.get(
                f"/v1/conversations/{conversations[tenant.id]}/messages?limit=100",
                headers=tenant.sdk(),
            )
            bodies = [m["body"] for m in page.json()["items"]]
            assert len(bodies) == 30 and all(b.startswith(tenant.name) for b in bodies)
            other = next(t for t in tenants if t is not tenant)
            foreign = await client.get(
                f"/v1/conversations/{conversations[other.id]}/messages", headers=tenant.sdk()
            )
            assert foreign.status_code == 404

    # All of it went through the server connections PgBouncer keeps: two per role (it pools each
    # database and user apart: the runtime role's sends and peeks, the system role's checks).
    database = make_url(servers.database_url).database
    assert database is not None
    assert 0 < bouncer.server_connections(database) <= 2 * SERVER_CONNECTIONS
    assert "prepared statement" not in bouncer.log()
