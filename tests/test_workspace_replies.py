"""Saved replies: ADMIN/OWNER create, change and delete them; every agent lists and uses them,
with {{user.name}} and {{agent.name}} filled for the conversation at hand."""

from __future__ import annotations

import httpx

from replyhq.runtime import Runtime
from tests.conftest import MakeTenant, identify, start_conversation
from tests.staff import signed_in

BASE = "/admin/api/saved-replies"


async def test_saved_replies_are_managed_by_admins_and_used_by_agents(
    client: httpx.AsyncClient, runtime: Runtime, make_tenant: MakeTenant
) -> None:
    acme, other = await make_tenant("Acme"), await make_tenant("Other")
    owner = await signed_in(runtime, client, acme, "OWNER")
    agent = await signed_in(runtime, client, acme, "AGENT", name="Alice")
    outsider = await signed_in(runtime, client, other, "OWNER")
    body = "Hi {{user.name}}, {{ agent.name }} here. We refund within 5 days."
    made = await client.post(
        BASE, headers=owner.auth(), json={"name": "Refund", "shortcut": "Refund", "body": body}
    )
    assert made.status_code == 201, made.text
    reply = made.json()
    assert reply["shortcut"] == "refund"
    twin = await client.post(
        BASE, headers=owner.auth(), json={"name": "Other", "shortcut": "refund", "body": "x"}
    )
    assert (twin.status_code, twin.json()["code"]) == (409, "SHORTCUT_TAKEN")
    for bad in (
        {"name": "x", "shortcut": "has space", "body": "x"},
        {"name": "x", "shortcut": "/slash", "body": "x"},
        {"name": "x", "shortcut": "ok", "body": ""},
        {"name": "x", "shortcut": "ok", "body": "x" * 8001},
    ):
        response = await client.post(BASE, headers=owner.auth(), json=bad)
        assert response.status_code == 400, bad

    # An agent lists and uses them, but may not change them.
    listed = (await client.get(BASE, headers=agent.auth())).json()
    assert [r["shortcut"] for r in listed] == ["refund"]
    for method, path, payload in (
        ("POST", BASE, {"name": "x", "shortcut": "mine", "body": "x"}),
        ("PATCH", f"{BASE}/{reply['id']}", {"body": "changed"}),
        ("DELETE", f"{BASE}/{reply['id']}", None),
    ):
        response = await client.request(method, path, headers=agent.auth(), json=payload)
        assert (response.status_code, response.json()["code"]) == (403, "PERMISSION_DENIED")

    await identify(client, acme, "phone", user_id="c1", name="Carol")
    cid = (await start_conversation(client, acme, "phone"))["id"]
    filled = await client.post(
        f"{BASE}/{reply['id']}/render", headers=agent.auth(), json={"conversation_id": cid}
    )
    assert filled.status_code == 200, filled.text
    assert filled.json()["body"] == "Hi Carol, Alice here. We refund within 5 days."
    await identify(client, acme, "anon")
    anonymous = (await start_conversation(client, acme, "anon"))["id"]
    filled = await client.post(
        f"{BASE}/{reply['id']}/render", headers=agent.auth(), json={"conversation_id": anonymous}
    )
    assert filled.json()["body"].startswith("Hi there, Alice here.")

    # Another app sees none of it.
    assert (await client.get(BASE, headers=outsider.auth())).json() == []
    peek = await client.post(
        f"{BASE}/{reply['id']}/render", headers=outsider.auth(), json={"conversation_id": cid}
    )
    assert (peek.status_code, peek.json()["code"]) == (404, "SAVED_REPLY_NOT_FOUND")

    changed = await client.patch(
        f"{BASE}/{reply['id']}", headers=owner.auth(), json={"shortcut": "refund-eu"}
    )
    assert changed.json()["shortcut"] == "refund-eu" and changed.json()["body"] == body
    assert (await client.delete(f"{BASE}/{reply['id']}", headers=owner.auth())).status_code == 204
    assert (await client.get(BASE, headers=agent.auth())).json() == []
