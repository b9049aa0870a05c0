"""What an AGENT may do (issue 13, item 4): run conversations (close, reopen, take one, hand it to
a colleague), see the end user's profile, and learn who can be assigned; never manage the team,
the settings or the keys. The end user's devices learn a close and a reopen live."""

from __future__ import annotations

import httpx
import pytest

from replyhq.runtime import Runtime
from tests.conftest import SocketServer, Tenant, identify, start_conversation
from tests.realtime_clients import Recorder
from tests.staff import add_staff, signed_in
from tests.test_realtime_devices import device_auth

BASE = "/admin/api/conversations"


async def test_an_agent_closes_reopens_takes_and_hands_over_a_conversation(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant
) -> None:
    agent = await signed_in(runtime, client, tenant, "AGENT", name="Ann Agent")
    colleague = await add_staff(runtime, tenant, "AGENT", name="Cid Colleague")
    gone = await add_staff(runtime, tenant, "AGENT", name="Gone")
    owner = await signed_in(runtime, client, tenant, "OWNER")
    assert (
        await client.delete(f"/admin/api/team/{gone.id}", headers=owner.auth())
    ).status_code == 204
    identified = await identify(client, tenant, "phone", user_id="u-7", name="Carol")
    cid = (await start_conversation(client, tenant, "phone"))["id"]
    url = f"{BASE}/{cid}"

    async def patch(body: dict[str, object]) -> httpx.Response:
        return await client.patch(url, headers=agent.auth(), json=body)

    closed = await patch({"status": "closed"})
    assert (closed.status_code, closed.json()["status"]) == (200, "closed")
    reopened = await patch({"status": "open"})
    assert (reopened.status_code, reopened.json()["status"]) == (200, "open")
    taken = await patch({"assignee_id": str(agent.id)})
    assert taken.json()["assignee_id"] == str(agent.id)
    handed = await patch({"assignee_id": str(colleague.id)})
    assert handed.json()["assignee_id"] == str(colleague.id)
    refused = await patch({"assignee_id": str(gone.id)})
    assert (refused.status_code, refused.json()["code"]) == (400, "INVALID_ASSIGNEE")
    detail = await client.get(url, headers=agent.auth())
    assert (detail.json()["assignee_id"], detail.json()["status"]) == (str(colleague.id), "open")

    # Who can be assigned: names for the picker and the header, active members only.
    listed = await client.get(f"{BASE}/assignees", headers=agent.auth())
    assert listed.status_code == 200
    names = {m["name"]: m["role"] for m in listed.json()}
    assert {"Ann Agent": "AGENT", "Cid Colleague": "AGENT"}.items() <= names.items()
    assert "Gone" not in names

    # The end user's profile (attributes included).
    user_id = identified["user"]["id"]  # type: ignore[index]
    profile = await client.get(f"/admin/api/users/{user_id}", headers=agent.auth())
    assert (profile.status_code, profile.json()["name"]) == (200, "Carol")


@pytest.mark.parametrize(
    ("method", "path", "body", "permission"),
    [
        ("GET", "/admin/api/team", None, "team:read"),
        ("POST", "/admin/api/team/invites", {"email": "x@example.com"}, "team:write"),
        ("GET", "/admin/api/app", None, "settings:read"),
        ("PATCH", "/admin/api/app", {"name": "Mine now"}, "settings:write"),
        ("POST", "/admin/api/app/rotate-keys", None, "keys:rotate"),
    ],
)
async def test_an_agent_still_cannot_manage_team_settings_or_keys(
    client: httpx.AsyncClient,
    runtime: Runtime,
    tenant: Tenant,
    method: str,
    path: str,
    body: dict[str, object] | None,
    permission: str,
) -> None:
    agent = await signed_in(runtime, client, tenant, "AGENT")
    response = await client.request(method, path, headers=agent.auth(), json=body)
    assert response.status_code == 403
    assert (response.json()["code"], response.json()["required"]) == (
        "PERMISSION_DENIED",
        permission,
    )


async def test_the_end_users_device_learns_live_that_an_agent_closed_and_reopened(
    socket_server: SocketServer, tenant: Tenant, http: httpx.AsyncClient
) -> None:
    agent = await signed_in(socket_server.runtime, http, tenant, "AGENT", name="Sam")
    await identify(http, tenant, "ann-phone", user_id="ann")
    cid = (await start_conversation(http, tenant, "ann-phone"))["id"]
    device = Recorder()
    await device.connect(socket_server.url, device_auth(tenant, "ann-phone"))
    try:
        for status in ("closed", "open"):
            response = await http.patch(
                f"{BASE}/{cid}", headers=agent.auth(), json={"status": status}
            )
            assert response.status_code == 200
        updates = await device.wait_for("conversation:updated", 2)
        assert [(u["conversation"]["id"], u["conversation"]["status"]) for u in updates] == [
            (cid, "closed"),
            (cid, "open"),
        ]
        # A device that was away reads the state from its conversation list.
        listed = await http.get("/v1/conversations", headers=tenant.sdk("ann-phone"))
        assert [(c["id"], c["status"]) for c in listed.json()["items"]] == [(cid, "open")]
    finally:
        await device.close()
