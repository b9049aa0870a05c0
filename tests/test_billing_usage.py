"""Usage and limits: messages and distinct end users counted per app and month from committed
sends, warnings at 80 % and 100 % (e-mail once, and the dashboard's notice), 402
PLAN_LIMIT_REACHED on new conversations only, the same once a trial ended without a plan, and
the trial reminders of days 10, 12 and 14, each sent once."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid

import httpx
from sqlalchemy import update

from replyhq.billing.models import Subscription
from replyhq.billing.notices import send_due_notices
from replyhq.billing.service import subscription_of, utcnow
from tests.billing_support import Billing
from tests.conftest import Tenant, identify, start_conversation
from tests.mail_support import SmtpServer, text_of
from tests.realtime_clients import Recorder
from tests.staff import Staff


async def _usage(client: httpx.AsyncClient, owner: Staff) -> dict[str, object]:
    body: dict[str, object] = (await client.get("/admin/api/billing", headers=owner.auth())).json()
    return body


async def _until_usage(
    client: httpx.AsyncClient, owner: Staff, messages: int, mau: int
) -> dict[str, object]:
    """The billing answer once the meter's flush shows this usage (it flushes every 0.2 s)."""
    deadline = time.monotonic() + 10
    while True:
        body = await _usage(client, owner)
        if body["usage"] == {"messages": messages, "mau": mau}:
            return body
        assert time.monotonic() < deadline, body["usage"]
        await asyncio.sleep(0.1)


async def _new_conversation(client: httpx.AsyncClient, tenant: Tenant, device: str) -> int:
    response = await client.post(
        "/v1/conversations",
        headers=tenant.sdk(device),
        json={"first_message": {"body": "hello", "client_msg_id": uuid.uuid4().hex}},
    )
    return response.status_code


async def test_messages_and_distinct_end_users_are_counted_per_month(
    billing: Billing, billing_http: httpx.AsyncClient
) -> None:
    tenant = await billing.tenant()
    owner = await billing.staff(billing_http, tenant, "OWNER")
    for device in ("ann-phone", "bob-phone"):
        await identify(billing_http, tenant, device)
    first = await start_conversation(billing_http, tenant, "ann-phone")
    await start_conversation(billing_http, tenant, "bob-phone")
    for n in range(3):
        response = await billing_http.post(
            f"/v1/conversations/{first['id']}/messages",
            headers=tenant.sdk("ann-phone"),
            json={"body": f"more {n}", "client_msg_id": f"m-{n}"},
        )
        assert response.status_code == 201
    # A retried send stores nothing and counts nothing.
    again = await billing_http.post(
        f"/v1/conversations/{first['id']}/messages",
        headers=tenant.sdk("ann-phone"),
        json={"body": "more 0", "client_msg_id": "m-0"},
    )
    assert again.status_code == 200
    agent = await billing.staff(billing_http, tenant, "AGENT")
    reply = await billing_http.post(
        f"/admin/api/conversations/{first['id']}/messages",
        headers=agent.auth(),
        json={"body": "an agent's reply", "client_msg_id": "a-1"},
    )
    assert reply.status_code == 201, reply.text
    # 2 first messages + 3 + the agent's reply; two end users wrote.
    body = await _until_usage(billing_http, owner, messages=6, mau=2)
    assert body["warnings"] == []
    other = await billing.tenant("Other")
    other_owner = await billing.staff(billing_http, other, "OWNER")
    assert (await _usage(billing_http, other_owner))["usage"] == {"messages": 0, "mau": 0}


async def test_messages_sent_over_sockets_are_counted_too(
    billing: Billing, billing_http: httpx.AsyncClient
) -> None:
    tenant = await billing.tenant()
    owner = await billing.staff(billing_http, tenant, "OWNER")
    agent = await billing.staff(billing_http, tenant, "AGENT")
    await identify(billing_http, tenant, "socket-phone")
    conversation = await start_conversation(billing_http, tenant, "socket-phone")
    phone, desk = Recorder(), Recorder()
    auth = {"app_id": str(tenant.id), "api_key": tenant.sdk_key, "device_id": "socket-phone"}
    await phone.connect(billing.server.url, auth)
    await desk.connect(billing.server.url, {"token": agent.access}, namespace="/admin")
    try:
        for n in range(2):
            sent = {
                "conversation_id": conversation["id"],
                "body": f"hi {n}",
                "client_msg_id": f"s{n}",
            }
            assert (await phone.call("message:send", sent))["ok"] is True
        reply = {"conversation_id": conversation["id"], "body": "hello", "client_msg_id": "d1"}
        assert (await desk.call("message:send", reply))["ok"] is True
    finally:
        await phone.close()
        await desk.close()
    # The first message (HTTP), two from the phone and one from the desk; one end user.
    await _until_usage(billing_http, owner, messages=4, mau=1)


async def test_80_and_100_percent_warn_once_and_100_refuses_new_conversations_only(
    billing: Billing, billing_http: httpx.AsyncClient, smtp: SmtpServer
) -> None:
    tenant = await billing.tenant()
    owner = await billing.staff(billing_http, tenant, "OWNER")
    await identify(billing_http, tenant, "device-1")
    open_one = await start_conversation(billing_http, tenant, "device-1")
    now = utcnow()
    for _ in range(7_999):  # with the conversation's first message: 8,000 of the trial's 10,000
        billing.meter.count(tenant.id, None, now)
    body = await _until_usage(billing_http, owner, messages=8_000, mau=1)
    assert body["warnings"] == [{"metric": "messages", "level": 80}]
    assert "80 %" in str(body["notice"])
    assert body["can_start_conversations"] is True

    await send_due_notices(billing.runtime.db, billing.settings)
    await send_due_notices(billing.runtime.db, billing.settings)
    [warned] = await smtp.wait_for(owner.email)
    assert "80 %" in str(warned["Subject"])
    assert "10,000 messages" in text_of(warned)

    for _ in range(2_000):
        billing.meter.count(tenant.id, None, now)
    body = await _until_usage(billing_http, owner, messages=10_000, mau=1)
    assert body["warnings"] == [{"metric": "messages", "level": 100}]
    assert body["can_start_conversations"] is False
    refused = await billing_http.post(
        "/v1/conversations",
        headers=tenant.sdk("device-1"),
        json={"first_message": {"body": "new one", "client_msg_id": uuid.uuid4().hex}},
    )
    assert refused.status_code == 402
    answer = refused.json()
    assert answer["code"] == "PLAN_LIMIT_REACHED"
    assert "10,000 messages" in answer["error"] and "Upgrade under Billing" in answer["error"]
    # The end user mid-chat is never cut off.
    kept = await billing_http.post(
        f"/v1/conversations/{open_one['id']}/messages",
        headers=tenant.sdk("device-1"),
        json={"body": "still talking", "client_msg_id": uuid.uuid4().hex},
    )
    assert kept.status_code == 201

    await send_due_notices(billing.runtime.db, billing.settings)
    await send_due_notices(billing.runtime.db, billing.settings)
    mails = await smtp.wait_for(owner.email, count=2)
    assert "reached" in str(mails[1]["Subject"])
    await asyncio.sleep(1.0)
    assert len(smtp.to(owner.email)) == 2  # each once


async def test_the_mau_limit_counts_distinct_end_users(
    billing: Billing, billing_http: httpx.AsyncClient
) -> None:
    tenant = await billing.tenant()
    owner = await billing.staff(billing_http, tenant, "OWNER")
    now = utcnow()
    users = [uuid.uuid4() for _ in range(1_000)]
    for user in users + users[:10]:  # ten of them write twice: still 1,000 people
        billing.meter.count(tenant.id, user, now)
    body = await _until_usage(billing_http, owner, messages=1_010, mau=1_000)
    assert {"metric": "mau", "level": 100} in body["warnings"]
    await identify(billing_http, tenant, "late-comer")
    assert await _new_conversation(billing_http, tenant, "late-comer") == 402


async def test_a_trial_that_ended_without_a_plan_refuses_new_conversations(
    billing: Billing, billing_http: httpx.AsyncClient
) -> None:
    tenant = await billing.tenant()
    owner = await billing.staff(billing_http, tenant, "OWNER")
    await identify(billing_http, tenant, "device-t")
    conversation = await start_conversation(billing_http, tenant, "device-t")
    # Fifteen days later (the trial's end moved back instead of the clock forward).
    async with billing.runtime.db.tenant_session(tenant.id) as session:
        await subscription_of(session, billing.settings, tenant.id)
        await session.execute(
            update(Subscription)
            .where(Subscription.app_id == tenant.id)
            .values(trial_ends_at=utcnow() - dt.timedelta(days=1))
        )
    body = await _usage(billing_http, owner)
    assert body["status"] == "trial_ended" and body["can_start_conversations"] is False
    assert "free trial has ended" in str(body["notice"])
    refused = await billing_http.post(
        "/v1/conversations",
        headers=tenant.sdk("device-t"),
        json={"first_message": {"body": "hi", "client_msg_id": uuid.uuid4().hex}},
    )
    assert refused.status_code == 402 and refused.json()["code"] == "PLAN_LIMIT_REACHED"
    assert "Choose a plan" in refused.json()["error"]
    kept = await billing_http.post(
        f"/v1/conversations/{conversation['id']}/messages",
        headers=tenant.sdk("device-t"),
        json={"body": "still here", "client_msg_id": uuid.uuid4().hex},
    )
    assert kept.status_code == 201


async def test_trial_reminders_on_days_10_12_and_14_are_each_sent_once(
    billing: Billing, billing_http: httpx.AsyncClient, smtp: SmtpServer
) -> None:
    tenant = await billing.tenant()
    owner = await billing.staff(billing_http, tenant, "OWNER")
    await billing.staff(billing_http, tenant, "ADMIN")  # not an owner: no billing mail
    async with billing.runtime.db.tenant_session(tenant.id) as session:
        row = await subscription_of(session, billing.settings, tenant.id)
        assert row is not None
        started = row.trial_ends_at - dt.timedelta(days=14)
    db, settings = billing.runtime.db, billing.settings
    await send_due_notices(db, settings, started + dt.timedelta(days=9, hours=23))
    await asyncio.sleep(0.5)
    assert smtp.to(owner.email) == []
    expected = [
        (10, "Your ReplyHQ trial ends in 4 days"),
        (12, "Your ReplyHQ trial ends in 2 days"),
        (14, "Your ReplyHQ trial has ended"),
    ]
    for count, (day, subject) in enumerate(expected, start=1):
        when = started + dt.timedelta(days=day, hours=1)
        await send_due_notices(db, settings, when)
        await send_due_notices(db, settings, when + dt.timedelta(hours=5))  # the next ticks
        mails = await smtp.wait_for(owner.email, count=count)
        assert mails[-1]["Subject"] == subject
    await asyncio.sleep(1.0)
    assert len(smtp.to(owner.email)) == 3
    assert "/dashboard/billing" in text_of(smtp.to(owner.email)[0])
