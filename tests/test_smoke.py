from __future__ import annotations

import httpx

from tests.conftest import Tenant, identify, start_conversation


async def test_end_user_conversation_round_trip(client: httpx.AsyncClient, tenant: Tenant) -> None:
    await identify(client, tenant, name="Ann")
    conversation = await start_conversation(client, tenant, body="Hi **there**")
    assert conversation["last_seq"] == 1
    listed = await client.get("/v1/conversations", headers=tenant.sdk())
    assert [c["id"] for c in listed.json()["items"]] == [conversation["id"]]
