"""/admin/api/campaigns: a message from a named agent to a segment's members, once each, through
the normal conversation path, by a job; stoppable; sent / opened / replied."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import psycopg

from replyhq.campaigns.tasks import send_campaign
from replyhq.jobs.registry import JobRun
from tests.conftest import MakeTenant, Servers, SocketServer, Tenant
from tests.staff import Staff, signed_in


async def _person(http: httpx.AsyncClient, tenant: Tenant, device: str, plan: str) -> None:
    body = {"platform": "web", "user_id": device, "attributes": {"plan": plan}}
    response = await http.post("/v1/identify", headers=tenant.sdk(device), json=body)
    assert response.status_code == 200, response.text


async def _segment(http: httpx.AsyncClient, admin: Staff, plan: str) -> str:
    query = {
        "operator": "AND",
        "conditions": [
            {"type": "user_attribute", "field": "plan", "operator": "equals", "value": plan}
        ],
    }
    response = await http.post(
        "/admin/api/segments", headers=admin.auth(), json={"name": plan, "query": query}
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def _run(server: SocketServer, campaign: dict[str, Any], tenant: Tenant) -> None:
    run = JobRun(1, "campaigns.send", 1, server.runtime)
    await send_campaign.func(run, app_id=str(tenant.id), campaign_id=campaign["id"])


async def _inbox(http: httpx.AsyncClient, tenant: Tenant, device: str) -> list[dict[str, Any]]:
    response = await http.get("/v1/conversations", headers=tenant.sdk(device))
    assert response.status_code == 200
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_a_campaign_reaches_each_member_once_and_counts_opens_and_replies(
    socket_server: SocketServer, http: httpx.AsyncClient, make_tenant: MakeTenant, servers: Servers
) -> None:
    tenant = await make_tenant("Campaigns")
    for device, plan in [("ann", "pro"), ("bob", "pro"), ("cy", "free")]:
        await _person(http, tenant, device, plan)
    admin = await signed_in(socket_server.runtime, http, tenant, "ADMIN", name="Dana")
    agent = await signed_in(socket_server.runtime, http, tenant, "AGENT")
    pro = await _segment(http, admin, "pro")
    body = {
        "name": "Pro tips",
        "segment_id": pro,
        "sender_id": str(admin.id),
        "body": "Hi! Try export.",
    }

    refused = await http.post("/admin/api/campaigns", headers=agent.auth(), json=body)
    assert refused.status_code == 403
    launched = await http.post("/admin/api/campaigns", headers=admin.auth(), json=body)
    assert launched.status_code == 201, launched.text
    campaign = launched.json()
    assert (campaign["status"], campaign["sender_name"], campaign["sent"]) == ("sending", "Dana", 0)
    with psycopg.connect(servers.database_url) as owner:
        queued = owner.execute(
            "SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'campaigns.send' "
            "AND args->>'campaign_id' = %s",
            (campaign["id"],),
        ).fetchone()
    assert queued == (1,)  # queued with the campaign, in its transaction

    await _run(socket_server, campaign, tenant)
    await _run(socket_server, campaign, tenant)  # a job run again sends nobody twice
    for device in ("ann", "bob"):
        (conversation,) = await _inbox(http, tenant, device)
        assert conversation["subject"] == "Pro tips"
        last = conversation["last_message"]
        assert (last["body"], last["author"]["name"], last["sender"]) == (
            "Hi! Try export.",
            "Dana",
            "agent",
        )
    assert await _inbox(http, tenant, "cy") == []

    (ann_conversation,) = await _inbox(http, tenant, "ann")
    cid = ann_conversation["id"]
    read = await http.post(
        f"/v1/conversations/{cid}/read", headers=tenant.sdk("ann"), json={"seq": 1}
    )
    assert read.status_code == 204
    reply = await http.post(
        f"/v1/conversations/{cid}/messages",
        headers=tenant.sdk("ann"),
        json={"body": "Thanks!", "client_msg_id": uuid.uuid4().hex},
    )
    assert reply.status_code == 201
    shown = await http.get(f"/admin/api/campaigns/{campaign['id']}", headers=agent.auth())
    assert shown.status_code == 200
    assert {k: shown.json()[k] for k in ("status", "sent", "opened", "replied")} == {
        "status": "done",
        "sent": 2,
        "opened": 1,
        "replied": 1,
    }
    listed = await http.get("/admin/api/campaigns", headers=agent.auth())
    assert [c["id"] for c in listed.json()["items"]] == [campaign["id"]]


async def test_a_stopped_campaign_sends_no_more(
    socket_server: SocketServer, http: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    tenant = await make_tenant("Stopped")
    await _person(http, tenant, "ann", "pro")
    admin = await signed_in(socket_server.runtime, http, tenant, "ADMIN")
    body = {
        "name": "Oops",
        "segment_id": await _segment(http, admin, "pro"),
        "sender_id": str(admin.id),
        "body": "x",
    }
    campaign = (await http.post("/admin/api/campaigns", headers=admin.auth(), json=body)).json()
    stopped = await http.post(f"/admin/api/campaigns/{campaign['id']}/stop", headers=admin.auth())
    assert stopped.status_code == 200 and stopped.json()["status"] == "stopped"
    await _run(socket_server, campaign, tenant)
    assert await _inbox(http, tenant, "ann") == []
    again = await http.post(f"/admin/api/campaigns/{campaign['id']}/stop", headers=admin.auth())
    assert again.json()["status"] == "stopped"


async def test_bad_campaigns_are_refused(
    socket_server: SocketServer, http: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    tenant, other = await make_tenant("Mine"), await make_tenant("Theirs")
    admin = await signed_in(socket_server.runtime, http, tenant, "ADMIN")
    theirs = await signed_in(socket_server.runtime, http, other, "ADMIN")
    segment = await _segment(http, admin, "pro")
    their_segment = await _segment(http, theirs, "pro")
    cases = [
        ({"segment_id": their_segment, "sender_id": str(admin.id)}, 404, "SEGMENT_NOT_FOUND"),
        ({"segment_id": segment, "sender_id": str(theirs.id)}, 400, "INVALID_SENDER"),
        ({"segment_id": segment, "sender_id": str(uuid.uuid4())}, 400, "INVALID_SENDER"),
        ({"segment_id": segment, "sender_id": str(admin.id), "body": ""}, 400, "VALIDATION_ERROR"),
    ]
    for extra, status, code in cases:
        body = {"name": "c", "body": "hello", **extra}
        response = await http.post("/admin/api/campaigns", headers=admin.auth(), json=body)
        assert (response.status_code, response.json()["code"]) == (status, code), response.text
    unknown = await http.get(f"/admin/api/campaigns/{uuid.uuid4()}", headers=admin.auth())
    assert unknown.status_code == 404
    assert (await http.get("/admin/api/campaigns", headers=admin.auth())).json()["items"] == []
