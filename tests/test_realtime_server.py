"""The realtime server's own life: stopping ends its background tasks, whatever they do."""

from __future__ import annotations

import asyncio
import contextlib

import httpx

from replyhq.realtime.server import RealtimeServer
from replyhq.settings import Settings
from tests.conftest import MakeTenant, Servers, identify, make_settings, serve_in_process
from tests.realtime_clients import Recorder
from tests.test_realtime_devices import device_auth


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


async def test_a_stopped_server_stops_listening_on_the_channel(
    servers: Servers, make_tenant: MakeTenant
) -> None:
    """python-socketio starts the channel's subscription task at the first connection and never
    stops it: a server stopped inside a running process kept it, retrying and logging errors
    forever once its Redis was gone (seen as a stray Sentry event in a later test)."""
    tenant = await make_tenant()
    server, stop = await serve_in_process(make_settings(servers))
    async with httpx.AsyncClient(base_url=server.url) as http:
        await identify(http, tenant, "phone")
    device = Recorder()
    await device.connect(server.url, device_auth(tenant, "phone"))
    manager = server.app.state.realtime.sio.manager
    listener = manager.thread
    assert isinstance(listener, asyncio.Task)
    assert not listener.done()
    await device.close()
    await stop()
    assert listener.done()
    assert manager.thread is None
