"""Billing end to end against the local fake Stripe: the trial, Checkout, the portal, the proration
preview, OWNER-only routes, and billing being off without a Stripe key."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import httpx
from sqlalchemy import select, text

from replyhq.billing.models import StripeEvent, Subscription
from replyhq.runtime import Runtime
from tests.billing_support import Billing
from tests.conftest import Tenant
from tests.staff import secret, signed_in


async def _subscription(billing: Billing, tenant: Tenant) -> Subscription:
    async with billing.runtime.db.tenant_session(tenant.id) as session:
        row = await session.scalar(select(Subscription).where(Subscription.app_id == tenant.id))
    assert row is not None
    return row


async def _applied(billing: Billing, event_ids: list[str]) -> bool:
    async with billing.runtime.db.system_session() as session:
        rows = (
            await session.scalars(
                select(StripeEvent.id).where(
                    StripeEvent.id.in_(event_ids), StripeEvent.applied_at.is_not(None)
                )
            )
        ).all()
    return len(rows) == len(event_ids)


async def settle(billing: Billing) -> None:
    """Wait until the fake has delivered every event and each has been applied."""
    await billing.fake.settle()
    ids = [e["id"] for e in billing.fake.events]
    deadline = time.monotonic() + 15
    while not await _applied(billing, ids):
        assert time.monotonic() < deadline, "events not applied"
        await asyncio.sleep(0.05)


# --- billing off -------------------------------------------------------------------------------


async def test_without_a_stripe_key_billing_is_off_and_says_so(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant
) -> None:
    owner = await signed_in(runtime, client, tenant, "OWNER")
    response = await client.get("/admin/api/billing", headers=owner.auth())
    assert response.status_code == 200
    body = response.json()
    assert body["enabled"] is False and body["can_start_conversations"] is True
    assert body["usage"] is None and body["limits"] is None
    refused = await client.post(
        "/admin/api/billing/checkout", headers=owner.auth(), json={"plan": "growth"}
    )
    assert refused.status_code == 404 and refused.json()["code"] == "BILLING_DISABLED"
    hook = await client.post("/webhooks/stripe", content=b"{}", headers={"Stripe-Signature": "x"})
    assert hook.status_code == 404


# --- who may ------------------------------------------------------------------------------------


async def test_owner_reads_and_writes_admin_reads_agent_is_refused(
    billing: Billing, billing_http: httpx.AsyncClient
) -> None:
    tenant = await billing.tenant()
    owner = await billing.staff(billing_http, tenant, "OWNER")
    admin = await billing.staff(billing_http, tenant, "ADMIN")
    agent = await billing.staff(billing_http, tenant, "AGENT")
    before = len(billing.fake.requests)

    assert (await billing_http.get("/admin/api/billing", headers=owner.auth())).status_code == 200
    assert (await billing_http.get("/admin/api/billing", headers=admin.auth())).status_code == 200
    refused = await billing_http.get("/admin/api/billing", headers=agent.auth())
    assert refused.status_code == 403 and refused.json()["code"] == "PERMISSION_DENIED"
    for who in (admin, agent):
        response = await billing_http.post(
            "/admin/api/billing/checkout", headers=who.auth(), json={"plan": "growth"}
        )
        assert response.status_code == 403, who.role
        response = await billing_http.post("/admin/api/billing/portal", headers=who.auth())
        assert response.status_code == 403, who.role
    # The app's secret key acts as an ADMIN: it may read, not buy.
    as_backend = secret(tenant)
    assert (await billing_http.get("/admin/api/billing", headers=as_backend)).status_code == 200
    response = await billing_http.post(
        "/admin/api/billing/checkout", headers=as_backend, json={"plan": "growth"}
    )
    assert response.status_code == 403
    assert len(billing.fake.requests) == before  # nothing reached Stripe


async def test_a_bad_plan_is_a_400_that_reaches_nothing(
    billing: Billing, billing_http: httpx.AsyncClient
) -> None:
    tenant = await billing.tenant()
    owner = await billing.staff(billing_http, tenant, "OWNER")
    before = len(billing.fake.requests)
    response = await billing_http.post(
        "/admin/api/billing/checkout", headers=owner.auth(), json={"plan": "platinum"}
    )
    assert response.status_code == 400 and response.json()["code"] == "VALIDATION_ERROR"
    response = await billing_http.get(
        "/admin/api/billing/preview", headers=owner.auth(), params={"plan": "x"}
    )
    assert response.status_code == 400
    assert len(billing.fake.requests) == before


# --- trial, checkout, portal, preview ---------------------------------------------------------


async def test_a_new_app_is_in_a_14_day_trial_with_starter_limits(
    billing: Billing, billing_http: httpx.AsyncClient
) -> None:
    tenant = await billing.tenant()
    owner = await billing.staff(billing_http, tenant, "OWNER")
    body = (await billing_http.get("/admin/api/billing", headers=owner.auth())).json()
    assert body["enabled"] is True
    assert body["status"] == "trialing" and body["plan"] is None
    ends = dt.datetime.fromisoformat(body["trial_ends_at"])
    left = ends - dt.datetime.now(dt.UTC)
    assert dt.timedelta(days=13, hours=23) < left <= dt.timedelta(days=14)
    assert body["limits"] == {"mau": 1000, "messages": 10000}
    assert body["usage"] == {"mau": 0, "messages": 0}
    assert body["can_start_conversations"] is True
    assert body["notice"].startswith("Free trial: 14 days left")
    assert [p["key"] for p in body["plans"]] == ["starter", "growth", "business"]


async def test_an_app_older_than_billing_starts_its_trial_when_billing_sees_it(
    billing: Billing, billing_http: httpx.AsyncClient
) -> None:
    tenant = await billing.tenant()
    owner = await billing.staff(billing_http, tenant, "OWNER")
    async with billing.runtime.db.system_session() as session:  # made a month before billing
        await session.execute(
            text("UPDATE apps SET created_at = now() - interval '30 days' WHERE id = :id"),
            {"id": tenant.id},
        )
    body = (await billing_http.get("/admin/api/billing", headers=owner.auth())).json()
    assert body["status"] == "trialing" and body["can_start_conversations"] is True
    left = dt.datetime.fromisoformat(body["trial_ends_at"]) - dt.datetime.now(dt.UTC)
    assert dt.timedelta(days=13, hours=23) < left <= dt.timedelta(days=14)


async def test_checkout_then_paying_makes_the_app_subscribed(
    billing: Billing, billing_http: httpx.AsyncClient
) -> None:
    tenant = await billing.tenant()
    owner = await billing.staff(billing_http, tenant, "OWNER")
    response = await billing_http.post(
        "/admin/api/billing/checkout", headers=owner.auth(), json={"plan": "growth"}
    )
    assert response.status_code == 200, response.text
    url = response.json()["url"]
    assert url.startswith(billing.fake.base_url + "/checkout/cs_test_")
    session_id = url.rsplit("/", 1)[1]
    session = billing.fake.objects[session_id]
    assert session["metadata"] == {"app_id": str(tenant.id)}
    assert session["_subscription_data"]["metadata"] == {"app_id": str(tenant.id)}
    # The trial's remaining days are kept: Stripe charges when the trial ends.
    trial_end = int(session["_subscription_data"]["trial_end"])
    row = await _subscription(billing, tenant)
    assert trial_end == int(row.trial_ends_at.timestamp())
    customer = billing.fake.objects[row.stripe_customer_id or ""]
    assert customer["email"] == owner.email

    async with httpx.AsyncClient() as browser:  # the owner pays on the hosted page
        paid = await browser.post(f"{billing.fake.base_url}/checkout/{session_id}/pay")
    assert paid.status_code == 303
    assert paid.headers["location"].endswith("/dashboard/billing?checkout=success")
    await settle(billing)

    body = (await billing_http.get("/admin/api/billing", headers=owner.auth())).json()
    assert body["plan"] == "growth" and body["status"] == "trialing"
    assert body["limits"] == {"mau": 10000, "messages": 100000}
    assert body["current_period_end"] is not None
    row = await _subscription(billing, tenant)
    assert row.stripe_subscription_id is not None
    stripe_subscription = billing.fake.objects[row.stripe_subscription_id]
    assert stripe_subscription["metadata"] == {"app_id": str(tenant.id)}

    # The portal opens for this customer.
    portal = await billing_http.post("/admin/api/billing/portal", headers=owner.auth())
    assert portal.status_code == 200
    portal_id = portal.json()["url"].rsplit("/", 1)[1]
    assert billing.fake.objects[portal_id]["customer"] == row.stripe_customer_id


async def test_an_upgrade_is_previewed_prorated_then_made(
    billing: Billing, billing_http: httpx.AsyncClient
) -> None:
    tenant = await billing.tenant()
    owner = await billing.staff(billing_http, tenant, "OWNER")
    # Under 48 hours of trial left: Checkout charges now (Stripe refuses so short a trial_end).
    async with billing.runtime.db.tenant_session(tenant.id) as session:
        from replyhq.billing.service import subscription_of

        row = await subscription_of(session, billing.settings, tenant.id, lock=True)
        assert row is not None
        row.trial_ends_at = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    url = (
        await billing_http.post(
            "/admin/api/billing/checkout", headers=owner.auth(), json={"plan": "starter"}
        )
    ).json()["url"]
    session_id = url.rsplit("/", 1)[1]
    assert "trial_end" not in billing.fake.objects[session_id]["_subscription_data"]
    async with httpx.AsyncClient() as browser:
        await browser.post(f"{billing.fake.base_url}/checkout/{session_id}/pay")
    await settle(billing)
    body = (await billing_http.get("/admin/api/billing", headers=owner.auth())).json()
    assert (body["plan"], body["status"]) == ("starter", "active")

    preview = await billing_http.get(
        "/admin/api/billing/preview", headers=owner.auth(), params={"plan": "business"}
    )
    assert preview.status_code == 200, preview.text
    shown = preview.json()
    # Business' remaining month (~$299) less Starter's unused month (~$29): ~$270 prorated.
    assert 26_900 < shown["proration"] <= 27_000
    assert shown["amount_due"] == sum(line["amount"] for line in shown["lines"])
    assert shown["next_payment_at"] is not None

    changed = await billing_http.post(
        "/admin/api/billing/checkout", headers=owner.auth(), json={"plan": "business"}
    )
    assert changed.status_code == 200
    assert changed.json()["url"].endswith("/dashboard/billing?changed=1")
    body = (await billing_http.get("/admin/api/billing", headers=owner.auth())).json()
    assert body["plan"] == "business" and body["limits"]["messages"] == 500_000
    same = await billing_http.post(
        "/admin/api/billing/checkout", headers=owner.auth(), json={"plan": "business"}
    )
    assert same.status_code == 409 and same.json()["code"] == "SAME_PLAN"
    await settle(billing)


async def test_portal_before_any_plan_is_a_409(
    billing: Billing, billing_http: httpx.AsyncClient
) -> None:
    tenant = await billing.tenant()
    owner = await billing.staff(billing_http, tenant, "OWNER")
    response = await billing_http.post("/admin/api/billing/portal", headers=owner.auth())
    assert response.status_code == 409 and response.json()["code"] == "NO_CUSTOMER"


async def test_stripe_down_is_a_502_and_changes_nothing(
    billing: Billing, billing_http: httpx.AsyncClient
) -> None:
    tenant = await billing.tenant()
    owner = await billing.staff(billing_http, tenant, "OWNER")
    await billing_http.get("/admin/api/billing", headers=owner.auth())  # the row exists
    billing.fake.fail_next = 10  # more than the library's retries
    try:
        response = await billing_http.post(
            "/admin/api/billing/checkout", headers=owner.auth(), json={"plan": "growth"}
        )
    finally:
        billing.fake.fail_next = 0
    assert response.status_code == 502 and response.json()["code"] == "STRIPE_UNAVAILABLE"
    assert STRIPE_KEY_FRAGMENT not in response.text
    row = await _subscription(billing, tenant)
    assert row.stripe_customer_id is None


STRIPE_KEY_FRAGMENT = "sk_test_"
