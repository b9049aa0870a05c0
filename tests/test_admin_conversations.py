"""The agents' conversation API: the inbox (filters, pagination, per-agent unread counts, a fixed
number of queries), detail, history, replies with the SDK's guarantees, assign/close/reopen and
marking read."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
from pydantic import TypeAdapter

from replyhq.messaging import summaries
from replyhq.messaging.schemas import InboxConversation, InboxPage
from replyhq.messaging.service import Participant
from replyhq.runtime import Runtime
from tests.conftest import MakeTenant, Tenant, identify, start_conversation
from tests.driver import sent_statements
from tests.staff import add_staff, secret, seed_conversations, signed_in

BASE = "/admin/api/conversations"


@contextlib.contextmanager
def statements() -> Iterator[list[str]]:
    """Every SQL statement sent to PostgreSQL while the block runs (seen at the driver, so that
    those run without a SQLAlchemy session count too)."""
    with sent_statements() as sent:
        seen: list[str] = []
        yield seen
        seen.extend(statement for statement, _ in sent)


async def _user_says(
    client: httpx.AsyncClient, tenant: Tenant, cid: object, body: str, device: str = "device-1"
) -> None:
    response = await client.post(
        f"/v1/conversations/{cid}/messages",
        headers=tenant.sdk(device),
        json={"body": body, "client_msg_id": uuid.uuid4().hex},
    )
    assert response.status_code == 201


# --- the inbox ---------------------------------------------------------------------------------


async def test_the_inbox_shows_user_last_message_and_each_agents_unread_count(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant
) -> None:
    alice = await signed_in(runtime, client, tenant, "AGENT", name="Alice")
    bob = await signed_in(runtime, client, tenant, "AGENT", name="Bob")
    await identify(client, tenant, "phone", user_id="cust-1", name="Carol", email="c@x.io")
    conversation = await start_conversation(client, tenant, "phone", body="Help me")
    cid = conversation["id"]
    await _user_says(client, tenant, cid, "Anyone?", "phone")

    page = (await client.get(BASE, headers=alice.auth())).json()
    (item,) = [i for i in page["items"] if i["id"] == cid]
    assert item["user"] == {
        "id": item["end_user_id"],
        "user_id": "cust-1",
        "name": "Carol",
        "email": "c@x.io",
        "anonymous": False,
        "verified": False,
    }
    assert item["last_message"]["body"] == "Anyone?"
    assert item["last_message"]["seq"] == 2
    assert item["unread_count"] == 2
    assert page["next_cursor"] is None

    read = await client.post(f"{BASE}/{cid}/read", headers=alice.auth(), json={"seq": 2})
    assert read.status_code == 204
    reply = await client.post(
        f"{BASE}/{cid}/messages",
        headers=alice.auth(),
        json={"body": "**Hi** Carol", "client_msg_id": "r1"},
    )
    assert reply.status_code == 201
    await _user_says(client, tenant, cid, "Thanks", "phone")

    mine = (await client.get(f"{BASE}/{cid}", headers=alice.auth())).json()
    theirs = (await client.get(f"{BASE}/{cid}", headers=bob.auth())).json()
    assert (mine["unread_count"], theirs["unread_count"]) == (1, 3)  # agent replies don't count
    assert mine["last_message"]["body"] == "Thanks"
    assert mine["user"]["name"] == "Carol"

    # The end user sees the agent's reply, authored and rendered safely.
    history = await client.get(f"/v1/conversations/{cid}/messages", headers=tenant.sdk("phone"))
    agent_message = history.json()["items"][2]
    assert agent_message["sender"] == "agent"
    assert agent_message["author"] == {"type": "agent", "id": str(alice.id), "name": "Alice"}
    assert agent_message["body_html"] == "<p><strong>Hi</strong> Carol</p>"


async def test_inbox_filters_by_status_and_assignee(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant
) -> None:
    me = await signed_in(runtime, client, tenant, "ADMIN")
    colleague = await add_staff(runtime, tenant, "AGENT")
    ids = []
    for n in range(4):
        await identify(client, tenant, f"d{n}")
        ids.append((await start_conversation(client, tenant, f"d{n}"))["id"])
    patches = [
        {"assignee_id": str(me.id)},
        {"assignee_id": str(colleague.id)},
        {"status": "closed", "assignee_id": str(me.id)},
        {},
    ]
    for cid, patch in zip(ids, patches, strict=True):
        if patch:
            response = await client.patch(f"{BASE}/{cid}", headers=me.auth(), json=patch)
            assert response.status_code == 200, response.text

    async def listed(**params: str) -> set[str]:
        response = await client.get(BASE, headers=me.auth(), params=params)
        assert response.status_code == 200, response.text
        return {i["id"] for i in response.json()["items"]}

    assert await listed() == set(ids)
    assert await listed(status="open") == {ids[0], ids[1], ids[3]}
    assert await listed(status="closed") == {ids[2]}
    assert await listed(assignee="me") == {ids[0], ids[2]}
    assert await listed(assignee="me", status="open") == {ids[0]}
    assert await listed(assignee="none") == {ids[3]}
    assert await listed(assignee=str(colleague.id)) == {ids[1]}
    assert await listed(assignee=str(uuid.uuid4())) == set()
    for bad in (
        {"assignee": "someone"},
        {"status": "pending"},
        {"limit": "0"},
        {"limit": "101"},
        {"cursor": "%%%"},
    ):
        response = await client.get(BASE, headers=me.auth(), params=bad)
        assert response.status_code == 400, bad
    # The secret key has no "me".
    no_me = await client.get(BASE, headers=secret(tenant), params={"assignee": "me"})
    assert no_me.status_code == 400
    assert await listed(assignee="none") == {ids[3]}


async def test_cursor_pages_cover_every_conversation_once_newest_first(
    client: httpx.AsyncClient, runtime: Runtime, make_tenant: MakeTenant
) -> None:
    tenant = await make_tenant("Paged")
    await seed_conversations(runtime, tenant.id, 45)
    agent = await signed_in(runtime, client, tenant, "AGENT")
    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {"limit": "10", **({"cursor": cursor} if cursor else {})}
        page = (await client.get(BASE, headers=agent.auth(), params=params)).json()
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 45
    assert len({i["id"] for i in seen}) == 45
    stamps = [i["last_activity_at"] for i in seen]
    assert stamps == sorted(stamps, reverse=True)
    assert all(i["unread_count"] == 1 and i["last_message"]["sender"] == "user" for i in seen)


async def test_the_inbox_costs_the_same_queries_for_10_or_1000_conversations(
    client: httpx.AsyncClient, runtime: Runtime, make_tenant: MakeTenant
) -> None:
    counts: dict[tuple[int, object], int] = {}
    for size in (10, 1000):
        tenant = await make_tenant(f"Inbox {size}")
        await seed_conversations(runtime, tenant.id, size, messages_each=3)
        agent = await signed_in(runtime, client, tenant, "AGENT")
        for limit in ("first", 10, 100):
            with statements() as seen:
                response = await client.get(
                    BASE, headers=agent.auth(), params={"limit": 20 if limit == "first" else limit}
                )
            assert response.status_code == 200
            items = response.json()["items"]
            assert len(items) == min(size, 20 if limit == "first" else int(limit))
            assert all(i["user"]["name"] and i["last_message"]["seq"] == 3 for i in items)
            counts[(size, limit)] = len(seen)
        with statements() as seen:
            assert (await client.get(BASE, headers=secret(tenant))).status_code == 200
        counts[(size, "secret key")] = len(seen)
    # The page is one query after binding the tenant. The token's first use in this process
    # also reads the member (bind + 1 read); later uses are answered from memory.
    assert {counts[(s, "first")] for s in (10, 1000)} == {4}, counts
    assert {counts[(s, limit)] for s in (10, 1000) for limit in (10, 100)} == {2}, counts
    assert counts[(10, "secret key")] == counts[(1000, "secret key")] <= 4, counts


async def test_the_inbox_json_is_byte_for_byte_the_models_json(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant
) -> None:
    """The inbox routes write their JSON from the rows (summaries.inbox_json), not from models:
    every page and detail is the same bytes as the InboxPage / InboxConversation that
    summaries.inbox builds, serialised as FastAPI serialises a response_model."""
    me = await signed_in(runtime, client, tenant, "ADMIN", name='Zoë "Z" <Admin>')
    await seed_conversations(runtime, tenant.id, 7, messages_each=3)
    await identify(client, tenant, "named", user_id="cust-é", name="Zoë 😀", email="z@x.io")
    await identify(client, tenant, "anon")
    named = await start_conversation(client, tenant, "named", body='Quote " \\ \n\t\x01 <b>&amp;')
    await _user_says(client, tenant, named["id"], "ünïcödé \u2028 ✓", "named")
    read = await client.post(
        f"/v1/conversations/{named['id']}/read", headers=tenant.sdk("named"), json={"seq": 1}
    )
    assert read.status_code == 204
    empty = await client.post("/v1/conversations", headers=tenant.sdk("anon"), json={})
    assert empty.status_code == 201, empty.text
    await client.patch(f"{BASE}/{named['id']}", headers=me.auth(), json={"assignee_id": str(me.id)})
    closed = await start_conversation(client, tenant, "anon", body="bye")
    await client.patch(f"{BASE}/{closed['id']}", headers=me.auth(), json={"status": "closed"})
    await client.post(f"{BASE}/{closed['id']}/read", headers=me.auth(), json={"seq": 1})

    reader = Participant("agent", me.id, "x")
    pages = TypeAdapter(InboxPage)
    details = TypeAdapter(InboxConversation)
    checked = 0
    for params in ({}, {"limit": 3}, {"status": "open"}, {"assignee": "me"}, {"assignee": "none"}):
        cursor: str | None = None
        while True:
            query = {**params, **({"cursor": cursor} if cursor else {})}
            response = await client.get(BASE, headers=me.auth(), params=query)
            assert response.status_code == 200, response.text
            assert response.headers["content-type"] == "application/json"
            assignee = params.get("assignee")
            async with runtime.db.tenant_session(tenant.id) as session:
                model = await summaries.inbox(
                    session,
                    tenant.id,
                    reader,
                    status=params.get("status"),  # type: ignore[arg-type]
                    assignee_id=me.id if assignee == "me" else None,
                    unassigned=assignee == "none",
                    limit=int(params.get("limit", 20)),
                    cursor=cursor,
                )
            assert response.content == pages.dump_json(model, by_alias=True)
            checked += len(model.items)
            for item in model.items:
                detail = await client.get(f"{BASE}/{item.id}", headers=me.auth())
                assert detail.status_code == 200
                assert detail.content == details.dump_json(item, by_alias=True)
            cursor = model.next_cursor
            if cursor is None:
                break
    assert checked >= 20
    seen = {i["id"]: i for i in (await client.get(BASE, headers=me.auth())).json()["items"]}
    assert seen[named["id"]]["peer_read_seq"] == 2 and seen[named["id"]]["assignee_id"]
    assert seen[empty.json()["id"]]["last_message"] is None
    assert seen[empty.json()["id"]]["user"]["anonymous"] is True


# --- one conversation ---------------------------------------------------------------------------


async def test_history_by_seq_and_idempotent_agent_replies(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant
) -> None:
    agent = await signed_in(runtime, client, tenant, "AGENT")
    await identify(client, tenant)
    cid = (await start_conversation(client, tenant))["id"]

    async def reply(client_msg_id: str, body: str = "On it") -> httpx.Response:
        return await client.post(
            f"{BASE}/{cid}/messages",
            headers=agent.auth(),
            json={"body": body, "client_msg_id": client_msg_id},
        )

    responses = await asyncio.gather(*(reply(f"a-{n}") for n in range(10)), reply("a-0"))
    assert sorted(r.status_code for r in responses) == [200] + [201] * 10
    assert sorted(r.json()["seq"] for r in responses[:10]) == list(range(2, 12))
    assert responses[10].json()["id"] == responses[0].json()["id"]
    retry = await reply("a-3", body="different body, same id")
    assert (retry.status_code, retry.json()["body"]) == (200, "On it")

    after = await client.get(
        f"{BASE}/{cid}/messages", headers=agent.auth(), params={"after_seq": 8}
    )
    assert [m["seq"] for m in after.json()["items"]] == [9, 10, 11]
    before = await client.get(
        f"{BASE}/{cid}/messages", headers=agent.auth(), params={"before_seq": 5, "limit": 2}
    )
    assert [m["seq"] for m in before.json()["items"]] == [3, 4]
    assert before.json()["has_more"] is True
    for bad in ({"after_seq": "-1"}, {"limit": "1000"}, {"before_seq": "0"}):
        assert (
            await client.get(f"{BASE}/{cid}/messages", headers=agent.auth(), params=bad)
        ).status_code == 400
    for body in (
        {"body": "", "client_msg_id": "x"},
        {"body": "hi"},
        {"body": "hi", "client_msg_id": "bad id!"},
        {"body": "   ", "client_msg_id": "y"},
        {"body": "x" * 8001, "client_msg_id": "z"},
    ):
        response = await client.post(f"{BASE}/{cid}/messages", headers=agent.auth(), json=body)
        assert response.status_code == 400, body
    detail = await client.get(f"{BASE}/{cid}", headers=agent.auth())
    assert detail.json()["last_seq"] == 11  # nothing was added by the bad requests
    unknown = await client.get(f"{BASE}/{uuid.uuid4()}", headers=agent.auth())
    assert (unknown.status_code, unknown.json()["code"]) == (404, "CONVERSATION_NOT_FOUND")


async def test_the_secret_key_replies_as_the_app(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant
) -> None:
    await identify(client, tenant)
    cid = (await start_conversation(client, tenant))["id"]
    response = await client.post(
        f"{BASE}/{cid}/messages",
        headers=secret(tenant),
        json={"body": "Your order shipped", "client_msg_id": "ship-1"},
    )
    assert response.status_code == 201
    assert response.json()["sender"] == "agent"
    assert response.json()["author"] == {"type": "agent", "id": str(tenant.id), "name": "API"}
    inbox = (await client.get(BASE, headers=secret(tenant))).json()
    assert inbox["items"][0]["unread_count"] == 0  # replying reads what came before
    await _user_says(client, tenant, cid, "Great, thanks")
    inbox = (await client.get(BASE, headers=secret(tenant))).json()
    assert inbox["items"][0]["unread_count"] == 1


async def test_assign_close_reopen_and_bad_patches(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant
) -> None:
    owner = await signed_in(runtime, client, tenant, "OWNER")
    agent = await add_staff(runtime, tenant, "AGENT")
    gone = await add_staff(runtime, tenant, "AGENT")
    await client.delete(f"/admin/api/team/{gone.id}", headers=owner.auth())
    await identify(client, tenant)
    cid = (await start_conversation(client, tenant))["id"]

    async def patch(body: object) -> httpx.Response:
        return await client.patch(f"{BASE}/{cid}", headers=owner.auth(), json=body)

    assigned = await patch({"assignee_id": str(agent.id)})
    assert (assigned.status_code, assigned.json()["assignee_id"]) == (200, str(agent.id))
    closed = await patch({"status": "closed"})
    assert (closed.json()["status"], closed.json()["assignee_id"]) == ("closed", str(agent.id))
    both = await patch({"status": "open", "assignee_id": None})
    assert (both.json()["status"], both.json()["assignee_id"]) == ("open", None)

    bad_bodies = [
        {},
        {"status": "pending"},
        {"status": None},
        {"assignee_id": "not-a-uuid"},
        {"assignee_id": str(uuid.uuid4())},
        {"assignee_id": str(gone.id)},
        {"status": "closed", "assignee_id": str(gone.id)},  # all or nothing
        {"subject": "x"},
    ]
    for body in bad_bodies:
        response = await patch(body)
        assert response.status_code == 400, body
    after = (await client.get(f"{BASE}/{cid}", headers=owner.auth())).json()
    assert (after["status"], after["assignee_id"]) == ("open", None)

    # A closed conversation reopens when the end user writes again.
    await patch({"status": "closed"})
    await _user_says(client, tenant, cid, "One more thing")
    assert (await client.get(f"{BASE}/{cid}", headers=owner.auth())).json()["status"] == "open"


async def test_marking_read_is_per_agent_and_bounded(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant
) -> None:
    alice = await signed_in(runtime, client, tenant, "AGENT")
    await identify(client, tenant)
    cid = (await start_conversation(client, tenant))["id"]
    await _user_says(client, tenant, cid, "second")
    url = f"{BASE}/{cid}/read"
    past_end = await client.post(url, headers=alice.auth(), json={"seq": 3})
    assert (past_end.status_code, past_end.json()["code"]) == (400, "SEQ_OUT_OF_RANGE")
    assert (await client.post(url, headers=alice.auth(), json={"seq": -1})).status_code == 400
    assert (await client.post(url, headers=alice.auth(), json={})).status_code == 400
    assert (await client.get(f"{BASE}/{cid}", headers=alice.auth())).json()["unread_count"] == 2
    assert (await client.post(url, headers=alice.auth(), json={"seq": 2})).status_code == 204
    assert (await client.post(url, headers=alice.auth(), json={"seq": 1})).status_code == 204
    assert (await client.get(f"{BASE}/{cid}", headers=alice.auth())).json()["unread_count"] == 0
    # The end user's own view is not affected by the agent's reading.
    mine = await client.get(f"/v1/conversations/{cid}", headers=tenant.sdk())
    assert mine.json()["unread_count"] == 0


async def test_each_side_sees_how_far_the_other_has_read(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant
) -> None:
    """`peer_read_seq` is what a reloaded dashboard or messenger shows as "Seen"."""
    alice = await signed_in(runtime, client, tenant, "AGENT")
    bob = await signed_in(runtime, client, tenant, "AGENT")
    await identify(client, tenant, "phone")
    cid = (await start_conversation(client, tenant, "phone"))["id"]
    await _user_says(client, tenant, cid, "second", "phone")

    def peer(response: httpx.Response) -> int:
        assert response.status_code == 200
        return int(response.json()["peer_read_seq"])

    # Sending reads what one sent: the end user has read their two messages, no agent anything.
    assert peer(await client.get(f"{BASE}/{cid}", headers=alice.auth())) == 2
    assert peer(await client.get(f"/v1/conversations/{cid}", headers=tenant.sdk("phone"))) == 0

    # Agents: the end user sees the furthest any agent has read.
    await client.post(f"{BASE}/{cid}/read", headers=alice.auth(), json={"seq": 1})
    await client.post(f"{BASE}/{cid}/read", headers=bob.auth(), json={"seq": 2})
    listed = (await client.get("/v1/conversations", headers=tenant.sdk("phone"))).json()
    assert [i["peer_read_seq"] for i in listed["items"] if i["id"] == cid] == [2]

    # The end user: agents see it in the inbox and in the detail; an agent's own reading is not it.
    reply = {"body": "hi", "client_msg_id": "r-1"}
    await client.post(f"{BASE}/{cid}/messages", headers=alice.auth(), json=reply)
    assert peer(await client.get(f"{BASE}/{cid}", headers=alice.auth())) == 2
    await client.post(f"/v1/conversations/{cid}/read", headers=tenant.sdk("phone"), json={"seq": 3})
    assert peer(await client.get(f"{BASE}/{cid}", headers=bob.auth())) == 3
    inbox = (await client.get(BASE, headers=alice.auth())).json()
    assert [i["peer_read_seq"] for i in inbox["items"] if i["id"] == cid] == [3]
