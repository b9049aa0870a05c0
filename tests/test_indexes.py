"""Every query the SDK routes run can be served by an index (EXPLAIN with sequential scans off:
a plan that still needs a Seq Scan has no index that fits); the agents' inbox and lists are read
in index order and bounded by index conditions, also under row-level security."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
from sqlalchemy import event, text

from replyhq.db import Database
from replyhq.messaging import statements
from replyhq.runtime import Runtime
from tests.conftest import Servers, Tenant, identify, start_conversation
from tests.driver import sent_statements
from tests.staff import signed_in

Captured = list[tuple[str, Any]]


@contextlib.contextmanager
def _capture() -> Iterator[Captured]:
    """The SELECTs sent while the block runs, seen at the driver: also those run without a
    SQLAlchemy session (Database.tenant_statement: the agents' inbox)."""
    captured: Captured = []
    with sent_statements() as sent:
        yield captured
    captured.extend(
        (statement, parameters)
        for statement, parameters in sent
        if statement.lstrip().upper().startswith("SELECT") and "set_config" not in statement
    )


def _nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from _nodes(child)


async def test_sdk_queries_use_indexes(
    client: httpx.AsyncClient, tenant: Tenant, db: Database
) -> None:
    await identify(client, tenant, user_id="u1")
    cid = (await start_conversation(client, tenant))["id"]

    captured: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "UPDATE", "INSERT")):
            captured.append((statement, parameters))

    event.listen(db.engine.sync_engine, "before_cursor_execute", capture)
    try:
        sdk = tenant.sdk()
        await client.post("/v1/identify", headers=sdk, json={"platform": "ios", "user_id": "u1"})
        await client.get("/v1/conversations", headers=sdk)
        await client.get(f"/v1/conversations/{cid}", headers=sdk)
        await client.post(
            f"/v1/conversations/{cid}/messages",
            headers=sdk,
            json={"body": "x", "client_msg_id": "idx"},
        )
        await client.get(f"/v1/conversations/{cid}/messages?after_seq=0", headers=sdk)
        await client.post(f"/v1/conversations/{cid}/read", headers=sdk, json={"seq": 1})
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", capture)

    checked = 0
    async with db.tenant_session(tenant.id) as session:
        connection = await session.connection()
        await connection.execute(text("SET LOCAL enable_seqscan = off"))
        for statement, parameters in captured:
            if "set_config" in statement or "FROM apps" in statement or "INTO" in statement:
                continue  # tenant binding, apps by primary key, inserts
            plan = (
                (await connection.exec_driver_sql("EXPLAIN " + statement, parameters))
                .scalars()
                .all()
            )
            assert not any("Seq Scan" in line for line in plan), (statement, plan)
            checked += 1
    assert checked >= 8


def _ordered_and_bounded(plan: dict[str, Any]) -> list[str]:
    """What is wrong with a list query's plan: a page taken from a sort (no index gives the
    order), or a bound on seq or on the cursor left as a filter (read, then discarded)."""
    problems = []
    for node in _nodes(plan):
        children = node.get("Plans", [])
        if node["Node Type"] == "Limit" and children and children[0]["Node Type"] == "Sort":
            problems.append(f"page sorted: {children[0]['Sort Key']}")
        where = node.get("Filter", "")
        if node.get("Relation Name") == "messages" and "seq >" in where:
            problems.append(f"seq bound as a filter: {where}")
        if node.get("Relation Name") == "conversations" and "last_activity_at" in where:
            used = node.get("Index Name") or [c.get("Index Name") for c in children]
            problems.append(f"cursor as a filter ({node['Node Type']} on {used}): {where}")
        if node["Node Type"] == "Seq Scan":
            problems.append(f"Seq Scan on {node.get('Relation Name')}")
    return problems


async def test_agent_lists_read_in_index_order(
    client: httpx.AsyncClient, tenant: Tenant, db: Database, runtime: Runtime, servers: Servers
) -> None:
    staff = await signed_in(runtime, client, tenant, "ADMIN")
    for device in ("d1", "d2", "d3"):
        await identify(client, tenant, device)
        await start_conversation(client, tenant, device)
    cid = (await start_conversation(client, tenant, "d1"))["id"]
    for response in (
        await client.post(
            f"/admin/api/conversations/{cid}/read", headers=staff.auth(), json={"seq": 1}
        ),
        await client.patch(
            f"/admin/api/conversations/{cid}",
            headers=staff.auth(),
            json={"assignee_id": str(staff.id)},
        ),
    ):
        assert response.status_code < 300, response.text

    inbox = "/admin/api/conversations"
    with _capture() as captured:
        first = await client.get(inbox, headers=staff.auth(), params={"limit": 2})
        assert first.status_code == 200, first.text
        cursor = first.json()["next_cursor"]
        assert cursor
        for params in (
            {"limit": 2, "cursor": cursor},
            {"status": "open"},
            {"status": "open", "limit": 2, "cursor": cursor},
            {"assignee": "me"},
            {"assignee": "none"},
        ):
            response = await client.get(inbox, headers=staff.auth(), params=params)
            assert response.status_code == 200, (params, response.text)
        sdk = tenant.sdk("d1")
        page = await client.get("/v1/conversations", headers=sdk, params={"limit": 1})
        await client.get(
            "/v1/conversations", headers=sdk, params={"cursor": page.json()["next_cursor"]}
        )
    lists = [(s, p) for s, p in captured if "FROM conversations" in s]
    assert len(lists) >= 8

    # Plans are judged on counted tables, as autovacuum keeps them in production (a machine
    # may run PostgreSQL without it, as CI's does: never-counted tables get other plans).
    async with await psycopg.AsyncConnection.connect(servers.database_url) as owner:
        await owner.execute("ANALYZE conversations, messages, read_markers, end_users")
    async with db.tenant_session(tenant.id) as session:  # row-level security applies
        connection = await session.connection()
        # With sorts and sequential scans priced out, a plan that still has one has no index.
        await connection.execute(text("SET LOCAL enable_seqscan = off"))
        await connection.execute(text("SET LOCAL enable_sort = off"))
        # Bitmap scans too: once other modules have filled the shared tables, the planner may
        # take a bitmap of the app's rows (the seq or cursor bound left as a filter) as cheap as
        # the ordered index on this test's handful of rows. The question is whether an index
        # serves each list in order and bounded, not which the planner picks for a few rows.
        await connection.execute(text("SET LOCAL enable_bitmapscan = off"))
        for statement, parameters in lists:
            explained = await connection.exec_driver_sql(
                "EXPLAIN (FORMAT JSON) " + statement, parameters
            )
            plan = explained.scalar_one()[0]["Plan"]
            assert _ordered_and_bounded(plan) == [], statement


async def test_the_send_statement_uses_indexes(
    client: httpx.AsyncClient, tenant: Tenant, db: Database
) -> None:
    """The one-statement send (messaging/statements.py) bypasses the ORM, so the capture above
    does not see it: each of its forms is explained here."""
    user = await identify(client, tenant)
    cid = (await start_conversation(client, tenant))["id"]
    user_id = user["user"]["id"]  # type: ignore[index]
    params = {
        "app_id": tenant.id,
        "conversation_id": cid,
        "device_id": "device-1",
        "message_id": uuid.uuid4(),
        "client_msg_id": "explained",
        "kind": "user",
        "body": "x",
        "body_html": "<p>x</p>",
        "writable": True,
        "author_id": user_id,
        "author_name": None,
        "end_user_id": user_id,
    }
    forms = [(True, "sender"), (False, "given"), (False, "any")]
    async with db.tenant_session(tenant.id) as session:
        connection = await session.connection()
        await connection.execute(text("SET LOCAL enable_seqscan = off"))
        for from_device, owner in forms:
            sql = statements.send(from_device=from_device, owner=owner)
            explained = await connection.exec_driver_sql("EXPLAIN (FORMAT JSON) " + sql, params)
            plan = explained.scalar_one()[0]["Plan"]
            for node in _nodes(plan):
                assert node["Node Type"] != "Seq Scan", (owner, node)
