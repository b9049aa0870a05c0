"""POST /webhooks/stripe: signatures verified by the `stripe` library (bad, stale, missing,
replayed), each event stored once and applied once (twice delivered, or concurrently), out-of-order
delivery resolved, a failed application retried; payment failures and cancellations reach the
app."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from replyhq.billing.fake_stripe import public, sign
from replyhq.billing.models import StripeEvent, Subscription
from replyhq.billing.notices import send_due_notices
from replyhq.billing.service import subscription_of
from replyhq.observability.metrics import JOB_FAILURES, JOB_RUNS
from tests.billing_support import WEBHOOK_SECRET, Billing
from tests.conftest import Tenant, identify, start_conversation
from tests.mail_support import SmtpServer, text_of
from tests.staff import Staff


async def _settle(billing: Billing, event_ids: list[str] | None = None) -> None:
    await billing.fake.settle()
    ids = event_ids if event_ids is not None else [e["id"] for e in billing.fake.events]
    deadline = time.monotonic() + 20
    while True:
        async with billing.runtime.db.system_session() as session:
            applied = await session.scalar(
                select(func.count())
                .select_from(StripeEvent)
                .where(StripeEvent.id.in_(ids), StripeEvent.applied_at.is_not(None))
            )
        if applied == len(ids):
            return
        assert time.monotonic() < deadline, "events not applied"
        await asyncio.sleep(0.05)


async def _row(billing: Billing, tenant: Tenant) -> Subscription:
    async with billing.runtime.db.tenant_session(tenant.id) as session:
        row = await session.scalar(select(Subscription).where(Subscription.app_id == tenant.id))
    assert row is not None
    return row


async def _stored(billing: Billing, event_id: str) -> StripeEvent | None:
    async with billing.runtime.db.system_session() as session:
        return await session.scalar(select(StripeEvent).where(StripeEvent.id == event_id))


async def _subscribed(
    billing: Billing, client: httpx.AsyncClient, plan: str = "starter"
) -> tuple[Tenant, Staff, str]:
    """A tenant whose owner paid for `plan` through Checkout, active at once (their trial had
    under 48 hours left, so Checkout charged now); (tenant, owner, subscription id)."""
    tenant = await billing.tenant()
    owner = await billing.staff(client, tenant, "OWNER")
    async with billing.runtime.db.tenant_session(tenant.id) as session:
        row = await subscription_of(session, billing.settings, tenant.id, lock=True)
        assert row is not None
        row.trial_ends_at = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    url = (
        await client.post("/admin/api/billing/checkout", headers=owner.auth(), json={"plan": plan})
    ).json()["url"]
    session_id = url.rsplit("/", 1)[1]
    async with httpx.AsyncClient() as browser:
        paid = await browser.post(f"{billing.fake.base_url}/checkout/{session_id}/pay")
    assert paid.status_code == 303
    await _settle(billing)
    subscription_id = billing.fake.objects[session_id]["subscription"]
    return tenant, owner, subscription_id


def _event(kind: str, obj: dict[str, Any], created: int | None = None) -> dict[str, Any]:
    """An event as Stripe sends it (what the fake's own emit() builds, delivered by hand)."""
    return {
        "id": f"evt_test_{uuid.uuid4().hex}",
        "object": "event",
        "api_version": "2026-10-28.endive",
        "created": created if created is not None else int(time.time()),
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": kind,
        "data": {"object": json.loads(json.dumps(public(obj)))},
    }


def _job_counts() -> tuple[float, float]:
    """(runs, failures) of billing.apply_event jobs in this process so far."""
    task = "billing.apply_event"
    return JOB_RUNS.labels(task)._value.get(), JOB_FAILURES.labels(task)._value.get()


def _fetches(billing: Billing, subscription_id: str) -> int:
    return sum(
        1
        for method, path, _ in billing.fake.requests
        if method == "GET" and path == f"/v1/subscriptions/{subscription_id}"
    )


# --- signatures ---------------------------------------------------------------------------------


async def test_bad_stale_and_missing_signatures_are_400_and_store_nothing(
    billing: Billing, billing_http: httpx.AsyncClient
) -> None:
    tenant, _, subscription_id = await _subscribed(billing, billing_http)
    event = _event("customer.subscription.updated", billing.fake.objects[subscription_id])
    payload = json.dumps(event)
    cases = {
        "wrong secret": {"Stripe-Signature": sign(payload, "whsec_not_ours")},
        "stale (301 s)": {
            "Stripe-Signature": sign(payload, WEBHOOK_SECRET, int(time.time()) - 301)
        },
        "missing": {},
        "garbage": {"Stripe-Signature": "t=abc,v1=zz"},
    }
    for case, headers in cases.items():
        response = await billing_http.post(
            "/webhooks/stripe",
            content=payload,
            headers={"Content-Type": "application/json", **headers},
        )
        assert response.status_code == 400, case
        assert response.json()["code"] == "WEBHOOK_SIGNATURE_INVALID", case
    # A body changed after signing.
    header = sign(payload, WEBHOOK_SECRET)
    tampered = payload.replace('"active"', '"canceled"')
    response = await billing_http.post(
        "/webhooks/stripe", content=tampered, headers={"Stripe-Signature": header}
    )
    assert response.status_code == 400
    assert await _stored(billing, event["id"]) is None
    assert (await _row(billing, tenant)).status == "active"
    # Signed right, within the tolerance: accepted.
    response = await billing_http.post(
        "/webhooks/stripe",
        content=payload,
        headers={"Stripe-Signature": sign(payload, WEBHOOK_SECRET, int(time.time()) - 200)},
    )
    assert response.status_code == 200 and response.json() == {"received": True, "duplicate": False}
    await _settle(billing, [event["id"]])


async def test_an_event_delivered_twice_or_concurrently_is_applied_once(
    billing: Billing, billing_http: httpx.AsyncClient
) -> None:
    _, _, subscription_id = await _subscribed(billing, billing_http)
    subscription = billing.fake.objects[subscription_id]
    twice = _event("customer.subscription.updated", subscription)
    fetched = _fetches(billing, subscription_id)
    await asyncio.sleep(0.3)  # the jobs of _subscribed's events have finished
    runs, failures = _job_counts()
    first = await billing.fake.deliver(twice, url=billing.webhook_url)
    replayed = await billing.fake.deliver(twice, url=billing.webhook_url)  # signed afresh
    assert (first.status, replayed.status) == (200, 200)
    await _settle(billing, [twice["id"]])

    together = _event("customer.subscription.updated", subscription)
    deliveries = await asyncio.gather(
        *(billing.fake.deliver(together, url=billing.webhook_url) for _ in range(4))
    )
    assert [d.status for d in deliveries] == [200] * 4
    await _settle(billing, [together["id"]])
    await asyncio.sleep(0.5)  # time for any second application to show
    # Each event was applied once: one read of the subscription from Stripe per event.
    assert _fetches(billing, subscription_id) == fetched + 2
    stored = await _stored(billing, together["id"])
    assert stored is not None and stored.outcome == "applied"
    # One job per event, each run once and none failed (even after applying).
    assert _job_counts() == (runs + 2, failures)


async def test_the_answer_says_a_replayed_event_is_a_duplicate(
    billing: Billing, billing_http: httpx.AsyncClient
) -> None:
    _, _, subscription_id = await _subscribed(billing, billing_http)
    event = _event("customer.subscription.updated", billing.fake.objects[subscription_id])
    payload = json.dumps(event)
    answers = []
    for _ in range(2):
        response = await billing_http.post(
            "/webhooks/stripe",
            content=payload,
            headers={"Stripe-Signature": sign(payload, WEBHOOK_SECRET)},
        )
        answers.append(response.json()["duplicate"])
    assert answers == [False, True]
    await _settle(billing, [event["id"]])


async def test_an_older_event_never_overwrites_a_newer_state(
    billing: Billing, billing_http: httpx.AsyncClient
) -> None:
    tenant, owner, subscription_id = await _subscribed(billing, billing_http, "starter")
    snapshot_as_starter = json.loads(json.dumps(billing.fake.objects[subscription_id]))
    # Business now (Stripe's event about it is delivered and applied).
    changed = await billing_http.post(
        "/admin/api/billing/checkout", headers=owner.auth(), json={"plan": "business"}
    )
    assert changed.status_code == 200
    await _settle(billing)
    # Then a delayed event from a minute ago, whose snapshot still says Starter.
    late = _event("customer.subscription.updated", snapshot_as_starter, int(time.time()) - 60)
    assert (await billing.fake.deliver(late, url=billing.webhook_url)).status == 200
    await _settle(billing, [late["id"]])
    stored = await _stored(billing, late["id"])
    assert stored is not None and stored.outcome == "stale"
    assert (await _row(billing, tenant)).plan == "business"


async def test_events_of_the_same_second_delivered_in_reverse_end_in_stripes_state(
    billing: Billing, billing_http: httpx.AsyncClient
) -> None:
    tenant, _, subscription_id = await _subscribed(billing, billing_http, "starter")
    fake = billing.fake
    fake.webhook_url = None  # hold Stripe's deliveries back, to send them in the wrong order
    try:
        item = fake.objects[subscription_id]["items"]["data"][0]["id"]
        fake.update_subscription(
            subscription_id, {"items": [{"id": item, "price": "price_test_growth"}]}
        )
        fake.update_subscription(subscription_id, {"cancel_at_period_end": "true"})
    finally:
        fake.webhook_url = billing.webhook_url
    plan_changed, cancel_set = fake.events[-2], fake.events[-1]
    for event in (cancel_set, plan_changed):  # newest first
        assert (await fake.deliver(event)).status == 200
    await _settle(billing, [plan_changed["id"], cancel_set["id"]])
    row = await _row(billing, tenant)
    assert (row.plan, row.cancel_at_period_end) == ("growth", True)


async def test_a_failed_application_is_retried_and_nothing_is_lost(
    billing: Billing, billing_http: httpx.AsyncClient
) -> None:
    tenant, _, subscription_id = await _subscribed(billing, billing_http, "starter")
    fake = billing.fake
    fake.webhook_url = None
    try:
        fake.update_subscription(subscription_id, {"cancel_at_period_end": "true"})
    finally:
        fake.webhook_url = billing.webhook_url
    event = fake.events[-1]
    _, failures = _job_counts()
    fake.fail_next = 3  # Stripe answers 500 to the first application's read (and its retries)
    assert (await fake.deliver(event)).status == 200  # stored, so acknowledged
    stored = await _stored(billing, event["id"])
    assert stored is not None  # kept while applying fails
    await _settle(billing, [event["id"]])
    assert fake.fail_next == 0
    assert (await _row(billing, tenant)).cancel_at_period_end is True
    assert _job_counts()[1] >= failures + 1  # the first run failed, a later one applied it


# --- what events do -----------------------------------------------------------------------------


async def test_a_failed_payment_makes_it_past_due_and_mails_the_owner_once(
    billing: Billing, billing_http: httpx.AsyncClient, smtp: SmtpServer
) -> None:
    _, owner, subscription_id = await _subscribed(billing, billing_http, "growth")
    billing.fake.fail_payment(subscription_id)
    await _settle(billing)
    body = (await billing_http.get("/admin/api/billing", headers=owner.auth())).json()
    assert body["status"] == "past_due"
    assert body["notice"].startswith("A payment failed")
    assert body["can_start_conversations"] is True  # Stripe is still retrying the card
    await send_due_notices(billing.runtime.db, billing.settings)
    await send_due_notices(billing.runtime.db, billing.settings)
    [mail] = await smtp.wait_for(owner.email)
    assert mail["Subject"] == "A payment for ReplyHQ failed"
    assert "/dashboard/billing" in text_of(mail)
    await asyncio.sleep(1.0)
    assert len(smtp.to(owner.email)) == 1


async def test_a_canceled_subscription_refuses_new_conversations_only(
    billing: Billing, billing_http: httpx.AsyncClient
) -> None:
    tenant, owner, subscription_id = await _subscribed(billing, billing_http, "starter")
    await identify(billing_http, tenant, "device-c")
    conversation = await start_conversation(billing_http, tenant, "device-c")
    billing.fake.cancel_subscription(subscription_id)
    await _settle(billing)
    body = (await billing_http.get("/admin/api/billing", headers=owner.auth())).json()
    assert body["status"] == "canceled" and body["can_start_conversations"] is False
    refused = await billing_http.post(
        "/v1/conversations",
        headers=tenant.sdk("device-c"),
        json={"first_message": {"body": "hi", "client_msg_id": uuid.uuid4().hex}},
    )
    assert refused.status_code == 402
    assert refused.json()["code"] == "PLAN_LIMIT_REACHED"
    assert "canceled" in refused.json()["error"]
    kept = await billing_http.post(
        f"/v1/conversations/{conversation['id']}/messages",
        headers=tenant.sdk("device-c"),
        json={"body": "still here", "client_msg_id": uuid.uuid4().hex},
    )
    assert kept.status_code == 201


@pytest.mark.parametrize("kind", ["invoice.paid", "checkout.session.completed"])
async def test_an_event_for_no_app_of_ours_is_kept_and_ignored(
    billing: Billing, billing_http: httpx.AsyncClient, kind: str
) -> None:
    stranger = {"id": "in_x", "object": "invoice", "customer": "cus_unknown", "metadata": {}}
    event = _event(kind, stranger)
    assert (await billing.fake.deliver(event, url=billing.webhook_url)).status == 200
    await _settle(billing, [event["id"]])
    stored = await _stored(billing, event["id"])
    assert stored is not None and stored.outcome == "unknown_app" and stored.app_id is None
