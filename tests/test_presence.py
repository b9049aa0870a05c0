"""Presence in Redis: changes reported once, dead sockets expire, lookups pipelined."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from replyhq.realtime.presence import LiveSession, PresenceChange, PresenceStore
from replyhq.runtime import Runtime, redis_client
from tests.conftest import Servers, make_settings


@pytest.fixture
async def redis(servers: Servers) -> AsyncIterator[Redis]:
    client = Redis.from_url(servers.redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def store(redis: Redis, servers: Servers) -> PresenceStore:
    return PresenceStore(redis, f"{servers.prefix}{uuid.uuid4().hex}:", ttl_seconds=1.0)


def _socket(app_id: uuid.UUID, person: uuid.UUID, device: str = "d1") -> LiveSession:
    return LiveSession(uuid.uuid4().hex, app_id, "user", person, device)


async def test_online_and_offline_only_on_change(store: PresenceStore) -> None:
    app_id, ann = uuid.uuid4(), uuid.uuid4()
    phone, tablet = _socket(app_id, ann, "phone"), _socket(app_id, ann, "tablet")
    assert await store.connect(phone) is True  # came online
    assert await store.connect(tablet) is False  # already online
    assert await store.disconnect(phone) is False  # still online on the tablet
    assert (await store.online(app_id, "user", [ann]))[ann] is True
    assert await store.disconnect(tablet) is True  # gone
    assert (await store.online(app_id, "user", [ann]))[ann] is False
    assert await store.sweep() == []  # already reported; never twice


async def test_sockets_of_a_crashed_process_go_offline_by_themselves(store: PresenceStore) -> None:
    app_id, ann, bob = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    crashed = _socket(app_id, ann)
    alive = _socket(app_id, bob)
    await store.connect(crashed)
    await store.connect(alive)
    for _ in range(4):  # only the living process keeps heartbeating
        await asyncio.sleep(0.4)
        await store.heartbeat([alive])
    assert await store.online(app_id, "user", [ann, bob]) == {ann: False, bob: True}
    changes = await store.sweep()
    assert changes == [PresenceChange(app_id, "user", ann, online=False)]
    assert await store.sids_of_app(app_id, "user") == [alive.sid]


async def test_lookups_for_many_people_are_one_round_trip(
    store: PresenceStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    app_id = uuid.uuid4()
    people = [uuid.uuid4() for _ in range(1000)]
    for person in people[::2]:
        await store.connect(_socket(app_id, person))

    round_trips: list[str] = []
    single, batch = Redis.execute_command, Pipeline.execute

    async def count_single(self: Redis, *args: Any, **kwargs: Any) -> Any:
        round_trips.append(str(args[0]))
        return await single(self, *args, **kwargs)

    async def count_batch(self: Pipeline, *args: Any, **kwargs: Any) -> Any:
        round_trips.append("pipeline")
        return await batch(self, *args, **kwargs)

    monkeypatch.setattr(Redis, "execute_command", count_single)
    monkeypatch.setattr(Pipeline, "execute", count_batch)
    online = await store.online(app_id, "user", people)
    assert round_trips == ["pipeline"]
    assert sum(online.values()) == 500
    assert [online[p] for p in people[:4]] == [True, False, True, False]
    round_trips.clear()
    sessions = await store.active_sessions(app_id, "user")
    assert round_trips == ["ZRANGEBYSCORE", "pipeline"]
    assert len(sessions) == 500
    assert {s["kind"] for s in sessions} == {"user"}


async def _named_connections(redis: Redis, name: str) -> int:
    return sum(1 for c in await redis.client_list() if c.get("name") == name)


async def test_a_burst_past_the_pool_waits_for_connections_instead_of_failing(
    redis: Redis, servers: Servers
) -> None:
    """1,000 sockets closing at once made presence writes fail with redis-py's default pool
    ("Too many connections" past 100): the bounded pool makes the burst wait instead."""
    name = f"burst-{uuid.uuid4().hex[:8]}"
    settings = make_settings(servers, redis_max_connections=20)
    bounded = redis_client(settings, servers.redis_url, client_name=name)
    store = PresenceStore(bounded, f"{servers.prefix}{uuid.uuid4().hex}:", ttl_seconds=30.0)
    app_id = uuid.uuid4()
    sockets = [_socket(app_id, uuid.uuid4()) for _ in range(300)]
    try:
        assert all(await asyncio.gather(*(store.connect(s) for s in sockets)))
        assert await _named_connections(redis, name) <= 20
        people = [s.person_id for s in sockets]
        assert all((await store.online(app_id, "user", people)).values())
        assert all(await asyncio.gather(*(store.disconnect(s) for s in sockets)))
        assert not any((await store.online(app_id, "user", people)).values())
    finally:
        await bounded.aclose()


async def test_the_runtime_client_survives_a_burst_past_redis_pys_default_pool(
    runtime: Runtime,
) -> None:
    assert runtime.settings.redis_max_connections == 100
    store = PresenceStore(runtime.redis, f"{runtime.settings.redis_prefix}{uuid.uuid4().hex}:")
    app_id = uuid.uuid4()
    sockets = [_socket(app_id, uuid.uuid4()) for _ in range(300)]
    assert all(await asyncio.gather(*(store.connect(s) for s in sockets)))
    assert all(await asyncio.gather(*(store.disconnect(s) for s in sockets)))
