"""/setup: the operator's API (X-Master-Key). Keys are shown once, never listed, and rotation
takes effect at once in every server process."""

from __future__ import annotations

import base64
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import httpx
import pytest
from sqlalchemy import text

from replyhq.apps import service as apps_service
from replyhq.errors import Unauthorized
from replyhq.runtime import Runtime
from replyhq.settings import DEV_MASTER_KEY
from tests.conftest import LiveServer, Servers, Tenant, start_server

MASTER = {"X-Master-Key": DEV_MASTER_KEY}
KEY_BODY = re.compile(r"^[A-Za-z0-9_-]+$")


def _random_bits(key: str, prefix: str) -> int:
    assert key.startswith(prefix), key
    body = key.removeprefix(prefix)
    assert KEY_BODY.match(body), key
    return len(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))) * 8


async def _create(client: httpx.AsyncClient, name: str = "Acme") -> dict[str, str]:
    response = await client.post("/setup/apps", headers=MASTER, json={"name": name})
    assert response.status_code == 201, response.text
    created: dict[str, str] = response.json()
    return created


def _sdk(app: dict[str, str], device: str = "device-1") -> dict[str, str]:
    return {"X-App-Id": app["id"], "X-Api-Key": app["sdk_key"], "X-Device-Id": device}


async def _identify(
    client: httpx.AsyncClient, app: dict[str, str], device: str = "device-1"
) -> httpx.Response:
    return await client.post("/v1/identify", headers=_sdk(app, device), json={"platform": "web"})


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/setup/apps"),
        ("GET", "/setup/apps"),
        ("PATCH", "/setup/apps/{id}"),
        ("POST", "/setup/apps/{id}/rotate-keys"),
    ],
)
@pytest.mark.parametrize("header", [None, "wrong-master-key", DEV_MASTER_KEY + "x", ""])
async def test_every_setup_route_needs_the_master_key(
    client: httpx.AsyncClient, tenant: Tenant, method: str, path: str, header: str | None
) -> None:
    headers = {} if header is None else {"X-Master-Key": header}
    marker = uuid.uuid4().hex  # names no other test could have given an app
    body = {"name": f"Sneaky {marker}"} if method == "POST" else {"name": f"Renamed {marker}"}
    response = await client.request(method, path.format(id=tenant.id), headers=headers, json=body)
    assert response.status_code == 401
    assert response.json() == {
        "error": "A valid X-Master-Key header is required.",
        "code": "MASTER_KEY_REQUIRED",
    }
    listed = (await client.get("/setup/apps", headers=MASTER)).json()
    assert not any(marker in a["name"] for a in listed)
    assert {a["id"]: a["name"] for a in listed}[str(tenant.id)] == tenant.name


async def test_create_returns_prefixed_random_keys_once(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    first = await _create(client, "First")
    second = await _create(client, "Second")
    assert set(first) == {
        "id",
        "name",
        "sdk_key",
        "secret_key",
        "identity_secret",
        "created_at",
        "identity_verification_required",
    }
    assert first["name"] == "First"
    assert first["identity_verification_required"] is False
    for app in (first, second):
        assert _random_bits(app["sdk_key"], "rhq_sdk_") >= 128
        assert _random_bits(app["secret_key"], "rhq_sk_") >= 128
        assert len(bytes.fromhex(app["identity_secret"])) * 8 >= 128
    secrets_ = [first[k] for k in ("sdk_key", "secret_key", "identity_secret")]
    secrets_ += [second[k] for k in ("sdk_key", "secret_key", "identity_secret")]
    assert len(set(secrets_)) == 6

    # The keys work at once, and only the hashes are stored.
    response = await client.post("/v1/identify", headers=_sdk(first), json={"platform": "web"})
    assert response.status_code == 200, response.text
    async with runtime.db.system_session() as session:
        row = (
            await session.execute(
                text("SELECT sdk_key_hash, secret_key_hash FROM apps WHERE id = :id"),
                {"id": first["id"]},
            )
        ).one()
    assert first["sdk_key"] not in row.sdk_key_hash
    assert bcrypt.checkpw(first["sdk_key"].encode(), row.sdk_key_hash.encode())
    assert bcrypt.checkpw(first["secret_key"].encode(), row.secret_key_hash.encode())


async def test_listing_and_updating_never_return_key_material(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    created = await _create(client, "Listed")
    async with runtime.db.system_session() as session:
        hashes = (
            await session.execute(
                text("SELECT sdk_key_hash, secret_key_hash FROM apps WHERE id = :id"),
                {"id": created["id"]},
            )
        ).one()
    patched = await client.patch(
        f"/setup/apps/{created['id']}", headers=MASTER, json={"name": "Listed too"}
    )
    listed = await client.get("/setup/apps", headers=MASTER)
    assert patched.status_code == 200
    assert listed.status_code == 200
    for response in (patched, listed):
        for secret in (
            created["sdk_key"],
            created["secret_key"],
            created["identity_secret"],
            *hashes,
        ):
            assert secret not in response.text
        assert "$2b$" not in response.text
        assert "rhq_sdk_" not in response.text
        assert "rhq_sk_" not in response.text
    mine = [a for a in listed.json() if a["id"] == created["id"]]
    assert mine == [
        {
            "id": created["id"],
            "name": "Listed too",
            "identity_verification_required": False,
            "created_at": created["created_at"],
        }
    ]


async def test_rotation_returns_new_keys_and_the_old_ones_stop_at_once(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    old = await _create(client, "Rotating")
    # Used once so that the process' cache knows the old keys.
    assert (await _identify(client, old)).status_code == 200
    await runtime.keys.verify(uuid.UUID(old["id"]), old["secret_key"], "secret")

    rotated = await client.post(f"/setup/apps/{old['id']}/rotate-keys", headers=MASTER)
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()
    assert new["id"] == old["id"]
    for key in ("sdk_key", "secret_key", "identity_secret"):
        assert new[key] != old[key]
    assert new["sdk_key"].startswith("rhq_sdk_")
    assert new["secret_key"].startswith("rhq_sk_")

    refused = await client.post("/v1/identify", headers=_sdk(old), json={"platform": "web"})
    assert refused.status_code == 401
    assert refused.json()["code"] == "INVALID_CREDENTIALS"
    with pytest.raises(Unauthorized):
        await runtime.keys.verify(uuid.UUID(old["id"]), old["secret_key"], "secret")
    accepted = await client.post("/v1/identify", headers=_sdk(new), json={"platform": "web"})
    assert accepted.status_code == 200
    assert await runtime.keys.verify(uuid.UUID(new["id"]), new["secret_key"], "secret") == (
        uuid.UUID(new["id"])
    )


async def test_unknown_app_is_404_and_bad_ids_are_400(client: httpx.AsyncClient) -> None:
    unknown = uuid.uuid4()
    for response in (
        await client.patch(
            f"/setup/apps/{unknown}", headers=MASTER, json={"identity_verification_required": True}
        ),
        await client.post(f"/setup/apps/{unknown}/rotate-keys", headers=MASTER),
    ):
        assert response.status_code == 404
        assert response.json() == {"error": "No such app.", "code": "APP_NOT_FOUND"}
    bad = await client.post("/setup/apps/not-an-id/rotate-keys", headers=MASTER)
    assert bad.status_code == 400
    assert bad.json()["details"][0]["field"] == "path.app_id"


async def test_bad_create_bodies_are_400_and_create_nothing(client: httpx.AsyncClient) -> None:
    before = len((await client.get("/setup/apps", headers=MASTER)).json())
    for body in ({"name": ""}, {"name": "x" * 201}, {}, {"name": "A", "sdk_key": "rhq_sdk_mine"}):
        response = await client.post("/setup/apps", headers=MASTER, json=body)
        assert response.status_code == 400, body
        assert response.json()["code"] == "VALIDATION_ERROR"
        assert response.json()["details"]
    assert len((await client.get("/setup/apps", headers=MASTER)).json()) == before


async def test_patch_makes_identity_verification_mandatory(client: httpx.AsyncClient) -> None:
    app = await _create(client, "Strict")
    assert (await _identify(client, app)).status_code == 200

    response = await client.patch(
        f"/setup/apps/{app['id']}", headers=MASTER, json={"identity_verification_required": True}
    )
    assert response.status_code == 200
    assert response.json()["identity_verification_required"] is True
    assert response.json()["name"] == "Strict"

    anonymous = await _identify(client, app, "device-2")
    assert anonymous.status_code == 401
    assert anonymous.json()["code"] == "IDENTITY_REQUIRED"
    listed = {a["id"]: a for a in (await client.get("/setup/apps", headers=MASTER)).json()}
    assert listed[app["id"]]["identity_verification_required"] is True

    off = await client.patch(
        f"/setup/apps/{app['id']}", headers=MASTER, json={"identity_verification_required": False}
    )
    assert off.json()["identity_verification_required"] is False
    assert (await _identify(client, app, "device-2")).status_code == 200


# --- rotation seen by another server process -------------------------------------------------


@pytest.fixture
def second_server(servers: Servers, tmp_path: Path) -> Iterator[LiveServer]:
    server = start_server(servers, tmp_path, "--no-migrate")
    yield server
    server.stop()


async def test_rotation_evicts_a_key_cached_in_another_process(
    client: httpx.AsyncClient, runtime: Runtime, second_server: LiveServer
) -> None:
    # Cost-12 hashes make an uncached verification visibly slow, so we can tell when the other
    # process answers from its cache.
    async with runtime.db.system_session() as session:
        app, keys = await apps_service.create_app(session, "Cached elsewhere", rounds=12)
    old = {"id": str(app.id), "sdk_key": keys.sdk_key}
    started = time.perf_counter()
    bcrypt.checkpw(b"x", bcrypt.hashpw(b"x", bcrypt.gensalt(12)))
    one_bcrypt = (time.perf_counter() - started) / 2

    async with httpx.AsyncClient(base_url=second_server.url, timeout=10) as other:
        cached = False
        for _ in range(40):
            started = time.perf_counter()
            response = await other.post("/v1/identify", headers=_sdk(old), json={"platform": "web"})
            elapsed = time.perf_counter() - started
            assert response.status_code == 200, response.text
            if elapsed < one_bcrypt / 2:
                cached = True
                break
        assert cached, "the second process never answered from its key cache"

        rotated = await client.post(f"/setup/apps/{old['id']}/rotate-keys", headers=MASTER)
        assert rotated.status_code == 200
        refused = await other.post("/v1/identify", headers=_sdk(old), json={"platform": "web"})
        assert refused.status_code == 401, "old key still accepted by the other process"
        assert refused.json()["code"] == "INVALID_CREDENTIALS"
        accepted = await other.post(
            "/v1/identify", headers=_sdk(rotated.json()), json={"platform": "web"}
        )
        assert accepted.status_code == 200
