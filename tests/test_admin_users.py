"""/admin/api/users/{id} (an end user's profile with attributes) and /admin/api/presence."""

from __future__ import annotations

import asyncio
import uuid

import httpx

from tests.conftest import MakeTenant, SocketServer, Tenant
from tests.realtime_clients import Recorder
from tests.staff import signed_in
from tests.test_realtime_devices import device_auth


async def _end_user(http: httpx.AsyncClient, tenant: Tenant, device: str) -> str:
    body = {"platform": "web", "name": "Ann", "attributes": {"plan": "pro", "seats": 3}}
    response = await http.post("/v1/identify", headers=tenant.sdk(device), json=body)
    assert response.status_code == 200, response.text
    user_id: str = response.json()["user"]["id"]
    return user_id


async def test_profile_with_attributes_for_the_apps_own_users_only(
    socket_server: SocketServer, http: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    tenant, other = await make_tenant("Mine"), await make_tenant("Theirs")
    user_id = await _end_user(http, tenant, "d-profile")
    admin = await signed_in(socket_server.runtime, http, tenant, "ADMIN")
    response = await http.get(f"/admin/api/users/{user_id}", headers=admin.auth())
    assert response.status_code == 200
    assert response.json() == {
        "id": user_id,
        "user_id": None,
        "name": "Ann",
        "email": None,
        "attributes": {"plan": "pro", "seats": 3},
        "anonymous": True,
        "verified": False,
    }
    outsider = await signed_in(socket_server.runtime, http, other, "OWNER")
    for missing in (user_id, str(uuid.uuid4())):
        response = await http.get(f"/admin/api/users/{missing}", headers=outsider.auth())
        assert response.status_code == 404
    # Agents see the profile of the people they answer (issue 13; this asserted a 403 before).
    agent = await signed_in(socket_server.runtime, http, tenant, "AGENT")
    response = await http.get(f"/admin/api/users/{user_id}", headers=agent.auth())
    assert (response.status_code, response.json()["attributes"]) == (
        200,
        {"plan": "pro", "seats": 3},
    )


async def test_presence_tells_who_is_online_now(
    socket_server: SocketServer, http: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    tenant, other = await make_tenant("Live"), await make_tenant("Elsewhere")
    online, offline = await _end_user(http, tenant, "d-on"), await _end_user(http, tenant, "d-off")
    foreign = await _end_user(http, other, "d-foreign")
    device = Recorder()
    await device.connect(socket_server.url, device_auth(tenant, "d-on"))
    elsewhere = Recorder()
    await elsewhere.connect(socket_server.url, device_auth(other, "d-foreign"))
    agent = await signed_in(socket_server.runtime, http, tenant, "AGENT")
    try:
        query = [("user_id", u) for u in (online, offline, foreign)]
        response = await http.get("/admin/api/presence", params=query, headers=agent.auth())
        assert response.status_code == 200
        # Another app's online user is simply not online here.
        assert response.json() == {"users": {online: True, offline: False, foreign: False}}
        await device.close()
        await asyncio.sleep(0.1)
        response = await http.get("/admin/api/presence", params=query, headers=agent.auth())
        assert response.json()["users"][online] is False
    finally:
        await device.close()
        await elsewhere.close()
