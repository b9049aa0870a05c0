"""Auto-assignment: off by default; round robin among available agents; least busy; never past
an agent's capacity; an agent away is skipped; a deactivated agent's open conversations go to
someone else; each assignment is a timeline event by ReplyHQ; the app's staff see an agent
become available or away live (`agent:availability` on /admin)."""

from __future__ import annotations

import asyncio

import httpx

from replyhq.runtime import Runtime
from tests.conftest import MakeTenant, SocketServer, Tenant, identify, start_conversation
from tests.realtime_clients import Recorder
from tests.staff import secret, signed_in
from tests.test_protocol import check
from tests.test_realtime_staff import agent_socket, device_socket

SETTINGS = "/admin/api/assignment"


async def _new(client: httpx.AsyncClient, tenant: Tenant, device: str) -> dict[str, object]:
    await identify(client, tenant, device)
    return await start_conversation(client, tenant, device)


async def test_round_robin_least_busy_capacity_and_away(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant
) -> None:
    owner = await signed_in(runtime, client, tenant, "OWNER")
    ann = await signed_in(runtime, client, tenant, "AGENT", name="Ann")
    bob = await signed_in(runtime, client, tenant, "AGENT", name="Bob")
    # The owner is away: only Ann and Bob take conversations.
    away = await client.put(
        f"{SETTINGS}/availability", headers=owner.auth(), json={"available": False}
    )
    assert away.status_code == 204

    off = await _new(client, tenant, "d0")
    assert off["assignee_id"] is None  # off by default
    assert (await client.get(SETTINGS, headers=owner.auth())).json()["mode"] == "off"

    put = await client.put(
        SETTINGS, headers=owner.auth(), json={"mode": "round_robin", "capacity": 2}
    )
    assert put.json() == {"mode": "round_robin", "capacity": 2}
    turns = [(await _new(client, tenant, f"r{n}"))["assignee_id"] for n in range(4)]
    assert sorted(turns[:2]) == sorted([str(ann.id), str(bob.id)])
    assert turns[2:] == turns[:2]  # they take turns
    full = await _new(client, tenant, "r4")  # both hold 2 = capacity
    assert full["assignee_id"] is None

    # Least busy: Bob closes one of his, so he is the least busy with room.
    items = (await client.get("/admin/api/conversations", headers=bob.auth())).json()["items"]
    mine = [c for c in items if c["assignee_id"] == str(bob.id)]
    await client.patch(
        f"/admin/api/conversations/{mine[0]['id']}", headers=bob.auth(), json={"status": "closed"}
    )
    await client.put(SETTINGS, headers=owner.auth(), json={"mode": "least_busy", "capacity": 2})
    assert (await _new(client, tenant, "l1"))["assignee_id"] == str(bob.id)

    # Bob goes away: the next one waits (Ann is full) until capacity grows.
    await client.put(f"{SETTINGS}/availability", headers=bob.auth(), json={"available": False})
    assert (await _new(client, tenant, "l2"))["assignee_id"] is None
    await client.put(SETTINGS, headers=owner.auth(), json={"mode": "least_busy", "capacity": 3})
    third = await _new(client, tenant, "l3")
    assert third["assignee_id"] == str(ann.id)

    loads = (await client.get(f"{SETTINGS}/agents", headers=ann.auth())).json()
    by_name = {row["name"]: row for row in loads}
    assert (by_name["Ann"]["open_count"], by_name["Ann"]["available"]) == (3, True)
    assert (by_name["Bob"]["open_count"], by_name["Bob"]["available"]) == (2, False)

    # The timeline says ReplyHQ assigned it.
    items = (
        await client.get(f"/admin/api/conversations/{third['id']}/items", headers=ann.auth())
    ).json()["items"]
    assert [(i["data"]["type"], i["body"]) for i in items] == [
        ("assigned", "ReplyHQ assigned it to Ann")
    ]


async def test_a_deactivated_agents_open_conversations_are_reassigned(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant
) -> None:
    owner = await signed_in(runtime, client, tenant, "OWNER")
    await client.put(f"{SETTINGS}/availability", headers=owner.auth(), json={"available": False})
    ann = await signed_in(runtime, client, tenant, "AGENT", name="Ann")
    await client.put(SETTINGS, headers=owner.auth(), json={"mode": "round_robin", "capacity": 5})
    first = await _new(client, tenant, "a")
    assert first["assignee_id"] == str(ann.id)
    bob = await signed_in(runtime, client, tenant, "AGENT", name="Bob")
    gone = await client.delete(f"/admin/api/team/{ann.id}", headers=owner.auth())
    assert gone.status_code == 204
    moved = (await client.get(f"/admin/api/conversations/{first['id']}", headers=bob.auth())).json()
    assert moved["assignee_id"] == str(bob.id)
    # With nobody left to take it, it becomes unassigned.
    await client.delete(f"/admin/api/team/{bob.id}", headers=owner.auth())
    alone = await client.get(f"/admin/api/conversations/{first['id']}", headers=owner.auth())
    assert alone.json()["assignee_id"] is None


async def test_assignment_settings_are_for_admins_and_per_app(
    client: httpx.AsyncClient, runtime: Runtime, make_tenant: MakeTenant
) -> None:
    acme, other = await make_tenant("Acme"), await make_tenant("Other")
    agent = await signed_in(runtime, client, acme, "AGENT")
    refused = await client.put(SETTINGS, headers=agent.auth(), json={"mode": "round_robin"})
    assert (refused.status_code, refused.json()["code"]) == (403, "PERMISSION_DENIED")
    for bad in ({"mode": "random"}, {"mode": "off", "capacity": 0}, {}):
        response = await client.put(SETTINGS, headers=secret(acme), json=bad)
        assert response.status_code == 400, bad
    await client.put(SETTINGS, headers=secret(acme), json={"mode": "least_busy"})
    assert (await client.get(SETTINGS, headers=secret(other))).json()["mode"] == "off"
    no_staff = await client.put(
        f"{SETTINGS}/availability", headers=secret(acme), json={"available": False}
    )
    assert (no_staff.status_code, no_staff.json()["code"]) == (400, "STAFF_ONLY")


async def test_availability_is_told_live_to_the_apps_staff(
    socket_server: SocketServer,
    make_tenant: MakeTenant,
    http: httpx.AsyncClient,
    recorders: list[Recorder],
) -> None:
    runtime = socket_server.runtime
    acme, other = await make_tenant("Acme"), await make_tenant("Other")
    ann = await signed_in(runtime, http, acme, "AGENT", name="Ann")
    bob = await signed_in(runtime, http, acme, "AGENT", name="Bob")
    stranger = await signed_in(runtime, http, other, "AGENT")
    await identify(http, acme, "phone")
    watcher = await agent_socket(socket_server, bob, recorders)
    outsider = await agent_socket(socket_server, stranger, recorders)
    device = await device_socket(socket_server, acme, "phone", recorders)

    away = await http.put(f"{SETTINGS}/availability", headers=ann.auth(), json={"available": False})
    assert away.status_code == 204
    (heard,) = await watcher.wait_for("agent:availability")
    assert heard == {"staff_id": str(ann.id), "available": False}
    check("server", "agent:availability", heard)
    # The same again changes nothing and tells nobody; back again is told.
    await http.put(f"{SETTINGS}/availability", headers=ann.auth(), json={"available": False})
    await http.put(f"{SETTINGS}/availability", headers=ann.auth(), json={"available": True})
    events = await watcher.wait_for("agent:availability", count=2)
    assert [e["available"] for e in events] == [False, True]
    await asyncio.sleep(0.3)
    assert len(watcher.events["agent:availability"]) == 2
    assert outsider.events["agent:availability"] == []  # another app's staff
    assert device.events["agent:availability"] == []  # an end user
    loads = (await http.get(f"{SETTINGS}/agents", headers=bob.auth())).json()
    assert {row["name"]: row["available"] for row in loads}["Ann"] is True
