"""Invariant 2: messages are never lost or duplicated; seq is 1, 2, 3... with no gap or repeat."""

from __future__ import annotations

import asyncio
import uuid
from html.parser import HTMLParser

import httpx
from sqlalchemy import text

from replyhq.db import Database
from replyhq.messaging import service
from replyhq.messaging.service import Participant
from tests.conftest import Tenant, identify, start_conversation


async def _send(
    client: httpx.AsyncClient,
    tenant: Tenant,
    cid: object,
    body: str,
    client_msg_id: str,
    device: str = "device-1",
) -> httpx.Response:
    return await client.post(
        f"/v1/conversations/{cid}/messages",
        headers=tenant.sdk(device),
        json={"body": body, "client_msg_id": client_msg_id},
    )


async def test_fifty_concurrent_sends_get_seq_one_to_fifty(
    client: httpx.AsyncClient, tenant: Tenant, db: Database
) -> None:
    await identify(client, tenant)
    conversation = await client.post("/v1/conversations", headers=tenant.sdk(), json={})
    cid = conversation.json()["id"]
    responses = await asyncio.gather(
        *(_send(client, tenant, cid, f"message {i}", f"c-{i}") for i in range(50))
    )
    assert {r.status_code for r in responses} == {201}
    assert sorted(r.json()["seq"] for r in responses) == list(range(1, 51))
    async with db.tenant_session(tenant.id) as session:
        seqs = (
            (
                await session.execute(
                    text("SELECT seq FROM messages WHERE conversation_id = :c ORDER BY seq"),
                    {"c": cid},
                )
            )
            .scalars()
            .all()
        )
    assert seqs == list(range(1, 51))
    summary = await client.get(f"/v1/conversations/{cid}", headers=tenant.sdk())
    assert summary.json()["last_seq"] == 50


async def test_concurrent_retries_of_one_client_msg_id_store_one_message(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    await identify(client, tenant)
    cid = (await start_conversation(client, tenant))["id"]
    responses = await asyncio.gather(
        *(_send(client, tenant, cid, "once", "retry-me") for _ in range(3))
    )
    assert sorted(r.status_code for r in responses) == [200, 200, 201]
    assert len({r.json()["id"] for r in responses}) == 1
    history = await client.get(f"/v1/conversations/{cid}/messages", headers=tenant.sdk())
    assert [m["body"] for m in history.json()["items"]] == ["Hello", "once"]


async def _lock_waiters(db: Database) -> int:
    """Backends of this database waiting for a lock (a row lock held by another transaction)."""
    async with db.engine.connect() as connection:
        waiting = await connection.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        )
        return int(waiting.scalar() or 0)


async def test_a_retry_that_waited_for_its_first_attempt_returns_it(
    client: httpx.AsyncClient, tenant: Tenant, db: Database
) -> None:
    """The first attempt commits while the retry waits for the conversation's lock: the retry's
    statement began before that commit, so only its insert's conflict sees the message; it must
    answer with it (200), not store a second one nor fail."""
    user = await identify(client, tenant)
    cid = (await start_conversation(client, tenant))["id"]
    author = Participant("user", uuid.UUID(str(user["user"]["id"])), None)  # type: ignore[index]
    async with db.tenant_session(tenant.id) as session:
        first, created = await service.send_message(
            session, tenant.id, uuid.UUID(str(cid)), author, "once", "dup", end_user_id=author.id
        )
        assert created
        retry = asyncio.create_task(_send(client, tenant, cid, "once", "dup"))
        for _ in range(200):
            if await _lock_waiters(db):
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the retry never waited for the conversation's lock")
    response = await retry
    assert response.status_code == 200, response.text
    assert response.json()["id"] == str(first.id)
    after = await _send(client, tenant, cid, "next", "after")
    assert after.json()["seq"] == 3  # no gap: Hello, once, next


async def test_retry_after_success_returns_the_original(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    await identify(client, tenant)
    cid = (await start_conversation(client, tenant))["id"]
    first = await _send(client, tenant, cid, "original", "same")
    again = await _send(client, tenant, cid, "edited on retry", "same")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()


async def test_retried_first_message_does_not_open_a_second_conversation(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    await identify(client, tenant)
    body = {"subject": "Help", "first_message": {"body": "My order", "client_msg_id": "first"}}
    responses = await asyncio.gather(
        *(client.post("/v1/conversations", headers=tenant.sdk(), json=body) for _ in range(3))
    )
    assert sorted(r.status_code for r in responses) == [200, 200, 201]
    assert len({r.json()["id"] for r in responses}) == 1
    listed = await client.get("/v1/conversations", headers=tenant.sdk())
    assert len(listed.json()["items"]) == 1


async def test_sync_after_seq_and_scroll_back(client: httpx.AsyncClient, tenant: Tenant) -> None:
    await identify(client, tenant)
    cid = (await client.post("/v1/conversations", headers=tenant.sdk(), json={})).json()["id"]
    for i in range(1, 8):
        await _send(client, tenant, cid, f"m{i}", f"id-{i}")
    after = await client.get(
        f"/v1/conversations/{cid}/messages", params={"after_seq": 4}, headers=tenant.sdk()
    )
    assert [m["seq"] for m in after.json()["items"]] == [5, 6, 7]
    page = await client.get(
        f"/v1/conversations/{cid}/messages",
        params={"after_seq": 0, "limit": 3},
        headers=tenant.sdk(),
    )
    assert [m["seq"] for m in page.json()["items"]] == [1, 2, 3]
    assert page.json()["has_more"] is True
    back = await client.get(
        f"/v1/conversations/{cid}/messages",
        params={"before_seq": 6, "limit": 2},
        headers=tenant.sdk(),
    )
    assert [m["seq"] for m in back.json()["items"]] == [4, 5]
    assert back.json()["has_more"] is True


async def test_message_shape(client: httpx.AsyncClient, tenant: Tenant) -> None:
    await identify(client, tenant, name="Ann")
    cid = (await start_conversation(client, tenant))["id"]
    message = (await _send(client, tenant, cid, "Hi *you*", "shape")).json()
    assert set(message) == {
        "id",
        "conversation_id",
        "seq",
        "client_msg_id",
        "sender",
        "author",
        "body",
        "body_html",
        "created_at",
        "kind",
        "data",
        "attachments",
    }
    assert (message["kind"], message["data"], message["attachments"]) == ("message", None, [])
    assert message["sender"] == "user"
    assert message["author"]["name"] == "Ann"
    assert message["body_html"] == "<p>Hi <em>you</em></p>"


XSS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "<svg onload=alert(1)>",
    "[x](javascript:alert(1))",
    "[x](JaVaScRiPt:alert(1))",
    "[d](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    '<a href="javascript:alert(1)">x</a>',
    "![i](javascript:alert(1))",
    "<iframe src=//evil></iframe>",
]


class _Elements(HTMLParser):
    """Every element and attribute a browser would build from the HTML."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, attrs))


def _elements(html: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    parser = _Elements()
    parser.feed(html)
    return parser.found


async def test_body_html_is_inert(client: httpx.AsyncClient, tenant: Tenant) -> None:
    await identify(client, tenant)
    cid = (await start_conversation(client, tenant))["id"]
    for i, payload in enumerate(XSS):
        message = (await _send(client, tenant, cid, payload, f"xss-{i}")).json()
        assert message["body"] == payload  # stored as sent; only the rendering is sanitised
        for tag, attrs in _elements(message["body_html"]):
            assert tag in {"p", "a", "em", "strong", "code", "pre", "br"}, (payload, tag)
            for name, value in attrs:
                assert not name.startswith("on"), payload
                if name == "href":
                    assert (value or "").lower().startswith(("http:", "https:", "mailto:"))
    safe = (await _send(client, tenant, cid, "[docs](https://example.com)", "ok")).json()
    ((tag, attrs),) = _elements(safe["body_html"])[1:]
    assert tag == "a" and ("href", "https://example.com") in attrs
    assert "noopener" in dict(attrs)["rel"]


async def test_unread_counts_and_read_markers(
    client: httpx.AsyncClient, tenant: Tenant, db: Database
) -> None:
    identified = await identify(client, tenant)
    cid = (await start_conversation(client, tenant))["id"]
    # Two agent messages arrive (written through the service as the agent side would).
    from replyhq.messaging import service
    from replyhq.messaging.service import Participant

    agent = Participant("agent", uuid.uuid4(), "Sam")
    async with db.tenant_session(tenant.id) as session:
        for i in range(2):
            await service.send_message(session, tenant.id, uuid.UUID(cid), agent, f"a{i}", f"ag{i}")
    listed = (await client.get("/v1/conversations", headers=tenant.sdk())).json()["items"][0]
    assert listed["unread_count"] == 2
    assert listed["last_message"]["author"] == {"type": "agent", "id": str(agent.id), "name": "Sam"}
    read = await client.post(f"/v1/conversations/{cid}/read", headers=tenant.sdk(), json={"seq": 2})
    assert read.status_code == 204
    assert (await client.get(f"/v1/conversations/{cid}", headers=tenant.sdk())).json()[
        "unread_count"
    ] == 1
    # Markers never move back.
    await client.post(f"/v1/conversations/{cid}/read", headers=tenant.sdk(), json={"seq": 3})
    await client.post(f"/v1/conversations/{cid}/read", headers=tenant.sdk(), json={"seq": 1})
    assert (await client.get(f"/v1/conversations/{cid}", headers=tenant.sdk())).json()[
        "unread_count"
    ] == 0
    past = await client.post(f"/v1/conversations/{cid}/read", headers=tenant.sdk(), json={"seq": 9})
    assert past.status_code == 400 and past.json()["code"] == "SEQ_OUT_OF_RANGE"
    assert identified["user"]["anonymous"] is True


async def test_conversation_list_is_newest_activity_first_with_cursor(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    await identify(client, tenant)
    ids = [(await start_conversation(client, tenant, body=f"c{i}"))["id"] for i in range(5)]
    await _send(client, tenant, ids[0], "bump", "bump")  # oldest becomes most recent
    first = (await client.get("/v1/conversations?limit=3", headers=tenant.sdk())).json()
    assert [c["id"] for c in first["items"]] == [ids[0], ids[4], ids[3]]
    second = (
        await client.get(
            f"/v1/conversations?limit=3&cursor={first['next_cursor']}", headers=tenant.sdk()
        )
    ).json()
    assert [c["id"] for c in second["items"]] == [ids[2], ids[1]]
    assert second["next_cursor"] is None
    bad = await client.get("/v1/conversations?cursor=garbage!", headers=tenant.sdk())
    assert bad.status_code == 400 and bad.json()["code"] == "INVALID_CURSOR"


async def test_bad_messages_are_refused_and_change_nothing(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    await identify(client, tenant)
    cid = (await start_conversation(client, tenant))["id"]
    bad_bodies = [
        {"body": "", "client_msg_id": "a"},
        {"body": "   ", "client_msg_id": "b"},
        {"body": "x" * 8001, "client_msg_id": "c"},
        {"body": "fine", "client_msg_id": ""},
        {"body": "fine", "client_msg_id": "has spaces"},
        {"body": "fine"},
        {"body": "fine", "client_msg_id": "d", "sender": "agent"},
        {"body": 12, "client_msg_id": "e"},
    ]
    for bad in bad_bodies:
        response = await client.post(
            f"/v1/conversations/{cid}/messages", headers=tenant.sdk(), json=bad
        )
        assert response.status_code == 400, (bad, response.text)
        assert response.json()["code"] == "VALIDATION_ERROR"
        assert response.json()["details"][0]["field"]
    not_uuid = await client.get("/v1/conversations/not-a-uuid", headers=tenant.sdk())
    assert not_uuid.status_code == 400
    history = await client.get(f"/v1/conversations/{cid}/messages", headers=tenant.sdk())
    assert [m["seq"] for m in history.json()["items"]] == [1]


async def test_unidentified_device_is_told_to_identify(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    response = await client.get("/v1/conversations", headers=tenant.sdk("never-seen"))
    assert response.status_code == 401
    assert response.json()["code"] == "DEVICE_UNKNOWN"
    missing = await client.get(
        "/v1/conversations", headers={k: v for k, v in tenant.sdk().items() if k != "X-Device-Id"}
    )
    assert missing.status_code == 401 and missing.json()["code"] == "DEVICE_ID_REQUIRED"
