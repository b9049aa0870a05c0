"""API keys: bcrypt cost 12 at rest, one bcrypt per key (not per request), timing-safe misses,
credentials only from headers, and never a key in the logs."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import bcrypt
import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import text

from replyhq.app import create_app
from replyhq.apps import keys as keys_module
from replyhq.errors import Unauthorized
from replyhq.runtime import Runtime
from replyhq.settings import DEV_MASTER_KEY, Settings
from tests.conftest import Servers, SocketServer, Tenant, identify, make_settings, start_server
from tests.realtime_clients import refused

MASTER = {"X-Master-Key": DEV_MASTER_KEY}


async def _caching(runtime: Runtime) -> None:
    for _ in range(200):
        if runtime.keys.caching:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the key verifier never started caching")


@pytest.fixture
def bcrypt_calls(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every bcrypt.checkpw made by key verification, by the hash it was checked against."""
    calls: list[bytes] = []
    real: Callable[[bytes, bytes], bool] = bcrypt.checkpw

    def counting(password: bytes, hashed: bytes) -> bool:
        calls.append(hashed)
        return real(password, hashed)

    monkeypatch.setattr(keys_module.bcrypt, "checkpw", counting)
    return calls


# --- storage ---------------------------------------------------------------------------------


@pytest.fixture
async def default_cost_client(
    servers: Servers, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[httpx.AsyncClient]:
    monkeypatch.delenv("BCRYPT_ROUNDS", raising=False)
    rounds = Settings(_env_file=None).bcrypt_rounds  # type: ignore[call-arg]
    application = create_app(make_settings(servers, bcrypt_rounds=rounds))
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


async def _stored_hashes(runtime: Runtime, app_id: str) -> tuple[str, str]:
    async with runtime.db.system_session() as session:
        row = (
            await session.execute(
                text("SELECT sdk_key_hash, secret_key_hash FROM apps WHERE id = :id"),
                {"id": app_id},
            )
        ).one()
    return row.sdk_key_hash, row.secret_key_hash


async def test_keys_are_stored_as_bcrypt_cost_12_by_default(
    default_cost_client: httpx.AsyncClient, runtime: Runtime
) -> None:
    created = await default_cost_client.post("/setup/apps", headers=MASTER, json={"name": "C12"})
    assert created.status_code == 201
    app = created.json()
    for stored in await _stored_hashes(runtime, app["id"]):
        assert stored.startswith("$2b$12$"), stored
    sdk_hash, secret_hash = await _stored_hashes(runtime, app["id"])
    assert bcrypt.checkpw(app["sdk_key"].encode(), sdk_hash.encode())
    assert bcrypt.checkpw(app["secret_key"].encode(), secret_hash.encode())

    rotated = await default_cost_client.post(f"/setup/apps/{app['id']}/rotate-keys", headers=MASTER)
    assert rotated.status_code == 200
    for stored in await _stored_hashes(runtime, app["id"]):
        assert stored.startswith("$2b$12$"), stored


# --- verification cost -----------------------------------------------------------------------


async def test_a_verified_key_costs_one_bcrypt_not_one_per_request(
    client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime, bcrypt_calls: list[bytes]
) -> None:
    await _caching(runtime)
    await identify(client, tenant)
    for _ in range(20):
        response = await client.get("/v1/conversations", headers=tenant.sdk())
        assert response.status_code == 200
    assert len(bcrypt_calls) == 1


async def test_wrong_keys_and_unknown_apps_pay_a_full_bcrypt_every_time(
    client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime, bcrypt_calls: list[bytes]
) -> None:
    await _caching(runtime)
    for letter in "ABC":
        wrong = {**tenant.sdk(), "X-Api-Key": "rhq_sdk_" + letter * 43}
        response = await client.get("/v1/conversations", headers=wrong)
        assert response.status_code == 401
        assert response.json() == {
            "error": "Missing or invalid API key.",
            "code": "INVALID_CREDENTIALS",
        }
    assert len(bcrypt_calls) == 3  # every new guess is checked
    # One wrong key repeated (a tab holding a rotated key) is answered from memory, the same 401.
    response = await client.get("/v1/conversations", headers=wrong)
    assert response.json()["code"] == "INVALID_CREDENTIALS"
    assert len(bcrypt_calls) == 3

    # An app that does not exist costs what a wrong key costs, so timing reveals nothing.
    stranger = {**tenant.sdk(), "X-App-Id": str(uuid.uuid4())}
    response = await client.get("/v1/conversations", headers=stranger)
    assert response.status_code == 401
    assert response.json()["code"] == "INVALID_CREDENTIALS"
    assert len(bcrypt_calls) == 4
    assert bcrypt_calls[-1].startswith(b"$2b$12$")  # as slow as a real stored key


async def test_concurrent_first_requests_with_one_key_share_one_bcrypt(
    tenant: Tenant, runtime: Runtime
) -> None:
    await _caching(runtime)
    verifier = runtime.keys
    before = verifier.bcrypt_checks

    answers = await asyncio.gather(
        *(verifier.verify(tenant.id, tenant.sdk_key, "sdk") for _ in range(20))
    )

    assert answers == [tenant.id] * 20
    assert verifier.bcrypt_checks - before == 1
    # Cached now: no further check.
    assert await verifier.verify(tenant.id, tenant.sdk_key, "sdk") == tenant.id
    assert verifier.bcrypt_checks - before == 1


async def test_concurrent_wrong_keys_all_fail_beside_a_right_one(
    tenant: Tenant, runtime: Runtime
) -> None:
    await _caching(runtime)
    verifier = runtime.keys
    before = verifier.bcrypt_checks
    wrong = "rhq_sdk_" + "B" * 43

    answers = await asyncio.gather(
        *(verifier.verify(tenant.id, wrong, "sdk") for _ in range(10)),
        *(verifier.verify(tenant.id, tenant.sdk_key, "sdk") for _ in range(10)),
        return_exceptions=True,
    )

    assert all(isinstance(a, Unauthorized) for a in answers[:10]), answers[:10]
    assert answers[10:] == [tenant.id] * 10
    assert verifier.bcrypt_checks - before == 2  # one per distinct key, not one per request
    # The wrong key, tried again, is refused from memory; another guess is checked.
    with pytest.raises(Unauthorized):
        await verifier.verify(tenant.id, wrong, "sdk")
    assert verifier.bcrypt_checks - before == 2
    with pytest.raises(Unauthorized):
        await verifier.verify(tenant.id, "rhq_sdk_" + "C" * 43, "sdk")
    assert verifier.bcrypt_checks - before == 3


async def test_a_check_that_began_before_a_rotation_is_not_cached_nor_joined(
    tenant: Tenant, runtime: Runtime
) -> None:
    await _caching(runtime)
    verifier = runtime.keys
    digest = verifier.digest(tenant.id, tenant.sdk_key, "sdk")
    assert digest is not None
    before = verifier.bcrypt_checks

    stale = asyncio.create_task(verifier.verify(tenant.id, tenant.sdk_key, "sdk"))
    await asyncio.sleep(0)  # its check is now in flight
    verifier.evict(tenant.id)  # what a rotation does in every process
    assert await stale == tenant.id  # the key was not really rotated: still valid
    assert verifier.bcrypt_checks - before == 1
    assert verifier.cached(digest) is None  # but what it read may be stale: not remembered

    stale = asyncio.create_task(verifier.verify(tenant.id, tenant.sdk_key, "sdk"))
    await asyncio.sleep(0)
    verifier.evict(tenant.id)
    fresh = asyncio.create_task(verifier.verify(tenant.id, tenant.sdk_key, "sdk"))
    assert await asyncio.gather(stale, fresh) == [tenant.id, tenant.id]
    assert verifier.bcrypt_checks - before == 3  # the later request did not join the old check
    assert verifier.cached(digest) == tenant.id


async def _no_check_in_flight(verifier: keys_module.KeyVerifier, digest: bytes) -> None:
    for _ in range(500):
        if digest not in verifier._checking:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the background check never ended")


async def test_a_key_in_use_is_checked_again_before_its_entry_runs_out(
    tenant: Tenant, runtime: Runtime
) -> None:
    await _caching(runtime)
    verifier = runtime.keys
    assert await verifier.verify(tenant.id, tenant.sdk_key, "sdk") == tenant.id
    digest = verifier.digest(tenant.id, tenant.sdk_key, "sdk")
    assert digest is not None
    before = verifier.bcrypt_checks
    ttl = verifier._ttl
    # Outside its last REFRESH_AHEAD: answered from memory, nothing checked.
    assert verifier.cached(digest, tenant.sdk_key, "sdk") == tenant.id
    assert digest not in verifier._checking
    # In it: still answered at once (no request waits for bcrypt), and checked again in the
    # background, once however many requests find it there; the entry then lasts a whole TTL.
    verifier._cache[digest] = (tenant.id, time.monotonic() + ttl * keys_module.REFRESH_AHEAD / 2)
    answers = [verifier.cached(digest, tenant.sdk_key, "sdk") for _ in range(5)]
    answers.append(await verifier.verify(tenant.id, tenant.sdk_key, "sdk"))
    assert answers == [tenant.id] * 6
    await _no_check_in_flight(verifier, digest)
    assert verifier.bcrypt_checks - before == 1
    assert verifier._cache[digest][1] - time.monotonic() > ttl * 0.9
    # Without the key (the digest alone) nothing is re-checked; a run-out entry is gone.
    verifier._cache[digest] = (tenant.id, time.monotonic() + ttl * keys_module.REFRESH_AHEAD / 2)
    assert verifier.cached(digest) == tenant.id
    assert digest not in verifier._checking
    verifier._cache[digest] = (tenant.id, time.monotonic() - 1)
    assert verifier.cached(digest, tenant.sdk_key, "sdk") is None


async def test_a_background_check_that_finds_the_key_wrong_drops_its_entry(
    tenant: Tenant, runtime: Runtime
) -> None:
    """A rotation whose Redis announcement was missed: the next re-check ends the old key's
    entry at once instead of letting it run out."""
    await _caching(runtime)
    verifier = runtime.keys
    assert await verifier.verify(tenant.id, tenant.sdk_key, "sdk") == tenant.id
    digest = verifier.digest(tenant.id, tenant.sdk_key, "sdk")
    assert digest is not None
    other = bcrypt.hashpw(b"rhq_sdk_" + b"D" * 43, bcrypt.gensalt(4)).decode()
    async with runtime.db.system_session() as session:
        await session.execute(
            text("UPDATE apps SET sdk_key_hash = :h WHERE id = :id"),
            {"h": other, "id": str(tenant.id)},
        )
    verifier._cache[digest] = (
        tenant.id,
        time.monotonic() + verifier._ttl * keys_module.REFRESH_AHEAD / 2,
    )
    assert verifier.cached(digest, tenant.sdk_key, "sdk") == tenant.id  # not yet known
    await _no_check_in_flight(verifier, digest)
    assert verifier.cached(digest, tenant.sdk_key, "sdk") is None
    with pytest.raises(Unauthorized):
        await verifier.verify(tenant.id, tenant.sdk_key, "sdk")


# --- where credentials may come from ---------------------------------------------------------


async def test_a_key_in_the_query_string_is_never_accepted(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    await identify(client, tenant)
    params = {"app_id": str(tenant.id), "api_key": tenant.sdk_key, "device_id": "device-1"}
    for query, headers in [
        (params, {}),
        ({"api_key": tenant.sdk_key}, {"X-App-Id": str(tenant.id), "X-Device-Id": "device-1"}),
        ({"X-Api-Key": tenant.sdk_key}, {"X-App-Id": str(tenant.id), "X-Device-Id": "device-1"}),
        ({"x_api_key": tenant.sdk_key}, {"X-App-Id": str(tenant.id), "X-Device-Id": "device-1"}),
    ]:
        response = await client.get("/v1/conversations", params=query, headers=headers)
        assert response.status_code == 401, query
        assert response.json()["code"] == "INVALID_CREDENTIALS"
    for query in ({"x_master_key": DEV_MASTER_KEY}, {"X-Master-Key": DEV_MASTER_KEY}):
        response = await client.get("/setup/apps", params=query)
        assert response.status_code == 401
        assert response.json()["code"] == "MASTER_KEY_REQUIRED"


async def test_a_socket_with_credentials_only_in_the_url_is_refused(
    socket_server: SocketServer, tenant: Tenant
) -> None:
    url = f"{socket_server.url}?app_id={tenant.id}&api_key={tenant.sdk_key}&device_id=device-1"
    data = await refused(url, {})
    assert data["code"] == "INVALID_CREDENTIALS"


async def test_each_key_opens_only_its_own_door(
    client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime
) -> None:
    # The secret key is not an SDK key.
    secret_as_sdk = {**tenant.sdk(), "X-Api-Key": tenant.secret_key}
    response = await client.post("/v1/identify", headers=secret_as_sdk, json={"platform": "ios"})
    assert response.status_code == 401
    assert response.json()["code"] == "INVALID_CREDENTIALS"
    # The SDK key (public: it ships in app binaries) never passes for the secret key. No HTTP
    # route takes the secret key yet (/admin/api will), so this is checked on the verifier.
    with pytest.raises(Unauthorized):
        await runtime.keys.verify(tenant.id, tenant.sdk_key, "secret")
    assert await runtime.keys.verify(tenant.id, tenant.secret_key, "secret") == tenant.id
    # Another app's key is not this app's key.
    with pytest.raises(Unauthorized):
        await runtime.keys.verify(uuid.uuid4(), tenant.sdk_key, "sdk")


# --- logs --------------------------------------------------------------------------------------


def test_keys_never_reach_the_logs(servers: Servers, tmp_path: Path) -> None:
    server = start_server(servers, tmp_path, "--no-migrate", LOG_LEVEL="DEBUG")
    seen: list[str] = [DEV_MASTER_KEY]
    try:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            app = http.post("/setup/apps", headers=MASTER, json={"name": "Logged"}).json()
            seen += [app["sdk_key"], app["secret_key"], app["identity_secret"]]
            sdk = {"X-App-Id": app["id"], "X-Api-Key": app["sdk_key"], "X-Device-Id": "d1"}
            assert http.post("/v1/identify", headers=sdk, json={"platform": "ios"}).is_success
            wrong = "rhq_sdk_" + "W" * 43
            seen.append(wrong)
            assert (
                http.get("/v1/conversations", headers={**sdk, "X-Api-Key": wrong}).status_code
                == 401
            )
            assert (
                http.get("/v1/conversations", params={"api_key": app["sdk_key"]}).status_code == 401
            )
            assert (
                http.get("/setup/apps", headers={"X-Master-Key": "rhq_wrong_master"}).status_code
                == 401
            )
            seen.append("rhq_wrong_master")
            rotated = http.post(f"/setup/apps/{app['id']}/rotate-keys", headers=MASTER).json()
            seen += [rotated["sdk_key"], rotated["secret_key"], rotated["identity_secret"]]
            assert (
                http.post("/v1/identify", headers=sdk, json={"platform": "ios"}).status_code == 401
            )
    finally:
        server.stop()
    log = server.log.read_text()
    assert "Application startup complete" in log  # the log was captured at all
    for secret in seen:
        assert secret not in log
