"""RoutedRedisManager: two Socket.IO servers sharing a Redis channel behave as one (rooms, skip,
acknowledgements and disconnects across them, emits from write-only processes), while each skips
undecoded the messages it has nothing to do with."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import socketio
import uvicorn
from redis.asyncio import Redis

from replyhq.realtime.manager import MAGIC, Emit, RoutedRedisManager, header
from replyhq.settings import Settings
from tests.conftest import Servers, free_port


@dataclass
class Node:
    """One server process' worth: an AsyncServer with its manager, on a real port."""

    sio: socketio.AsyncServer
    manager: RoutedRedisManager
    url: str
    decoded: list[dict[str, Any]] = field(default_factory=list)


async def _node(redis_url: str, channel: str) -> tuple[Node, uvicorn.Server, asyncio.Task[None]]:
    manager = RoutedRedisManager(redis_url, channel=channel)
    sio = socketio.AsyncServer(async_mode="asgi", client_manager=manager)
    port = free_port()
    node = Node(sio, manager, f"http://127.0.0.1:{port}")
    loads = sio.manager.json.loads

    def counting_loads(data: Any, *args: Any, **kwargs: Any) -> Any:
        message = loads(data, *args, **kwargs)
        node.decoded.append(message)
        return message

    manager.json = type(
        "CountingJson",
        (),
        {"loads": staticmethod(counting_loads), "dumps": staticmethod(manager.json.dumps)},
    )

    @sio.on("connect")  # type: ignore[misc]
    async def connect(sid: str, environ: dict[str, Any], auth: dict[str, Any]) -> None:
        await sio.enter_room(sid, auth["room"])

    @sio.on("whoami")  # type: ignore[misc]
    async def whoami(sid: str) -> str:
        return sid

    @sio.on("emit")  # type: ignore[misc]
    async def emit(sid: str, data: dict[str, Any]) -> None:
        await sio.emit(
            "news", data["text"], room=data["room"], skip_sid=sid if data.get("skip_me") else None
        )

    @sio.on("ask")  # type: ignore[misc]
    async def ask(sid: str, other: str) -> Any:
        return await sio.call("question", "ready?", to=other, timeout=5)

    @sio.on("kick")  # type: ignore[misc]
    async def kick(sid: str, other: str) -> None:
        await sio.disconnect(other)

    server = uvicorn.Server(
        uvicorn.Config(socketio.ASGIApp(sio), host="127.0.0.1", port=port, log_level="warning")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    return node, server, task


@pytest.fixture
async def cluster(servers: Servers) -> AsyncIterator[tuple[Node, Node, str]]:
    channel = f"{servers.prefix}manager-test:{uuid.uuid4().hex}"
    started = [await _node(servers.redis_url, channel) for _ in range(2)]
    # python-socketio starts a server's listener at its first connection: make one on each,
    # then wait until both listen, or an emit right after the test's own connections could
    # reach one server only.
    for node, _, _ in started:
        await (await Client().connect(node, "probe")).sio.disconnect()
    redis = Redis.from_url(servers.redis_url)
    try:
        async with asyncio.timeout(5):
            while (await redis.pubsub_numsub(channel))[0][1] < 2:
                await asyncio.sleep(0.02)
    finally:
        await redis.aclose()
    yield started[0][0], started[1][0], channel
    for _, server, task in started:
        server.should_exit = True
        await task


class Client:
    def __init__(self) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        self.news: list[Any] = []
        self.gone = asyncio.Event()
        self.sio.on("news", self.news.append)
        self.sio.on("question", lambda text: f"{text} yes")
        self.sio.on("disconnect", lambda *_: self.gone.set())

    async def connect(self, node: Node, room: str) -> Client:
        await self.sio.connect(node.url, auth={"room": room}, transports=["websocket"])
        return self

    async def call(self, event: str, data: Any = None) -> Any:
        return await self.sio.call(event, data, timeout=5)


@pytest.fixture
async def clients() -> AsyncIterator[list[Client]]:
    made: list[Client] = []
    yield made
    for c in made:
        await c.sio.disconnect()


async def _open(clients: list[Client], node: Node, room: str) -> Client:
    client = await Client().connect(node, room)
    clients.append(client)
    return client


async def _settle() -> None:
    await asyncio.sleep(0.3)


async def test_a_room_spread_over_two_servers_gets_each_emit_once(
    cluster: tuple[Node, Node, str], clients: list[Client]
) -> None:
    a, b, _ = cluster
    ann_a, ann_b = await _open(clients, a, "ann"), await _open(clients, b, "ann")
    ann_b2 = await _open(clients, b, "ann")
    bob_b = await _open(clients, b, "bob")

    await ann_a.call("emit", {"room": "ann", "text": "one"})
    # "one" reaches b through Redis, "two" is b's own: emits of two servers have no order
    # between them (a conversation's order is its seq), so b gets "one" before "two" is sent.
    await _settle()
    await ann_b.call("emit", {"room": "ann", "text": "two", "skip_me": True})
    await _settle()
    assert ann_a.news == ["one", "two"]
    assert ann_b.news == ["one"]  # skipped as the sender of "two"
    assert ann_b2.news == ["one", "two"]
    assert bob_b.news == []


async def test_acknowledgements_and_disconnects_cross_servers(
    cluster: tuple[Node, Node, str], clients: list[Client]
) -> None:
    a, b, _ = cluster
    asker = await _open(clients, a, "ann")
    other = await _open(clients, b, "bob")
    other_sid = await other.call("whoami")

    assert await asker.call("ask", other_sid) == "ready? yes"
    await asker.call("kick", other_sid)
    await asyncio.wait_for(other.gone.wait(), 5)


async def test_write_only_processes_reach_every_server_routed_or_stock(
    servers: Servers, cluster: tuple[Node, Node, str], clients: list[Client]
) -> None:
    a, b, channel = cluster
    on_a, on_b = await _open(clients, a, "ann"), await _open(clients, b, "ann")
    routed = RoutedRedisManager(servers.redis_url, channel=channel, write_only=True)
    stock = socketio.AsyncRedisManager(servers.redis_url, channel=channel, write_only=True)
    await routed.emit("news", "from a worker", room="ann", namespace="/")
    await stock.emit("news", "from an old worker", room="ann", namespace="/")
    await _settle()
    assert on_a.news == on_b.news == ["from a worker", "from an old worker"]
    for manager in (routed, stock):
        await manager.redis.aclose()


async def test_emit_all_reaches_each_room_once_on_every_server(
    servers: Servers, cluster: tuple[Node, Node, str], clients: list[Client]
) -> None:
    """A batch (a domain event to an end user's devices and to the agents) from a server and
    from a write-only process: each room's members everywhere get each emit once, in order,
    and the skipped socket gets none."""
    a, b, channel = cluster
    ann_a, ann_b = await _open(clients, a, "ann"), await _open(clients, b, "ann")
    bob_a, bob_b = await _open(clients, a, "bob"), await _open(clients, b, "bob")
    nobody = await _open(clients, b, "carol")
    skipped = await ann_a.call("whoami")
    await a.manager.emit_all(
        [Emit("news", {"n": 1}, "/", "ann", skipped), Emit("news", {"n": 2}, "/", "bob")]
    )
    worker = RoutedRedisManager(servers.redis_url, channel=channel, write_only=True)
    try:
        await worker.emit_all([Emit("news", "x", "/", "ann"), Emit("news", "y", "/", "bob")])
    finally:
        assert worker.redis is not None
        await worker.redis.aclose()
    await _settle()
    assert ann_a.news == ["x"]
    assert ann_b.news == [{"n": 1}, "x"]
    assert bob_a.news == bob_b.news == [{"n": 2}, "y"]
    assert nobody.news == []


async def test_a_server_skips_undecoded_what_is_not_for_it(
    cluster: tuple[Node, Node, str], clients: list[Client]
) -> None:
    a, b, _ = cluster
    sender = await _open(clients, a, "ann")
    listener = await _open(clients, b, "bob")
    a.decoded.clear()
    b.decoded.clear()

    await sender.call("emit", {"room": "ann", "text": "only on a"})  # no member of "ann" on b
    await listener.call("emit", {"room": "bob", "text": "only on b"})
    await _settle()
    assert listener.news == ["only on b"] and sender.news == ["only on a"]
    assert a.decoded == [] and b.decoded == []  # neither decoded the other's, nor its own echo

    await _open(clients, b, "ann")  # now b has a member of "ann": it must decode and deliver
    await sender.call("emit", {"room": "ann", "text": "to both"})
    await _settle()
    assert [m["data"] for m in b.decoded] == [["to both"]]
    assert a.decoded == []


async def test_a_disconnected_socket_leaves_every_room_and_only_its_own(
    cluster: tuple[Node, Node, str], clients: list[Client]
) -> None:
    a, _, _ = cluster
    stay, leave = await _open(clients, a, "ann"), await _open(clients, a, "ann")
    stay_sid, leave_sid = await stay.call("whoami"), await leave.call("whoami")
    await a.sio.enter_room(leave_sid, "extra")
    assert sorted(a.manager.get_rooms(leave_sid, "/")) == sorted([leave_sid, "ann", "extra"])

    clients.remove(leave)
    await leave.sio.disconnect()
    await _settle()
    assert a.manager.get_rooms(leave_sid, "/") == []
    assert "extra" not in a.manager.rooms["/"] and leave_sid not in a.manager.rooms["/"]
    assert sorted(a.manager.get_rooms(stay_sid, "/")) == sorted([stay_sid, "ann"])
    await stay.call("emit", {"room": "ann", "text": "still here"})
    await _settle()
    assert stay.news == ["still here"] and leave.news == []


def test_the_header_names_the_route_and_keeps_the_json_intact() -> None:
    message = {"method": "emit", "host_id": "h1", "namespace": "/", "room": "a\nb", "data": [1]}
    manager = RoutedRedisManager("redis://127.0.0.1:1/0", write_only=True)
    payload = header(message) + json.dumps(message).encode()
    assert manager.wanted(payload) is None  # no member of that room here
    manager.rooms = {"/": {"a\nb": {}}}
    assert json.loads(manager.wanted(payload) or b"") == message
    assert manager.wanted(json.dumps(message).encode()) == json.dumps(message).encode()


async def test_servers_and_write_only_processes_all_speak_the_routed_format(
    servers: Servers, settings: Settings
) -> None:
    """A stock manager cannot read routed messages: servers and workers must both be routed."""
    from redis.asyncio import Redis

    from replyhq.events import Event
    from replyhq.realtime.delivery import WriterSink, manager_channel
    from replyhq.realtime.server import RealtimeServer

    assert isinstance(RealtimeServer(settings, servers.redis_url).sio.manager, RoutedRedisManager)
    redis = Redis.from_url(servers.redis_url)
    listener = redis.pubsub()
    await listener.subscribe(manager_channel(settings))
    sink = WriterSink(settings, servers.redis_url, redis)
    try:
        app_id, user_id = uuid.uuid4(), uuid.uuid4()
        await sink(Event("message:new", app_id, {"n": 1}, end_user_id=user_id))
        message = None
        for _ in range(50):
            message = await listener.get_message(ignore_subscribe_messages=True, timeout=0.1)
            if message is not None:
                break
        assert message is not None
        assert message["data"].startswith(MAGIC)
        assert f"user:{app_id}:{user_id}".encode() in message["data"].split(b"\n", 5)[4]
    finally:
        await sink.aclose()
        await listener.aclose()
        await redis.aclose()


async def test_a_burst_of_emits_past_the_pool_waits_instead_of_being_lost(
    servers: Servers,
) -> None:
    from redis.asyncio import Redis

    channel = f"{servers.prefix}manager-burst:{uuid.uuid4().hex}"
    name = f"burst-{uuid.uuid4().hex[:8]}"
    redis = Redis.from_url(servers.redis_url)
    listener = redis.pubsub()
    await listener.subscribe(channel)
    publisher = RoutedRedisManager(
        servers.redis_url,
        channel=channel,
        write_only=True,
        max_connections=5,
        pool_timeout=10,
        redis_options={"client_name": name},
    )
    try:
        await asyncio.gather(
            *(publisher.emit("news", i, room=f"r{i}", namespace="/") for i in range(300))
        )
        named = [c for c in await redis.client_list() if c.get("name") == name]
        assert 0 < len(named) <= 5
        received = 0
        deadline = asyncio.get_running_loop().time() + 10
        while received < 300 and asyncio.get_running_loop().time() < deadline:
            # None for the subscription's own confirmation
            if await listener.get_message(ignore_subscribe_messages=True, timeout=1):
                received += 1
        assert received == 300
    finally:
        await listener.aclose()
        await redis.aclose()
        await publisher.aclose()


async def _named(redis: Any, name: str) -> int:
    return sum(1 for c in await redis.client_list() if c.get("name") == name)


async def test_a_write_only_process_releases_its_publisher_connections_when_it_closes(
    servers: Servers,
) -> None:
    """A job worker's or CLI command's runtime publishes through its own Redis pool: closing the
    runtime closes it, and a publish that met a broken connection keeps the same pool rather than
    leaving one behind per failure."""
    from redis.asyncio import Redis

    from replyhq.events import Event
    from replyhq.realtime.delivery import manager_channel
    from replyhq.runtime import Runtime
    from tests.conftest import make_settings

    settings = make_settings(servers, redis_prefix=f"{servers.prefix}{uuid.uuid4().hex[:8]}:")
    name = manager_channel(settings)  # the name of every Socket.IO manager connection
    runtime = Runtime.build(settings, servers.database_url, servers.redis_url)
    admin = Redis.from_url(servers.redis_url)
    listener = admin.pubsub()
    await listener.subscribe(name)
    try:
        event = Event("message:new", uuid.uuid4(), {"n": 1}, end_user_id=uuid.uuid4())
        await runtime.publisher(event)
        assert await _named(admin, name) == 1
        client = runtime.publisher.manager.redis
        (connection,) = [c for c in await admin.client_list() if c.get("name") == name]
        await admin.client_kill_filter(_id=connection["id"])
        await runtime.publisher(event)  # fails on the killed connection, then is sent again
        assert runtime.publisher.manager.redis is client
        received = []
        for _ in range(50):
            message = await listener.get_message(ignore_subscribe_messages=True, timeout=0.1)
            if message is not None:
                received.append(message)
            if len(received) == 2:
                break
        assert len(received) == 2
        assert await _named(admin, name) == 1
    finally:
        await runtime.close()
        assert await _named(admin, name) == 0
        await listener.aclose()
        await admin.aclose()
