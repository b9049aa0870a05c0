"""Device push addresses (POST/DELETE /v1/push-token, identify's push_token) and per-app push
credentials (owner only, encrypted at rest, never returned)."""

from __future__ import annotations

import base64
import os
import uuid
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from sqlalchemy import text

from replyhq.runtime import Runtime
from tests.conftest import MakeTenant, Tenant, identify, start_conversation
from tests.staff import secret as secret_key
from tests.staff import signed_in

FCM_TOKEN = "fGcmT0ken:APA91b" + "x" * 120
APNS_TOKEN = "a" * 64


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def subscription(endpoint: str = "https://fcm.googleapis.com/fcm/send/abc123") -> dict[str, object]:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    p256dh = key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return {"endpoint": endpoint, "keys": {"p256dh": _b64(p256dh), "auth": _b64(os.urandom(16))}}


async def _device(runtime: Runtime, tenant: Tenant, device_id: str) -> dict[str, object]:
    async with runtime.db.tenant_session(tenant.id) as session:
        row = (
            await session.execute(
                text(
                    "SELECT push_provider, push_token, push_keys FROM devices "
                    "WHERE app_id = :a AND device_id = :d"
                ),
                {"a": tenant.id, "d": device_id},
            )
        ).one()
    return dict(row._mapping)


async def test_a_device_registers_replaces_and_forgets_its_token(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant
) -> None:
    await identify(client, tenant, "phone", user_id="ann", user_hash=tenant.user_hash("ann"))
    answer = await client.post(
        "/v1/push-token", headers=tenant.sdk("phone"), json={"provider": "fcm", "token": FCM_TOKEN}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["provider"] == "fcm"
    assert (await _device(runtime, tenant, "phone"))["push_token"] == FCM_TOKEN

    # A new token (the app was restored on a new phone, the OS rotated it) replaces the old one.
    answer = await client.post(
        "/v1/push-token",
        headers=tenant.sdk("phone"),
        json={"provider": "apns", "token": APNS_TOKEN},
    )
    assert answer.status_code == 200
    assert await _device(runtime, tenant, "phone") == {
        "push_provider": "apns",
        "push_token": APNS_TOKEN,
        "push_keys": None,
    }

    # Logging out forgets it.
    answer = await client.delete("/v1/push-token", headers=tenant.sdk("phone"))
    assert answer.status_code == 204
    assert (await _device(runtime, tenant, "phone"))["push_token"] is None


async def test_a_browser_registers_its_web_push_subscription(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant
) -> None:
    await identify(client, tenant, "browser", platform="web")
    sub = subscription()
    answer = await client.post(
        "/v1/push-token",
        headers=tenant.sdk("browser"),
        json={"provider": "webpush", "subscription": {**sub, "expirationTime": None}},
    )
    assert answer.status_code == 200, answer.text
    stored = await _device(runtime, tenant, "browser")
    assert stored["push_token"] == sub["endpoint"]
    assert stored["push_keys"] == sub["keys"]


async def test_one_token_belongs_to_one_device(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant
) -> None:
    await identify(client, tenant, "old-install")
    await identify(client, tenant, "new-install")
    for device in ("old-install", "new-install"):
        answer = await client.post(
            "/v1/push-token",
            headers=tenant.sdk(device),
            json={"provider": "fcm", "token": FCM_TOKEN},
        )
        assert answer.status_code == 200
    assert (await _device(runtime, tenant, "old-install"))["push_token"] is None
    assert (await _device(runtime, tenant, "new-install"))["push_token"] == FCM_TOKEN


async def test_identify_stores_the_token_and_an_identity_switch_removes_it(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant
) -> None:
    await identify(client, tenant, "shared", user_id="bob", push_token=APNS_TOKEN)
    assert await _device(runtime, tenant, "shared") == {
        "push_provider": "apns",  # platform ios
        "push_token": APNS_TOKEN,
        "push_keys": None,
    }
    # identify again without a token: the device keeps it.
    await identify(client, tenant, "shared", user_id="bob")
    assert (await _device(runtime, tenant, "shared"))["push_token"] == APNS_TOKEN
    # Someone else signs in on the device: Bob's notifications must not reach them.
    await identify(client, tenant, "shared", user_id="carol")
    assert (await _device(runtime, tenant, "shared"))["push_token"] is None
    # An explicit provider wins over the platform's default.
    await identify(
        client, tenant, "shared", user_id="carol", push_token="tok-1", push_provider="fcm"
    )
    assert (await _device(runtime, tenant, "shared"))["push_provider"] == "fcm"


async def test_bad_registrations_are_refused_and_change_nothing(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant
) -> None:
    await identify(client, tenant, "phone")
    headers = tenant.sdk("phone")
    bad_bodies: list[dict[str, object]] = [
        {"provider": "sms", "token": "x"},
        {"provider": "fcm"},
        {"provider": "fcm", "token": "has spaces in it"},
        {"provider": "apns", "token": "not-hex-at-all"},
        {"provider": "webpush", "token": "x"},
        {"provider": "webpush", "subscription": {"endpoint": "https://x", "keys": {}}},
        {
            "provider": "webpush",
            "subscription": {**subscription(), "keys": {"p256dh": "AAAA", "auth": "AAAA"}},
        },
    ]
    for body in bad_bodies:
        answer = await client.post("/v1/push-token", headers=headers, json=body)
        assert answer.status_code == 400, (body, answer.text)
        assert answer.json()["code"] == "VALIDATION_ERROR"
    # An endpoint that is not a push service: the server would be made to call it.
    for endpoint in (
        "https://169.254.169.254/latest",
        "http://fcm.googleapis.com/x",
        "https://evil.example/wp",
    ):
        answer = await client.post(
            "/v1/push-token",
            headers=headers,
            json={"provider": "webpush", "subscription": subscription(endpoint)},
        )
        assert answer.status_code == 400, endpoint
        assert answer.json()["code"] == "PUSH_ENDPOINT_REFUSED"
    assert (await _device(runtime, tenant, "phone"))["push_token"] is None
    # A device that never identified has no person to be pushed for.
    answer = await client.post(
        "/v1/push-token", headers=tenant.sdk("stranger"), json={"provider": "fcm", "token": "t"}
    )
    assert answer.status_code == 401
    assert answer.json()["code"] == "DEVICE_UNKNOWN"


def _p8() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _service_account() -> dict[str, str]:
    key = rsa.generate_private_key(65537, 2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return {
        "type": "service_account",
        "project_id": "acme",
        "private_key_id": "k1",
        "private_key": pem,
        "client_email": "push@acme.iam.gserviceaccount.com",
    }


async def test_the_owner_uploads_credentials_that_are_never_shown_again(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant
) -> None:
    owner = await signed_in(runtime, client, tenant, "OWNER")
    account = _service_account()
    p8 = _p8()
    answer = await client.put(
        "/admin/api/push/credentials/fcm", headers=owner.auth(), json={"service_account": account}
    )
    assert answer.status_code == 200, answer.text
    apns = {
        "key_p8": p8,
        "key_id": "ABCDE12345",
        "team_id": "TEAM123456",
        "bundle_id": "com.acme.app",
        "environment": "sandbox",
    }
    answer = await client.put("/admin/api/push/credentials/apns", headers=owner.auth(), json=apns)
    assert answer.status_code == 200, answer.text
    answer = await client.post(
        "/admin/api/push/credentials/webpush",
        headers=owner.auth(),
        json={"subject": "mailto:ops@acme.example"},
    )
    assert answer.status_code == 200, answer.text
    status = (await client.get("/admin/api/push/credentials", headers=owner.auth())).json()
    assert {p: status[p]["set"] for p in ("fcm", "apns", "webpush")} == dict.fromkeys(
        ("fcm", "apns", "webpush"), True
    )
    assert status["fcm"]["details"] == {
        "project_id": "acme",
        "client_email": "push@acme.iam.gserviceaccount.com",
    }
    assert status["apns"]["details"]["environment"] == "sandbox"
    public = status["webpush"]["details"]["public_key"]
    assert len(base64.urlsafe_b64decode(public + "==")) == 65
    everything = answer.text + str(status)
    assert "PRIVATE KEY" not in everything
    # The SDK reads the VAPID public key to subscribe.
    await identify(client, tenant, "browser", platform="web")
    config = await client.get("/v1/push-config", headers=tenant.sdk("browser"))
    assert config.json() == {"webpush_public_key": public}
    # At rest: ciphertext only.
    async with runtime.db.tenant_session(tenant.id) as session:
        stored = list(
            await session.execute(
                text("SELECT secret FROM push_credentials WHERE app_id = :a"), {"a": tenant.id}
            )
        )
    assert len(stored) == 3
    for (secret,) in stored:
        assert b"PRIVATE KEY" not in bytes(secret)
        assert bytes(secret).startswith(b"gAAAA")  # a Fernet token

    # Removing one.
    answer = await client.delete("/admin/api/push/credentials/apns", headers=owner.auth())
    assert answer.status_code == 204
    status = (await client.get("/admin/api/push/credentials", headers=owner.auth())).json()
    assert status["apns"] == {"provider": "apns", "set": False, "updated_at": None, "details": {}}


async def test_only_the_owner_uploads_and_bad_keys_are_refused(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant
) -> None:
    admin = await signed_in(runtime, client, tenant, "ADMIN")
    answer = await client.put(
        "/admin/api/push/credentials/fcm",
        headers=admin.auth(),
        json={"service_account": _service_account()},
    )
    assert answer.status_code == 403
    assert answer.json()["required"] == "push:credentials"
    owner = await signed_in(runtime, client, tenant, "OWNER")
    bad = {
        **_service_account(),
        "private_key": "-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n",
    }
    answer = await client.put(
        "/admin/api/push/credentials/fcm", headers=owner.auth(), json={"service_account": bad}
    )
    assert answer.status_code == 400
    assert answer.json()["code"] == "INVALID_PUSH_CREDENTIALS"
    rsa_as_p8 = _service_account()["private_key"]
    answer = await client.put(
        "/admin/api/push/credentials/apns",
        headers=owner.auth(),
        json={
            "key_p8": rsa_as_p8,
            "key_id": "ABCDE12345",
            "team_id": "TEAM123456",
            "bundle_id": "x",
        },
    )
    assert answer.status_code == 400
    assert answer.json()["details"][0]["field"] == "key_p8"
    status = (await client.get("/admin/api/push/credentials", headers=owner.auth())).json()
    assert not status["fcm"]["set"] and not status["apns"]["set"]


async def test_push_settings_are_per_app_and_validated(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant
) -> None:
    admin = await signed_in(runtime, client, tenant, "ADMIN")
    url = "/admin/api/push/settings"
    assert (await client.get(url, headers=admin.auth())).json()["email_fallback_minutes"] == 5
    answer = await client.patch(
        url,
        headers=admin.auth(),
        json={
            "quiet_hours_start": "22:00",
            "quiet_hours_end": "07:30",
            "default_timezone": "Europe/Paris",
        },
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["quiet_hours_start"] == "22:00"
    for body in (
        {"quiet_hours_start": "25:00"},
        {"default_timezone": "Mars/Olympus"},
        {"hourly_limit": 11},
        {"email_link": "javascript://x%0aalert(1)"},
        {"quiet_hours_end": None},
    ):
        answer = await client.patch(url, headers=admin.auth(), json=body)
        assert answer.status_code == 400, (body, answer.text)
    again = (await client.get(url, headers=admin.auth())).json()
    assert again["default_timezone"] == "Europe/Paris" and again["quiet_hours_end"] == "07:30"
    agent = await signed_in(runtime, client, tenant, "AGENT")
    assert (
        await client.patch(url, headers=agent.auth(), json={"hourly_limit": 3})
    ).status_code == 403
    other = str(uuid.uuid4())
    del other


async def seed_push(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant, device: str, end_user_id: str
) -> None:
    """A row in each push table of the tenant, through the API (for tests/test_tenancy.py)."""
    owner = await signed_in(runtime, client, tenant, "OWNER")
    h = owner.auth()
    calls = [
        client.patch("/admin/api/push/settings", headers=h, json={"hourly_limit": 5}),
        client.post(
            "/admin/api/push/credentials/webpush", headers=h, json={"subject": "mailto:a@b.c"}
        ),
        client.patch("/admin/me/notifications", headers=h, json={"sound": False}),
        client.post(
            "/v1/push-token", headers=tenant.sdk(device), json={"provider": "fcm", "token": "t1"}
        ),
    ]
    for call in calls:
        assert (await call).status_code == 200
    answer = await client.post(f"/admin/api/users/{end_user_id}/test-push", headers=h, json={})
    assert answer.status_code == 202, answer.text


def push_cases(client: httpx.AsyncClient) -> dict[tuple[str, str], Any]:
    """The push routes' cases of tests/test_accounts_rbac.py's permission matrix."""
    base = "/admin/api/push"

    async def credentials(w: Any) -> tuple[str, str, None]:
        return "GET", f"{base}/credentials", None

    async def fcm(w: Any) -> tuple[str, str, dict[str, object]]:
        return "PUT", f"{base}/credentials/fcm", {"service_account": _service_account()}

    async def apns(w: Any) -> tuple[str, str, dict[str, object]]:
        body = {"key_p8": _p8(), "key_id": "ABCDE12345", "team_id": "TEAM123456", "bundle_id": "a"}
        return "PUT", f"{base}/credentials/apns", body

    async def vapid(w: Any) -> tuple[str, str, dict[str, object]]:
        return "POST", f"{base}/credentials/webpush", {"subject": "mailto:ops@example.com"}

    async def remove(w: Any) -> tuple[str, str, None]:
        return "DELETE", f"{base}/credentials/apns", None

    async def settings_get(w: Any) -> tuple[str, str, None]:
        return "GET", f"{base}/settings", None

    async def settings_patch(w: Any) -> tuple[str, str, dict[str, object]]:
        return "PATCH", f"{base}/settings", {"hourly_limit": 4}

    async def log(w: Any) -> tuple[str, str, None]:
        return "GET", f"/admin/api/users/{w.end_user_id}/push-log", None

    async def test_push(w: Any) -> tuple[str, str, dict[str, object]]:
        registered = await client.post(
            "/v1/push-token", headers=w.tenant.sdk(), json={"provider": "fcm", "token": "tok"}
        )
        assert registered.status_code == 200
        return "POST", f"/admin/api/users/{w.end_user_id}/test-push", {}

    return {
        ("GET", f"{base}/credentials"): credentials,
        ("PUT", f"{base}/credentials/fcm"): fcm,
        ("PUT", f"{base}/credentials/apns"): apns,
        ("POST", f"{base}/credentials/webpush"): vapid,
        ("DELETE", f"{base}/credentials/{{provider}}"): remove,
        ("GET", f"{base}/settings"): settings_get,
        ("PATCH", f"{base}/settings"): settings_patch,
        ("GET", "/admin/api/users/{end_user_id}/push-log"): log,
        ("POST", "/admin/api/users/{end_user_id}/test-push"): test_push,
    }


async def test_each_member_has_their_own_notification_preferences(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant
) -> None:
    agent = await signed_in(runtime, client, tenant, "AGENT")
    other = await signed_in(runtime, client, tenant, "AGENT")
    url = "/admin/me/notifications"
    assert (await client.get(url, headers=agent.auth())).json() == {"desktop": True, "sound": True}
    answer = await client.patch(url, headers=agent.auth(), json={"sound": False})
    assert answer.json() == {"desktop": True, "sound": False}
    answer = await client.patch(url, headers=agent.auth(), json={"desktop": False})
    assert answer.json() == {"desktop": False, "sound": False}
    assert (await client.get(url, headers=other.auth())).json() == {"desktop": True, "sound": True}
    assert (
        await client.patch(url, headers=agent.auth(), json={"sound": "loud"})
    ).status_code == 400
    from tests.staff import secret

    assert (await client.get(url, headers=secret(tenant))).status_code == 401


async def test_a_reply_queues_a_push_only_when_something_could_reach_the_person(
    client: httpx.AsyncClient, runtime: Runtime, make_tenant: MakeTenant
) -> None:
    """The agent-reply trigger (migration 0110) adds the conversation to push_queue, and a
    push.drain job for the app, only when the app has push credentials and the person a device
    with a push token, or the e-mail fallback is on and the person has an e-mail address: an app
    that set up neither costs its replies nothing more than the check."""
    tenant = await make_tenant("Quiet")

    async def reply_to(device: str, **person: object) -> tuple[bool, int]:
        await identify(client, tenant, device, user_id=device, **person)
        cid = str((await start_conversation(client, tenant, device))["id"])
        answer = await client.post(
            f"/admin/api/conversations/{cid}/messages",
            headers=secret_key(tenant),
            json={"body": "Hi", "client_msg_id": uuid.uuid4().hex},
        )
        assert answer.status_code == 201, answer.text
        async with runtime.db.system_session() as session:
            queued = await session.scalar(
                text("SELECT count(*) FROM push_queue WHERE conversation_id = :c"), {"c": cid}
            )
            drains = await session.scalar(
                text(
                    "SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'push.drain' "
                    "AND args->>'app_id' = :a AND status = 'todo'"
                ),
                {"a": str(tenant.id)},
            )
        return bool(queued), int(drains or 0)

    token = {"push_token": FCM_TOKEN + uuid.uuid4().hex[:8], "push_provider": "fcm"}
    # No credentials, no e-mail: nothing, even with a token.
    assert await reply_to("no-creds-token", **token) == (False, 0)
    assert await reply_to("no-creds-nothing") == (False, 0)
    # An e-mail address and the fallback on (the default): queued.
    assert await reply_to("mail", email="ann@example.com") == (True, 1)
    owner = await signed_in(runtime, client, tenant, "OWNER")
    off = await client.patch(
        "/admin/api/push/settings", headers=owner.auth(), json={"email_fallback_minutes": 0}
    )
    assert off.status_code == 200, off.text
    assert await reply_to("mail-off", email="bob@example.com") == (False, 1)
    # Credentials: a person with a token is queued (one drain waits for the app, not one per
    # reply), one without is not.
    account = _service_account()
    answer = await client.put(
        "/admin/api/push/credentials/fcm", headers=owner.auth(), json={"service_account": account}
    )
    assert answer.status_code == 200, answer.text
    assert await reply_to("creds-token", **token | {"push_token": FCM_TOKEN + "2"}) == (True, 1)
    assert await reply_to("creds-no-token") == (False, 1)


async def test_the_sweep_drains_what_a_dead_drain_left(
    client: httpx.AsyncClient, runtime: Runtime, make_tenant: MakeTenant
) -> None:
    """A drain that died after claiming a conversation leaves it claimed, due again a minute
    later; push.sweep (every minute) queues a drain for its app."""
    from replyhq.jobs.registry import JobRun
    from replyhq.push import tasks

    tenant = await make_tenant("Swept")
    await identify(client, tenant, "phone", user_id="ann", email="ann@example.com")
    cid = str((await start_conversation(client, tenant, "phone"))["id"])
    answer = await client.post(
        f"/admin/api/conversations/{cid}/messages",
        headers=secret_key(tenant),
        json={"body": "Hi", "client_msg_id": uuid.uuid4().hex},
    )
    assert answer.status_code == 201, answer.text

    async def drains() -> int:
        async with runtime.db.system_session() as session:
            count = await session.scalar(
                text(
                    "SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'push.drain' "
                    "AND args->>'app_id' = :a AND status = 'todo'"
                ),
                {"a": str(tenant.id)},
            )
        return int(count or 0)

    assert await drains() == 1
    async with runtime.db.system_session() as session:  # the drain took it, then died
        await session.execute(
            text(
                "DELETE FROM procrastinate_jobs WHERE task_name = 'push.drain' "
                "AND args->>'app_id' = :a"
            ),
            {"a": str(tenant.id)},
        )
        await session.execute(
            text(
                "UPDATE push_queue SET claim = gen_random_uuid(), "
                "due_at = now() - interval '1 second' WHERE conversation_id = :c"
            ),
            {"c": cid},
        )
    assert await drains() == 0
    await tasks.sweep.func(JobRun(0, "push.sweep", 1, runtime), timestamp=0)
    assert await drains() == 1
