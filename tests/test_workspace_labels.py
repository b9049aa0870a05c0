"""Labels: ADMIN/OWNER manage the set, every agent puts them on and off conversations (live to
the app's agents, a staff-only event in the timeline), the inbox filters by them; another app's
labels and conversations are out of reach."""

from __future__ import annotations

import asyncio

import httpx

from replyhq.runtime import Runtime
from tests.conftest import MakeTenant, SocketServer, Tenant, identify, start_conversation
from tests.realtime_clients import Recorder
from tests.staff import secret, signed_in
from tests.test_protocol import check
from tests.test_realtime_staff import agent_socket, device_socket

BASE = "/admin/api/conversations"


async def test_admins_manage_labels_and_agents_only_read_them(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant
) -> None:
    admin = await signed_in(runtime, client, tenant, "ADMIN")
    agent = await signed_in(runtime, client, tenant, "AGENT")
    made = await client.post(
        "/admin/api/labels", headers=admin.auth(), json={"name": "Billing", "color": "#FF0000"}
    )
    assert made.status_code == 201, made.text
    label = made.json()
    assert (label["name"], label["color"]) == ("Billing", "#ff0000")
    twin = await client.post("/admin/api/labels", headers=admin.auth(), json={"name": "billing"})
    assert (twin.status_code, twin.json()["code"]) == (409, "LABEL_EXISTS")
    for bad in ({"name": ""}, {"name": "x" * 51}, {"name": "ok", "color": "red"}, {}):
        response = await client.post("/admin/api/labels", headers=admin.auth(), json=bad)
        assert (response.status_code, response.json()["code"]) == (400, "VALIDATION_ERROR"), bad

    refused = await client.post("/admin/api/labels", headers=agent.auth(), json={"name": "Mine"})
    assert (refused.status_code, refused.json()["code"]) == (403, "PERMISSION_DENIED")
    assert [
        lb["name"] for lb in (await client.get("/admin/api/labels", headers=agent.auth())).json()
    ] == ["Billing"]
    renamed = await client.patch(
        f"/admin/api/labels/{label['id']}", headers=admin.auth(), json={"color": "#00ff00"}
    )
    assert renamed.json()["color"] == "#00ff00"
    await client.post("/admin/api/labels", headers=admin.auth(), json={"name": "Bug"})
    clash = await client.patch(
        f"/admin/api/labels/{label['id']}", headers=admin.auth(), json={"name": "BUG"}
    )
    assert clash.status_code == 409
    gone = await client.delete(f"/admin/api/labels/{label['id']}", headers=admin.auth())
    assert gone.status_code == 204
    again = await client.delete(f"/admin/api/labels/{label['id']}", headers=admin.auth())
    assert (again.status_code, again.json()["code"]) == (404, "LABEL_NOT_FOUND")


async def test_labelling_filters_the_inbox_and_is_told_live(
    socket_server: SocketServer,
    make_tenant: MakeTenant,
    http: httpx.AsyncClient,
    recorders: list[Recorder],
) -> None:
    acme, other = await make_tenant("Acme"), await make_tenant("Other")
    runtime = socket_server.runtime
    sam = await signed_in(runtime, http, acme, "AGENT", name="Sam")
    outsider = await signed_in(runtime, http, other, "OWNER")
    vip = (await http.post("/admin/api/labels", headers=secret(acme), json={"name": "VIP"})).json()
    theirs = (
        await http.post("/admin/api/labels", headers=secret(other), json={"name": "VIP"})
    ).json()
    await identify(http, acme, "a")
    await identify(http, acme, "b")
    first = (await start_conversation(http, acme, "a"))["id"]
    second = (await start_conversation(http, acme, "b"))["id"]
    watcher = await agent_socket(socket_server, sam, recorders)
    spy = await agent_socket(socket_server, outsider, recorders)
    user = await device_socket(socket_server, acme, "a", recorders)

    put = await http.put(f"{BASE}/{first}/labels/{vip['id']}", headers=sam.auth())
    assert put.status_code == 200, put.text
    assert [lb["name"] for lb in put.json()["labels"]] == ["VIP"]
    (live,) = await watcher.wait_for("conversation:labels")
    check("server", "conversation:labels", live)
    assert live["conversation_id"] == first
    assert [lb["id"] for lb in live["labels"]] == [vip["id"]]
    again = await http.put(f"{BASE}/{first}/labels/{vip['id']}", headers=sam.auth())
    assert again.status_code == 200  # already on: no change, no second event

    inbox = await http.get(BASE, params={"label": vip["id"]}, headers=sam.auth())
    assert [c["id"] for c in inbox.json()["items"]] == [first]
    assert inbox.json()["items"][0]["label_ids"] == [vip["id"]]
    everything = await http.get(BASE, headers=sam.auth())
    assert {c["id"] for c in everything.json()["items"]} == {first, second}

    # Another app's label or conversation: not found, nothing changed.
    foreign = await http.put(f"{BASE}/{first}/labels/{theirs['id']}", headers=sam.auth())
    assert (foreign.status_code, foreign.json()["code"]) == (404, "LABEL_NOT_FOUND")
    reach = await http.put(f"{BASE}/{first}/labels/{vip['id']}", headers=outsider.auth())
    assert reach.status_code == 404

    off = await http.delete(f"{BASE}/{first}/labels/{vip['id']}", headers=sam.auth())
    assert off.json()["labels"] == []
    updates = await watcher.wait_for("conversation:labels", 2)
    assert updates[-1]["labels"] == []
    items = (await http.get(f"{BASE}/{first}/items", headers=sam.auth())).json()["items"]
    assert [(i["data"]["type"], i["body"]) for i in items] == [
        ("label_added", "Sam added the label VIP"),
        ("label_removed", "Sam removed the label VIP"),
    ]
    assert (await http.get(BASE, params={"label": vip["id"]}, headers=sam.auth())).json()[
        "items"
    ] == []
    await asyncio.sleep(0.3)
    assert len(watcher.events["conversation:labels"]) == 2
    assert spy.events["conversation:labels"] == [] and user.events["conversation:labels"] == []
    assert user.events["timeline:item"] == []
