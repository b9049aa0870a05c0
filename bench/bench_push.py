"""Push (issue 17). (1) Commit-to-provider latency: agent replies committed at 100 per second,
each to a different offline person with an FCM token, through the real send statement (whose
trigger queues the conversation in push_queue, and a push.drain job, in the same transaction)
and a job worker (10 job slots) sending to a local fake FCM (OAuth token endpoint +
messages:send, JWT checked); latency is the fake's arrival time minus the message's commit-time
clock (time.time() in both processes). Goal p99 ≤ 1 s; the seed's figure was 5 s. As in
production, three processes: the load generator (this one, sending as a server would over its own
connections), the job worker (`replyhq worker --queues push`'s code, spawned: its own interpreter,
event loop and connections; its CPU per push read from /proc/<pid>/stat), and the fake FCM
(spawned, as Google is another machine). Until 3 December 2026 all three shared one interpreter
(the worker in a thread), so they queued behind one GIL.
(2) Redundant pushes in a scripted conversation, run for several people at once:
the person chats live and reads (4 replies), stays online without reading (2), leaves, gets 3
replies in a burst, and one more later. Sending every reply would push 10 times; the person needs
2 (one for the burst, one for the later reply). Redundant = 10 - 2 = 8 per person; prevented =
(10 - pushes sent) / 8. Timings are scaled down (hold 1 s, collapse window 3 s instead of 5 s and
60 s). One shared 2-core machine: the figures are noisy (the three processes, PostgreSQL and
whatever else runs share the cores); the load average is reported beside the latency.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import multiprocessing.process
import os
import signal
import time
import uuid
from collections import Counter
from typing import Any

import httpx
import psycopg
from hypercorn.asyncio import serve
from hypercorn.config import Config
from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from tests.push_support import FakeProviders

from bench import common
from replyhq.db import Database
from replyhq.messaging import service as messaging
from replyhq.messaging.models import Conversation
from replyhq.messaging.service import Participant
from replyhq.observability.logging import configure_logging
from replyhq.push import credentials
from replyhq.push.schemas import FcmCredentialsIn, PushSettingsIn
from replyhq.push.service import update_settings
from replyhq.realtime.presence import LiveSession, PresenceStore
from replyhq.runtime import Runtime
from replyhq.settings import Settings

RATE = int(os.environ.get("PUSH_BENCH_RATE", "100"))  # messages per second
SECONDS = int(os.environ.get("PUSH_BENCH_SECONDS", "5"))
SCRIPTED_PEOPLE = int(os.environ.get("PUSH_BENCH_PEOPLE", "10"))
# The worker's job slots (JOB_CONCURRENCY); unset: the setting's default, 10.
CONCURRENCY = os.environ.get("PUSH_BENCH_CONCURRENCY")
AGENT = Participant("agent", uuid.UUID(int=0), "Sam")


def _serve_fake(port: int, accounts: Any) -> None:
    """The fake FCM (tests/push_support.py), in a process of its own as Google is: sends the
    service account to the bench, keeps what arrives, and lists it at GET /bench/received."""

    async def main() -> None:
        fake = FakeProviders(port=port)
        accounts.send(fake.service_account())
        app = fake.app()

        async def received(_: Request) -> JSONResponse:
            return JSONResponse([[r.token, r.at] for r in fake.received])

        app.router.routes.append(Route("/bench/received", received))
        config = Config()
        config.bind = [f"127.0.0.1:{port}"]
        config.accesslog = config.errorlog = None
        await serve(app, config)  # type: ignore[arg-type]

    common.run_async(main())


def _work(overrides: dict[str, Any]) -> None:
    """A job worker on the push queue, as `replyhq worker --queues push` runs it (its own
    process, event loop and connections; SIGTERM stops it)."""
    from replyhq.jobs.cli import _work

    profile = os.environ.get("PUSH_BENCH_PROFILE")  # a file for the worker's cProfile stats
    if not profile:
        asyncio.run(_work(Settings(**overrides), None, ["push"]))
        return
    import cProfile

    with cProfile.Profile() as profiler:
        asyncio.run(_work(Settings(**overrides), None, ["push"]))
    profiler.dump_stats(profile)


def _cpu_seconds(pid: int) -> float:
    """A process's CPU time so far (user + system, /proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _named_cpu(*names: str) -> dict[int, float]:
    """CPU seconds so far of every process with one of these names (PostgreSQL's backends and
    helpers, Redis): the database's share of the machine, which /proc/<pid>/stat of our own
    processes leaves out."""
    found: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                raw = stat.read()
        except OSError:
            continue
        name = raw[raw.find("(") + 1 : raw.rfind(")")]
        if name in names:
            fields = raw.rsplit(")", 1)[1].split()
            found[int(entry)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return found


def _spent(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds spent between two _named_cpu readings (processes started meanwhile count
    from zero; those that ended are lost)."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


def _jobs_queued(owner_url: str) -> int:
    """Jobs queued so far in the database (procrastinate's id sequence): drains and wakes."""
    with psycopg.connect(owner_url) as connection:
        row = connection.execute("SELECT last_value FROM procrastinate_jobs_id_seq").fetchone()
    return int(row[0]) if row else 0


def _machine_busy() -> tuple[float, float]:
    """The machine's busy and total CPU seconds so far, over all cores (/proc/stat)."""
    with open("/proc/stat") as stat:
        ticks = [int(n) for n in stat.readline().split()[1:]]
    total = sum(ticks[:8])  # user nice system idle iowait irq softirq steal
    return (total - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK"), total / os.sysconf(
        "SC_CLK_TCK"
    )


async def _arrived(client: httpx.AsyncClient, url: str) -> dict[str, float]:
    """What the fake FCM received: token → arrival time (time.time())."""
    answer = await client.get(f"{url}/bench/received")
    return {str(token): float(at) for token, at in answer.json()}


async def _wait_port(port: int) -> None:
    for _ in range(200):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


def _tokens(owner_url: str, app_id: uuid.UUID, devices: list[common.Device]) -> None:
    with psycopg.connect(owner_url) as connection:
        connection.execute("SELECT set_config('app.current_tenant', %s, true)", (str(app_id),))
        for device in devices:
            connection.execute(
                "UPDATE devices SET push_provider = 'fcm', push_token = %s, "
                "push_token_updated_at = now() WHERE app_id = %s AND device_id = %s",
                (f"bench-{device.device_id}", app_id, device.device_id),
            )


async def _reply(db: Database, app_id: uuid.UUID, device: common.Device, body: str) -> float:
    message, _ = await messaging.send_agent_message(
        db, app_id, device.conversation_id, AGENT, body, uuid.uuid4().hex
    )
    return message.created_at.timestamp()


async def _latency(
    sender: Database,
    client: httpx.AsyncClient,
    fake_url: str,
    app_id: uuid.UUID,
    people: list[common.Device],
) -> list[float]:
    committed: dict[str, float] = {}
    started = time.perf_counter()
    sends = []
    for index, device in enumerate(people):
        delay = started + index / RATE - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)

        async def one(d: common.Device = device) -> None:
            committed[f"bench-{d.device_id}"] = await _reply(
                sender, app_id, d, "Your order shipped"
            )

        sends.append(asyncio.create_task(one()))
    await asyncio.gather(*sends)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        arrived = await _arrived(client, fake_url)
        if sum(1 for token in committed if token in arrived) >= len(people):
            break
        await asyncio.sleep(0.2)
    return [arrived[token] - at for token, at in committed.items() if token in arrived]


async def _script(
    runtime: Runtime,
    sender: Database,
    presence: PresenceStore,
    app_id: uuid.UUID,
    device: common.Device,
) -> None:
    session = LiveSession(uuid.uuid4().hex, app_id, "user", device.end_user_id, device.device_id)
    reader = Participant("user", device.end_user_id, None)

    async def read_all() -> None:
        async with runtime.db.tenant_session(app_id) as s:
            last = await s.scalar(
                select(Conversation.last_seq).where(Conversation.id == device.conversation_id)
            )
            await messaging.read_up_to(s, app_id, device.conversation_id, reader, int(last or 0))

    start = time.monotonic()

    async def at(second: float) -> None:
        await asyncio.sleep(max(0.0, start + second - time.monotonic()))

    await presence.connect(session)
    for second in (0, 2, 4, 6):  # chatting live: each reply read half a second later
        await at(second)
        await _reply(sender, app_id, device, f"live {second}")
        await at(second + 0.5)
        await read_all()
    for second in (8, 9):  # online, not reading for a while
        await at(second)
        await _reply(sender, app_id, device, f"while busy {second}")
    await at(11)
    await read_all()
    await at(12)
    await presence.disconnect(session)  # gone
    for second in (13, 13.5, 14):
        await at(second)
        await _reply(sender, app_id, device, f"burst {second}")
    await at(20)
    await _reply(sender, app_id, device, "one more thing")
    await at(26)


async def _main() -> list[dict[str, Any]]:
    configure_logging(os.environ.get("PUSH_BENCH_LOG", "WARNING"))
    svc = common.services()
    spawn = multiprocessing.get_context("spawn")
    port = common.free_port()
    fake_url = f"http://127.0.0.1:{port}"
    accounts, sends_account = spawn.Pipe(duplex=False)
    fake = spawn.Process(target=_serve_fake, args=(port, sends_account), daemon=True)
    fake.start()
    account = accounts.recv()
    await _wait_port(port)
    rows: list[dict[str, Any]] = []
    client = httpx.AsyncClient(timeout=30)
    worker: multiprocessing.process.BaseProcess | None = None
    with common.throwaway_database("push") as owner_url:
        overrides: dict[str, Any] = {
            "database_url": owner_url,
            "redis_url": svc.redis_url,
            "redis_prefix": common.redis_prefix("push"),
            "fcm_base_url": fake_url,
            "fcm_token_url": f"{fake_url}/token",
            "push_hold_seconds": 1.0,
            "job_poll_seconds": 0.2,
            "log_level": os.environ.get("PUSH_BENCH_LOG", "WARNING"),
        }
        if CONCURRENCY:
            overrides["job_concurrency"] = int(CONCURRENCY)
        settings = Settings(**overrides)
        runtime = Runtime.build(settings, owner_url, svc.redis_url)
        # The replies are sent as a server would: its own connections, apart from the worker's.
        sender = common.database(owner_url, pool_size=30, max_overflow=30, pool_timeout=60.0)
        try:
            tenant = await common.create_tenant(runtime.db, "Acme", rounds=4)
            async with runtime.db.tenant_session(tenant.id) as session:
                secret, details = credentials.check_fcm(FcmCredentialsIn(service_account=account))
                await credentials.save(session, settings, tenant.id, "fcm", secret, details)
                await update_settings(session, tenant.id, PushSettingsIn(collapse_seconds=3))
            people = common.bulk_devices(owner_url, tenant.id, RATE * SECONDS + SCRIPTED_PEOPLE)
            _tokens(owner_url, tenant.id, people)
            worker = spawn.Process(target=_work, args=(overrides,), daemon=True)
            worker.start()
            assert worker.pid is not None
            await asyncio.sleep(5)  # imports, connections, LISTEN

            cpu = time.process_time()
            worker_cpu = _cpu_seconds(worker.pid)
            fake_cpu = _cpu_seconds(fake.pid or 0)
            database_cpu = _named_cpu("postgres", "redis-server")
            jobs = _jobs_queued(owner_url)
            busy, total = _machine_busy()
            wall = time.monotonic()
            latencies = await _latency(
                sender, client, fake_url, tenant.id, people[: RATE * SECONDS]
            )
            count = max(1, len(latencies))
            cpu_ms = (time.process_time() - cpu) * 1000 / count
            worker_ms = (_cpu_seconds(worker.pid) - worker_cpu) * 1000 / count
            fake_ms = (_cpu_seconds(fake.pid or 0) - fake_cpu) * 1000 / count
            busy_now, total_now = _machine_busy()
            database_ms = _spent(database_cpu, _named_cpu("postgres", "redis-server")) * 1000
            database_ms /= count
            jobs = _jobs_queued(owner_url) - jobs
            cores_busy = (busy_now - busy) / max(0.001, time.monotonic() - wall)
            busy_share = (busy_now - busy) / max(0.001, total_now - total)
            p50, p95, p99 = (common.percentile(latencies, q) for q in (50, 95, 99))
            arrived = len(latencies)
            load = os.getloadavg()[0]
            note = (
                f"{arrived} of {RATE * SECONDS} pushes arrived; median {p50 * 1000:.0f} ms, "
                f"p95 {p95 * 1000:.0f} ms; "
                f"load average {load:.1f} on {os.cpu_count()} CPUs during the run; the "
                f"machine's CPUs {busy_share * 100:.0f} % busy ({cores_busy:.1f} cores, "
                "everything running on it included)"
            )
            rows.append(
                common.row(
                    "push",
                    f"commit→FCM p99 at {RATE} msg/s",
                    p99 * 1000,
                    "ms",
                    baseline=5000.0,
                    ratio=p99 * 1000 / 5000.0,
                    goal="≤ 1000 ms",
                    ok=p99 <= 1.0 and arrived == RATE * SECONDS,
                    note=note,
                )
            )
            rows.append(
                common.row(
                    "push",
                    "worker CPU per push (its process)",
                    worker_ms,
                    "ms",
                    note=f"the `replyhq worker` process: about {1000 / max(worker_ms, 0.01):.0f} "
                    f"pushes/s per core, PostgreSQL's and the provider's share apart; {jobs} "
                    "push jobs for them",
                )
            )
            rows.append(
                common.row(
                    "push",
                    "CPU per push: load generator / fake FCM (their processes)",
                    cpu_ms,
                    "ms",
                    note=f"the fake FCM's process: {fake_ms:.2f} ms per push",
                )
            )
            rows.append(
                common.row(
                    "push",
                    "CPU per push: PostgreSQL and Redis (their processes)",
                    database_ms,
                    "ms",
                    note="the replies' sends and the worker's statements, every backend",
                )
            )
            if not SCRIPTED_PEOPLE:
                return rows
            presence = PresenceStore(
                runtime.redis, settings.redis_prefix, settings.presence_ttl_seconds
            )
            scripted = people[RATE * SECONDS :]
            mine = {f"bench-{d.device_id}" for d in scripted}
            before = len(mine & set(await _arrived(client, fake_url)))
            assert before == 0
            await asyncio.gather(
                *(_script(runtime, sender, presence, tenant.id, d) for d in scripted)
            )
            await asyncio.sleep(2)
            # Only the scripted people's pushes (each person has a token of their own).
            answer = await client.get(f"{fake_url}/bench/received")
            per_person = Counter(token for token, _ in answer.json() if token in mine)
            sent = sum(per_person.values())
            # Each person needs 2 (the burst's, the later reply's): fewer is a push lost.
            short = sum(1 for token in mine if per_person[token] < 2)
            naive, needed = 10 * len(scripted), 2 * len(scripted)
            prevented = (naive - sent) / (naive - needed)
            rows.append(
                common.row(
                    "push",
                    "redundant pushes prevented (scripted conversation)",
                    prevented * 100,
                    "%",
                    goal="> 90 %",
                    ok=prevented > 0.9 and not short,
                    note=f"{len(scripted)} people: {sent} pushes sent where every reply would "
                    f"make {naive} and {needed} are needed (a collapsed update, which replaces "
                    f"the notification already shown, counts as redundant here); {short} "
                    "people got fewer than the 2 they needed",
                )
            )
        finally:
            if worker is not None and worker.pid is not None:
                os.kill(worker.pid, signal.SIGTERM)
                worker.join(60)
            await runtime.close()
            await sender.dispose()
            await client.aclose()
            fake.terminate()
            fake.join(10)
    return rows


def run() -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = common.run_async(_main())
    return result
