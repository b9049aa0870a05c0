"""Real time: idle connections and their memory, fan-out deliveries, end-to-end sends, presence.

Each figure beside a baseline measured in the same run (issue 4, "How it is checked"):

- idle websocket connections held by one box (as many server processes as the open-file limit
  needs), and memory per connection (RSS delta / connections) against bare Node `socket.io`
  servers (bench/node/bare_server.mjs) holding the same count (goal: 20,000; at most 2.5x the
  memory);
- deliveries per second to 10,000 clients in rooms of 10, through two ReplyHQ processes sharing
  Redis, against the bare Node server broadcasting the same (goal: at least 0.5x), with
  python-socketio's stock Redis manager and with replyhq.realtime.manager.RoutedRedisManager;
- end to end (message:send -> insert under RLS -> commit -> fan-out to the 10 devices of the
  sender's end user): sustained messages per second, and p99 send-to-receive latency at half that
  rate (goal: at most 50 ms);
- session and presence lookups for 1,000 devices (PresenceStore.online, .active_sessions): p99
  (goal: at most 2 ms), against the same lookups made one round trip per device.

Clients are the official socket.io-client in Node processes (bench/node/load_client.mjs), from
several 127.0.0.x source addresses. Devices are inserted in bulk (one tenant session) rather than
through /v1/identify, which would cost minutes for 20,000 devices. Everything listens on and
connects to 127.0.0.0/8 only; every loop is bounded in time.

Standalone: `python -m bench.bench_realtime` (needs `npm ci` at the repository root).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import socketio
from redis.asyncio import Redis
from sqlalchemy import insert

from bench import common
from replyhq.messaging import service as messaging
from replyhq.messaging.service import Participant
from replyhq.realtime.base import room_of_user
from replyhq.realtime.delivery import manager_channel
from replyhq.realtime.manager import RoutedRedisManager
from replyhq.realtime.presence import LiveSession, PresenceStore
from replyhq.settings import Settings
from replyhq.users.models import Device, EndUser

ROOT = Path(__file__).resolve().parents[1]
NODE_DIR = Path(__file__).parent / "node"

IDLE_GOAL = 20_000
IDLE_WARM = 200  # connected before the memory baseline is read
MEMORY_GOAL = 2.5
ROOM = 10  # devices per end user: a room of 10
FANOUT_CLIENTS = 10_000
FANOUT_GOAL = 0.5
FANOUT_WARMUP = 2.0
FANOUT_SECONDS = 8.0
FANOUT_WINDOW = 20_000  # deliveries in flight at most (keeps Redis' pub/sub buffers small)
FANOUT_BATCH = 100  # emits per batch
E2E_USERS = 100  # end users (rooms of 10 devices) taking part in the end-to-end run
E2E_SENDERS = 40  # concurrent senders in the closed loop
E2E_SECONDS = 8.0
LATENCY_GOAL_MS = 50.0
PRESENCE_DEVICES = 1_000
PRESENCE_GOAL_MS = 2.0
PRESENCE_SAMPLES = 1_200  # p99 is then the 12th slowest call, not the 3rd: one call preempted on
# the shared cores moved a p99 of 300 calls by a millisecond or more
CLIENT_PROCESSES = 4
SOURCE_ADDRESSES = [f"127.0.0.{i}" for i in range(2, 10)]
CONNECT_TIMEOUT = 600.0  # 10,000 handshakes per process at 5-10 ms of CPU each, on 2 shared cores
IDLE_FD_HEADROOM = 300  # files a server process keeps open besides its sockets

USERS = IDLE_GOAL // ROOM

PAYLOAD = {  # what a message:new carries (the shape of a stored message)
    "message": {
        "id": "5f1b7c9e-1f0a-4c5b-9d0e-6a8f3b2c1d4e",
        "conversation_id": "0b6e2f1c-8d3a-4e7b-a1c2-d3e4f5a6b7c8",
        "seq": 42,
        "client_msg_id": "c0ffee00c0ffee00c0ffee00c0ffee00",
        "sender": "agent",
        "author": {"type": "agent", "id": "7a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", "name": "Sam"},
        "body": "Thanks for reaching out! I have reset your password, please try again now.",
        "body_html": "<p>Thanks for reaching out! I have reset your password, please try again "
        "now.</p>",
        "created_at": "2026-11-26T20:55:25.123456+00:00",
    }
}


def say(text: str) -> None:
    """Progress, on standard error (the table goes to standard output)."""
    print(f"   realtime: {text}", file=sys.stderr, flush=True)


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("bench_realtime needs Node.js (node) on PATH")
    if not (ROOT / "node_modules" / "socket.io" / "package.json").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=ROOT, check=True)
    return node


def _rss(pid: int) -> int:
    """Resident memory of a process and its children, in bytes."""
    total = 0
    for member in common._tree(pid):
        try:
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


# --- data ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seed:
    tenant: common.Tenant
    users: list[uuid.UUID]  # end user i owns devices d{i}-0 .. d{i}-9
    conversations: list[uuid.UUID]  # of the first E2E_USERS users

    def device_auth(self, user: int, device: int) -> dict[str, str]:
        return {
            "app_id": str(self.tenant.id),
            "api_key": self.tenant.sdk_key,
            "device_id": f"d{user}-{device}",
        }


async def seed(owner_url: str) -> Seed:
    db = common.database(owner_url, pool_size=2)
    try:
        tenant = await common.create_tenant(db, rounds=4)
        users = [uuid.uuid4() for _ in range(USERS)]
        async with db.tenant_session(tenant.id) as session:
            await session.execute(
                insert(EndUser),
                [
                    {"id": u, "app_id": tenant.id, "external_id": f"u{i}", "name": f"User {i}"}
                    for i, u in enumerate(users)
                ],
            )
            await session.execute(
                insert(Device),
                [
                    {
                        "app_id": tenant.id,
                        "device_id": f"d{i}-{k}",
                        "end_user_id": u,
                        "platform": "ios",
                    }
                    for i, u in enumerate(users)
                    for k in range(ROOM)
                ],
            )
        conversations = []
        async with db.tenant_session(tenant.id) as session:
            for i in range(E2E_USERS):
                conversation_id, _ = await messaging.start_conversation(
                    session,
                    tenant.id,
                    Participant("user", users[i], f"User {i}"),
                    subject=None,
                    first_message=None,
                )
                conversations.append(conversation_id)
        return Seed(tenant, users, conversations)
    finally:
        await db.dispose()


# --- processes ----------------------------------------------------------------------------------


@dataclass
class Process:
    """A child process speaking JSON lines on stdin/stdout."""

    process: asyncio.subprocess.Process
    replies: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    progress: dict[str, Any] = field(default_factory=dict)
    reader: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, *command: str, **kwargs: Any) -> Process:
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=64 * 1024 * 1024,
            **kwargs,
        )
        child = cls(process)
        child.reader = asyncio.create_task(child._read())
        return child

    async def _read(self) -> None:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            message = json.loads(line)
            if "progress" in message:
                self.progress = message["progress"]
            else:
                await self.replies.put(message)

    def send(self, command: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command).encode() + b"\n")

    async def ask(self, command: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
        self.send(command)
        return await asyncio.wait_for(self.replies.get(), timeout)

    async def reply(self, timeout: float = 60) -> dict[str, Any]:
        return await asyncio.wait_for(self.replies.get(), timeout)

    async def stop(self) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        if self.reader is not None:
            await common.cancel(self.reader)


class Clients:
    """socket.io-client load processes; each socket is {"url", "auth"}."""

    def __init__(self, processes: list[Process], counts: list[int], tmp: Path) -> None:
        self.processes = processes
        self.counts = counts
        self.tmp = tmp

    @classmethod
    async def start(
        cls, sockets: Sequence[dict[str, Any]], parts: int = CLIENT_PROCESSES
    ) -> Clients:
        tmp = Path(tempfile.mkdtemp(prefix="replyhq-bench-clients-"))
        processes, counts = [], []
        for part in range(parts):
            mine = list(sockets[part::parts])
            if not mine:
                continue
            config = tmp / f"clients-{part}.json"
            config.write_text(
                json.dumps(
                    {
                        "sockets": mine,
                        "local_addresses": SOURCE_ADDRESSES[part::parts] or SOURCE_ADDRESSES,
                        "concurrency": 16,
                        "report_ms": 50,
                    }
                )
            )
            script = str(NODE_DIR / "load_client.mjs")
            processes.append(await Process.start(_node(), script, str(config), cwd=ROOT))
            counts.append(len(mine))
        return cls(processes, counts, tmp)

    def total(self, key: str) -> int:
        return sum(int(p.progress.get(key, 0)) for p in self.processes)

    def errors(self) -> list[str]:
        return [e for p in self.processes for e in p.progress.get("errors", [])][:5]

    async def connected(self, timeout: float = CONNECT_TIMEOUT) -> tuple[int, float]:
        """(sockets connected, seconds) once every handshake has succeeded or failed."""
        began = time.monotonic()
        wanted = sum(self.counts)
        while time.monotonic() - began < timeout:
            if self.total("connected") + self.total("failed") >= wanted:
                break
            if any(p.process.returncode is not None for p in self.processes):
                raise RuntimeError(f"a load client exited: {self.errors()}")
            await asyncio.sleep(0.1)
        seconds = time.monotonic() - began
        say(f"{self.total('connected'):,} of {wanted:,} sockets connected in {seconds:.0f} s")
        return self.total("connected"), seconds

    async def close(self) -> None:
        for p in self.processes:
            with contextlib.suppress(Exception):
                p.send({"cmd": "close"})
        for p in self.processes:
            await p.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


@dataclass
class NodeServer:
    process: Process
    url: str

    @classmethod
    async def start(cls) -> NodeServer:
        script = str(NODE_DIR / "bare_server.mjs")
        process = await Process.start(_node(), script, "0", cwd=ROOT)
        port = (await process.reply(30))["listening"]
        return cls(process, f"http://127.0.0.1:{port}")

    @property
    def pid(self) -> int:
        return self.process.process.pid


async def start_replyhq(
    owner_url: str,
    redis_url: str,
    prefix: str,
    manager: str | None = None,
    send: str | None = None,
) -> common.Server:
    """`replyhq serve` (through bench/realtime_server.py, to pick the Redis manager and the
    socket's send path)."""
    extra = {"BENCH_SOCKETIO_MANAGER": manager} if manager else {}
    if send is not None:
        extra["BENCH_SOCKET_SEND"] = send
    tmp = Path(tempfile.mkdtemp(prefix="replyhq-bench-server-"))
    port = common.free_port()
    log = tmp / "server.log"
    env = common.server_env(
        owner_url,
        redis_url,
        prefix,
        DATA_DIR=str(tmp / "data"),
        LOG_LEVEL="WARNING",
        BCRYPT_ROUNDS="4",
        **extra,
    )
    command = [sys.executable, "-m", "bench.realtime_server", "serve", "--host", common.HOST]
    command += ["--port", str(port), "--no-migrate"]
    process = subprocess.Popen(
        command, env=env, cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    server = common.Server(f"http://{common.HOST}:{port}", process, log, tmp)
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient() as http:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"server exited: {log.read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(server.url + "/readyz", timeout=2)).status_code == 200:
                    return server
            await asyncio.sleep(0.2)
    server.stop()
    raise RuntimeError(f"server did not start: {log.read_text()[-2000:]}")


@dataclass
class Cluster:
    servers: list[common.Server]
    channel: str  # the Socket.IO manager's Redis channel

    def cpu_seconds(self) -> float:
        return sum(s.cpu_seconds() for s in self.servers)


@contextlib.asynccontextmanager
async def replyhq_servers(
    owner_url: str, count: int, manager: str | None = None, send: str | None = None
) -> AsyncIterator[Cluster]:
    """`count` server processes sharing PostgreSQL and Redis (their own key prefix)."""
    redis_url = common.services().redis_url
    prefix = common.redis_prefix("realtime")
    cluster = Cluster([], manager_channel(Settings(redis_prefix=prefix)))
    try:
        for _ in range(count):
            server = await start_replyhq(owner_url, redis_url, prefix, manager, send)
            cluster.servers.append(server)
        yield cluster
    finally:
        for server in cluster.servers:
            server.stop()
        await _forget(redis_url, prefix)


async def _forget(redis_url: str, prefix: str) -> None:
    """Delete this run's own Redis keys (presence, rate limits): nothing else is touched."""
    redis = Redis.from_url(redis_url)
    try:
        keys = [k async for k in redis.scan_iter(match=prefix + "*", count=1000)]
        for start in range(0, len(keys), 500):
            await redis.delete(*keys[start : start + 500])
    finally:
        await redis.aclose()


def shipped_manager() -> str:
    """The Redis manager src/replyhq/realtime/server.py wires: "routed" or "stock"."""
    import inspect

    from replyhq.realtime import server

    return "routed" if "RoutedRedisManager" in inspect.getsource(server) else "stock"


# --- idle connections and memory ----------------------------------------------------------------


@dataclass
class Idle:
    wanted: int
    connected: int
    seconds: float
    per_connection: float  # bytes
    rss: int
    errors: list[str]


async def hold_idle(pids: list[int], sockets: list[dict[str, Any]]) -> Idle:
    """Connect IDLE_WARM sockets, read the servers' RSS, connect the rest, let them settle, read
    it again. `sockets` take the servers in turn, so each holds its share."""
    warm = await Clients.start(sockets[:IDLE_WARM], parts=1)
    rest: Clients | None = None
    try:
        await warm.connected()
        await asyncio.sleep(2)
        before = sum(_rss(pid) for pid in pids)
        rest = await Clients.start(sockets[IDLE_WARM:])
        connected, seconds = await rest.connected()
        await asyncio.sleep(5)  # idle: pings only
        after = sum(_rss(pid) for pid in pids)
        still = warm.total("connected") + rest.total("connected")
        dropped = warm.total("dropped") + rest.total("dropped")
        return Idle(
            len(sockets),
            still - dropped,
            seconds,
            (after - before) / max(1, connected),
            after,
            warm.errors() + rest.errors(),
        )
    finally:
        await warm.close()
        if rest is not None:
            await rest.close()


async def measure_idle(owner_url: str, data: Seed, count: int, processes: int) -> tuple[Idle, Idle]:
    """`count` idle sockets held by `processes` ReplyHQ servers, then by as many bare Node ones."""
    async with replyhq_servers(owner_url, processes) as cluster:
        urls = [s.url for s in cluster.servers]
        sockets = [
            {"url": urls[i % processes], "auth": data.device_auth(i // ROOM, i % ROOM)}
            for i in range(count)
        ]
        ours = await hold_idle([s.process.pid for s in cluster.servers], sockets)
    nodes = [await NodeServer.start() for _ in range(processes)]
    try:
        sockets = [
            {"url": nodes[i % processes].url, "auth": {"room": f"r{i // ROOM}"}}
            for i in range(count)
        ]
        bare = await hold_idle([node.pid for node in nodes], sockets)
    finally:
        for node in nodes:
            await node.process.stop()
    return ours, bare


# --- fan-out ------------------------------------------------------------------------------------


@dataclass
class Fanout:
    deliveries_per_second: float
    connected: int  # when the measurement began
    cpu_seconds: float  # of the server processes, during the measured window
    errors: list[str] = field(default_factory=list)

    @property
    def per_cpu_second(self) -> float:
        return self.deliveries_per_second * FANOUT_SECONDS / max(self.cpu_seconds, 1e-9)


Blast = Callable[[int, int], Awaitable[None]]  # (emits so far, emits now)


async def drive(clients: Clients, blast: Blast, cpu: Callable[[], float]) -> Fanout:
    """Emit to rooms in turn, keeping at most FANOUT_WINDOW deliveries in flight; count what the
    clients received during FANOUT_SECONDS after FANOUT_WARMUP."""
    emitted, received_before = 0, clients.total("received")
    connected = clients.total("connected")  # fewer than wanted: handshakes still take CPU
    began = time.monotonic()
    measure_from, stop_at = began + FANOUT_WARMUP, began + FANOUT_WARMUP + FANOUT_SECONDS
    first: tuple[float, int, float] | None = None
    while (now := time.monotonic()) < stop_at:
        if first is None and now >= measure_from:
            first = (now, clients.total("received"), cpu())
        if emitted * ROOM - (clients.total("received") - received_before) < FANOUT_WINDOW:
            await blast(emitted, FANOUT_BATCH)
            emitted += FANOUT_BATCH
        else:
            await asyncio.sleep(0.005)
    assert first is not None
    elapsed = time.monotonic() - first[0]
    received = clients.total("received") - first[1]
    # let the backlog drain before the next measurement on the same clients
    deadline = time.monotonic() + 30
    while clients.total("received") - received_before < emitted * ROOM:
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    return Fanout(received / elapsed, connected, cpu() - first[2])


def _publisher(manager: str, channel: str) -> Any:
    """A write-only manager, as a job worker has, of the servers' kind."""
    kind: Any = RoutedRedisManager if manager == "routed" else socketio.AsyncRedisManager
    return kind(common.services().redis_url, channel=channel, write_only=True)


async def fanout_replyhq(owner_url: str, data: Seed, manager: str) -> dict[str, Fanout]:
    """FANOUT_CLIENTS devices over two processes: the first half of the rooms with their members
    spread over both (as a balancer places them), the other half each on one process (as sticky
    routing by user would); each half measured on its own."""
    rooms = FANOUT_CLIENTS // ROOM
    results: dict[str, Fanout] = {}
    async with replyhq_servers(owner_url, 2, manager) as cluster:
        urls = [s.url for s in cluster.servers]
        sockets = [
            {
                "url": urls[i % 2] if i // ROOM < rooms // 2 else urls[(i // ROOM) % 2],
                "auth": data.device_auth(i // ROOM, i % ROOM),
            }
            for i in range(FANOUT_CLIENTS)
        ]
        clients = await Clients.start(sockets)
        publisher = _publisher(manager, cluster.channel)
        try:
            await clients.connected()
            names = [room_of_user(data.tenant.id, data.users[r]) for r in range(rooms)]
            halves = {"spread": names[: rooms // 2], "one process": names[rooms // 2 :]}
            for placement, chosen in halves.items():

                async def blast(start: int, count: int, chosen: list[str] = chosen) -> None:
                    for k in range(start, start + count):
                        room = chosen[k % len(chosen)]
                        await publisher.emit("message:new", PAYLOAD, room=room, namespace="/")

                results[placement] = await drive(clients, blast, cluster.cpu_seconds)
                results[placement].errors = clients.errors()
            return results
        finally:
            await clients.close()
            if publisher.redis is not None:
                await publisher.redis.aclose()


async def fanout_node() -> Fanout:
    rooms = FANOUT_CLIENTS // ROOM
    node = await NodeServer.start()
    sockets = [{"url": node.url, "auth": {"room": f"r{i // ROOM}"}} for i in range(FANOUT_CLIENTS)]
    clients = await Clients.start(sockets)
    try:
        await clients.connected()
        names = [f"r{r}" for r in range(rooms)]

        async def blast(start: int, count: int) -> None:
            command = {"cmd": "blast", "rooms": names, "start": start % rooms, "count": count}
            await node.process.ask({**command, "payload": PAYLOAD})

        pid = node.pid
        result = await drive(clients, blast, lambda: common._cpu_seconds(pid))
        result.errors = clients.errors()
        return result
    finally:
        await clients.close()
        await node.process.stop()


# --- end to end ---------------------------------------------------------------------------------


E2E_SENDS = ("orm", "statement")  # the socket's send path: as before (baseline), as shipped


@dataclass
class EndToEnd:
    send: str  # "orm" (bench/realtime_server.py's old path) or "statement" (shipped)
    sustained: float  # messages per second, closed loop
    cpu_ms: float  # server CPU (both processes) per message in the closed loop
    rate: float  # the open-loop rate of the latency run
    latencies: list[float]  # ms, one per delivery
    acks: list[float]  # ms from send to acknowledgement (stored and committed)
    deliveries_per_message: float
    errors: list[str]
    round_p99s: list[float] = field(default_factory=list)  # when pooled from several rounds


async def _send_everywhere(
    clients: Clients, senders: dict[int, list[dict[str, Any]]], command: dict[str, Any]
) -> tuple[int, list[float], list[str]]:
    asked = [clients.processes[part] for part in senders]
    total = sum(len(mine) for mine in senders.values())
    for part, mine in senders.items():
        share = dict(command, senders=mine)
        if "rate" in command:  # the rate is over all senders: each process sends its share
            share["rate"] = command["rate"] * len(mine) / total
        clients.processes[part].send(share)
    replies = [(await p.reply(E2E_SECONDS + 60))["sent"] for p in asked]
    errors = [e for r in replies for e in r.get("error_samples", [])]
    errors += [r["fatal"] for r in replies if "fatal" in r]
    acks = [ms for r in replies for ms in r.get("ack_ms", [])]
    return sum(r.get("acked", 0) for r in replies), acks, errors


async def end_to_end(owner_url: str, data: Seed, send: str) -> EndToEnd:
    """One device of each end user sends; all 10 devices of that user receive message:new.
    The senders alternate between the two processes, so both take sends."""
    async with replyhq_servers(owner_url, 2, send=None if send == "statement" else send) as cluster:
        urls = [s.url for s in cluster.servers]
        count = E2E_USERS * ROOM
        sockets = [
            {"url": urls[i % 2], "auth": data.device_auth(i // ROOM, i % ROOM)}
            for i in range(count)
        ]
        clients = await Clients.start(sockets)
        try:
            await clients.connected()
            parts = len(clients.processes)

            def senders(users: int) -> dict[int, list[dict[str, Any]]]:
                chosen: dict[int, list[dict[str, Any]]] = {}
                for user in range(users):
                    index = user * ROOM + user % 2  # socket i is on process i % 2
                    chosen.setdefault(index % parts, []).append(
                        {"index": index // parts, "conversation_id": str(data.conversations[user])}
                    )
                return chosen

            closed = {"cmd": "send", "mode": "closed", "duration": E2E_SECONDS}
            cpu_before = cluster.cpu_seconds()
            acked, _, errors = await _send_everywhere(clients, senders(E2E_SENDERS), closed)
            cpu_ms = 1000 * (cluster.cpu_seconds() - cpu_before) / max(1, acked)
            sustained = acked / E2E_SECONDS
            await asyncio.sleep(1)

            rate = sustained / 2
            for p in clients.processes:
                p.send({"cmd": "record", "on": True})
            received_before = clients.total("received")
            opened = {"cmd": "send", "mode": "open", "rate": rate, "duration": E2E_SECONDS}
            acked_open, acks, more = await _send_everywhere(clients, senders(E2E_USERS), opened)
            await asyncio.sleep(1)  # the last deliveries
            latencies = [
                ms
                for p in clients.processes
                for ms in (await p.ask({"cmd": "latencies"}))["latencies"]
            ]
            delivered = clients.total("received") - received_before
            return EndToEnd(
                send,
                sustained,
                cpu_ms,
                rate,
                latencies,
                acks,
                delivered / max(1, acked_open),
                (errors + more + clients.errors())[:5],
            )
        finally:
            await clients.close()


# --- presence -----------------------------------------------------------------------------------


async def _timed(call: Callable[[], Awaitable[Any]], samples: int) -> list[float]:
    timings = []
    for _ in range(samples):
        began = time.perf_counter()
        await call()
        timings.append((time.perf_counter() - began) * 1000)
    return timings


async def _alternating(
    calls: dict[str, Callable[[], Awaitable[Any]]], samples: int, rounds: int = 6
) -> dict[str, list[float]]:
    """Each call timed `samples` times, in `rounds` blocks taken in turn (the order rotating), so
    that the load of the shared machine falls on all of them alike; the garbage a block leaves
    behind is collected after it, untimed, not in the next one's timings."""
    timings: dict[str, list[float]] = {name: [] for name in calls}
    names = list(calls)
    for turn in range(rounds):
        for name in names[turn % len(names) :] + names[: turn % len(names)]:
            timings[name] += await _timed(calls[name], samples // rounds)
            gc.collect()
    return timings


class PipelinedPresence:
    """The lookups and heartbeat as PresenceStore made them before its Lua scripts: one pipeline
    of one command per person, session or key, sessions kept as hashes (written by `record`).
    Measured beside the shipped store, on the same sockets."""

    def __init__(self, store: PresenceStore) -> None:
        self.store = store

    def _hash_key(self, sid: str) -> str:
        return f"{self.store.prefix}sess:{sid}"

    async def record(self, sessions: Sequence[LiveSession]) -> None:
        async with self.store.redis.pipeline(transaction=False) as pipe:
            for s in sessions:
                fields = {
                    "app_id": str(s.app_id),
                    "kind": s.kind,
                    "person_id": str(s.person_id),
                    "device_id": s.device_id or "",
                    "connected_at": str(time.time()),
                }
                pipe.hset(self._hash_key(s.sid), mapping=fields)
            await pipe.execute()

    async def online(
        self, app_id: uuid.UUID, kind: Any, person_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, bool]:
        now = time.time()
        async with self.store.redis.pipeline(transaction=False) as pipe:
            for person_id in person_ids:
                pipe.zcount(self.store._person_key(app_id, kind, person_id), now, "+inf")
            counts = await pipe.execute()
        return {p: int(c) > 0 for p, c in zip(person_ids, counts, strict=True)}

    async def active_sessions(self, app_id: uuid.UUID, kind: Any) -> list[dict[str, str]]:
        store = self.store
        found = await store.redis.zrangebyscore(store._app_key(app_id, kind), time.time(), "+inf")
        sids = [s.decode() for s in found]
        async with store.redis.pipeline(transaction=False) as pipe:
            for sid in sids:
                pipe.hgetall(self._hash_key(sid))
            rows = await pipe.execute()
        return [
            {"sid": sid, **{k.decode(): v.decode() for k, v in row.items()}}
            for sid, row in zip(sids, rows, strict=True)
            if row
        ]

    async def heartbeat(self, sessions: Sequence[LiveSession]) -> None:
        store = self.store
        expires = time.time() + store.ttl
        async with store.redis.pipeline(transaction=False) as pipe:
            for s in sessions:
                for key in store._keys(s):
                    pipe.zadd(key, {s.sid: expires}, xx=True)
                    pipe.expire(key, int(store.ttl * 2))
                pipe.expire(self._hash_key(s.sid), int(store.ttl * 2))
                pipe.zadd(store._index_key, {store._index_member(s): expires}, gt=True)
            await pipe.execute()


async def presence_lookups() -> dict[str, list[float]]:
    """PresenceStore.online, .active_sessions and .heartbeat for 1,000 live devices; the same
    through one pipeline of 1,000 commands (the store before its Lua scripts); and the lookups
    answered one round trip per device (the baseline)."""
    redis = Redis.from_url(common.services().redis_url)
    prefix = common.redis_prefix("presence")
    # A TTL longer than the part: the pipelined baseline's heartbeat pushes back only the sets
    # (the store before its expiry hashes), so with 60 s a slow host's round of blocks between
    # two of the store's own heartbeats outlived the hashes' expiry and online() found nobody.
    store = PresenceStore(redis, prefix, 3600.0)
    pipelined = PipelinedPresence(store)
    app_id = uuid.uuid4()
    people = [uuid.uuid4() for _ in range(PRESENCE_DEVICES)]
    sessions = [
        LiveSession(f"sid-{i}", app_id, "user", person, f"device-{i}")
        for i, person in enumerate(people)
    ]
    try:
        for chunk in range(0, len(sessions), 100):
            await asyncio.gather(*(store.connect(s) for s in sessions[chunk : chunk + 100]))
        await pipelined.record(sessions)

        async def online() -> None:
            assert sum(await store.online(app_id, "user", people)) == PRESENCE_DEVICES

        async def online_pipeline() -> None:
            found = await pipelined.online(app_id, "user", people)
            assert sum(found.values()) == PRESENCE_DEVICES

        async def active() -> None:
            assert len(await store.active_sessions(app_id, "user")) == PRESENCE_DEVICES

        async def active_pipeline() -> None:
            assert len(await pipelined.active_sessions(app_id, "user")) == PRESENCE_DEVICES

        async def heartbeat() -> None:
            await store.heartbeat(sessions)

        async def heartbeat_pipeline() -> None:
            await pipelined.heartbeat(sessions)

        async def online_one_by_one() -> None:
            now = time.time()
            for person in people:
                await redis.zcount(store._person_key(app_id, "user", person), now, "+inf")

        async def active_one_by_one() -> None:
            for s in await store.sids_of_app(app_id, "user"):
                await redis.hget(store._sessions_key(app_id, "user"), s)

        calls = {
            "online": online,
            "online_pipeline": online_pipeline,
            "active": active,
            "active_pipeline": active_pipeline,
            "heartbeat": heartbeat,
            "heartbeat_pipeline": heartbeat_pipeline,
        }
        await _alternating(calls, 12)  # warm-up
        timings = await _alternating(calls, PRESENCE_SAMPLES)
        timings["online_naive"] = await _timed(online_one_by_one, 10)
        timings["active_naive"] = await _timed(active_one_by_one, 10)
        return timings
    finally:
        await redis.aclose()
        await _forget(common.services().redis_url, prefix)


# --- the run ------------------------------------------------------------------------------------


def _idle_target() -> tuple[int, int]:
    """(server processes needed to hold IDLE_GOAL sockets, the open-file limit of a process).
    A process holds at most its open-file limit less some headroom; this machine's hard limit
    is 20,000, so one box's 20,000 sockets take two processes of each kind."""
    limit = common.raise_open_files(1 << 20)
    return -(-IDLE_GOAL // (limit - IDLE_FD_HEADROOM)), limit


def _kb(value: float) -> float:
    return value / 1024


def _presence_rows(timings: dict[str, list[float]]) -> list[dict[str, Any]]:
    rows = []
    for key, label in (("online", "online()"), ("active", "active_sessions()")):
        p99 = common.percentile(timings[key], 99)
        naive = common.median(timings[f"{key}_naive"])
        before = timings[f"{key}_pipeline"]
        before_p99 = common.percentile(before, 99)
        rows.append(
            common.row(
                "realtime",
                f"presence {label}, {PRESENCE_DEVICES:,} devices, p99",
                p99,
                "ms",
                baseline=naive,
                ratio=p99 / naive,
                goal=f"<= {PRESENCE_GOAL_MS:g} ms",
                ok=p99 <= PRESENCE_GOAL_MS,
                note=f"p50 {common.median(timings[key]):.2f} ms over {PRESENCE_SAMPLES} calls; "
                f"one pipeline of a command per device (the store before its Lua scripts), "
                f"alternated with it: p50 {common.median(before):.2f} ms, p99 {before_p99:.2f} "
                f"ms ({before_p99 / p99:.1f}x the p99); baseline: the same answer one round "
                f"trip per device (median)",
            )
        )
    p99 = common.percentile(timings["heartbeat"], 99)
    before = timings["heartbeat_pipeline"]
    rows.append(
        common.row(
            "realtime",
            f"presence heartbeat, {PRESENCE_DEVICES:,} sockets, p99",
            p99,
            "ms",
            baseline=common.percentile(before, 99),
            ratio=p99 / common.percentile(before, 99),
            note=f"p50 {common.median(timings['heartbeat']):.2f} ms; baseline: one pipeline of 5 "
            f"commands per socket (the store before its Lua scripts), alternated with it, p50 "
            f"{common.median(before):.2f} ms",
        )
    )
    return rows


def _idle_rows(ours: Idle, bare: Idle, processes: int, nofile: int) -> list[dict[str, Any]]:
    split = (
        f"{processes} processes of each kind, as this machine caps a process at {nofile:,} "
        f"open files (hard limit, not raisable here); "
        if processes > 1
        else ""
    )
    ratio = ours.per_connection / bare.per_connection
    return [
        common.row(
            "realtime",
            f"idle websocket connections, one box ({processes} server process"
            + ("es)" if processes > 1 else ")"),
            ours.connected,
            "connections",
            baseline=bare.connected,
            ratio=ours.connected / max(1, bare.connected),
            goal=f">= {IDLE_GOAL:,}",
            ok=ours.connected >= IDLE_GOAL,
            note=f"{split}{ours.wanted:,} attempted from {len(SOURCE_ADDRESSES)} source "
            f"addresses; handshakes took {ours.seconds:.0f} s (Node {bare.seconds:.0f} s)"
            + (f"; errors: {ours.errors}" if ours.errors else ""),
        ),
        common.row(
            "realtime",
            "memory per idle connection",
            _kb(ours.per_connection),
            "KiB",
            baseline=_kb(bare.per_connection),
            ratio=ratio,
            goal=f"<= {MEMORY_GOAL:g}x Node",
            ok=ratio <= MEMORY_GOAL,
            note=f"RSS delta of the server processes / connections at {ours.connected:,}; RSS "
            f"{ours.rss / 2**20:,.0f} MiB (Node {bare.rss / 2**20:,.0f} MiB)",
        ),
    ]


def _fanout_rows(manager: str, results: dict[str, Fanout], node: Fanout) -> list[dict[str, Any]]:
    rows = []
    for placement, result in results.items():
        ratio = result.deliveries_per_second / node.deliveries_per_second
        # Handshakes still running while deliveries are counted take the servers' CPU.
        complete = result.connected >= FANOUT_CLIENTS
        rows.append(
            common.row(
                "realtime",
                f"fan-out, 2 processes, {manager} manager, rooms {placement}",
                result.deliveries_per_second,
                "deliveries/s",
                baseline=node.deliveries_per_second,
                ratio=ratio,
                goal=f">= {FANOUT_GOAL:g}x Node",
                ok=ratio >= FANOUT_GOAL if complete else None,
                note=("" if complete else "NOT COMPARABLE, handshakes still running: ")
                + f"{result.connected:,} clients, rooms of {ROOM}; per server CPU-second "
                f"{result.per_cpu_second:,.0f} deliveries (Node {node.per_cpu_second:,.0f}, "
                f"{result.per_cpu_second / node.per_cpu_second:.2f}x)"
                + (f"; errors: {result.errors}" if result.errors else ""),
            )
        )
    return rows


def e2e_sends() -> list[str]:
    """BENCH_E2E_SENDS=statement (any of E2E_SENDS, comma-separated): only those send paths, in
    that order (the first is the others' baseline). Unset: all of them."""
    chosen = [s.strip() for s in os.environ.get("BENCH_E2E_SENDS", "").split(",") if s.strip()]
    unknown = set(chosen) - set(E2E_SENDS)
    if unknown:
        raise ValueError(f"BENCH_E2E_SENDS: unknown {sorted(unknown)}; choose from {E2E_SENDS}")
    return chosen or list(E2E_SENDS)


def e2e_rounds() -> int:
    """BENCH_E2E_ROUNDS=3: measure each send path that many times, alternating (default 1)."""
    return max(1, int(os.environ.get("BENCH_E2E_ROUNDS", "1")))


def _pooled(rounds: list[EndToEnd]) -> EndToEnd:
    """Several rounds of one send path as one: median rate and CPU, every latency."""
    return EndToEnd(
        rounds[0].send,
        common.median([r.sustained for r in rounds]),
        common.median([r.cpu_ms for r in rounds]),
        common.median([r.rate for r in rounds]),
        [ms for r in rounds for ms in r.latencies],
        [ms for r in rounds for ms in r.acks],
        common.median([r.deliveries_per_message for r in rounds]),
        [e for r in rounds for e in r.errors][:5],
        [common.percentile(r.latencies, 99) for r in rounds],
    )


def _e2e_rows(results: list[EndToEnd], rounds: int = 1) -> list[dict[str, Any]]:
    """Per send path, the sustained rate and the p99 at half of it; the shipped path beside the
    old one (the first) as its baseline. Over several rounds: median rates, pooled latencies."""
    base = results[0]
    base_p99 = common.percentile(base.latencies, 99)
    rows = []
    for e2e in results:
        p99 = common.percentile(e2e.latencies, 99)
        compared = e2e is not base
        label = "shipped: one statement" if e2e.send == "statement" else "before: ORM session"
        rows.append(
            common.row(
                "realtime",
                f"end to end, sustained (closed loop), {label}",
                e2e.sustained,
                "messages/s",
                baseline=base.sustained if compared else None,
                ratio=e2e.sustained / base.sustained if compared and base.sustained else None,
                note=(f"median of {rounds} alternating rounds; " if rounds > 1 else "")
                + f"{E2E_SENDERS} devices sending message:send back to back for "
                f"{E2E_SECONDS:.0f} s over 2 processes (half of the senders on each; "
                f"{shipped_manager()} manager, as shipped); each message inserted under RLS and "
                f"delivered to the {ROOM} devices of its end user; server CPU "
                f"{e2e.cpu_ms:.2f} ms per message (both processes; PostgreSQL and Redis not "
                f"counted)" + (f" against {base.cpu_ms:.2f} ms before" if compared else ""),
            )
        )
        rows.append(
            common.row(
                "realtime",
                f"end to end, send-to-receive p99 at half rate, {label}",
                p99,
                "ms",
                baseline=base_p99 if compared else None,
                ratio=p99 / base_p99 if compared and base_p99 else None,
                goal=f"<= {LATENCY_GOAL_MS:g} ms",
                ok=p99 <= LATENCY_GOAL_MS,
                note=f"{e2e.rate:.0f} messages/s from {E2E_USERS} devices on a fixed schedule; "
                f"p50 {common.median(e2e.latencies):.1f} ms, max "
                f"{max(e2e.latencies, default=0):.1f} ms over {len(e2e.latencies):,} deliveries "
                f"({e2e.deliveries_per_message:.1f} per message); send-to-ack p50 "
                f"{common.median(e2e.acks):.1f} ms, p99 {common.percentile(e2e.acks, 99):.1f} ms"
                + (
                    "; p99 by round " + ", ".join(f"{ms:.1f}" for ms in e2e.round_p99s) + " ms"
                    if len(e2e.round_p99s) > 1
                    else ""
                )
                + (f"; errors: {e2e.errors}" if e2e.errors else ""),
            )
        )
    return rows


PARTS = ("presence", "idle", "fanout", "e2e")


def parts() -> list[str]:
    """BENCH_REALTIME_PARTS=presence,fanout (any of PARTS, comma-separated): run only those.
    Unset: all of them."""
    chosen = [p.strip() for p in os.environ.get("BENCH_REALTIME_PARTS", "").split(",") if p.strip()]
    unknown = set(chosen) - set(PARTS)
    if unknown:
        raise ValueError(f"BENCH_REALTIME_PARTS: unknown {sorted(unknown)}; choose from {PARTS}")
    return chosen or list(PARTS)


def managers() -> list[str]:
    """BENCH_REALTIME_MANAGERS=routed: the fan-out part with only those Redis managers (both,
    stock then routed, unset)."""
    chosen = [m.strip() for m in os.environ.get("BENCH_REALTIME_MANAGERS", "").split(",")]
    chosen = [m for m in chosen if m]
    unknown = set(chosen) - {"stock", "routed"}
    if unknown:
        raise ValueError(f"BENCH_REALTIME_MANAGERS: unknown {sorted(unknown)}")
    return chosen or ["stock", "routed"]


async def _measure(owner_url: str | None, chosen: list[str]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    if "presence" in chosen:
        say(f"presence lookups for {PRESENCE_DEVICES:,} devices")
        rows += _presence_rows(await presence_lookups())
    if owner_url is None:
        return rows
    processes, nofile = _idle_target()  # raises the open-file limit the servers inherit
    data = await seed(owner_url)
    if "idle" in chosen:
        say(f"idle: {IDLE_GOAL:,} sockets on {processes} ReplyHQ process(es), then on bare Node")
        ours, bare = await measure_idle(owner_url, data, IDLE_GOAL, processes)
        rows += _idle_rows(ours, bare, processes, nofile)
    if "fanout" in chosen:
        say(f"fan-out: {FANOUT_CLIENTS:,} sockets on bare Node")
        node = await fanout_node()
        for manager in managers():
            say(f"fan-out: {FANOUT_CLIENTS:,} sockets on two ReplyHQ processes, {manager} manager")
            rows += _fanout_rows(manager, await fanout_replyhq(owner_url, data, manager), node)
        rows.append(
            common.row(
                "realtime",
                "fan-out, bare Node socket.io, 1 process",
                node.deliveries_per_second,
                "deliveries/s",
                note=f"{node.connected:,} clients, rooms of {ROOM}, emits sent by the server "
                f"itself; clients are Node processes on the same 2 cores",
            )
        )
    if "e2e" in chosen:
        sends, rounds = e2e_sends(), e2e_rounds()
        measured: dict[str, list[EndToEnd]] = {send: [] for send in sends}
        for round_ in range(rounds):
            # Alternating order: a noise burst of the shared machine lands on either side.
            for send in sends if round_ % 2 == 0 else sends[::-1]:
                say(
                    f"end to end ({send}, round {round_ + 1} of {rounds}): {E2E_USERS * ROOM:,} "
                    "sockets on two ReplyHQ processes"
                )
                measured[send].append(await end_to_end(owner_url, data, send))
        rows += _e2e_rows([_pooled(measured[send]) for send in sends], rounds)
    return rows


def run() -> list[dict[str, Any]]:
    load = os.getloadavg()[0]
    chosen = parts()
    if chosen == ["presence"]:  # Redis only: no database to build
        rows: list[dict[str, Any]] = common.run_async(_measure(None, chosen))
    else:
        with common.throwaway_database("realtime") as owner_url:
            rows = common.run_async(_measure(owner_url, chosen))
    rows[0]["note"] += f" [2 cores shared; load average {load:.1f} at start]"
    return rows


if __name__ == "__main__":
    from bench.__main__ import table

    print(table(run()))
