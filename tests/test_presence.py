"""Presence in Redis: changes reported once, dead sockets expire, lookups and heartbeats in one
round trip each (writes are Lua scripts, lookups plain commands), edges included."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from replyhq.realtime import presence
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
    assert await store.online(app_id, "user", [ann]) == [True]
    assert await store.disconnect(tablet) is True  # gone
    assert await store.online(app_id, "user", [ann]) == [False]
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
    assert await store.online(app_id, "user", [ann, bob]) == [False, True]
    changes = await store.sweep()
    assert changes == [PresenceChange(app_id, "user", ann, online=False)]
    assert await store.sids_of_app(app_id, "user") == [alive.sid]


def round_trips(monkeypatch: pytest.MonkeyPatch, store: PresenceStore) -> list[str]:
    """What `store` sends to Redis from here on, one entry per round trip (a write on the
    socket): its first command's name. Only the store's own pool counts: other clients of this
    test process (a live server's sweeper, rate limits) may talk to Redis meanwhile."""
    sent: list[str] = []
    write = AbstractConnection.send_packed_command
    in_use = store.redis.connection_pool._in_use_connections  # type: ignore[attr-defined]

    async def record(self: AbstractConnection, command: Any, *args: Any, **kwargs: Any) -> None:
        if self in in_use:
            packed = command if isinstance(command, bytes) else b"".join(command)
            found = re.match(rb"\*\d+\r\n\$\d+\r\n([A-Za-z]+)", packed)
            sent.append(found.group(1).decode().upper() if found else "?")
        await write(self, command, *args, **kwargs)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", record)
    return sent


async def test_a_person_goes_offline_when_their_last_live_socket_expires(
    store: PresenceStore,
) -> None:
    """Closing one socket leaves the person exactly as online as their other sockets are: here
    only until the expiry of one left behind by a crashed process."""
    app_id, ann = uuid.uuid4(), uuid.uuid4()
    crashed, phone = _socket(app_id, ann, "crashed"), _socket(app_id, ann, "phone")
    await store.connect(crashed)
    await asyncio.sleep(0.5)
    await store.connect(phone)  # expires 0.5 s after the crashed one
    assert await store.disconnect(phone) is False  # still online through the crashed one
    assert await store.online(app_id, "user", [ann]) == [True]
    await asyncio.sleep(0.6)  # past the crashed socket's expiry, before the phone's
    assert await store.online(app_id, "user", [ann]) == [False]
    assert await store.sweep() == [PresenceChange(app_id, "user", ann, online=False)]


async def test_lookups_and_heartbeat_for_many_people_are_one_round_trip(
    redis: Redis, servers: Servers, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A TTL longer than connecting 500 sockets takes on a loaded machine (the 1 s of the `store`
    # fixture expired the first ones before the lookup): this test counts round trips.
    store = PresenceStore(redis, f"{servers.prefix}{uuid.uuid4().hex}:", ttl_seconds=60.0)
    app_id = uuid.uuid4()
    people = [uuid.uuid4() for _ in range(1000)]
    sockets = [_socket(app_id, person, f"d{i}") for i, person in enumerate(people[::2])]
    for s in sockets:
        await store.connect(s)
    # The first heartbeat loads its script into Redis (SCRIPT LOAD), the first lookup may open a
    # connection (HELLO); later calls do neither.
    await store.online(app_id, "user", people[:1])
    await store.active_sessions(app_id, "user")
    await store.heartbeat(sockets[:1])

    sent = round_trips(monkeypatch, store)
    online = await store.online(app_id, "user", people)
    assert sent == ["HMGET"]
    assert online == [True, False] * 500  # one flag per person, in the order asked
    sent.clear()
    sessions = await store.active_sessions(app_id, "user")
    assert sent == ["HVALS"]
    assert len(sessions) == 500
    first = next(s for s in sessions if s["sid"] == sockets[0].sid)
    assert first.keys() == {"sid", "person_id", "device_id", "proven", "connected_at"}
    assert (first["person_id"], first["device_id"], first["proven"]) == (str(people[0]), "d0", "1")
    assert 0 <= time.time() - float(first["connected_at"]) < 60
    sent.clear()
    await store.heartbeat(sockets)
    assert sent == ["EVALSHA"]


async def test_edges_empty_unknown_and_expired(store: PresenceStore, redis: Redis) -> None:
    app_id, ann, bob, nobody = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    assert await store.online(app_id, "user", []) == []
    assert await store.active_sessions(app_id, "user") == []  # a list, even when empty
    await store.heartbeat([])

    gone, phone = _socket(app_id, ann, "old-phone"), _socket(app_id, bob, "phone")
    await store.connect(gone)
    await store.connect(phone)
    assert await store.online(app_id, "user", [ann, bob, nobody]) == [True, True, False]
    await asyncio.sleep(0.6)
    await store.heartbeat([phone])  # only bob's process is alive
    await asyncio.sleep(0.6)  # ann's entries have expired; her keys are still there
    assert await store.online(app_id, "user", [ann, bob]) == [False, True]
    assert [s["sid"] for s in await store.active_sessions(app_id, "user")] == [phone.sid]

    # A live entry whose session is gone is left out, not returned empty.
    await redis.hdel(store._sessions_key(app_id, "user"), phone.sid)
    assert await store.active_sessions(app_id, "user") == []


async def test_a_heartbeat_never_brings_back_a_closed_socket(
    store: PresenceStore, redis: Redis
) -> None:
    """The server's heartbeat may carry a socket that closed while it was running."""
    app_id, ann = uuid.uuid4(), uuid.uuid4()
    phone = _socket(app_id, ann)
    await store.connect(phone)
    assert await store.disconnect(phone) is True  # reported offline now
    await store.heartbeat([phone])
    assert await store.online(app_id, "user", [ann]) == [False]
    assert await store.sids_of_app(app_id, "user") == []
    assert await redis.hexists(store._sessions_key(app_id, "user"), phone.sid) == 0
    await asyncio.sleep(1.1)
    assert await store.sweep() == []  # and not reported offline a second time


async def test_what_crashed_processes_leave_behind_is_pruned(
    store: PresenceStore, redis: Redis
) -> None:
    """A dead socket's session goes at its app's next connect, its person at the sweep."""
    app_id, ann, bob = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    crashed = _socket(app_id, ann)
    await store.connect(crashed)
    await asyncio.sleep(1.1)  # no heartbeat: expired
    newcomer = _socket(app_id, bob)
    await store.connect(newcomer)
    sessions, people = store._sessions_key(app_id, "user"), store._people_key(app_id, "user")
    assert await redis.hkeys(sessions) == [newcomer.sid.encode()]
    assert await redis.zrange(store._app_key(app_id, "user"), 0, -1) == [newcomer.sid.encode()]
    assert await redis.hexists(people, ann.bytes)  # expired: offline, until the sweep
    assert await store.sweep() == [PresenceChange(app_id, "user", ann, online=False)]
    assert await redis.hkeys(people) == [bob.bytes]
    assert await store.online(app_id, "user", [ann, bob]) == [False, True]


async def test_a_lookup_survives_a_lost_connection(redis: Redis, servers: Servers) -> None:
    """online() sends its HMGET on a connection it takes from the client's pool: when Redis
    has closed that one (a restart, a timeout), the call does what any redis-py command does
    there (depending on the server, it reconnects first or fails once), and the next one
    answers; an error reply leaves nothing half read behind."""
    # No heartbeat runs here: a TTL long enough that the kills and reconnects on a slow host
    # cannot expire the session (with the fixture's 1 s one, CI once saw ann go offline).
    store = PresenceStore(redis, f"{servers.prefix}{uuid.uuid4().hex}:", ttl_seconds=60.0)
    app_id, ann = uuid.uuid4(), uuid.uuid4()
    await store.connect(_socket(app_id, ann))
    assert await store.online(app_id, "user", [ann]) == [True]

    async def after_a_kill(call: Callable[[], Awaitable[object]]) -> str:
        lookup_connection = await store.redis.client_id()
        async with Redis.from_url(servers.redis_url) as admin:
            assert await admin.client_kill_filter(_id=lookup_connection) == 1
        try:
            await call()
        except RedisConnectionError:
            return "failed"
        return "answered"

    stock = await after_a_kill(lambda: store.redis.hget(store._people_key(app_id, "user"), "x"))
    assert await after_a_kill(lambda: store.online(app_id, "user", [ann])) == stock
    assert await store.online(app_id, "user", [ann]) == [True]

    wrong_type = store._people_key(app_id, "user")
    await redis.delete(wrong_type)
    await redis.set(wrong_type, "not a hash")
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await store.online(app_id, "user", [ann])
    await redis.delete(wrong_type)
    assert await store.online(app_id, "user", [ann]) == [False]  # the connection still works


async def test_heartbeats_of_many_sockets_go_in_batches(
    store: PresenceStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    app_id = uuid.uuid4()
    sockets = [_socket(app_id, uuid.uuid4(), f"d{i}") for i in range(20)]
    for s in sockets:
        await store.connect(s)
    monkeypatch.setattr(presence, "HEARTBEAT_BATCH", 7)
    await asyncio.sleep(0.6)
    sent = round_trips(monkeypatch, store)
    await store.heartbeat(sockets)
    assert sent == ["EVALSHA"] * 3
    await asyncio.sleep(0.6)  # past the connect's expiry: alive thanks to the heartbeat only
    assert all(await store.online(app_id, "user", [s.person_id for s in sockets]))


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
        assert all(await store.online(app_id, "user", people))
        assert all(await asyncio.gather(*(store.disconnect(s) for s in sockets)))
        assert not any(await store.online(app_id, "user", people))
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
