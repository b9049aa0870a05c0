"""An unverified claim never takes over a verified person, and requiring verification cuts off
every device identified without proof (item 11): over HTTP."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest

from replyhq.runtime import Runtime
from replyhq.settings import DEV_MASTER_KEY
from tests.conftest import Servers, Tenant, identify, start_conversation
from tests.staff import secret, signed_in
from tests.test_cli import ok, run_cli


async def _claim(
    client: httpx.AsyncClient, tenant: Tenant, device: str, **body: object
) -> httpx.Response:
    return await client.post(
        "/v1/identify", headers=tenant.sdk(device), json={"platform": "web", **body}
    )


async def _agent_view(client: httpx.AsyncClient, tenant: Tenant, end_user_id: str) -> dict:  # type: ignore[type-arg]
    response = await client.get(f"/admin/api/users/{end_user_id}", headers=secret(tenant))
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def _bodies(client: httpx.AsyncClient, tenant: Tenant, conversation_id: str) -> list[str]:
    response = await client.get(
        f"/admin/api/conversations/{conversation_id}/messages", headers=secret(tenant)
    )
    assert response.status_code == 200, response.text
    return [m["body"] for m in response.json()["items"]]


async def _send(
    client: httpx.AsyncClient, tenant: Tenant, device: str, conversation_id: str, body: str
) -> httpx.Response:
    return await client.post(
        f"/v1/conversations/{conversation_id}/messages",
        headers=tenant.sdk(device),
        json={"body": body, "client_msg_id": uuid.uuid4().hex},
    )


async def _verified_alice(client: httpx.AsyncClient, tenant: Tenant) -> tuple[str, str]:
    """(end user id, conversation id) of alice, verified on her phone."""
    alice = await identify(
        client,
        tenant,
        "alice-phone",
        user_id="alice",
        user_hash=tenant.user_hash("alice"),
        name="Alice",
        email="alice@example.com",
        attributes={"plan": "pro"},
    )
    conversation = await start_conversation(client, tenant, "alice-phone", "alice's secret")
    return str(alice["user"]["id"]), str(conversation["id"])  # type: ignore[index]


async def test_an_unverified_claim_of_a_verified_person_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    alice_id, conversation_id = await _verified_alice(client, tenant)
    await identify(client, tenant, "mallory")  # an ordinary anonymous visitor first
    claim = await _claim(
        client,
        tenant,
        "mallory",
        user_id="alice",
        name="Mallory",
        email="mallory@example.com",
        attributes={"plan": "free"},
    )
    assert claim.status_code == 401, claim.text
    assert claim.json()["code"] == "USER_HASH_REQUIRED"

    # Mallory's device is still the anonymous visitor: nothing of alice's reaches it.
    listed = await client.get("/v1/conversations", headers=tenant.sdk("mallory"))
    assert listed.status_code == 200 and listed.json()["items"] == []
    read = await client.get(
        f"/v1/conversations/{conversation_id}/messages", headers=tenant.sdk("mallory")
    )
    assert read.status_code == 404
    assert (await _send(client, tenant, "mallory", conversation_id, "hi")).status_code == 404

    # What the agents see of alice is what her own verified identify said.
    view = await _agent_view(client, tenant, alice_id)
    assert (view["name"], view["email"], view["attributes"]) == (
        "Alice",
        "alice@example.com",
        {"plan": "pro"},
    )
    assert view["verified"] is True
    assert await _bodies(client, tenant, conversation_id) == ["alice's secret"]
    # Alice herself carries on.
    assert (await _send(client, tenant, "alice-phone", conversation_id, "me")).status_code == 201


async def test_unverified_people_identify_as_before_and_agents_see_them_as_unverified(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    bob = await identify(client, tenant, "bob-phone", user_id="bob", name="Bob")
    assert bob["user"]["verified"] is False  # type: ignore[index]
    again = await identify(client, tenant, "bob-laptop", user_id="bob", name="Bobby")
    assert again["user"]["id"] == bob["user"]["id"]  # type: ignore[index]
    view = await _agent_view(client, tenant, str(bob["user"]["id"]))  # type: ignore[index]
    assert (view["name"], view["verified"]) == ("Bobby", False)


async def test_devices_that_claimed_a_person_unproven_lose_them_once_they_are_verified(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    # Mallory claims dave before dave's app sends hashes (or before dave ever signed in).
    await identify(client, tenant, "mallory", user_id="dave", name="Not Dave")
    early = await start_conversation(client, tenant, "mallory", "planted")
    dave = await identify(
        client,
        tenant,
        "dave-phone",
        user_id="dave",
        user_hash=tenant.user_hash("dave"),
        name="Dave",
    )
    assert dave["user"]["verified"] is True  # type: ignore[index]
    later = await start_conversation(client, tenant, "dave-phone", "dave's secret")

    for response in [
        await client.get("/v1/conversations", headers=tenant.sdk("mallory")),
        await client.get(
            f"/v1/conversations/{later['id']}/messages", headers=tenant.sdk("mallory")
        ),
        await _send(client, tenant, "mallory", str(later["id"]), "still here"),
        await _send(client, tenant, "mallory", str(early["id"]), "still here"),
    ]:
        assert response.status_code == 401, response.text
        assert response.json()["code"] == "DEVICE_UNVERIFIED"
    assert await _bodies(client, tenant, str(later["id"])) == ["dave's secret"]
    again = await _claim(client, tenant, "mallory", user_id="dave", name="Not Dave")
    assert again.status_code == 401 and again.json()["code"] == "USER_HASH_REQUIRED"
    view = await _agent_view(client, tenant, str(dave["user"]["id"]))  # type: ignore[index]
    assert (view["name"], view["verified"]) == ("Dave", True)
    # The visitor's way out: identify as someone else (here, anonymously) and start afresh.
    fresh = await identify(client, tenant, "mallory")
    assert fresh["user"]["anonymous"] is True  # type: ignore[index]
    listed = await client.get("/v1/conversations", headers=tenant.sdk("mallory"))
    assert listed.status_code == 200 and listed.json()["items"] == []


@pytest.mark.parametrize("where", ["setup", "admin", "cli"])
async def test_requiring_verification_refuses_every_request_of_devices_identified_without_proof(
    client: httpx.AsyncClient,
    tenant: Tenant,
    runtime: Runtime,
    servers: Servers,
    tmp_path: Path,
    where: str,
) -> None:
    await identify(client, tenant, "proven", user_id="erin", user_hash=tenant.user_hash("erin"))
    await identify(client, tenant, "claimed", user_id="frank")
    await identify(client, tenant, "visitor")
    conversations = {
        device: str((await start_conversation(client, tenant, device))["id"])
        for device in ["proven", "claimed", "visitor"]
    }

    await _require_verification(client, runtime, servers, tmp_path, tenant, where)

    for device in ["claimed", "visitor"]:
        cid = conversations[device]
        for response in [
            await client.get("/v1/conversations", headers=tenant.sdk(device)),
            await client.get(f"/v1/conversations/{cid}", headers=tenant.sdk(device)),
            await client.get(f"/v1/conversations/{cid}/messages", headers=tenant.sdk(device)),
            await _send(client, tenant, device, cid, "after the switch"),
            await client.post(
                f"/v1/conversations/{cid}/read", headers=tenant.sdk(device), json={"seq": 1}
            ),
            await client.post("/v1/conversations", headers=tenant.sdk(device), json={}),
        ]:
            assert response.status_code == 401, (device, response.text)
            body = response.json()
            assert body["code"] == "DEVICE_UNVERIFIED"
            assert "user_hash" in body["error"]
        assert await _bodies(client, tenant, cid) == ["Hello"]
    # The device identified with proof carries on.
    listed = await client.get("/v1/conversations", headers=tenant.sdk("proven"))
    assert listed.status_code == 200 and len(listed.json()["items"]) == 1
    assert (await _send(client, tenant, "proven", conversations["proven"], "ok")).status_code == 201
    # Identifying again with proof is the way back in.
    await identify(client, tenant, "claimed", user_id="frank", user_hash=tenant.user_hash("frank"))
    listed = await client.get("/v1/conversations", headers=tenant.sdk("claimed"))
    assert listed.status_code == 200 and len(listed.json()["items"]) == 1


async def _require_verification(
    client: httpx.AsyncClient,
    runtime: Runtime,
    servers: Servers,
    tmp_path: Path,
    tenant: Tenant,
    where: str,
) -> None:
    """Switch identity verification on the way an operator, an owner or a shell would."""
    body = {"identity_verification_required": True}
    if where == "setup":
        headers = {"X-Master-Key": DEV_MASTER_KEY}
        response = await client.patch(f"/setup/apps/{tenant.id}", headers=headers, json=body)
        assert response.status_code == 200, response.text
    elif where == "admin":
        owner = await signed_in(runtime, client, tenant, "OWNER")
        response = await client.patch("/admin/api/app", headers=owner.auth(), json=body)
        assert response.status_code == 200, response.text
    else:
        ok(run_cli(servers, tmp_path, "apps", "update", str(tenant.id), "--require-identity", "on"))


async def test_rotating_the_identity_secret_voids_the_proofs_made_with_the_old_one(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    await identify(client, tenant, "phone", user_id="gina", user_hash=tenant.user_hash("gina"))
    rotated = await client.post(
        f"/setup/apps/{tenant.id}/rotate-keys", headers={"X-Master-Key": DEV_MASTER_KEY}
    )
    assert rotated.status_code == 200, rotated.text
    keys = rotated.json()
    new = Tenant(
        tenant.id, tenant.name, keys["sdk_key"], keys["secret_key"], keys["identity_secret"]
    )
    # A proof made with the old secret (perhaps leaked: why keys are rotated) counts no more.
    refused = await client.get("/v1/conversations", headers=new.sdk("phone"))
    assert refused.status_code == 401 and refused.json()["code"] == "DEVICE_UNVERIFIED"
    stale = await _claim(client, new, "phone", user_id="gina", user_hash=tenant.user_hash("gina"))
    assert stale.status_code == 401 and stale.json()["code"] == "INVALID_USER_HASH"
    await identify(client, new, "phone", user_id="gina", user_hash=new.user_hash("gina"))
    assert (await client.get("/v1/conversations", headers=new.sdk("phone"))).status_code == 200
