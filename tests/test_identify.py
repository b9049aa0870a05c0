"""/v1/identify: anonymous devices, verified identities, identity switching on a shared device."""

from __future__ import annotations

import httpx
import pytest

from replyhq.apps import service as apps_service
from replyhq.apps.schemas import AppUpdate
from replyhq.db import Database
from tests.conftest import Tenant, identify, start_conversation


async def _require_verification(db: Database, tenant: Tenant) -> None:
    async with db.tenant_session(tenant.id) as session:
        await apps_service.update_app(
            session, tenant.id, AppUpdate(identity_verification_required=True)
        )


async def _conversation_ids(client: httpx.AsyncClient, tenant: Tenant, device: str) -> set[str]:
    response = await client.get("/v1/conversations", headers=tenant.sdk(device))
    return {c["id"] for c in response.json()["items"]}


async def test_anonymous_device(client: httpx.AsyncClient, tenant: Tenant) -> None:
    result = await identify(client, tenant, platform="android", locale="fr-FR", app_version="2.1")
    assert result["device_id"] == "device-1"
    assert result["user"]["anonymous"] is True
    assert result["user"]["user_id"] is None
    again = await identify(client, tenant)
    assert again["user"]["id"] == result["user"]["id"]  # same visitor on the same device


async def test_verified_identity(client: httpx.AsyncClient, tenant: Tenant) -> None:
    result = await identify(
        client,
        tenant,
        user_id="u-42",
        user_hash=tenant.user_hash("u-42"),
        name="Zoe",
        email="zoe@example.com",
        attributes={"plan": "pro", "seats": 3},
    )
    user = result["user"]
    assert (user["user_id"], user["verified"], user["anonymous"]) == ("u-42", True, False)
    assert user["attributes"] == {"plan": "pro", "seats": 3}
    # A second device of the same person is the same end user; attributes merge.
    other = await identify(
        client,
        tenant,
        "tablet",
        user_id="u-42",
        user_hash=tenant.user_hash("u-42"),
        attributes={"seats": 4},
    )
    assert other["user"]["id"] == user["id"]
    assert other["user"]["attributes"] == {"plan": "pro", "seats": 4}
    assert other["user"]["name"] == "Zoe"


async def test_wrong_user_hash_is_401_and_changes_nothing(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    before = await identify(client, tenant)
    response = await client.post(
        "/v1/identify",
        headers=tenant.sdk(),
        json={"platform": "ios", "user_id": "victim", "user_hash": "0" * 64, "name": "Mallory"},
    )
    assert response.status_code == 401
    assert response.json()["code"] == "INVALID_USER_HASH"
    after = await identify(client, tenant)
    assert after["user"]["id"] == before["user"]["id"]  # the device was not rebound


async def test_enforced_verification(
    client: httpx.AsyncClient, tenant: Tenant, db: Database
) -> None:
    await _require_verification(db, tenant)
    anonymous = await client.post("/v1/identify", headers=tenant.sdk(), json={"platform": "web"})
    assert anonymous.status_code == 401 and anonymous.json()["code"] == "IDENTITY_REQUIRED"
    unverified = await client.post(
        "/v1/identify", headers=tenant.sdk(), json={"platform": "web", "user_id": "u1"}
    )
    assert unverified.status_code == 401 and unverified.json()["code"] == "INVALID_USER_HASH"
    ok = await identify(client, tenant, user_id="u1", user_hash=tenant.user_hash("u1"))
    assert ok["user"]["verified"] is True


async def test_identity_switch_on_a_shared_device_hides_the_previous_user(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    await identify(client, tenant, "kiosk", user_id="alice", user_hash=tenant.user_hash("alice"))
    alice_conversation = await start_conversation(client, tenant, "kiosk", body="alice's secret")
    # Logout: the SDK identifies anonymously, getting a fresh visitor, not alice.
    visitor = await identify(client, tenant, "kiosk")
    assert visitor["user"]["anonymous"] is True
    assert await _conversation_ids(client, tenant, "kiosk") == set()
    await identify(client, tenant, "kiosk", user_id="bob", user_hash=tenant.user_hash("bob"))
    assert alice_conversation["id"] not in await _conversation_ids(client, tenant, "kiosk")
    denied = await client.get(
        f"/v1/conversations/{alice_conversation['id']}/messages", headers=tenant.sdk("kiosk")
    )
    assert denied.status_code == 404
    await identify(client, tenant, "kiosk", user_id="alice", user_hash=tenant.user_hash("alice"))
    assert await _conversation_ids(client, tenant, "kiosk") == {alice_conversation["id"]}


async def test_visitor_who_signs_in_keeps_their_conversation(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    await identify(client, tenant, "laptop")
    conversation = await start_conversation(client, tenant, "laptop", body="question as visitor")
    await identify(client, tenant, "laptop", user_id="carol", user_hash=tenant.user_hash("carol"))
    assert await _conversation_ids(client, tenant, "laptop") == {conversation["id"]}
    await identify(client, tenant, "phone", user_id="carol", user_hash=tenant.user_hash("carol"))
    assert await _conversation_ids(client, tenant, "phone") == {conversation["id"]}


@pytest.mark.parametrize(
    ("attributes", "field"),
    [
        ({f"k{i}": i for i in range(51)}, "attributes"),
        ({"big": "x" * 1100}, "attributes.big"),
        ({"nested": {"deep": ["y" * 600, "z" * 600]}}, "attributes.nested"),
        ({"bad key!": 1}, "attributes"),
    ],
)
async def test_attribute_limits(
    client: httpx.AsyncClient, tenant: Tenant, attributes: dict[str, object], field: str
) -> None:
    before = await identify(client, tenant, attributes={"plan": "free"})
    response = await client.post(
        "/v1/identify", headers=tenant.sdk(), json={"platform": "ios", "attributes": attributes}
    )
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "VALIDATION_ERROR"
    assert any(d["field"].startswith(field) for d in body["details"]), body
    after = await identify(client, tenant)
    assert after["user"]["attributes"] == before["user"]["attributes"] == {"plan": "free"}


async def test_attribute_count_is_checked_after_merging(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    await identify(client, tenant, attributes={f"a{i}": i for i in range(30)})
    response = await client.post(
        "/v1/identify",
        headers=tenant.sdk(),
        json={"platform": "ios", "attributes": {f"b{i}": i for i in range(30)}},
    )
    assert response.status_code == 400
    assert response.json()["details"][0]["field"] == "attributes"
    after = await identify(client, tenant)
    assert len(after["user"]["attributes"]) == 30


async def test_identify_validation(client: httpx.AsyncClient, tenant: Tenant) -> None:
    for body in (
        {},
        {"platform": "blackberry"},
        {"platform": "ios", "email": "not-an-email"},
        {"platform": "ios", "user_id": "u", "user_hash": "nothex"},
        {"platform": "ios", "unknown_field": 1},
    ):
        response = await client.post("/v1/identify", headers=tenant.sdk(), json=body)
        assert response.status_code == 400, body
        assert response.json()["code"] == "VALIDATION_ERROR"
