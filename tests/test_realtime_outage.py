"""After a Redis outage, server processes hear each other again promptly and tell their sockets
to catch up (`resync`), so that what was published meanwhile is fetched with `sync`."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from replyhq.realtime.delivery import manager_channel
from replyhq.runtime import Runtime
from replyhq.sdk import ReplyHQClient
from replyhq.settings import Settings
from tests.conftest import LiveServer, MakeTenant, Servers, start_server
from tests.realtime_clients import Recorder
from tests.redis_process import RedisProcess
from tests.staff import signed_in
from tests.test_realtime_devices import conversation_of, device_auth, identify

Pair = tuple[RedisProcess, Servers, LiveServer, LiveServer]


@pytest.fixture
def pair(servers: Servers, tmp_path: Path) -> Iterator[Pair]:
    """Two `replyhq serve` processes on a Redis of the test's own."""
    own = RedisProcess(tmp_path)
    own.start()
    shared = own.servers(servers, f"outage-{uuid.uuid4().hex[:6]}:")
    a = start_server(shared, tmp_path)
    b = start_server(shared, tmp_path)
    try:
        yield own, shared, a, b
    finally:
        if own.process is None:
            own.start()
        a.stop()
        b.stop()
        own.stop()


def wait_until_both_listen(own: RedisProcess, shared: Servers) -> None:
    """python-socketio subscribes a server at its first connection."""
    channel = manager_channel(Settings(redis_prefix=shared.prefix))
    client = redis.Redis.from_url(own.url)
    deadline = time.monotonic() + 30
    while client.pubsub_numsub(channel)[0][1] < 2:
        assert time.monotonic() < deadline, "the servers never subscribed"
        time.sleep(0.05)
    client.close()


async def test_processes_resubscribe_and_sockets_are_told_to_resync(
    pair: Pair, make_tenant: MakeTenant, runtime: Runtime
) -> None:
    own, shared, a, b = pair
    tenant = await make_tenant()
    async with httpx.AsyncClient(base_url=a.url) as http:
        await identify(http, tenant, "phone", "ann")
        cid = await conversation_of(http, tenant, "phone")
        staff = await signed_in(runtime, http, tenant, "AGENT")
    phone = Recorder()
    agent = Recorder()
    delivered: list[dict[str, Any]] = []
    tablet = ReplyHQClient(
        a.url,
        str(tenant.id),
        tenant.sdk_key,
        "tablet",
        user_id="ann",
        user_hash=tenant.user_hash("ann"),
        on_message=delivered.append,
    )
    try:
        await tablet.identify()
        await tablet.connect()
        await phone.connect(a.url, device_auth(tenant, "phone"))
        await agent.connect(b.url, {"token": staff.access}, namespace="/admin")
        wait_until_both_listen(own, shared)

        async def send(text: str) -> dict[str, object]:
            body = {"conversation_id": cid, "body": text, "client_msg_id": uuid.uuid4().hex}
            ack: dict[str, object] = await agent.call("message:send", body)
            assert ack["ok"] is True, ack
            return ack

        await send("before")
        await phone.wait_for("message:new", 1)
        await until(lambda: len(delivered) == 1)

        own.stop()
        for n in range(5):  # stored, but no process hears of them
            await send(f"during {n}")
        own.start()

        await phone.wait_for("resync", timeout=15)
        await agent.wait_for("resync", timeout=15)
        # The SDK answers the hint by itself, before any later message could reveal the gap.
        await until(lambda: len(delivered) == 6)
        assert [m["body"] for m in delivered[1:]] == [f"during {n}" for n in range(5)]
        synced = await phone.call("sync", {"conversation_id": cid, "after_seq": 1})
        assert [m["body"] for m in synced["messages"]] == [f"during {n}" for n in range(5)]
        await send("after")
        news = await phone.wait_for("message:new", 2, timeout=10)
        assert news[-1]["message"]["body"] == "after"
    finally:
        await phone.close()
        await agent.close()
        await tablet.close()


async def until(condition: Callable[[], bool], timeout: float = 15) -> None:
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.05)

    await asyncio.wait_for(poll(), timeout)
