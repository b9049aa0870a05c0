"""Revocation holds without Redis: sockets whose access changed while Redis was away (so no
process heard of it) are cut on their next event, and idle ones by the periodic re-check."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from replyhq.accounts import team
from replyhq.accounts.permissions import Role, StaffPrincipal
from replyhq.accounts.service import StaffChanges
from replyhq.apps import service as apps_service
from tests.conftest import MakeTenant, Servers, SocketServer, make_settings, serve_in_process
from tests.realtime_clients import Recorder
from tests.redis_process import RedisProcess
from tests.staff import signed_in
from tests.test_realtime_devices import conversation_of, device_auth, identify

Cluster = tuple[RedisProcess, SocketServer, SocketServer, SocketServer]


@pytest.fixture
async def cluster(servers: Servers, tmp_path: Path) -> AsyncIterator[Cluster]:
    """A Redis of the test's own and three servers on it: `a` where access changes, `b` whose
    sockets are re-checked only on their events (no sweep, no cache), `c` with a fast sweep."""
    redis = RedisProcess(tmp_path)
    redis.start()
    shared = redis.servers(servers, "revocation:")
    a, stop_a = await serve_in_process(make_settings(shared))
    b, stop_b = await serve_in_process(
        make_settings(shared, socket_access_sweep_seconds=3600, socket_access_cache_seconds=0)
    )
    c, stop_c = await serve_in_process(make_settings(shared, socket_access_sweep_seconds=0.5))
    try:
        yield redis, a, b, c
    finally:
        if redis.process is None:
            redis.start()
        for stop in (stop_a, stop_b, stop_c):
            await stop()
        redis.stop()


async def socket(
    recorders: list[Recorder], server: SocketServer, auth: dict[str, Any], namespace: str = "/"
) -> Recorder:
    recorder = Recorder()
    await recorder.connect(server.url, auth, namespace)
    recorders.append(recorder)
    return recorder


async def test_staff_deactivated_and_keys_rotated_while_redis_is_down_lose_their_sockets(
    cluster: Cluster, make_tenant: MakeTenant, recorders: list[Recorder]
) -> None:
    redis, a, b, c = cluster
    tenant = await make_tenant()
    async with httpx.AsyncClient(base_url=a.url) as http:
        await identify(http, tenant, "phone", "ann")
        await identify(http, tenant, "tablet", "ann")
        cid = await conversation_of(http, tenant, "phone")
        agent = await signed_in(a.runtime, http, tenant, "AGENT")
        owner = await signed_in(a.runtime, http, tenant, "OWNER")
    sync = {"conversation_id": cid, "after_seq": 0}
    busy_device = await socket(recorders, b, device_auth(tenant, "phone"))
    busy_agent = await socket(recorders, b, {"token": agent.access}, "/admin")
    idle_device = await socket(recorders, c, device_auth(tenant, "tablet"))
    idle_agent = await socket(recorders, c, {"token": agent.access}, "/admin")
    bystander = await socket(recorders, c, {"token": owner.access}, "/admin")
    for recorder in (busy_device, busy_agent):
        assert (await recorder.call("sync", sync))["ok"] is True

    redis.stop()  # no process can hear of the changes below
    actor = StaffPrincipal(tenant.id, Role.OWNER, staff_id=owner.id)
    async with a.runtime.db.tenant_session(tenant.id) as session:
        await team.deactivate(session, actor, agent.id, StaffChanges.of(a.runtime))
    async with a.runtime.db.tenant_session(tenant.id) as session:
        await apps_service.rotate_keys(session, tenant.id, rounds=4, verifier=a.runtime.keys)
    redis.start()

    for recorder in (busy_device, busy_agent):
        ack = await recorder.call("sync", sync)
        assert ack["ok"] is False and ack["code"] == "SESSION_REVOKED", ack
        await asyncio.wait_for(recorder.disconnected.wait(), 5)
    for recorder in (idle_device, idle_agent):
        await asyncio.wait_for(recorder.disconnected.wait(), 10)
    assert (await bystander.call("sync", sync))["ok"] is True
    assert not bystander.disconnected.is_set()
