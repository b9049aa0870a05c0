"""/admin/api/triggered-messages: a message to each person who performs an event (optionally
only those a condition selects), at most once per person, sent by a job that the ingest
statement queues; through the normal conversation path; stoppable; sent / opened / replied."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from replyhq.analytics import ingest
from replyhq.jobs.registry import JobRun
from replyhq.jobs.worker import JobWorker
from replyhq.runtime import Runtime
from replyhq.triggered import tasks
from replyhq.triggered.tasks import send_triggered
from tests.conftest import MakeTenant, Servers, SocketServer, Tenant, make_settings, start_server
from tests.jobs_support import FAST, wait_for
from tests.realtime_clients import Recorder
from tests.staff import Staff, signed_in
from tests.test_realtime_devices import connect, device_auth

PRO = {
    "operator": "AND",
    "conditions": [
        {"type": "user_attribute", "field": "plan", "operator": "equals", "value": "pro"}
    ],
}


@pytest.fixture
async def messages_worker(servers: Servers, runtime: Runtime) -> AsyncIterator[JobWorker]:
    """A real worker on the triggered messages' queue, in the test process."""
    worker = JobWorker(make_settings(servers, **FAST), runtime, queues=[tasks.QUEUE], concurrency=2)
    worker.start()
    yield worker
    await worker.aclose()


async def _person(http: httpx.AsyncClient, tenant: Tenant, device: str, plan: str) -> None:
    body = {"platform": "web", "user_id": device, "attributes": {"plan": plan}}
    response = await http.post("/v1/identify", headers=tenant.sdk(device), json=body)
    assert response.status_code == 200, response.text


async def _track(
    http: httpx.AsyncClient, tenant: Tenant, device: str, *events: dict[str, Any]
) -> None:
    response = await http.post(
        "/v1/events", headers=tenant.sdk(device), json={"events": list(events)}
    )
    assert response.status_code == 202, response.text


async def _inbox(http: httpx.AsyncClient, tenant: Tenant, device: str) -> list[dict[str, Any]]:
    response = await http.get("/v1/conversations", headers=tenant.sdk(device))
    assert response.status_code == 200
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def _create(
    http: httpx.AsyncClient, admin: Staff, event: str, **extra: Any
) -> dict[str, Any]:
    body = {"name": "Welcome aboard", "event_name": event, "sender_id": str(admin.id)}
    body["body"] = "Thanks for upgrading!"
    body.update(extra)
    response = await http.post("/admin/api/triggered-messages", headers=admin.auth(), json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _claims(servers: Servers, trigger_id: str) -> list[tuple[str, bool]]:
    with psycopg.connect(servers.database_url) as owner:
        rows = owner.execute(
            "SELECT u.external_id, s.sent_at IS NOT NULL FROM triggered_message_sends s "
            "JOIN end_users u ON u.id = s.end_user_id WHERE s.triggered_message_id = %s "
            "ORDER BY 1",
            (trigger_id,),
        ).fetchall()
    return [(str(r[0]), bool(r[1])) for r in rows]


def _jobs(servers: Servers, tenant: Tenant) -> int:
    with psycopg.connect(servers.database_url) as owner:
        row = owner.execute(
            "SELECT count(*) FROM procrastinate_jobs WHERE task_name = %s AND args->>'app_id' = %s",
            (tasks.TASK, str(tenant.id)),
        ).fetchone()
    assert row is not None
    return int(row[0])


async def _counts(http: httpx.AsyncClient, staff: Staff, trigger_id: str) -> dict[str, Any]:
    shown = await http.get(f"/admin/api/triggered-messages/{trigger_id}", headers=staff.auth())
    assert shown.status_code == 200, shown.text
    return {k: shown.json()[k] for k in ("status", "sent", "opened", "replied")}


def test_the_ingest_statement_queues_the_triggered_messages_job() -> None:
    assert (ingest.TRIGGER_JOB_TASK, ingest.TRIGGER_JOB_QUEUE) == (tasks.TASK, tasks.QUEUE)
    assert (send_triggered.name, send_triggered.queue) == (tasks.TASK, tasks.QUEUE)


async def test_an_event_sends_the_message_once_live_and_counts_opens_and_replies(
    socket_server: SocketServer,
    http: httpx.AsyncClient,
    make_tenant: MakeTenant,
    servers: Servers,
    messages_worker: JobWorker,
    recorders: list[Recorder],
) -> None:
    tenant = await make_tenant("Triggered")
    for device, plan in [("ann", "pro"), ("bob", "free"), ("cy", "pro")]:
        await _person(http, tenant, device, plan)
    admin = await signed_in(socket_server.runtime, http, tenant, "ADMIN", name="Dana")
    agent = await signed_in(socket_server.runtime, http, tenant, "AGENT")
    # cy upgraded before the trigger existed (an offline SDK sends it late): not reached.
    earlier = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    trigger = await _create(http, admin, "upgraded", condition=PRO)
    assert (trigger["status"], trigger["sender_name"], trigger["sent"]) == ("active", "Dana", 0)
    ann_socket = await connect(socket_server, recorders, device_auth(tenant, "ann"))

    await _track(http, tenant, "cy", {"name": "upgraded", "timestamp": earlier})
    await _track(http, tenant, "ann", {"name": "opened_app"}, {"name": "upgraded"})
    await _track(http, tenant, "bob", {"name": "upgraded"})  # not pro: the condition says no

    (event,) = await ann_socket.wait_for("message:new")  # live, from the worker's job
    assert event["message"]["body"] == "Thanks for upgrading!"
    (conversation,) = await _inbox(http, tenant, "ann")
    assert conversation["subject"] == "Welcome aboard"
    last = conversation["last_message"]
    assert (last["body"], last["author"]["name"], last["sender"]) == (
        "Thanks for upgrading!",
        "Dana",
        "agent",
    )
    await wait_for(lambda: _claims(servers, trigger["id"]) == [("ann", True)])
    assert await _inbox(http, tenant, "bob") == [] and await _inbox(http, tenant, "cy") == []

    # Again and again: at most once per person; no job is even queued for a claimed person.
    jobs = _jobs(servers, tenant)
    for _ in range(3):
        await _track(http, tenant, "ann", {"name": "upgraded"})
    assert _jobs(servers, tenant) == jobs
    # bob becomes pro and upgrades again: now the condition selects him.
    await _person(http, tenant, "bob", "pro")
    await _track(http, tenant, "bob", {"name": "upgraded"})
    await wait_for(lambda: _claims(servers, trigger["id"]) == [("ann", True), ("bob", True)])
    assert len(await _inbox(http, tenant, "ann")) == 1
    assert len(await _inbox(http, tenant, "bob")) == 1

    cid = conversation["id"]
    read = await http.post(
        f"/v1/conversations/{cid}/read", headers=tenant.sdk("ann"), json={"seq": 1}
    )
    assert read.status_code == 204
    reply = await http.post(
        f"/v1/conversations/{cid}/messages",
        headers=tenant.sdk("ann"),
        json={"body": "Great!", "client_msg_id": uuid.uuid4().hex},
    )
    assert reply.status_code == 201
    assert await _counts(http, agent, trigger["id"]) == {
        "status": "active",
        "sent": 2,
        "opened": 1,
        "replied": 1,
    }
    listed = await http.get("/admin/api/triggered-messages", headers=agent.auth())
    assert [t["id"] for t in listed.json()["items"]] == [trigger["id"]]
    # The reply is in the agents' inbox like any other.
    inbox = await http.get("/admin/api/conversations", headers=agent.auth())
    assert cid in [c["id"] for c in inbox.json()["items"]]


async def test_a_condition_on_events_and_devices_is_judged_for_each_person(
    socket_server: SocketServer,
    http: httpx.AsyncClient,
    make_tenant: MakeTenant,
    servers: Servers,
    messages_worker: JobWorker,
) -> None:
    """The job judges its people with the condition compiled as lookups of each of them
    (segments' `correlated` form): event conditions, positive and negated, and a device's."""
    tenant = await make_tenant("Triggered events")
    for device in ("ann", "bob", "cy"):
        await _person(http, tenant, device, "free")
    admin = await signed_in(socket_server.runtime, http, tenant, "ADMIN", name="Dana")
    week = {"type": "relative", "value": 7, "unit": "days"}
    condition = {
        "operator": "AND",
        "conditions": [
            {"type": "event", "eventName": "viewed_pricing", "timeframe": week},
            {"type": "event", "eventName": "purchase", "operator": "not_exists"},
            {"type": "user_attribute", "field": "platform", "operator": "equals", "value": "web"},
        ],
    }
    trigger = await _create(http, admin, "left_checkout", condition=condition)
    await _track(http, tenant, "ann", {"name": "viewed_pricing"}, {"name": "left_checkout"})
    await _track(
        http,
        tenant,
        "bob",
        {"name": "viewed_pricing"},
        {"name": "purchase"},
        {"name": "left_checkout"},
    )
    await _track(http, tenant, "cy", {"name": "left_checkout"})
    # bob bought and cy never looked at the prices: their claims are judged and let go.
    await wait_for(lambda: _claims(servers, trigger["id"]) == [("ann", True)])
    assert len(await _inbox(http, tenant, "ann")) == 1
    assert await _inbox(http, tenant, "bob") == [] and await _inbox(http, tenant, "cy") == []


async def test_concurrent_events_in_two_processes_send_once_per_person(
    socket_server: SocketServer,
    http: httpx.AsyncClient,
    make_tenant: MakeTenant,
    servers: Servers,
    tmp_path: Path,
) -> None:
    tenant = await make_tenant("Concurrent")
    people = ["p1", "p2", "p3"]
    for device in people:
        await _person(http, tenant, device, "pro")
    admin = await signed_in(socket_server.runtime, http, tenant, "ADMIN")
    trigger = await _create(http, admin, "checkout")
    other = start_server(servers, tmp_path)
    try:
        async with httpx.AsyncClient(base_url=other.url) as http2:
            sends = [
                _track(client, tenant, device, *[{"name": "checkout"}] * 5)
                for device in people
                for client in (http, http2)
                for _ in range(6)
            ]
            await asyncio.gather(*sends)
    finally:
        other.stop()
    assert _claims(servers, trigger["id"]) == [(p, False) for p in people]
    assert _jobs(servers, tenant) >= 1
    run = JobRun(1, tasks.TASK, 1, socket_server.runtime)
    # Jobs side by side (a burst queues several) share the claims and send none twice.
    await asyncio.gather(*[send_triggered.func(run, app_id=str(tenant.id)) for _ in range(3)])
    assert _claims(servers, trigger["id"]) == [(p, True) for p in people]
    for device in people:
        assert len(await _inbox(http, tenant, device)) == 1
    assert (await _counts(http, admin, trigger["id"]))["sent"] == 3


async def test_a_stopped_trigger_sends_no_more(
    socket_server: SocketServer,
    http: httpx.AsyncClient,
    make_tenant: MakeTenant,
    servers: Servers,
) -> None:
    tenant = await make_tenant("Stopped trigger")
    await _person(http, tenant, "ann", "pro")
    await _person(http, tenant, "bob", "pro")
    admin = await signed_in(socket_server.runtime, http, tenant, "ADMIN")
    agent = await signed_in(socket_server.runtime, http, tenant, "AGENT")
    trigger = await _create(http, admin, "signed_up")
    await _track(http, tenant, "ann", {"name": "signed_up"})  # claimed, its job not run yet
    refused = await http.post(
        f"/admin/api/triggered-messages/{trigger['id']}/stop", headers=agent.auth()
    )
    assert refused.status_code == 403
    stopped = await http.post(
        f"/admin/api/triggered-messages/{trigger['id']}/stop", headers=admin.auth()
    )
    assert stopped.status_code == 200 and stopped.json()["status"] == "stopped"
    assert stopped.json()["stopped_at"] is not None
    await _track(http, tenant, "bob", {"name": "signed_up"})
    assert _claims(servers, trigger["id"]) == [("ann", False)]  # bob: no claim after the stop
    run = JobRun(1, tasks.TASK, 1, socket_server.runtime)
    await send_triggered.func(run, app_id=str(tenant.id))
    assert _claims(servers, trigger["id"]) == []
    assert await _inbox(http, tenant, "ann") == [] and await _inbox(http, tenant, "bob") == []
    assert (await _counts(http, admin, trigger["id"]))["sent"] == 0


async def test_bad_triggered_messages_are_refused(
    socket_server: SocketServer, http: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    tenant, other = await make_tenant("Mine"), await make_tenant("Theirs")
    admin = await signed_in(socket_server.runtime, http, tenant, "ADMIN")
    agent = await signed_in(socket_server.runtime, http, tenant, "AGENT")
    theirs = await signed_in(socket_server.runtime, http, other, "ADMIN")
    their_trigger = await _create(http, theirs, "x")
    bad_condition = {
        "operator": "AND",
        "conditions": [{"type": "user_attribute", "field": "plan", "operator": "gt", "value": "a"}],
    }
    cases: list[tuple[dict[str, Any], Staff, int, str]] = [
        ({}, agent, 403, "PERMISSION_DENIED"),
        ({"sender_id": str(theirs.id)}, admin, 400, "INVALID_SENDER"),
        ({"condition": bad_condition}, admin, 400, "INVALID_SEGMENT"),
        ({"event_name": "x" * 101}, admin, 400, "VALIDATION_ERROR"),
        ({"event_name": "bad\nname"}, admin, 400, "VALIDATION_ERROR"),
        ({"body": ""}, admin, 400, "VALIDATION_ERROR"),
    ]
    for extra, caller, status, code in cases:
        body = {"name": "t", "event_name": "x", "sender_id": str(admin.id), "body": "hi", **extra}
        response = await http.post(
            "/admin/api/triggered-messages", headers=caller.auth(), json=body
        )
        assert (response.status_code, response.json()["code"]) == (status, code), response.text
    invalid = await http.post(
        "/admin/api/triggered-messages",
        headers=admin.auth(),
        json={
            "name": "t",
            "event_name": "x",
            "sender_id": str(admin.id),
            "body": "hi",
            "condition": bad_condition,
        },
    )
    assert invalid.json()["details"][0]["field"] == "condition.conditions.0.value"
    for path in (f"/{their_trigger['id']}", f"/{uuid.uuid4()}"):
        shown = await http.get("/admin/api/triggered-messages" + path, headers=admin.auth())
        assert shown.status_code == 404
        assert shown.json()["code"] == "TRIGGERED_MESSAGE_NOT_FOUND"
        stop = await http.post(
            "/admin/api/triggered-messages" + path + "/stop", headers=admin.auth()
        )
        assert stop.status_code == 404
    listed = await http.get("/admin/api/triggered-messages", headers=admin.auth())
    assert listed.json()["items"] == []
