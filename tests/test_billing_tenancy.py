"""Invariant 1 for billing's tables: row-level security forced on each, a tenant's unfiltered query
sees its own rows only (a Stripe event not yet tied to an app: nobody's but the system role's), and
writing a row for another tenant is refused."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from replyhq.billing.notices import send_due_notices
from replyhq.billing.service import utcnow
from tests.billing_support import Billing
from tests.conftest import Tenant

BILLING_TABLES = [
    "billing_subscriptions",
    "billing_events",
    "billing_usage",
    "billing_active_users",
    "billing_notices",
]


async def _seed(billing: Billing, client: httpx.AsyncClient, tenant: Tenant) -> None:
    """A row of each table: Checkout paid (subscription, events), usage at 80 % (usage, an active
    end user, a notice)."""
    owner = await billing.staff(client, tenant, "OWNER")
    url = (
        await client.post(
            "/admin/api/billing/checkout", headers=owner.auth(), json={"plan": "starter"}
        )
    ).json()["url"]
    async with httpx.AsyncClient() as browser:
        await browser.post(f"{billing.fake.base_url}/checkout/{url.rsplit('/', 1)[1]}/pay")
    now = utcnow()
    billing.meter.count(tenant.id, uuid.uuid4(), now)
    for _ in range(8_000):
        billing.meter.count(tenant.id, None, now)
    await billing.meter.flush()
    await send_due_notices(billing.runtime.db, billing.settings)


@pytest.fixture(scope="module")
async def seeded(billing: Billing) -> tuple[Tenant, Tenant]:
    a, b = await billing.tenant("A"), await billing.tenant("B")
    async with httpx.AsyncClient(base_url=billing.server.url) as client:
        await _seed(billing, client, a)
        await _seed(billing, client, b)
    await billing.fake.settle()
    deadline = time.monotonic() + 20
    while True:  # every event applied (and so tied to its app)
        async with billing.runtime.db.system_session() as session:
            pending = await session.scalar(
                text(
                    "SELECT count(*) FROM billing_events "
                    "WHERE applied_at IS NULL AND id = ANY(:ids)"
                ),
                {"ids": [e["id"] for e in billing.fake.events]},
            )
        if pending == 0:
            return a, b
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)


async def test_rls_is_forced_on_every_billing_table(billing: Billing) -> None:
    async with billing.runtime.db.engine.connect() as connection:
        rows = (
            await connection.execute(
                text(
                    "SELECT relname FROM pg_class WHERE relname = ANY(:t) "
                    "AND relrowsecurity AND relforcerowsecurity"
                ),
                {"t": BILLING_TABLES},
            )
        ).scalars()
        assert sorted(rows) == sorted(BILLING_TABLES)


@pytest.mark.parametrize("table", BILLING_TABLES)
async def test_unfiltered_select_sees_only_the_bound_tenant(
    billing: Billing, seeded: tuple[Tenant, Tenant], table: str
) -> None:
    a, b = seeded
    for tenant in (a, b):
        async with billing.runtime.db.tenant_session(tenant.id) as session:
            owners = set((await session.execute(text(f"SELECT app_id FROM {table}"))).scalars())
        assert owners == {tenant.id}, table
    async with billing.runtime.db.system_session() as session:
        everyone = set((await session.execute(text(f"SELECT app_id FROM {table}"))).scalars())
    assert {a.id, b.id} <= everyone


async def test_an_event_for_no_app_is_seen_by_the_system_role_only(
    billing: Billing, seeded: tuple[Tenant, Tenant]
) -> None:
    a, _ = seeded
    event_id = f"evt_orphan_{uuid.uuid4().hex}"
    async with billing.runtime.db.system_session() as session:
        await session.execute(
            text(
                "INSERT INTO billing_events (id, type, stripe_created, payload) "
                "VALUES (:id, 'invoice.paid', 1, '{}')"
            ),
            {"id": event_id},
        )
    async with billing.runtime.db.tenant_session(a.id) as session:
        seen = await session.scalar(
            text("SELECT count(*) FROM billing_events WHERE id = :id"), {"id": event_id}
        )
    assert seen == 0


async def test_cannot_write_billing_rows_for_another_tenant(
    billing: Billing, seeded: tuple[Tenant, Tenant]
) -> None:
    a, b = seeded
    with pytest.raises(DBAPIError, match="row-level security"):
        async with billing.runtime.db.tenant_session(a.id) as session:
            await session.execute(
                text("INSERT INTO billing_notices (app_id, kind) VALUES (:b, 'forged')"),
                {"b": b.id},
            )
    async with billing.runtime.db.tenant_session(a.id) as session:
        changed = await session.execute(
            text("UPDATE billing_usage SET messages = 0 WHERE app_id = :b"), {"b": b.id}
        )
    assert changed.rowcount == 0  # type: ignore[attr-defined]
