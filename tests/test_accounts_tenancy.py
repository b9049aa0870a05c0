"""Invariant 1 for the accounts tables and the admin API: one app never sees another's staff,
sessions, tokens, invitations or conversations, whatever the query or credential."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from replyhq.db import Database
from replyhq.runtime import Runtime
from tests.conftest import MakeTenant, Tenant, identify, start_conversation
from tests.staff import Staff, secret, signed_in

ACCOUNT_TABLES = [
    "staff_users",
    "staff_sessions",
    "refresh_tokens",
    "staff_invites",
    "staff_tokens",
]

Seeded = tuple[Tenant, Tenant, dict[str, Staff], dict[str, Staff], dict[str, object]]


async def _seed(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant
) -> tuple[dict[str, Staff], dict[str, object]]:
    owner = await signed_in(runtime, client, tenant, "OWNER")
    agent = await signed_in(runtime, client, tenant, "AGENT")
    invite = await client.post(
        "/admin/api/team/invites", headers=owner.auth(), json={"email": "new@example.com"}
    )
    assert invite.status_code == 201, invite.text
    moving = await client.post(  # a pending e-mail change: a staff token
        "/admin/me/email",
        headers=agent.auth(),
        json={"email": f"moved-{uuid.uuid4().hex[:6]}@example.com", "password": agent.password},
    )
    assert moving.status_code == 202, moving.text
    await identify(client, tenant, "device-a", user_id="u1")
    conversation = await start_conversation(client, tenant, "device-a", body="secret plans")
    return {"owner": owner, "agent": agent}, {**conversation, "invite_id": invite.json()["id"]}


@pytest.fixture
async def seeded(client: httpx.AsyncClient, runtime: Runtime, make_tenant: MakeTenant) -> Seeded:
    a, b = await make_tenant("A"), await make_tenant("B")
    staff_a, conversation_a = await _seed(client, runtime, a)
    staff_b, _ = await _seed(client, runtime, b)
    return a, b, staff_a, staff_b, conversation_a


async def test_rls_is_forced_on_every_accounts_table(db: Database) -> None:
    async with db.engine.connect() as connection:
        rows = (
            await connection.execute(
                text(
                    "SELECT relname FROM pg_class WHERE relname = ANY(:t) "
                    "AND relrowsecurity AND relforcerowsecurity"
                ),
                {"t": ACCOUNT_TABLES},
            )
        ).scalars()
        assert sorted(rows) == sorted(ACCOUNT_TABLES)


@pytest.mark.parametrize("table", ACCOUNT_TABLES)
async def test_unfiltered_select_sees_only_the_bound_tenant(
    db: Database, seeded: Seeded, table: str
) -> None:
    a, b, *_ = seeded
    async with db.tenant_session(a.id) as session:
        owners = set((await session.execute(text(f"SELECT app_id FROM {table}"))).scalars())
    assert owners == {a.id}
    async with db.tenant_session(b.id) as session:
        owners = set((await session.execute(text(f"SELECT app_id FROM {table}"))).scalars())
    assert owners == {b.id}
    async with db.engine.connect() as connection:  # nothing bound at all
        count = (await connection.execute(text(f"SELECT count(*) FROM {table}"))).scalar()
    assert count == 0


async def test_cannot_move_a_staff_user_to_another_tenant(db: Database, seeded: Seeded) -> None:
    a, b, staff_a, _, _ = seeded
    with pytest.raises(DBAPIError, match="row-level security"):
        async with db.tenant_session(a.id) as session:
            await session.execute(
                text("UPDATE staff_users SET app_id = :b WHERE id = :s"),
                {"b": b.id, "s": staff_a["owner"].id},
            )
    async with db.tenant_session(b.id) as session:
        updated = await session.execute(
            text("UPDATE staff_users SET role = 'AGENT' WHERE id = :s"),
            {"s": staff_a["owner"].id},
        )
        assert updated.rowcount == 0  # type: ignore[attr-defined]


async def test_admin_routes_answer_404_for_another_apps_ids(
    client: httpx.AsyncClient, seeded: Seeded
) -> None:
    _, b, staff_a, staff_b, conversation_a = seeded
    cid, invite_id = conversation_a["id"], conversation_a["invite_id"]
    member = staff_a["agent"].id
    for headers in (staff_b["owner"].auth(), secret(b)):
        calls = [
            client.get(f"/admin/api/conversations/{cid}", headers=headers),
            client.get(f"/admin/api/conversations/{cid}/messages", headers=headers),
            client.post(
                f"/admin/api/conversations/{cid}/messages",
                headers=headers,
                json={"body": "intrusion", "client_msg_id": uuid.uuid4().hex},
            ),
            client.patch(
                f"/admin/api/conversations/{cid}", headers=headers, json={"status": "closed"}
            ),
            client.post(f"/admin/api/conversations/{cid}/read", headers=headers, json={"seq": 1}),
            client.patch(f"/admin/api/team/{member}", headers=headers, json={"role": "ADMIN"}),
            client.delete(f"/admin/api/team/{member}", headers=headers),
            client.delete(f"/admin/api/team/invites/{invite_id}", headers=headers),
        ]
        for call in calls:
            response = await call
            assert response.status_code == 404, response.text
        inbox = await client.get("/admin/api/conversations", headers=headers)
        assert cid not in {c["id"] for c in inbox.json()["items"]}
        team = await client.get("/admin/api/team", headers=headers)
        assert {m["app_id"] for m in team.json()} == {str(b.id)}
    # Nothing of A's changed.
    owner_a = staff_a["owner"]
    detail = await client.get(f"/admin/api/conversations/{cid}", headers=owner_a.auth())
    assert detail.json()["status"] == "open"
    assert detail.json()["last_seq"] == 1
    team_a = await client.get("/admin/api/team", headers=owner_a.auth())
    assert {(m["id"], m["role"], m["active"]) for m in team_a.json()} >= {
        (str(member), "AGENT", True)
    }


async def test_another_apps_staff_cannot_be_assigned(
    client: httpx.AsyncClient, seeded: Seeded
) -> None:
    _, _, staff_a, staff_b, conversation_a = seeded
    response = await client.patch(
        f"/admin/api/conversations/{conversation_a['id']}",
        headers=staff_a["owner"].auth(),
        json={"assignee_id": str(staff_b["agent"].id)},
    )
    assert response.status_code == 400
    assert response.json()["code"] == "INVALID_ASSIGNEE"


async def test_keys_cannot_cross_apps(client: httpx.AsyncClient, seeded: Seeded) -> None:
    a, b, *_ = seeded
    attempts = [
        {"X-App-Id": str(b.id), "X-Api-Key": a.secret_key},  # A's secret key naming B
        {"X-App-Id": str(a.id), "X-Api-Key": a.sdk_key},  # the SDK key is not for /admin/api
        {"X-App-Id": str(a.id), "X-Api-Key": a.identity_secret},
        {"X-App-Id": str(a.id)},
    ]
    for headers in attempts:
        response = await client.get("/admin/api/conversations", headers=headers)
        assert response.status_code == 401, headers


async def test_an_access_token_names_its_own_app_only(
    client: httpx.AsyncClient, seeded: Seeded
) -> None:
    _, b, staff_a, _, _ = seeded
    # The app comes from the signed token; headers cannot redirect it to another app.
    headers = {**staff_a["owner"].auth(), "X-App-Id": str(b.id)}
    team = await client.get("/admin/api/team", headers=headers)
    assert team.status_code == 200
    assert {m["app_id"] for m in team.json()} == {str(staff_a["owner"].app_id)}
