"""Private notes and timeline events: staff see them (live too), placed in the conversation's seq
order; the end user never sees a note or a staff-only event by any path that exists (HTTP
history, conversation list and summary, socket events and sync, a send reusing a note's id, the
report export; push and the e-mail fallback: tests/test_push_delivery.py), and their seq stays
gap-free; a mentioned teammate hears of it live and by e-mail. Events say who did
what; the end user sees closed and reopened only."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import text

from replyhq.runtime import Runtime
from tests.conftest import MakeTenant, SocketServer, Tenant, identify, start_conversation
from tests.mail_support import PUBLIC_URL, SmtpServer, text_of
from tests.realtime_clients import Recorder
from tests.staff import add_staff, login, secret, signed_in
from tests.test_protocol import check
from tests.test_realtime_staff import agent_socket, device_socket

BASE = "/admin/api/conversations"


async def _note(
    client: httpx.AsyncClient, auth: dict[str, str], cid: object, body: str, **extra: Any
) -> httpx.Response:
    payload = {"body": body, "client_msg_id": extra.pop("client_msg_id", uuid.uuid4().hex)}
    return await client.post(f"{BASE}/{cid}/notes", headers=auth, json={**payload, **extra})


async def _user_history(client: httpx.AsyncClient, tenant: Tenant, cid: object) -> list[Any]:
    response = await client.get(f"/v1/conversations/{cid}/messages", headers=tenant.sdk("phone"))
    assert response.status_code == 200
    items: list[Any] = response.json()["items"]
    return items


async def _items(client: httpx.AsyncClient, auth: dict[str, str], cid: object) -> list[Any]:
    response = await client.get(f"{BASE}/{cid}/items", headers=auth)
    assert response.status_code == 200, response.text
    items: list[Any] = response.json()["items"]
    return items


async def test_a_note_is_staff_only_over_http(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant
) -> None:
    alice = await signed_in(runtime, client, tenant, "AGENT", name="Alice")
    bob = await signed_in(runtime, client, tenant, "AGENT", name="Bob")
    await identify(client, tenant, "phone", user_id="u1", name="Carol")
    first = await start_conversation(client, tenant, "phone", body="My card was charged twice")
    cid = first["id"]

    note = await _note(
        client, alice.auth(), cid, "Refund pending: **do not promise a date**", client_msg_id="n1"
    )
    assert note.status_code == 201, note.text
    body = note.json()
    assert (body["kind"], body["after_seq"], body["client_msg_id"]) == ("note", 1, "n1")
    assert (body["author_id"], body["author_name"]) == (str(alice.id), "Alice")
    assert "<strong>do not promise a date</strong>" in body["body_html"]
    again = await _note(client, alice.auth(), cid, "other text", client_msg_id="n1")
    assert (again.status_code, again.json()["id"]) == (200, body["id"])

    # The agent replies after the note: the messages' seq stays gap-free, the note sits between.
    reply = await client.post(
        f"{BASE}/{cid}/messages", headers=alice.auth(), json={"body": "On it", "client_msg_id": "r"}
    )
    assert reply.json()["seq"] == 2
    second = await _note(client, bob.auth(), cid, "Called the bank", client_msg_id="n2")
    assert second.json()["after_seq"] == 2

    # Every member of the staff sees the notes, in timeline order.
    items = await _items(client, bob.auth(), cid)
    assert [(i["after_seq"], i["body"]) for i in items] == [
        (1, "Refund pending: **do not promise a date**"),
        (2, "Called the bank"),
    ]
    later = await client.get(f"{BASE}/{cid}/items?after_seq=2", headers=bob.auth())
    assert [i["client_msg_id"] for i in later.json()["items"]] == ["n2"]

    # The end user: only the messages, gap-free; last message and unread count untouched.
    history = await _user_history(client, tenant, cid)
    assert [(m["seq"], m["body"]) for m in history] == [
        (1, "My card was charged twice"),
        (2, "On it"),
    ]
    mine = (await client.get(f"/v1/conversations/{cid}", headers=tenant.sdk("phone"))).json()
    assert (mine["last_seq"], mine["last_message"]["body"], mine["unread_count"]) == (
        2,
        "On it",
        1,
    )
    listed = (await client.get("/v1/conversations", headers=tenant.sdk("phone"))).json()
    assert listed["items"][0]["last_message"]["body"] == "On it"
    # The end user has no route to them: /v1 has no items, and the admin ones want staff.
    for path in (f"/v1/conversations/{cid}/items", f"{BASE}/{cid}/items"):
        refused = await client.get(path, headers=tenant.sdk("phone"))
        assert refused.status_code in (401, 404), path


async def test_a_send_reusing_a_notes_client_msg_id_is_a_new_message(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant
) -> None:
    alice = await signed_in(runtime, client, tenant, "AGENT")
    await identify(client, tenant, "phone")
    cid = (await start_conversation(client, tenant, "phone"))["id"]
    await _note(client, alice.auth(), cid, "internal: VIP customer", client_msg_id="guess-me")
    sent = await client.post(
        f"/v1/conversations/{cid}/messages",
        headers=tenant.sdk("phone"),
        json={"body": "hello", "client_msg_id": "guess-me"},
    )
    assert sent.status_code == 201
    assert (sent.json()["body"], sent.json()["seq"]) == ("hello", 2)


async def test_notes_need_staff_of_the_app_and_valid_mentions(
    client: httpx.AsyncClient, runtime: Runtime, make_tenant: MakeTenant
) -> None:
    acme, other = await make_tenant("Acme"), await make_tenant("Other")
    alice = await signed_in(runtime, client, acme, "AGENT")
    outsider = await signed_in(runtime, client, other, "OWNER")
    stranger = await add_staff(runtime, other, "AGENT")
    await identify(client, acme, "phone")
    cid = (await start_conversation(client, acme, "phone"))["id"]

    foreign = await _note(client, outsider.auth(), cid, "peek")
    assert (foreign.status_code, foreign.json()["code"]) == (404, "CONVERSATION_NOT_FOUND")
    bad = await _note(client, alice.auth(), cid, "hi", mentions=[str(stranger.id)])
    assert (bad.status_code, bad.json()["code"]) == (400, "INVALID_MENTION")
    blank = await _note(client, alice.auth(), cid, "   ")
    assert blank.status_code == 400
    sdk = await client.post(
        f"{BASE}/{cid}/notes", headers=acme.sdk("phone"), json={"body": "x", "client_msg_id": "a"}
    )
    assert sdk.status_code == 401
    assert await _items(client, alice.auth(), cid) == []  # nothing was stored
    foreign_items = await client.get(f"{BASE}/{cid}/items", headers=outsider.auth())
    assert foreign_items.status_code == 404


async def test_a_note_reaches_staff_sockets_only(
    socket_server: SocketServer,
    tenant: Tenant,
    http: httpx.AsyncClient,
    recorders: list[Recorder],
) -> None:
    runtime = socket_server.runtime
    alice = await signed_in(runtime, http, tenant, "AGENT", name="Alice")
    bob = await signed_in(runtime, http, tenant, "AGENT", name="Bob")
    await identify(http, tenant, "phone", user_id="ann")
    cid = (await start_conversation(http, tenant, "phone"))["id"]
    watcher = await agent_socket(socket_server, bob, recorders)
    ann = await device_socket(socket_server, tenant, "phone", recorders)

    note = await _note(http, alice.auth(), cid, f"@{bob.email.split('@')[0]} can you check?")
    assert note.status_code == 201
    (arrived,) = await watcher.wait_for("timeline:item")
    assert arrived["item"]["kind"] == "note" and arrived["item"]["id"] == note.json()["id"]
    check("server", "timeline:item", arrived)
    (mention,) = await watcher.wait_for("note:mention")
    check("server", "note:mention", mention)
    assert mention["staff_id"] == str(bob.id) and mention["conversation_id"] == cid
    assert note.json()["data"] == {"mentions": [str(bob.id)]}

    # The end user's socket: nothing live, nothing by sync.
    reply = await http.post(
        f"{BASE}/{cid}/messages", headers=alice.auth(), json={"body": "Hi!", "client_msg_id": "r"}
    )
    assert reply.status_code == 201
    (heard,) = await ann.wait_for("message:new")
    assert heard["message"]["body"] == "Hi!"
    synced = await ann.call("sync", {"conversation_id": cid, "after_seq": 0})
    assert [(m["seq"], m["body"]) for m in synced["messages"]] == [(1, "Hello"), (2, "Hi!")]
    await asyncio.sleep(0.3)
    assert len(ann.events["message:new"]) == 1
    assert ann.events["note:mention"] == [] and ann.events["timeline:item"] == []


async def test_a_mentioned_teammate_gets_an_email(
    mail_client: httpx.AsyncClient, mail_runtime: Runtime, smtp: SmtpServer, make_tenant: MakeTenant
) -> None:
    acme = await make_tenant("Acme")
    alice = await login(mail_client, await add_staff(mail_runtime, acme, "AGENT", name="Alice"))
    bob = await add_staff(mail_runtime, acme, "AGENT", email=f"bob-{uuid.uuid4().hex[:6]}@x.test")
    await identify(mail_client, acme, "phone")
    cid = (await start_conversation(mail_client, acme, "phone"))["id"]
    note = await _note(mail_client, alice.auth(), cid, "Please call them", mentions=[str(bob.id)])
    assert note.status_code == 201
    [mail] = await smtp.wait_for(bob.email)
    assert mail["Subject"] == "Alice mentioned you in a note"
    assert "Please call them" in text_of(mail)
    assert f"{PUBLIC_URL}/dashboard/inbox/{cid}" in text_of(mail)
    assert smtp.to(alice.email) == []  # the author is not told of their own note


# --- timeline events ---------------------------------------------------------------------------


async def test_events_say_who_did_what_and_the_end_user_sees_closed_and_reopened_only(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant
) -> None:
    alice = await signed_in(runtime, client, tenant, "AGENT", name="Alice")
    bob = await add_staff(runtime, tenant, "AGENT", name="Bob")
    await identify(client, tenant, "phone")
    cid = (await start_conversation(client, tenant, "phone"))["id"]
    for patch in (
        {"assignee_id": str(bob.id)},
        {"assignee_id": None},
        {"status": "closed"},
        {"status": "closed"},  # no change: no event
        {"status": "open"},
    ):
        response = await client.patch(f"{BASE}/{cid}", headers=alice.auth(), json=patch)
        assert response.status_code == 200, response.text

    staff_only = await _items(client, alice.auth(), cid)
    assert [(i["after_seq"], i["data"]["type"], i["body"]) for i in staff_only] == [
        (1, "assigned", "Alice assigned it to Bob"),
        (1, "unassigned", "Alice unassigned it"),
    ]
    assert staff_only[0]["data"]["assignee_id"] == str(bob.id)
    assert all(i["author_id"] == str(alice.id) for i in staff_only)

    messages = (await client.get(f"{BASE}/{cid}/messages", headers=alice.auth())).json()["items"]
    seen = [(m["seq"], m["kind"], m["sender"], m["body"]) for m in messages]
    assert seen == [
        (1, "message", "user", "Hello"),
        (2, "event", "system", "Alice closed the conversation"),
        (3, "event", "system", "Alice reopened the conversation"),
    ]
    assert messages[1]["data"] == {"type": "closed"}
    assert messages[1]["author"] == {"type": "system", "id": str(alice.id), "name": "Alice"}
    # The end user sees the same messages: closed and reopened, never who it was assigned to.
    assert await _user_history(client, tenant, cid) == messages
    mine = (await client.get(f"/v1/conversations/{cid}", headers=tenant.sdk("phone"))).json()
    assert mine["unread_count"] == 0  # events are not unread messages


async def test_a_note_or_an_event_queues_no_push_and_no_email_a_reply_does(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant
) -> None:
    """Pushes and the e-mail fallback start from agents' replies in `messages` (push's trigger,
    migration 0040); a note is never there, and an event's sender is 'system'."""
    alice = await signed_in(runtime, client, tenant, "AGENT", name="Alice")
    await identify(client, tenant, "phone", user_id="ann", email="ann@example.com")
    cid = (await start_conversation(client, tenant, "phone"))["id"]

    async def queued() -> int:
        async with runtime.db.system_session() as session:
            count = await session.scalar(
                text(
                    "SELECT count(*) FROM procrastinate_jobs "
                    "WHERE args->>'conversation_id' = :c OR args->>'app_id' = :a "
                    "AND task_name LIKE 'push.%'"
                ),
                {"c": cid, "a": str(tenant.id)},
            )
        return int(count or 0)

    await _note(client, alice.auth(), cid, "the customer is angry, careful")
    await client.patch(f"{BASE}/{cid}", headers=alice.auth(), json={"status": "closed"})
    await client.patch(f"{BASE}/{cid}", headers=alice.auth(), json={"status": "open"})
    assert await queued() == 0
    reply = await client.post(
        f"{BASE}/{cid}/messages", headers=alice.auth(), json={"body": "Hi", "client_msg_id": "r"}
    )
    assert reply.status_code == 201
    assert await queued() == 1  # the path exists, and the note did not take it


async def test_a_note_is_in_no_export(
    client: httpx.AsyncClient, runtime: Runtime, tenant: Tenant
) -> None:
    """The only export is the report's CSV (staff with reports:read; the end user's keys are
    refused): a note is neither quoted there nor counted as a message."""
    alice = await signed_in(runtime, client, tenant, "AGENT", name="Alice")
    await identify(client, tenant, "phone")
    cid = (await start_conversation(client, tenant, "phone"))["id"]
    today = datetime.now(UTC).date().isoformat()
    url, params = "/admin/api/reports/export.csv", {"start": today, "end": today}

    async def exported() -> str:
        response = await client.get(url, headers=secret(tenant), params=params)
        assert response.status_code == 200, response.text
        return response.text

    before = await exported()
    note = await _note(client, alice.auth(), cid, "SECRET-NOTE about this customer")
    assert note.status_code == 201
    after = await exported()
    assert after == before and "SECRET-NOTE" not in after
    for headers in (tenant.sdk("phone"), alice.auth()):
        refused = await client.get(url, headers=headers, params=params)
        assert refused.status_code in (401, 403)
