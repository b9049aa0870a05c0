"""Staff sign-in: login, access tokens, refresh rotation with reuse detection, logout, and changes
of role or standing taking effect."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid

import httpx
import jwt
import pytest

from replyhq.accounts import tokens
from replyhq.runtime import Runtime
from replyhq.settings import Settings
from tests.conftest import MakeTenant, Tenant
from tests.staff import add_staff, login, signed_in


async def _me(client: httpx.AsyncClient, access: str) -> httpx.Response:
    return await client.get("/admin/me", headers={"Authorization": f"Bearer {access}"})


async def _refresh(client: httpx.AsyncClient, refresh_token: str) -> httpx.Response:
    return await client.post("/admin/refresh", json={"refresh_token": refresh_token})


# --- login -----------------------------------------------------------------------------------


async def test_login_returns_a_short_access_token_and_a_week_long_refresh_token(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant
) -> None:
    staff = await add_staff(runtime, tenant, "ADMIN", email="Ada@Example.com")
    response = await client.post(
        "/admin/login", json={"email": "  ada@EXAMPLE.com", "password": staff.password}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert body["refresh_expires_in"] == 7 * 24 * 3600
    assert body["staff"]["email"] == "ada@example.com"
    assert body["staff"]["role"] == "ADMIN"
    assert "password" not in json.dumps(body["staff"])
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 900
    assert claims["sub"] == str(staff.id)
    me = await _me(client, body["access_token"])
    assert me.status_code == 200
    assert me.json()["role"] == "ADMIN"
    assert me.json()["staff"]["last_login_at"] is not None
    assert "team:write" in me.json()["permissions"]


async def test_wrong_password_and_unknown_address_get_the_same_answer(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant
) -> None:
    staff = await add_staff(runtime, tenant)
    wrong = await client.post("/admin/login", json={"email": staff.email, "password": "nope-nope"})
    unknown = await client.post(
        "/admin/login", json={"email": f"ghost-{uuid.uuid4().hex}@x.io", "password": "nope-nope"}
    )
    too_long = await client.post(
        "/admin/login", json={"email": staff.email, "password": staff.password + "x" * 80}
    )
    assert wrong.status_code == unknown.status_code == too_long.status_code == 401
    assert wrong.json() == unknown.json() == too_long.json()
    assert wrong.json()["code"] == "INVALID_CREDENTIALS"


async def test_login_takes_as_long_for_an_unknown_address_as_for_a_wrong_password(
    servers_app: object,
) -> None:
    # bcrypt at cost 10 (~50 ms) makes the difference a dummy check hides measurable.
    client, runtime, tenant = servers_app  # type: ignore[misc]
    staff = await add_staff(runtime, tenant, email=f"timing-{uuid.uuid4().hex[:6]}@x.io")
    async with runtime.db.tenant_session(tenant.id) as session:
        from sqlalchemy import text

        from replyhq.accounts.service import hash_password

        await session.execute(
            text("UPDATE staff_users SET password_hash = :h WHERE id = :i"),
            {"h": hash_password(staff.password, 10), "i": staff.id},
        )

    async def timed(email: str) -> float:
        started = time.perf_counter()
        response = await client.post("/admin/login", json={"email": email, "password": "wrong!!"})
        assert response.status_code == 401
        return time.perf_counter() - started

    known = sorted([await timed(staff.email) for _ in range(5)])[2]
    unknown = sorted([await timed(f"nobody-{i}@x.io") for i in range(5)])[2]
    assert known > 0.01  # bcrypt really ran
    assert 0.6 < unknown / known < 1.6, (known, unknown)


@pytest.fixture
async def servers_app(
    servers: object,
) -> object:
    from asgi_lifespan import LifespanManager

    from replyhq.app import create_app
    from replyhq.apps import service as apps_service
    from tests.conftest import make_settings

    settings = make_settings(servers, bcrypt_rounds=10)  # type: ignore[arg-type]
    application = create_app(settings)
    async with LifespanManager(application):
        rt: Runtime = application.state.runtime
        async with rt.db.system_session() as session:
            app, keys = await apps_service.create_app(session, "Timing", rounds=4)
        tenant = Tenant(app.id, "Timing", keys.sdk_key, keys.secret_key, keys.identity_secret)
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c, rt, tenant


async def test_a_deactivated_member_cannot_log_in(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant
) -> None:
    owner = await signed_in(runtime, client, tenant, "OWNER")
    agent = await add_staff(runtime, tenant)
    gone = await client.delete(f"/admin/api/team/{agent.id}", headers=owner.auth())
    assert gone.status_code == 204
    response = await client.post(
        "/admin/login", json={"email": agent.email, "password": agent.password}
    )
    assert response.status_code == 401
    assert response.json()["code"] == "INVALID_CREDENTIALS"


async def test_an_address_in_several_apps_asks_which_app_once_the_password_is_proven(
    client: httpx.AsyncClient, runtime: Runtime, make_tenant: MakeTenant
) -> None:
    first, second, third = (
        await make_tenant("First"),
        await make_tenant("Second"),
        await make_tenant("Third"),
    )
    email = f"multi-{uuid.uuid4().hex[:8]}@example.com"
    a = await add_staff(runtime, first, "OWNER", email=email)
    b = await add_staff(runtime, second, "AGENT", email=email)
    await add_staff(runtime, third, "AGENT", email=email, password="a different password")

    wrong = await client.post("/admin/login", json={"email": email, "password": "wrong password"})
    assert wrong.status_code == 401
    assert "apps" not in wrong.json()

    ambiguous = await client.post("/admin/login", json={"email": email, "password": a.password})
    assert ambiguous.status_code == 400
    assert ambiguous.json()["code"] == "APP_REQUIRED"
    # Only the apps this password opens are listed.
    listed = {app["id"]: app["name"] for app in ambiguous.json()["apps"]}
    assert listed == {str(first.id): "First", str(second.id): "Second"}

    chosen = await login(client, b, app_id=str(second.id))
    assert chosen.tokens["staff"]["app_id"] == str(second.id)  # type: ignore[index]
    assert chosen.tokens["staff"]["role"] == "AGENT"  # type: ignore[index]

    only_third = await client.post(
        "/admin/login", json={"email": email, "password": "a different password"}
    )
    assert only_third.status_code == 200
    assert only_third.json()["staff"]["app_id"] == str(third.id)

    elsewhere = await client.post(
        "/admin/login", json={"email": email, "password": a.password, "app_id": str(third.id)}
    )
    assert elsewhere.status_code == 401


async def test_malformed_login_is_a_400(client: httpx.AsyncClient) -> None:
    for body in (
        {},
        {"email": "not-an-address", "password": "x"},
        {"email": "a@b", "password": ""},
        {"email": "a@b", "password": "x", "extra": 1},
        {"email": "a@b", "password": "x", "app_id": "nope"},
    ):
        response = await client.post("/admin/login", json=body)
        assert response.status_code == 400, body
        assert response.json()["code"] == "VALIDATION_ERROR"


# --- access tokens ---------------------------------------------------------------------------


def _forge(settings: Settings, claims: dict[str, object], **kw: object) -> str:
    key = kw.pop("key", settings.jwt_secret)
    algorithm = kw.pop("algorithm", "HS256")
    return jwt.encode(claims, key, algorithm=algorithm)  # type: ignore[arg-type]


def _claims(token: str) -> dict[str, object]:
    claims: dict[str, object] = jwt.decode(token, options={"verify_signature": False})
    return claims


@pytest.mark.filterwarnings("ignore:The HMAC key")  # forging HS384/HS512 with our key
async def test_expired_tampered_and_foreign_tokens_are_refused(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant, settings: Settings
) -> None:
    agent = await signed_in(runtime, client, tenant, "AGENT")
    assert (await _me(client, agent.access)).status_code == 200
    claims = _claims(agent.access)
    now = int(time.time())

    expired = _forge(settings, {**claims, "iat": now - 2000, "exp": now - 1000})
    response = await _me(client, expired)
    assert (response.status_code, response.json()["code"]) == (401, "TOKEN_EXPIRED")

    # Promote oneself by editing the payload: the signature no longer matches.
    header, _, signature = agent.access.split(".")
    payload = base64.urlsafe_b64encode(json.dumps({**claims, "role": "OWNER"}).encode())
    tampered = f"{header}.{payload.decode().rstrip('=')}.{signature}"
    forged = {
        "alg none": jwt.encode({**claims}, None, algorithm="none"),  # type: ignore[arg-type]
        "HS512": _forge(settings, claims, algorithm="HS512"),
        "HS384": _forge(settings, claims, algorithm="HS384"),
        "wrong key": _forge(settings, claims, key="x" * 64),
        "refresh secret": _forge(settings, claims, key=settings.jwt_refresh_secret),
        "tampered": tampered,
        "no exp": _forge(settings, {k: v for k, v in claims.items() if k != "exp"}),
        "other audience": _forge(settings, {**claims, "aud": "someone-else"}),
        "other issuer": _forge(settings, {**claims, "iss": "someone-else"}),
        "garbage": "not.a.token",
    }
    for name, token in forged.items():
        response = await _me(client, token)
        assert response.status_code == 401, name
        assert response.json()["code"] == "INVALID_TOKEN", name
    # A hand-made unsigned token for the OWNER of the app gets nowhere either.
    unsigned = (
        base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').decode().rstrip("=")
        + "."
        + payload.decode().rstrip("=")
        + "."
    )
    assert (
        await client.get("/admin/api/team", headers={"Authorization": f"Bearer {unsigned}"})
    ).status_code == 401


async def test_access_and_refresh_tokens_cannot_stand_in_for_each_other(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant, settings: Settings
) -> None:
    agent = await signed_in(runtime, client, tenant)
    assert (await _me(client, agent.refresh)).status_code == 401
    as_refresh = await _refresh(client, agent.access)
    assert as_refresh.status_code == 401
    # Even an access-shaped token signed with the refresh secret, or the reverse, is refused.
    refresh_claims = _claims(agent.refresh)
    swapped = _forge(settings, refresh_claims, key=settings.jwt_secret)
    assert (await _refresh(client, swapped)).status_code == 401
    assert (await _me(client, swapped)).status_code == 401
    # And the genuine refresh token still works afterwards.
    assert (await _refresh(client, agent.refresh)).status_code == 200


# --- refresh rotation ------------------------------------------------------------------------


async def test_refresh_rotates_and_a_replayed_token_ends_the_whole_sign_in(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant
) -> None:
    agent = await signed_in(runtime, client, tenant)
    first = await _refresh(client, agent.refresh)
    assert first.status_code == 200
    pair = first.json()
    assert pair["refresh_token"] != agent.refresh
    assert pair["access_token"] != agent.access
    second = await _refresh(client, pair["refresh_token"])
    assert second.status_code == 200
    latest = second.json()
    assert (await _me(client, latest["access_token"])).status_code == 200

    # The first refresh token, already spent, shows up again: someone copied it.
    replay = await _refresh(client, agent.refresh)
    assert replay.status_code == 401
    assert replay.json()["code"] == "REFRESH_TOKEN_REUSED"
    # Every token of that sign-in is dead, the legitimate holder's newest ones included.
    dead = await _refresh(client, latest["refresh_token"])
    assert (dead.status_code, dead.json()["code"]) == (401, "INVALID_REFRESH_TOKEN")
    me = await _me(client, latest["access_token"])
    assert (me.status_code, me.json()["code"]) == (401, "TOKEN_REVOKED")
    # Other sign-ins of the same person are untouched.
    other = await login(client, agent)
    assert (await _me(client, other.access)).status_code == 200


async def test_concurrent_refreshes_of_one_token_give_at_most_one_new_pair(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant
) -> None:
    for _ in range(3):
        agent = await signed_in(runtime, client, tenant)
        responses = await asyncio.gather(*(_refresh(client, agent.refresh) for _ in range(6)))
        codes = sorted(r.status_code for r in responses)
        assert codes == [200] + [401] * 5, codes


async def test_an_expired_refresh_token_is_refused(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant
) -> None:
    agent = await signed_in(runtime, client, tenant)
    async with runtime.db.tenant_session(tenant.id) as session:
        from sqlalchemy import text

        await session.execute(
            text(
                "UPDATE refresh_tokens SET expires_at = now() - interval '1 second' "
                "WHERE token_hash = :h"
            ),
            {"h": tokens.token_hash(agent.refresh)},
        )
    response = await _refresh(client, agent.refresh)
    assert (response.status_code, response.json()["code"]) == (401, "INVALID_REFRESH_TOKEN")


async def _age_sign_in(runtime: Runtime, tenant: Tenant, refresh_token: str, age: str) -> None:
    """Make the sign-in of `refresh_token` look as if it started `age` (an interval) ago."""
    from sqlalchemy import text

    claims = tokens.decode_refresh_token(runtime.settings, refresh_token)
    async with runtime.db.tenant_session(tenant.id) as session:
        await session.execute(
            text(
                "UPDATE staff_sessions SET created_at = now() - CAST(:age AS interval) "
                "WHERE id = :id"
            ),
            {"age": age, "id": claims.session_id},
        )


async def test_a_sign_in_cannot_be_refreshed_past_its_absolute_lifetime(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant
) -> None:
    assert runtime.settings.staff_session_max_age_seconds == 30 * 24 * 3600
    agent = await signed_in(runtime, client, tenant)
    # An hour before the end: refreshed, but the new refresh token lives only that hour.
    await _age_sign_in(runtime, tenant, agent.refresh, "29 days 23 hours")
    nearly = await _refresh(client, agent.refresh)
    assert nearly.status_code == 200, nearly.text
    assert 3500 <= nearly.json()["refresh_expires_in"] <= 3600
    # Past the end: refused with its own code, and the sign-in's access tokens end with it.
    pair = nearly.json()
    await _age_sign_in(runtime, tenant, pair["refresh_token"], "30 days 1 minute")
    expired = await _refresh(client, pair["refresh_token"])
    assert expired.status_code == 401
    assert expired.json()["code"] == "SIGN_IN_EXPIRED"
    assert "sign in again" in expired.json()["error"]
    me = await _me(client, pair["access_token"])
    assert (me.status_code, me.json()["code"]) == (401, "TOKEN_REVOKED")
    # Signing in again starts a new sign-in with its full lifetime.
    assert (await _me(client, (await login(client, agent)).access)).status_code == 200


async def test_malformed_refresh_is_a_400_and_nonsense_a_401(client: httpx.AsyncClient) -> None:
    assert (await client.post("/admin/refresh", json={})).status_code == 400
    assert (await client.post("/admin/refresh", json={"refresh_token": ""})).status_code == 400
    assert (await _refresh(client, "nonsense")).status_code == 401


# --- logout ----------------------------------------------------------------------------------


async def test_logout_ends_the_sign_in_for_access_and_refresh_tokens(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant
) -> None:
    agent = await signed_in(runtime, client, tenant)
    other_device = await login(client, type(agent)(**{**agent.__dict__, "tokens": {}}))
    response = await client.post("/admin/logout", headers=agent.auth())
    assert response.status_code == 204
    assert (await _me(client, agent.access)).status_code == 401
    assert (await _refresh(client, agent.refresh)).status_code == 401
    # Logging out twice is fine; the other sign-in lives on.
    assert (await client.post("/admin/logout", headers=agent.auth())).status_code == 204
    assert (await _me(client, other_device.access)).status_code == 200

    # With only the refresh token (the access token has expired, say).
    by_refresh = await client.post("/admin/logout", json={"refresh_token": other_device.refresh})
    assert by_refresh.status_code == 204
    assert (await _me(client, other_device.access)).status_code == 401
    assert (await _refresh(client, other_device.refresh)).status_code == 401


async def test_logout_needs_a_credential(client: httpx.AsyncClient) -> None:
    assert (await client.post("/admin/logout")).status_code == 401
    bad = await client.post("/admin/logout", headers={"Authorization": "Bearer nonsense"})
    assert bad.status_code == 401


# --- changes of role and standing --------------------------------------------------------------


async def test_a_role_change_applies_at_once_and_refresh_carries_the_new_role(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant
) -> None:
    owner = await signed_in(runtime, client, tenant, "OWNER")
    admin = await signed_in(runtime, client, tenant, "ADMIN")
    assert (await client.get("/admin/api/team", headers=admin.auth())).status_code == 200

    demoted = await client.patch(
        f"/admin/api/team/{admin.id}", headers=owner.auth(), json={"role": "AGENT"}
    )
    assert demoted.status_code == 200
    assert demoted.json()["role"] == "AGENT"

    stale = await client.get("/admin/api/team", headers=admin.auth())
    assert (stale.status_code, stale.json()["code"]) == (401, "TOKEN_STALE")
    renewed = await _refresh(client, admin.refresh)
    assert renewed.status_code == 200
    assert renewed.json()["staff"]["role"] == "AGENT"
    headers = {"Authorization": f"Bearer {renewed.json()['access_token']}"}
    refused = await client.get("/admin/api/team", headers=headers)
    assert refused.status_code == 403
    assert refused.json() == {
        "error": refused.json()["error"],
        "code": "PERMISSION_DENIED",
        "required": "team:read",
        "role": "AGENT",
    }
    assert (await client.get("/admin/api/conversations", headers=headers)).status_code == 200


async def test_deactivation_stops_access_and_refresh_at_once(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant
) -> None:
    owner = await signed_in(runtime, client, tenant, "OWNER")
    agent = await signed_in(runtime, client, tenant, "AGENT")
    assert (await client.get("/admin/api/conversations", headers=agent.auth())).status_code == 200
    assert (
        await client.delete(f"/admin/api/team/{agent.id}", headers=owner.auth())
    ).status_code == 204
    assert (await client.get("/admin/api/conversations", headers=agent.auth())).status_code == 401
    assert (await _refresh(client, agent.refresh)).status_code == 401


async def test_staff_changes_are_published_for_other_processes(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant
) -> None:
    owner = await signed_in(runtime, client, tenant, "OWNER")
    agent = await signed_in(runtime, client, tenant, "AGENT")
    async with runtime.redis.pubsub() as pubsub:
        await pubsub.subscribe(runtime.settings.redis_prefix + "staff-changed")
        await pubsub.get_message(timeout=1)  # the subscribe confirmation
        await client.patch(
            f"/admin/api/team/{agent.id}", headers=owner.auth(), json={"role": "ADMIN"}
        )
        await client.delete(f"/admin/api/team/{agent.id}", headers=owner.auth())
        await client.post("/admin/logout", headers=owner.auth())
        notes = []
        while len(notes) < 3:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=2)
            assert message is not None, notes
            notes.append(json.loads(message["data"]))
    assert [(n["staff_id"], n["reason"]) for n in notes] == [
        (str(agent.id), "role_changed"),
        (str(agent.id), "deactivated"),
        (str(owner.id), "session_revoked"),
    ]
    assert all(n["app_id"] == str(tenant.id) for n in notes)


async def test_verify_access_token_is_usable_without_http(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant
) -> None:
    from replyhq.accounts.service import verify_access_token
    from replyhq.errors import Unauthorized

    agent = await signed_in(runtime, client, tenant, "AGENT")
    principal = await verify_access_token(runtime, agent.access)
    assert (principal.app_id, principal.staff_id, principal.role) == (tenant.id, agent.id, "AGENT")
    with pytest.raises(Unauthorized):
        await verify_access_token(runtime, agent.refresh)


async def test_a_stale_token_can_still_end_its_own_sign_in(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant
) -> None:
    owner = await signed_in(runtime, client, tenant, "OWNER")
    admin = await signed_in(runtime, client, tenant, "ADMIN")
    await client.patch(f"/admin/api/team/{admin.id}", headers=owner.auth(), json={"role": "AGENT"})
    assert (await _me(client, admin.access)).json()["code"] == "TOKEN_STALE"
    assert (await client.post("/admin/logout", headers=admin.auth())).status_code == 204
    assert (await _refresh(client, admin.refresh)).status_code == 401


async def test_token_checks_are_remembered_until_any_process_announces_a_change(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant, settings: Settings
) -> None:
    from asgi_lifespan import LifespanManager
    from sqlalchemy import event

    from replyhq.app import create_app

    owner = await signed_in(runtime, client, tenant, "OWNER")
    agent = await signed_in(runtime, client, tenant, "AGENT")
    other = create_app(settings)  # a second server process, as far as caches go
    async with LifespanManager(other):
        other_runtime: Runtime = other.state.runtime
        transport = httpx.ASGITransport(app=other)
        async with httpx.AsyncClient(transport=transport, base_url="http://other") as elsewhere:
            for _ in range(50):  # until its listener is subscribed
                if other_runtime.staff._listening:
                    break
                await asyncio.sleep(0.02)
            assert (await _me(elsewhere, agent.access)).status_code == 200
            seen: list[str] = []
            engine = other_runtime.db.engine.sync_engine
            listener = lambda *args: seen.append(args[2])  # noqa: E731
            event.listen(engine, "before_cursor_execute", listener)
            try:
                assert (await _me(elsewhere, agent.access)).status_code == 200
            finally:
                event.remove(engine, "before_cursor_execute", listener)
            assert not any("staff_sessions" in s for s in seen), seen  # answered from memory

            removed = await client.delete(f"/admin/api/team/{agent.id}", headers=owner.auth())
            assert removed.status_code == 204
            # This process forgot at once; the other one as soon as it hears the note.
            assert (await _me(client, agent.access)).status_code == 401
            for _ in range(100):
                if (await _me(elsewhere, agent.access)).status_code == 401:
                    break
                await asyncio.sleep(0.02)
            else:
                pytest.fail("the other process still accepts a deactivated member's token")
