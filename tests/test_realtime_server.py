"""The realtime server's own life: stopping ends its background tasks, whatever they do."""

from __future__ import annotations

import asyncio
import contextlib

from replyhq.realtime.server import RealtimeServer
from replyhq.settings import Settings
from tests.conftest import Servers


async def test_stop_ends_a_task_that_swallowed_a_cancellation(
    settings: Settings, servers: Servers
) -> None:
    """Python 3.11's wait_for can swallow a cancellation (redis-py opening a connection): a
    single cancel() then left stop() waiting forever."""
    server = RealtimeServer(settings, servers.redis_url)

    async def stubborn() -> None:
        with contextlib.suppress(asyncio.CancelledError):  # swallowed, as wait_for may
            await asyncio.sleep(3600)
        await asyncio.sleep(3600)

    task = asyncio.create_task(stubborn())
    server._tasks = [task]
    await asyncio.sleep(0)  # running, inside its first sleep
    # asyncio.wait, not wait_for: wait_for's own cancellation on timeout would cancel the task a
    # second time through stop() and hide the hang.
    stopping = asyncio.create_task(server.stop())
    await asyncio.wait({stopping}, timeout=5)
    try:
        assert stopping.done() and task.cancelled()
    finally:
        stopping.cancel()
        task.cancel()
