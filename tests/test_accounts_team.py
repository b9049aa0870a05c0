"""The team: invitations (single use, expiring, bound to their app), role changes with the OWNER
rules, deactivation, and bad input that changes nothing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable

import httpx
from sqlalchemy import text

from replyhq.runtime import Runtime
from tests.conftest import MakeTenant, Tenant
from tests.staff import Staff, add_staff, secret, signed_in

NEW_PASSWORD = "a fine new password"


async def _invite(
    client: httpx.AsyncClient, by: Staff | dict[str, str], email: str, role: str = "AGENT"
) -> httpx.Response:
    headers = by.auth() if isinstance(by, Staff) else by
    return await client.post(
        "/admin/api/team/invites", headers=headers, json={"email": email, "role": role}
    )


async def _accept(
    client: httpx.AsyncClient, token: str, password: str = NEW_PASSWORD, name: str = "New"
) -> httpx.Response:
    return await client.post(
        "/admin/invites/accept", json={"token": token, "password": password, "name": name}
    )


async def _team(client: httpx.AsyncClient, owner: Staff) -> dict[str, dict[str, object]]:
    response = await client.get("/admin/api/team", headers=owner.auth())
    assert response.status_code == 200
    return {m["email"]: m for m in response.json()}


# --- invitations --------------------------------------------------------------------------------


async def test_an_invitation_is_accepted_once_and_signs_the_new_member_in(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant
) -> None:
    owner = await signed_in(runtime, client, tenant, "OWNER")
    email = f"new-{uuid.uuid4().hex[:6]}@example.com"
    invited = await _invite(client, owner, email.upper(), "ADMIN")
    assert invited.status_code == 201, invited.text
    body = invited.json()
    assert body["email"] == email
    assert body["role"] == "ADMIN"
    assert body["invited_by"] == str(owner.id)
    token = body["token"]
    assert body["invite_url"].endswith(f"/invite#token={token}")  # in the fragment, not the query
    pending = await client.get("/admin/api/team/invites", headers=owner.auth())
    assert [i["email"] for i in pending.json()] == [email]
    assert "token" not in pending.json()[0]

    accepted = await _accept(client, token, name="Grace")
    assert accepted.status_code == 201, accepted.text
    session = accepted.json()
    assert session["staff"]["email"] == email
    assert session["staff"]["role"] == "ADMIN"
    assert session["staff"]["app_id"] == str(tenant.id)
    me = await client.get(
        "/admin/me", headers={"Authorization": f"Bearer {session['access_token']}"}
    )
    assert me.json()["staff"]["name"] == "Grace"
    login = await client.post(
        "/admin/login", json={"email": email, "password": "a fine new password"}
    )
    assert login.status_code == 200

    again = await _accept(client, token, password="another password!")
    assert (again.status_code, again.json()["code"]) == (400, "INVITE_INVALID")
    assert (await client.get("/admin/api/team/invites", headers=owner.auth())).json() == []


async def test_expired_revoked_and_replaced_invitations_do_not_work(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant
) -> None:
    owner = await signed_in(runtime, client, tenant, "OWNER")
    expired = (await _invite(client, owner, "late@example.com")).json()
    async with runtime.db.tenant_session(tenant.id) as session:
        await session.execute(
            text("UPDATE staff_invites SET expires_at = now() - interval '1 second' WHERE id = :i"),
            {"i": expired["id"]},
        )
    assert (await _accept(client, expired["token"])).json()["code"] == "INVITE_INVALID"

    revoked = (await _invite(client, owner, "revoked@example.com")).json()
    gone = await client.delete(f"/admin/api/team/invites/{revoked['id']}", headers=owner.auth())
    assert gone.status_code == 204
    assert (await _accept(client, revoked["token"])).status_code == 400

    first = (await _invite(client, owner, "twice@example.com")).json()
    second = (await _invite(client, owner, "twice@example.com", "ADMIN")).json()
    assert (await _accept(client, first["token"])).status_code == 400
    replaced = await _accept(client, second["token"])
    assert replaced.status_code == 201
    assert replaced.json()["staff"]["role"] == "ADMIN"
    assert set(await _team(client, owner)) == {owner.email, "twice@example.com"}


async def test_an_invitation_is_bound_to_its_app(
    client: httpx.AsyncClient, runtime: Runtime, make_tenant: MakeTenant
) -> None:
    a, b = await make_tenant("A"), await make_tenant("B")
    owner_a = await signed_in(runtime, client, a, "OWNER")
    owner_b = await signed_in(runtime, client, b, "OWNER")
    token = (await _invite(client, owner_a, "bound@example.com", "ADMIN")).json()["token"]
    # Point the token at app B: it no longer matches anything, in either app.
    forged = token.replace(a.id.hex, b.id.hex)
    assert forged != token
    for attempt in (forged, token[:-1] + ("A" if token[-1] != "A" else "B"), "rhq_inv_nonsense"):
        response = await _accept(client, attempt)
        assert (response.status_code, response.json()["code"]) == (400, "INVITE_INVALID")
    assert "bound@example.com" not in await _team(client, owner_b)
    assert "bound@example.com" not in await _team(client, owner_a)
    # The genuine token still joins A, and only A.
    assert (await _accept(client, token)).json()["staff"]["app_id"] == str(a.id)
    assert "bound@example.com" not in await _team(client, owner_b)


async def test_bad_input_on_accept_changes_nothing(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant
) -> None:
    owner = await signed_in(runtime, client, tenant, "OWNER")
    token = (await _invite(client, owner, "careful@example.com")).json()["token"]
    bad = [
        {"token": token, "password": "short", "name": "C"},
        {"token": token, "password": "é" * 40, "name": "C"},  # 80 bytes: over bcrypt's 72
        {"token": token, "password": "long enough", "name": ""},
        {"token": token, "password": "long enough"},
        {"token": token, "password": "long enough", "name": "C", "role": "OWNER"},
    ]
    for body in bad:
        response = await client.post("/admin/invites/accept", json=body)
        assert response.status_code == 400, body
        assert response.json()["code"] == "VALIDATION_ERROR"
    assert "careful@example.com" not in await _team(client, owner)
    assert (await _accept(client, token)).status_code == 201  # the invitation is still good


async def test_an_invitation_to_something_that_is_not_one_address_is_refused(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant
) -> None:
    owner = await signed_in(runtime, client, tenant, "OWNER")
    for email in ("a@x.io,b@y.io", "a;b@x.io", "Ann <a@x.io>", "a\x1f@x.io"):
        response = await _invite(client, owner, email)
        assert response.status_code == 400, (email, response.text)
        assert response.json()["code"] == "VALIDATION_ERROR"
    assert (await _invite(client, owner, "plain@example.com")).status_code == 201


async def test_invitations_follow_the_owner_rules(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant
) -> None:
    owner = await signed_in(runtime, client, tenant, "OWNER")
    admin = await signed_in(runtime, client, tenant, "ADMIN")
    refused = await _invite(client, admin, "boss@example.com", "OWNER")
    assert refused.status_code == 403
    assert (refused.json()["required"], refused.json()["role"]) == ("team:owners", "ADMIN")
    assert (await _invite(client, secret(tenant), "boss@example.com", "OWNER")).status_code == 403
    assert (await _invite(client, admin, "helper@example.com", "ADMIN")).status_code == 201
    assert (await _invite(client, secret(tenant), "bot@example.com")).json()["invited_by"] is None
    assert (await _invite(client, owner, "boss@example.com", "OWNER")).status_code == 201
    member = await _invite(client, owner, admin.email)
    assert (member.status_code, member.json()["code"]) == (409, "STAFF_EXISTS")
    for body in ({"email": "nope"}, {"email": "x@y.z", "role": "KING"}, {"role": "AGENT"}):
        response = await client.post("/admin/api/team/invites", headers=owner.auth(), json=body)
        assert response.status_code == 400, body
    invites = (await client.get("/admin/api/team/invites", headers=owner.auth())).json()
    assert {i["email"] for i in invites} == {
        "helper@example.com",
        "bot@example.com",
        "boss@example.com",
    }


async def test_a_former_member_can_be_invited_back(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant
) -> None:
    owner = await signed_in(runtime, client, tenant, "OWNER")
    agent = await add_staff(runtime, tenant, "AGENT")
    assert (
        await client.delete(f"/admin/api/team/{agent.id}", headers=owner.auth())
    ).status_code == 204
    token = (await _invite(client, owner, agent.email, "ADMIN")).json()["token"]
    back = await _accept(client, token, password="my new password")
    assert back.status_code == 201
    assert back.json()["staff"]["id"] == str(agent.id)
    assert back.json()["staff"]["role"] == "ADMIN"
    old = await client.post("/admin/login", json={"email": agent.email, "password": agent.password})
    assert old.status_code == 401
    new = await client.post(
        "/admin/login", json={"email": agent.email, "password": "my new password"}
    )
    assert new.status_code == 200


# --- roles --------------------------------------------------------------------------------------


async def test_only_an_owner_makes_or_unmakes_owners(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant
) -> None:
    owner = await signed_in(runtime, client, tenant, "OWNER")
    admin = await signed_in(runtime, client, tenant, "ADMIN")
    agent = await add_staff(runtime, tenant, "AGENT")

    def patch(by: Staff | dict[str, str], who: object, role: str) -> object:
        headers = by.auth() if isinstance(by, Staff) else by
        return client.patch(f"/admin/api/team/{who}", headers=headers, json={"role": role})

    for by in (admin, secret(tenant)):
        promote = await patch(by, agent.id, "OWNER")  # type: ignore[misc]
        assert promote.status_code == 403
        assert promote.json()["required"] == "team:owners"
        demote = await patch(by, owner.id, "AGENT")  # type: ignore[misc]
        assert demote.status_code == 403
        remove = await client.delete(
            f"/admin/api/team/{owner.id}", headers=by.auth() if isinstance(by, Staff) else by
        )
        assert remove.status_code == 403
    # An ADMIN manages everyone else.
    assert (await patch(admin, agent.id, "ADMIN")).json()["role"] == "ADMIN"  # type: ignore[attr-defined]
    assert (await patch(admin, agent.id, "AGENT")).json()["role"] == "AGENT"  # type: ignore[attr-defined]
    # The OWNER may promote, and then step down since another OWNER remains.
    assert (await patch(owner, admin.id, "OWNER")).status_code == 200  # type: ignore[attr-defined]
    assert (await patch(owner, owner.id, "ADMIN")).status_code == 200  # type: ignore[attr-defined]
    # Both tokens are stale now (their roles changed); the secret key reads the team.
    assert (await client.get("/admin/api/team", headers=admin.auth())).status_code == 401
    team = (await client.get("/admin/api/team", headers=secret(tenant))).json()
    roles = {m["email"]: m["role"] for m in team}
    assert roles == {owner.email: "ADMIN", admin.email: "OWNER", agent.email: "AGENT"}


async def test_the_last_owner_stays(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant
) -> None:
    owner = await signed_in(runtime, client, tenant, "OWNER")
    step_down = await client.patch(
        f"/admin/api/team/{owner.id}", headers=owner.auth(), json={"role": "ADMIN"}
    )
    assert (step_down.status_code, step_down.json()["code"]) == (409, "LAST_OWNER")
    leave = await client.delete(f"/admin/api/team/{owner.id}", headers=owner.auth())
    assert (leave.status_code, leave.json()["code"]) == (409, "LAST_OWNER")
    assert (await _team(client, owner))[owner.email]["role"] == "OWNER"


async def test_two_owners_demoting_each_other_at_once_leave_one_owner(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant
) -> None:
    for _ in range(3):
        first = await signed_in(runtime, client, tenant, "OWNER")
        second = await signed_in(runtime, client, tenant, "OWNER")
        others = [
            m
            for m in (await _team(client, first)).values()
            if m["role"] == "OWNER" and m["id"] not in (str(first.id), str(second.id))
        ]
        for other in others:  # earlier rounds' owners step aside first
            await client.delete(f"/admin/api/team/{other['id']}", headers=first.auth())
        responses = await asyncio.gather(
            client.patch(
                f"/admin/api/team/{second.id}", headers=first.auth(), json={"role": "AGENT"}
            ),
            client.delete(f"/admin/api/team/{first.id}", headers=second.auth()),
        )
        assert sorted(r.status_code for r in responses) in (
            [200, 409],
            [204, 409],
            [401, 409],
            [200, 401],
            [204, 401],
        )
        async with runtime.db.tenant_session(tenant.id) as session:
            owners = (
                await session.execute(
                    text("SELECT count(*) FROM staff_users WHERE role = 'OWNER' AND active")
                )
            ).scalar()
        assert owners == 1


async def test_deactivation_and_bad_input(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant
) -> None:
    owner = await signed_in(runtime, client, tenant, "OWNER")
    agent = await add_staff(runtime, tenant, "AGENT")
    for body in ({"role": "KING"}, {}, {"role": "AGENT", "email": "x@y.z"}, {"role": None}):
        response = await client.patch(
            f"/admin/api/team/{agent.id}", headers=owner.auth(), json=body
        )
        assert response.status_code == 400, body
    assert (
        await client.patch(
            "/admin/api/team/not-a-uuid", headers=owner.auth(), json={"role": "ADMIN"}
        )
    ).status_code == 400
    missing = await client.delete(f"/admin/api/team/{uuid.uuid4()}", headers=owner.auth())
    assert (missing.status_code, missing.json()["code"]) == (404, "STAFF_NOT_FOUND")
    unchanged = (await _team(client, owner))[agent.email]
    assert (unchanged["role"], unchanged["active"]) == ("AGENT", True)
    assert (
        await client.delete(f"/admin/api/team/{agent.id}", headers=owner.auth())
    ).status_code == 204
    assert (
        await client.delete(f"/admin/api/team/{agent.id}", headers=owner.auth())
    ).status_code == 204
    listed = (await _team(client, owner))[agent.email]
    assert (listed["active"], listed["role"]) == (False, "AGENT")


async def test_a_deactivated_member_is_reactivated_and_signs_in_again(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant
) -> None:
    owner = await signed_in(runtime, client, tenant, "OWNER")
    admin = await signed_in(runtime, client, tenant, "ADMIN")
    agent = await signed_in(runtime, client, tenant, "AGENT")
    member = await add_staff(runtime, tenant, "AGENT")
    other_owner = await add_staff(runtime, tenant, "OWNER")
    for gone in (member, other_owner):
        assert (
            await client.delete(f"/admin/api/team/{gone.id}", headers=owner.auth())
        ).status_code == 204
    credentials = {"email": member.email, "password": member.password}
    assert (await client.post("/admin/login", json=credentials)).status_code == 401

    def reactivate(staff_id: object, by: Staff) -> Awaitable[httpx.Response]:
        return client.post(f"/admin/api/team/{staff_id}/reactivate", headers=by.auth())

    refused = await reactivate(member.id, agent)
    assert (refused.status_code, refused.json()["required"]) == (403, "team:write")
    owners_only = await reactivate(other_owner.id, admin)
    assert (owners_only.status_code, owners_only.json()["required"]) == (403, "team:owners")
    missing = await reactivate(uuid.uuid4(), admin)
    assert (missing.status_code, missing.json()["code"]) == (404, "STAFF_NOT_FOUND")
    assert (await reactivate("not-a-uuid", admin)).status_code == 400
    team = await _team(client, owner)
    assert (team[member.email]["active"], team[other_owner.email]["active"]) == (False, False)

    back = await reactivate(member.id, admin)
    assert back.status_code == 200
    assert (back.json()["active"], back.json()["role"]) == (True, "AGENT")
    assert (await reactivate(member.id, admin)).json()["active"] is True  # idempotent
    assert (await client.post("/admin/login", json=credentials)).status_code == 200
    assert (await reactivate(other_owner.id, owner)).json()["active"] is True
    assert (await _team(client, owner))[other_owner.email]["active"] is True
