"""Item 11 over real sockets: an unverified claim never takes over a verified person, and
requiring verification (or a person becoming verified) ends the sockets of unproven devices
while proven ones carry on."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
import pytest

from replyhq.apps import service as apps_service
from replyhq.apps.schemas import AppUpdate
from replyhq.settings import DEV_MASTER_KEY
from tests.conftest import MakeTenant, Servers, SocketServer, Tenant
from tests.realtime_clients import Recorder, refused
from tests.staff import signed_in
from tests.test_cli import ok, run_cli
from tests.test_realtime_devices import conversation_of, device_auth
from tests.test_realtime_revocation import Cluster, cluster, socket

__all__ = ["cluster"]  # a fixture


async def _identify(
    http: httpx.AsyncClient, tenant: Tenant, device: str, **body: object
) -> httpx.Response:
    return await http.post(
        "/v1/identify", headers=tenant.sdk(device), json={"platform": "ios", **body}
    )


async def _proven(http: httpx.AsyncClient, tenant: Tenant, device: str, user_id: str) -> None:
    response = await _identify(
        http, tenant, device, user_id=user_id, user_hash=tenant.user_hash(user_id)
    )
    assert response.status_code == 200, response.text


async def _connect(
    server: SocketServer, recorders: list[Recorder], tenant: Tenant, device: str, **auth: str
) -> Recorder:
    recorder = Recorder()
    await recorder.connect(server.url, device_auth(tenant, device, **auth))
    recorders.append(recorder)
    return recorder


async def _agent_reply(http: httpx.AsyncClient, tenant: Tenant, cid: str, body: str) -> None:
    headers = {"X-App-Id": str(tenant.id), "X-Api-Key": tenant.secret_key}
    response = await http.post(
        f"/admin/api/conversations/{cid}/messages",
        headers=headers,
        json={"body": body, "client_msg_id": uuid.uuid4().hex},
    )
    assert response.status_code == 201, response.text


async def test_an_unverified_claim_over_the_socket_reaches_nothing_of_a_verified_person(
    socket_server: SocketServer, tenant: Tenant, http: httpx.AsyncClient, recorders: list[Recorder]
) -> None:
    await _proven(http, tenant, "alice-phone", "alice")
    cid = await conversation_of(http, tenant, "alice-phone")
    alice = await _connect(socket_server, recorders, tenant, "alice-phone")
    claim = await _identify(http, tenant, "mallory", user_id="alice", name="Mallory")
    assert claim.status_code == 401 and claim.json()["code"] == "USER_HASH_REQUIRED"
    # Whatever the handshake says, mallory's device is not alice's.
    for auth in [{"user_id": "alice"}, {}]:
        error = await refused(socket_server.url, device_auth(tenant, "mallory", **auth))
        assert error["code"] in {"DEVICE_UNKNOWN", "INVALID_USER_HASH"}, error
    assert (await _identify(http, tenant, "mallory")).status_code == 200  # a visitor, then
    mallory = await _connect(socket_server, recorders, tenant, "mallory")
    synced = await mallory.call("sync", {"conversation_id": cid, "after_seq": 0})
    assert synced["ok"] is False and synced["code"] == "CONVERSATION_NOT_FOUND"
    sent = await mallory.call(
        "message:send", {"conversation_id": cid, "body": "it's me", "client_msg_id": "m1"}
    )
    assert sent["ok"] is False
    await _agent_reply(http, tenant, cid, "for alice only")
    await alice.wait_for("message:new")
    await asyncio.sleep(0.2)  # a stray delivery would have arrived with alice's
    assert mallory.events["message:new"] == []


async def test_a_person_becoming_verified_ends_the_sockets_of_devices_that_claimed_them_unproven(
    socket_server: SocketServer, tenant: Tenant, http: httpx.AsyncClient, recorders: list[Recorder]
) -> None:
    assert (await _identify(http, tenant, "mallory", user_id="dave")).status_code == 200
    mallory = await _connect(socket_server, recorders, tenant, "mallory")
    await _proven(http, tenant, "dave-phone", "dave")
    await asyncio.wait_for(mallory.disconnected.wait(), 5)
    error = await refused(socket_server.url, device_auth(tenant, "mallory"))
    assert error["code"] == "DEVICE_UNVERIFIED"
    dave = await _connect(socket_server, recorders, tenant, "dave-phone")
    cid = await conversation_of(http, tenant, "dave-phone")
    synced = await dave.call("sync", {"conversation_id": cid, "after_seq": 0})
    assert synced["ok"] is True


@pytest.mark.parametrize("where", ["setup", "admin", "cli"])
async def test_requiring_verification_ends_the_sockets_of_unproven_devices_only(
    socket_server: SocketServer,
    tenant: Tenant,
    http: httpx.AsyncClient,
    recorders: list[Recorder],
    servers: Servers,
    tmp_path: Path,
    where: str,
) -> None:
    await _proven(http, tenant, "proven", "erin")
    assert (await _identify(http, tenant, "claimed", user_id="frank")).status_code == 200
    assert (await _identify(http, tenant, "visitor")).status_code == 200
    proven_cid = await conversation_of(http, tenant, "proven")
    proven = await _connect(socket_server, recorders, tenant, "proven")
    claimed = await _connect(socket_server, recorders, tenant, "claimed", user_id="frank")
    visitor = await _connect(socket_server, recorders, tenant, "visitor")

    body = {"identity_verification_required": True}
    if where == "setup":
        headers = {"X-Master-Key": DEV_MASTER_KEY}
        response = await http.patch(f"/setup/apps/{tenant.id}", headers=headers, json=body)
        assert response.status_code == 200, response.text
    elif where == "admin":
        owner = await signed_in(socket_server.runtime, http, tenant, "OWNER")
        response = await http.patch("/admin/api/app", headers=owner.auth(), json=body)
        assert response.status_code == 200, response.text
    else:
        # In a thread: this process serves the sockets, and must keep their heartbeats going.
        command = ("apps", "update", str(tenant.id), "--require-identity", "on")
        ok(await asyncio.to_thread(run_cli, servers, tmp_path, *command))

    await asyncio.wait_for(claimed.disconnected.wait(), 10)
    await asyncio.wait_for(visitor.disconnected.wait(), 10)
    for device, auth in [("claimed", {"user_id": "frank"}), ("visitor", {})]:
        error = await refused(socket_server.url, device_auth(tenant, device, **auth))
        assert error["code"] in {"DEVICE_UNVERIFIED", "IDENTITY_REQUIRED", "INVALID_USER_HASH"}
    # The proven device's socket was never cut and still works.
    assert not proven.disconnected.is_set()
    synced = await proven.call("sync", {"conversation_id": proven_cid, "after_seq": 0})
    assert synced["ok"] is True
    await _agent_reply(http, tenant, proven_cid, "still here")
    await proven.wait_for("message:new")


async def test_requiring_verification_while_redis_is_down_still_ends_unproven_sockets_only(
    cluster: Cluster, make_tenant: MakeTenant, recorders: list[Recorder]
) -> None:
    redis, a, b, c = cluster
    tenant = await make_tenant()
    async with httpx.AsyncClient(base_url=a.url) as http:
        await _proven(http, tenant, "proven", "erin")
        assert (await _identify(http, tenant, "claimed", user_id="frank")).status_code == 200
        assert (await _identify(http, tenant, "visitor")).status_code == 200
        proven_cid = await conversation_of(http, tenant, "proven")
        claimed_cid = await conversation_of(http, tenant, "claimed")
    busy_proven = await socket(recorders, b, device_auth(tenant, "proven"))
    busy_claimed = await socket(recorders, b, device_auth(tenant, "claimed"))
    idle_visitor = await socket(recorders, c, device_auth(tenant, "visitor"))
    idle_proven = await socket(recorders, c, device_auth(tenant, "proven"))
    proven_sync = {"conversation_id": proven_cid, "after_seq": 0}
    claimed_sync = {"conversation_id": claimed_cid, "after_seq": 0}
    assert (await busy_claimed.call("sync", claimed_sync))["ok"] is True

    redis.stop()  # no process can hear of the change
    async with a.runtime.db.tenant_session(tenant.id) as session:
        await apps_service.update_app(
            session, tenant.id, AppUpdate(identity_verification_required=True)
        )
    redis.start()

    ack = await busy_claimed.call("sync", claimed_sync)
    assert ack["ok"] is False and ack["code"] == "SESSION_REVOKED", ack
    await asyncio.wait_for(busy_claimed.disconnected.wait(), 5)
    await asyncio.wait_for(idle_visitor.disconnected.wait(), 10)
    assert (await busy_proven.call("sync", proven_sync))["ok"] is True
    assert (await idle_proven.call("sync", proven_sync))["ok"] is True
    assert not busy_proven.disconnected.is_set() and not idle_proven.disconnected.is_set()
