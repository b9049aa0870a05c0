"""Satisfaction ratings: the end user rates a closed conversation 1-5 (and a comment) once per
closing, through the SDK API; agents see it; the ratings' events reach the agents live."""

from __future__ import annotations

import uuid

import httpx
import pytest

from replyhq.runtime import Runtime
from replyhq.sdk import ReplyHQClient, ReplyHQError
from tests.conftest import MakeTenant, SocketServer, Tenant, identify, start_conversation
from tests.realtime_clients import Recorder
from tests.staff import secret, signed_in
from tests.test_protocol import check
from tests.test_realtime_staff import agent_socket, device_socket


async def _close(
    client: httpx.AsyncClient, tenant: Tenant, cid: object, status: str = "closed"
) -> None:
    response = await client.patch(
        f"/admin/api/conversations/{cid}", headers=secret(tenant), json={"status": status}
    )
    assert response.status_code == 200, response.text


async def test_a_closing_is_rated_once_and_agents_see_it(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant, make_tenant: MakeTenant
) -> None:
    await identify(client, tenant)
    cid = (await start_conversation(client, tenant))["id"]
    url = f"/v1/conversations/{cid}/rating"
    state = (await client.get(url, headers=tenant.sdk())).json()
    assert state == {"closing": 0, "can_rate": False, "rating": None}
    too_soon = await client.post(url, headers=tenant.sdk(), json={"score": 5})
    assert too_soon.status_code == 409
    assert too_soon.json()["code"] == "CONVERSATION_OPEN"

    await _close(client, tenant, cid)
    assert (await client.get(url, headers=tenant.sdk())).json()["can_rate"] is True
    for bad in ({"score": 0}, {"score": 6}, {"score": "5x"}, {"score": 4, "extra": 1}, {}):
        response = await client.post(url, headers=tenant.sdk(), json=bad)
        assert response.status_code == 400, bad
    rated = await client.post(url, headers=tenant.sdk(), json={"score": 4, "comment": " Quick! "})
    assert rated.status_code == 201, rated.text
    assert rated.json()["closing"] == 1
    assert rated.json()["comment"] == "Quick!"
    again = await client.post(url, headers=tenant.sdk(), json={"score": 1})
    assert again.status_code == 409
    assert again.json()["code"] == "ALREADY_RATED"
    state = (await client.get(url, headers=tenant.sdk())).json()
    assert state["can_rate"] is False
    assert state["rating"]["score"] == 4

    # Reopened by the end user and closed again: a new closing, rated on its own.
    await client.post(
        f"/v1/conversations/{cid}/messages",
        headers=tenant.sdk(),
        json={"body": "One more thing", "client_msg_id": uuid.uuid4().hex},
    )
    assert (await client.get(url, headers=tenant.sdk())).json()["can_rate"] is False
    await _close(client, tenant, cid)
    second = await client.post(url, headers=tenant.sdk(), json={"score": 2})
    assert second.json()["closing"] == 2

    agent = await signed_in(runtime, client, tenant, "AGENT")
    seen = await client.get(f"/admin/api/conversations/{cid}/ratings", headers=agent.auth())
    assert [(r["closing"], r["score"]) for r in seen.json()] == [(1, 4), (2, 2)]
    stranger = await signed_in(runtime, client, await make_tenant(), "ADMIN")
    hidden = await client.get(f"/admin/api/conversations/{cid}/ratings", headers=stranger.auth())
    assert hidden.status_code == 404


async def test_only_the_conversations_own_end_user_rates(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    await identify(client, tenant)
    cid = (await start_conversation(client, tenant))["id"]
    await _close(client, tenant, cid)
    await identify(client, tenant, "device-2", user_id="someone-else")
    response = await client.post(
        f"/v1/conversations/{cid}/rating", headers=tenant.sdk("device-2"), json={"score": 5}
    )
    assert response.status_code == 404


async def test_the_python_sdk_rates_a_closed_conversation(
    socket_server: SocketServer, tenant: Tenant
) -> None:
    sdk = ReplyHQClient(socket_server.url, str(tenant.id), tenant.sdk_key, "sdk-1", platform="ios")
    try:
        await sdk.identify()
        conversation_id = await sdk.start_conversation("Refund")
        async with httpx.AsyncClient(base_url=socket_server.url) as http:
            await _close(http, tenant, conversation_id)
        assert (await sdk.rating(conversation_id))["can_rate"] is True
        rated = await sdk.rate(conversation_id, 5, "Thanks")
        assert (rated["score"], rated["comment"], rated["closing"]) == (5, "Thanks", 1)
        with pytest.raises(ReplyHQError) as refused:
            await sdk.rate(conversation_id, 3)
        assert refused.value.status == 409
    finally:
        await sdk.close()


async def test_agents_and_the_end_user_hear_the_rating_live(
    socket_server: SocketServer,
    make_tenant: MakeTenant,
    http: httpx.AsyncClient,
    recorders: list[Recorder],
) -> None:
    acme, other = await make_tenant("Acme"), await make_tenant("Other")
    runtime = socket_server.runtime
    sam = await signed_in(runtime, http, acme, "AGENT")
    outsider = await signed_in(runtime, http, other, "OWNER")
    await identify(http, acme, "a")
    cid = (await start_conversation(http, acme, "a"))["id"]
    await _close(http, acme, cid)
    watcher = await agent_socket(socket_server, sam, recorders)
    spy = await agent_socket(socket_server, outsider, recorders)
    user = await device_socket(socket_server, acme, "a", recorders)
    rated = await http.post(
        f"/v1/conversations/{cid}/rating", headers=acme.sdk("a"), json={"score": 3}
    )
    assert rated.status_code == 201
    for socket in (watcher, user):
        (live,) = await socket.wait_for("conversation:rated")
        check("server", "conversation:rated", live)
        assert live["rating"] == rated.json()
    assert spy.events["conversation:rated"] == []
