"""Exactly once, in order: what a device receives across forced disconnects equals the database."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import httpx
from sqlalchemy import text

from replyhq.sdk import ReplyHQClient
from tests.conftest import SocketServer, Tenant


async def _drop_connection(client: ReplyHQClient) -> None:
    """Cut the websocket under the client, as a network drop would; it must reconnect itself."""
    with contextlib.suppress(Exception):
        await client.sio.eio.ws.close()


async def _wait_until(condition: Any, timeout: float = 15) -> None:
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.05)

    await asyncio.wait_for(poll(), timeout)


async def test_exactly_once_in_order_across_forced_disconnects(
    socket_server: SocketServer, tenant: Tenant
) -> None:
    delivered: list[dict[str, Any]] = []
    phone = ReplyHQClient(
        socket_server.url,
        str(tenant.id),
        tenant.sdk_key,
        "phone",
        user_id="ann",
        user_hash=tenant.user_hash("ann"),
        platform="ios",
        on_message=delivered.append,
    )
    tablet = ReplyHQClient(
        socket_server.url,
        str(tenant.id),
        tenant.sdk_key,
        "tablet",
        user_id="ann",
        user_hash=tenant.user_hash("ann"),
        platform="ios",
    )
    try:
        await phone.identify(name="Ann")
        await tablet.identify()
        conversation_id = await phone.start_conversation("Order #42")
        await phone.connect()

        async def tablet_writes() -> None:
            async with httpx.AsyncClient(base_url=socket_server.url) as http:
                for i in range(60):
                    response = await http.post(
                        f"/v1/conversations/{conversation_id}/messages",
                        headers=tenant.sdk("tablet"),
                        json={"body": f"tablet {i}", "client_msg_id": f"t-{i}"},
                    )
                    assert response.status_code == 201
                    await asyncio.sleep(0.02)

        async def phone_writes() -> None:
            for i in range(20):
                await phone.send(conversation_id, f"phone {i}")  # queued while offline

        async def network_drops() -> None:
            for drop in range(4):  # each drop cuts a live connection: wait for the reconnect first
                await _wait_until(lambda n=drop: phone.connections > n)
                await asyncio.sleep(0.25)
                await _drop_connection(phone)

        await asyncio.gather(tablet_writes(), phone_writes(), network_drops())

        async with socket_server.runtime.db.tenant_session(tenant.id) as session:
            stored = (
                await session.execute(
                    text(
                        "SELECT seq, id::text, body FROM messages "
                        "WHERE conversation_id = :c ORDER BY seq"
                    ),
                    {"c": conversation_id},
                )
            ).all()
        assert len(stored) == 80  # nothing lost, nothing doubled on the server
        await _wait_until(lambda: len(delivered) >= len(stored))
        await asyncio.sleep(0.3)  # anything extra would arrive now
        assert [(m["seq"], m["id"], m["body"]) for m in delivered] == [tuple(r) for r in stored]
        assert phone.pending == 0
        await _wait_until(lambda: phone.connections == 5)  # every drop was recovered from
    finally:
        await phone.close()
        await tablet.close()
