"""The end user's profile for staff: their conversations, devices and latest tracked events,
newest first; another app's end user is a 404."""

from __future__ import annotations

import httpx

from replyhq.runtime import Runtime
from tests.conftest import MakeTenant, identify, start_conversation
from tests.staff import signed_in


async def test_the_profile_lists_conversations_devices_and_events(
    client: httpx.AsyncClient, runtime: Runtime, make_tenant: MakeTenant
) -> None:
    acme, other = await make_tenant("Acme"), await make_tenant("Other")
    agent = await signed_in(runtime, client, acme, "AGENT")
    outsider = await signed_in(runtime, client, other, "OWNER")
    who = await identify(client, acme, "phone", user_id="ann", name="Ann", app_version="2.1.0")
    await client.post(
        "/v1/identify",
        headers=acme.sdk("laptop"),
        json={"platform": "web", "user_id": "ann", "name": "Ann"},
    )
    first = (await start_conversation(client, acme, "phone", body="first"))["id"]
    second = (await start_conversation(client, acme, "laptop", body="second"))["id"]
    tracked = await client.post(
        "/v1/events",
        headers=acme.sdk("phone"),
        json={"events": [{"name": "viewed_pricing", "properties": {"plan": "pro"}}]},
    )
    assert tracked.status_code == 202, tracked.text
    end_user_id = who["user"]["id"]  # type: ignore[index]

    response = await client.get(f"/admin/api/users/{end_user_id}/profile", headers=agent.auth())
    assert response.status_code == 200, response.text
    body = response.json()
    assert [c["id"] for c in body["conversations"]] == [second, first]
    assert sorted((d["platform"], d["app_version"]) for d in body["devices"]) == [
        ("ios", "2.1.0"),
        ("web", None),
    ]
    assert [(e["name"], e["properties"]) for e in body["events"]] == [
        ("viewed_pricing", {"plan": "pro"})
    ]
    foreign = await client.get(f"/admin/api/users/{end_user_id}/profile", headers=outsider.auth())
    assert (foreign.status_code, foreign.json()["code"]) == (404, "END_USER_NOT_FOUND")
