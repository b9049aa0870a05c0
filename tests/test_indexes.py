"""Every query the SDK routes run can be served by an index (EXPLAIN with sequential scans off:
a plan that still needs a Seq Scan has no index that fits)."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import event, text

from replyhq.db import Database
from tests.conftest import Tenant, identify, start_conversation


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
