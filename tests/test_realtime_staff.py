"""Namespace `/admin`: agents see their app's conversations live, and only their app's."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.conftest import MakeTenant, SocketServer, Tenant
from tests.realtime_clients import Recorder, refused
from tests.staff import Staff, add_staff, signed_in
from tests.test_realtime_devices import device_auth, identify


async def agent_socket(server: SocketServer, staff: Staff, recorders: list[Recorder]) -> Recorder:
    recorder = Recorder()
    await recorder.connect(server.url, {"token": staff.access}, namespace="/admin")
    recorders.append(recorder)
    return recorder


async def device_socket(
    server: SocketServer, tenant: Tenant, device: str, recorders: list[Recorder]
) -> Recorder:
    recorder = Recorder()
    await recorder.connect(server.url, device_auth(tenant, device))
    recorders.append(recorder)
    return recorder


async def _conversation(http: httpx.AsyncClient, tenant: Tenant, device: str) -> str:
    response = await http.post("/v1/conversations", headers=tenant.sdk(device), json={})
    cid: str = response.json()["id"]
    return cid


async def test_bad_tokens_are_refused(
    socket_server: SocketServer, tenant: Tenant, http: httpx.AsyncClient
) -> None:
    staff = await signed_in(socket_server.runtime, http, tenant, "AGENT")
    for auth, code in (
        ({}, "AUTH_REQUIRED"),
        ({"token": "not-a-jwt"}, None),
        ({"token": staff.refresh}, None),  # a refresh token is not an access token
        ({"token": staff.access + "x"}, None),
    ):
        error = await refused(socket_server.url, auth, namespace="/admin")
        assert error["code"] == code if code else error["code"], (auth, error)
    device_key = await refused(socket_server.url, device_auth(tenant), namespace="/admin")
    assert device_key["code"] == "AUTH_REQUIRED"


async def test_conversation_flow_both_ways(
    socket_server: SocketServer,
    make_tenant: MakeTenant,
    http: httpx.AsyncClient,
    recorders: list[Recorder],
) -> None:
    acme, other = await make_tenant("Acme"), await make_tenant("Other")
    runtime = socket_server.runtime
    sam = await signed_in(runtime, http, acme, "AGENT", name="Sam")
    outsider = await signed_in(runtime, http, other, "OWNER")
    agent = await agent_socket(socket_server, sam, recorders)
    spy = await agent_socket(socket_server, outsider, recorders)

    await identify(http, acme, "ann-phone", "ann")
    await identify(http, acme, "bob-phone", "bob")
    ann = await device_socket(socket_server, acme, "ann-phone", recorders)
    bob = await device_socket(socket_server, acme, "bob-phone", recorders)

    cid = await _conversation(http, acme, "ann-phone")
    (created,) = await agent.wait_for("conversation:updated")
    assert created["conversation"]["id"] == cid

    # The end user writes; the agent sees it live.
    ack = await ann.call(
        "message:send",
        {"conversation_id": cid, "body": "Where is my order?", "client_msg_id": "u1"},
    )
    (arrived,) = await agent.wait_for("message:new")
    assert arrived["message"] == ack["message"]

    # Typing both ways.
    await ann.call("typing", {"conversation_id": cid, "typing": True})
    (typing,) = await agent.wait_for("typing")
    assert typing["who"]["type"] == "user" and typing["typing"] is True
    assert (await agent.call("typing", {"conversation_id": cid, "typing": True}))["ok"] is True
    (agent_typing,) = await ann.wait_for("typing")
    assert agent_typing["who"] == {"type": "agent", "id": str(sam.id), "name": "Sam"}

    # The agent answers over the socket; the end user sees it, once.
    reply = await agent.call(
        "message:send", {"conversation_id": cid, "body": "On its way!", "client_msg_id": "a1"}
    )
    assert reply["ok"] is True and reply["message"]["author"]["name"] == "Sam"
    events = await ann.wait_for("message:new", 2)
    assert [e["message"]["seq"] for e in events] == [1, 2]
    assert (await agent.call("read", {"conversation_id": cid, "seq": 2}))["seq"] == 2
    read = (await ann.wait_for("read"))[-1]
    assert read["who"] == {"type": "agent", "id": str(sam.id)} and read["seq"] == 2

    synced = await agent.call("sync", {"conversation_id": cid, "after_seq": 0})
    assert [m["body"] for m in synced["messages"]] == ["Where is my order?", "On its way!"]

    # Closing over HTTP (here by an ADMIN; agents may too, see test_agent_rights) reaches
    # everyone entitled, live.
    lead = await signed_in(runtime, http, acme, "ADMIN")
    closed = await http.patch(
        f"/admin/api/conversations/{cid}", headers=lead.auth(), json={"status": "closed"}
    )
    assert closed.status_code == 200
    updates = await ann.wait_for("conversation:updated", 2)
    assert updates[-1]["conversation"]["status"] == "closed"

    await asyncio.sleep(0.3)
    for name in ("message:new", "conversation:updated", "typing", "read", "presence"):
        assert bob.events[name] == [], name  # another end user heard nothing
        if name != "presence":
            assert spy.events[name] == [], name  # another app's agent heard nothing
    # ...except its own arrival, in its own app
    assert spy.events["presence"] == [{"agent_id": str(outsider.id), "online": True}]

    foreign = await spy.call("sync", {"conversation_id": cid, "after_seq": 0})
    assert foreign["ok"] is False and foreign["code"] == "CONVERSATION_NOT_FOUND"


async def test_presence_is_announced_on_change_only(
    socket_server: SocketServer, tenant: Tenant, http: httpx.AsyncClient, recorders: list[Recorder]
) -> None:
    sam = await signed_in(socket_server.runtime, http, tenant, "AGENT")
    agent = await agent_socket(socket_server, sam, recorders)
    await agent.wait_for("presence")  # its own arrival, announced to the team
    await identify(http, tenant, "phone", "ann")
    await identify(http, tenant, "tablet", "ann")

    def users() -> list[dict[str, Any]]:
        return [e for e in agent.events["presence"] if "user_id" in e]

    phone = await device_socket(socket_server, tenant, "phone", recorders)
    await agent.wait_for("presence", 2)
    tablet = await device_socket(socket_server, tenant, "tablet", recorders)
    await phone.close()
    await asyncio.sleep(0.3)
    assert [e["online"] for e in users()] == [True]  # still online on the tablet: no news
    await tablet.close()
    await agent.wait_for("presence", 3)
    changes = users()
    assert [c["online"] for c in changes] == [True, False]
    assert changes[0]["user_id"] == changes[1]["user_id"]


async def test_agent_permissions_apply_to_socket_events(
    socket_server: SocketServer, tenant: Tenant, http: httpx.AsyncClient, recorders: list[Recorder]
) -> None:
    staff = await signed_in(socket_server.runtime, http, tenant, "AGENT")
    agent = await agent_socket(socket_server, staff, recorders)
    await identify(http, tenant, "phone", "ann")
    cid = await _conversation(http, tenant, "phone")
    bad: dict[str, Any] = {"conversation_id": cid, "body": "", "client_msg_id": "x"}
    answer = await agent.call("message:send", bad)
    assert answer["ok"] is False and answer["code"] == "VALIDATION_ERROR"


async def test_agent_replies_over_the_socket_once_each_in_seq_order_in_their_app_only(
    socket_server: SocketServer,
    make_tenant: MakeTenant,
    http: httpx.AsyncClient,
    recorders: list[Recorder],
) -> None:
    """Concurrent replies, each retried at once: one message per client_msg_id, seq 1..n, each
    reaching the end user once; a conversation of another app is not found."""
    acme, other = await make_tenant("Acme"), await make_tenant("Other")
    sam = await signed_in(socket_server.runtime, http, acme, "AGENT", name="Sam")
    agent = await agent_socket(socket_server, sam, recorders)
    await identify(http, acme, "phone", "ann")
    await identify(http, other, "phone", "ann")
    cid = await _conversation(http, acme, "phone")
    elsewhere = await _conversation(http, other, "phone")
    ann = await device_socket(socket_server, acme, "phone", recorders)

    def reply(i: int) -> Any:
        body = {"conversation_id": cid, "body": f"a{i}", "client_msg_id": f"r{i}"}
        return agent.call("message:send", body)

    acks = await asyncio.gather(*(reply(i) for i in range(6) for _ in range(3)))
    assert all(a["ok"] for a in acks), acks
    assert sum(a["created"] for a in acks) == 6
    assert len({a["message"]["id"] for a in acks}) == 6
    assert {a["message"]["author"]["name"] for a in acks} == {"Sam"}
    events = await ann.wait_for("message:new", 6)
    await asyncio.sleep(0.2)
    assert sorted(e["message"]["seq"] for e in ann.events["message:new"]) == list(range(1, 7))
    assert all(e["message"]["sender"] == "agent" for e in events)
    synced = await agent.call("sync", {"conversation_id": cid, "after_seq": 0})
    assert [m["seq"] for m in synced["messages"]] == list(range(1, 7))

    foreign = await agent.call(
        "message:send", {"conversation_id": elsewhere, "body": "hi", "client_msg_id": "f1"}
    )
    assert foreign["ok"] is False and foreign["code"] == "CONVERSATION_NOT_FOUND"
    page = await http.get(f"/v1/conversations/{elsewhere}/messages", headers=other.sdk("phone"))
    assert page.json()["items"] == []


async def test_role_change_and_deactivation_disconnect_at_once(
    socket_server: SocketServer, tenant: Tenant, http: httpx.AsyncClient, recorders: list[Recorder]
) -> None:
    runtime = socket_server.runtime
    owner = await signed_in(runtime, http, tenant, "OWNER")
    admin = await signed_in(runtime, http, tenant, "ADMIN")
    agent = await signed_in(runtime, http, tenant, "AGENT")
    admin_socket = await agent_socket(socket_server, admin, recorders)
    agent_sock = await agent_socket(socket_server, agent, recorders)

    lowered = await http.patch(
        f"/admin/api/team/{admin.id}", headers=owner.auth(), json={"role": "AGENT"}
    )
    assert lowered.status_code == 200, lowered.text
    await asyncio.wait_for(admin_socket.disconnected.wait(), 5)
    stale = await refused(socket_server.url, {"token": admin.access}, namespace="/admin")
    assert stale["code"] == "TOKEN_STALE"

    removed = await http.delete(f"/admin/api/team/{agent.id}", headers=owner.auth())
    assert removed.status_code in (200, 204), removed.text
    await asyncio.wait_for(agent_sock.disconnected.wait(), 5)
    gone = await refused(socket_server.url, {"token": agent.access}, namespace="/admin")
    assert gone["code"] == "TOKEN_REVOKED"
    _ = await add_staff(runtime, tenant, "AGENT")  # the team goes on


async def test_logout_ends_that_sign_ins_sockets_only(
    socket_server: SocketServer, tenant: Tenant, http: httpx.AsyncClient, recorders: list[Recorder]
) -> None:
    from tests.staff import login

    staff = await add_staff(socket_server.runtime, tenant, "AGENT")
    laptop = await agent_socket(socket_server, await login(http, staff), recorders)
    laptop_tokens = dict(staff.tokens)
    desktop = await agent_socket(socket_server, await login(http, staff), recorders)
    out = await http.post(
        "/admin/logout", headers={"Authorization": f"Bearer {laptop_tokens['access_token']}"}
    )
    assert out.status_code in (200, 204), out.text
    await asyncio.wait_for(laptop.disconnected.wait(), 5)
    await asyncio.sleep(0.3)
    assert not desktop.disconnected.is_set()
