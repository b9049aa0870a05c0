"""GET /metrics: the families we promise, counts that move with what happens (requests, jobs,
Socket.IO connections), route templates only, the optional bearer token, and one merged view
across `serve --workers 2`."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from replyhq.app import create_app
from replyhq.db import Database
from replyhq.db.session import runtime_url
from replyhq.jobs import enqueue
from replyhq.jobs.worker import JobWorker
from replyhq.observability.instruments import CountingRetry
from replyhq.runtime import Runtime
from replyhq.settings import Settings
from tests import job_tasks
from tests.conftest import (
    Servers,
    SocketServer,
    Tenant,
    free_port,
    identify,
    make_settings,
    start_conversation,
    start_server,
)
from tests.jobs_support import lines, wait_for

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

PROMISED = {
    # name in the exposition: type
    "http_request_duration_seconds": "histogram",
    "messages_sent": "counter",
    "socketio_connections": "gauge",
    "jobs_enqueued": "counter",
    "job_runs": "counter",
    "job_failures": "counter",
    "job_duration_seconds": "histogram",
    "jobs_queue_depth": "gauge",
    "db_pool_connections_in_use": "gauge",
    "db_pool_waiting": "gauge",
    "redis_errors": "counter",
    "rate_limit_refusals": "counter",
    "process_resident_memory_bytes": "gauge",
    "process_cpu_seconds": "counter",
    "process_open_fds": "gauge",
    "python_info": "gauge",
    "python_gc_collections": "counter",
}


def parse(text: str) -> tuple[dict[str, str], Samples]:
    types: dict[str, str] = {}
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return types, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)[1]


async def test_every_promised_family_is_exported(client: httpx.AsyncClient) -> None:
    response = await client.get("/metrics")
    types, _ = parse(response.text)
    for name, kind in PROMISED.items():
        assert types.get(name) == kind, f"{name}: {types.get(name)}"


async def test_requests_are_counted_by_route_template_never_raw_path(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    await identify(client, tenant)
    conversation = await start_conversation(client, tenant)
    before = await scrape(client)
    route = "/v1/conversations/{conversation_id}/messages"
    for _ in range(3):
        response = await client.post(
            f"/v1/conversations/{conversation['id']}/messages",
            headers=tenant.sdk(),
            json={"body": "Hi", "client_msg_id": uuid.uuid4().hex},
        )
        assert response.status_code == 201
    missing = uuid.uuid4()
    assert (
        await client.get(f"/v1/conversations/{missing}", headers=tenant.sdk())
    ).status_code == 404
    assert (await client.get(f"/nothing/here/{missing}")).status_code == 404
    response = await client.get("/metrics")
    after = parse(response.text)[1]

    count = "http_request_duration_seconds_count"
    assert (
        value(after, count, method="POST", route=route, status="201")
        - value(before, count, method="POST", route=route, status="201")
        == 3
    )
    detail = {"method": "GET", "route": "/v1/conversations/{conversation_id}", "status": "404"}
    assert value(after, count, **detail) - value(before, count, **detail) == 1
    unmatched = {"method": "GET", "route": "<unmatched>", "status": "404"}
    assert value(after, count, **unmatched) - value(before, count, **unmatched) == 1
    assert str(missing) not in response.text and str(conversation["id"]) not in response.text
    assert (
        value(after, "messages_sent_total", sender="user")
        - value(before, "messages_sent_total", sender="user")
        == 3
    )


async def test_job_metrics_and_queue_depth_move(
    client: httpx.AsyncClient,
    runtime: Runtime,
    job_worker: JobWorker,
    job_queue: str,
    tmp_path: Path,
) -> None:
    before = await scrape(client)
    path, fixed = tmp_path / "runs", tmp_path / "never"
    async with runtime.db.system_session() as session:
        await enqueue(session, job_tasks.record, path=str(path), value="a", queue=job_queue)
        await enqueue(
            session, job_tasks.flaky, path=str(path), fixed=str(fixed), api_key="k", queue=job_queue
        )
        for _ in range(3):  # a queue no worker listens to: they wait
            await enqueue(session, job_tasks.record, path=str(path), value="w", queue="idle")
    await wait_for(lambda: len(lines(path)) == 4)  # record once, flaky three times
    await asyncio.sleep(0.3)
    after = await scrape(client)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("jobs_enqueued_total", task="test.record") == 4
    assert moved("jobs_enqueued_total", task="test.flaky") == 1
    assert moved("job_runs_total", task="test.record") == 1
    assert moved("job_runs_total", task="test.flaky") == 3
    assert moved("job_failures_total", task="test.flaky") == 3
    assert moved("job_failures_total", task="test.record") == 0
    assert moved("job_duration_seconds_count", task="test.flaky") == 3
    assert value(after, "jobs_queue_depth", queue="idle", status="todo") >= 3
    assert value(after, "jobs_queue_depth", queue=job_queue, status="failed") == 1


async def test_rate_limit_refusals_are_counted(servers: Servers, client: httpx.AsyncClient) -> None:
    strict = create_app(make_settings(servers, rate_limit_setup="2/minute"))
    async with LifespanManager(strict):
        transport = httpx.ASGITransport(app=strict, client=(f"10.9.{uuid.uuid4().int % 250}.1", 1))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as limited:
            before = await scrape(limited)
            statuses = [(await limited.get("/setup/apps")).status_code for _ in range(4)]
            after = await scrape(limited)
    assert statuses == [401, 401, 429, 429]
    assert (
        value(after, "rate_limit_refusals_total", limit="setup")
        - value(before, "rate_limit_refusals_total", limit="setup")
        == 2
    )


async def test_pool_use_and_waiting_callers_are_gauged(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    assert settings.database_url
    db = Database(runtime_url(settings, settings.database_url), pool_size=1, max_overflow=0)
    try:
        at_rest = await scrape(client)
        async with db.engine.connect():
            waiter = asyncio.create_task(db.engine.connect().__aenter__())
            await asyncio.sleep(0.2)
            busy = await scrape(client)
            assert not waiter.done()
        connection = await waiter
        await connection.close()
        done = await scrape(client)
    finally:
        await db.dispose()
    in_use, waiting = "db_pool_connections_in_use", "db_pool_waiting"
    assert value(busy, in_use) - value(at_rest, in_use) == 1
    assert value(busy, waiting) - value(at_rest, waiting) == 1
    assert value(done, in_use) == value(at_rest, in_use)
    assert value(done, waiting) == value(at_rest, waiting)


async def test_redis_connection_errors_are_counted(client: httpx.AsyncClient) -> None:
    before = await scrape(client)
    nobody = Redis(host="127.0.0.1", port=free_port(), retry=CountingRetry("app", retries=1))
    with pytest.raises(RedisConnectionError):
        await nobody.ping()
    await nobody.aclose()
    after = await scrape(client)
    assert value(after, "redis_errors_total", client="app") > value(
        before, "redis_errors_total", client="app"
    )


@pytest.fixture
async def guarded(servers: Servers) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(make_settings(servers, metrics_token="scrape-token-123"))
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client


async def test_metrics_token_when_set(guarded: httpx.AsyncClient) -> None:
    assert (await guarded.get("/metrics")).status_code == 401
    wrong = await guarded.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert wrong.json()["code"] == "METRICS_TOKEN"
    right = await guarded.get("/metrics", headers={"Authorization": "Bearer scrape-token-123"})
    assert right.status_code == 200
    assert "http_request_duration_seconds" in right.text


@pytest.mark.slow
async def test_several_server_processes_report_as_one(servers: Servers, tmp_path: Path) -> None:
    """With `--workers 2`, whichever process answers the scrape reports every process' counts."""
    server = await asyncio.to_thread(
        start_server,
        servers,
        tmp_path,
        "--workers",
        "2",
        "--no-migrate",
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prometheus"),
    )
    try:
        async with httpx.AsyncClient(base_url=server.url) as client:

            async def pids() -> set[str]:
                _, samples = parse((await client.get("/metrics")).text)
                return {
                    dict(labels)["pid"]
                    for name, labels in samples
                    if name == "process_resident_memory_bytes"
                }

            deadline = asyncio.get_running_loop().time() + 30
            while len(await pids()) < 2:
                assert asyncio.get_running_loop().time() < deadline, "one process never came up"
                await asyncio.sleep(0.2)

            for _ in range(40):  # a new connection each time: the kernel spreads them out
                async with httpx.AsyncClient(base_url=server.url) as fresh:
                    assert (await fresh.get("/readyz")).status_code == 200
            for _ in range(6):  # every scrape, whichever process answers it, sees all 40
                async with httpx.AsyncClient(base_url=server.url) as fresh:
                    _, samples = parse((await fresh.get("/metrics")).text)
                count = value(
                    samples,
                    "http_request_duration_seconds_count",
                    method="GET",
                    route="/readyz",
                    status="200",
                )
                assert count == 40
    finally:
        await asyncio.to_thread(server.stop)


async def test_socket_connections_are_gauged_by_namespace(
    socket_server: SocketServer, tenant: Tenant
) -> None:
    """Real Socket.IO clients: the gauge moves on connect and disconnect in both namespaces,
    and not for a refused handshake."""
    from tests.realtime_clients import Recorder, refused
    from tests.staff import signed_in
    from tests.test_realtime_devices import device_auth
    from tests.test_realtime_devices import identify as identify_device

    gauge = "socketio_connections"
    async with httpx.AsyncClient(base_url=socket_server.url) as http:

        async def connections() -> tuple[float, float]:
            samples = await scrape(http)
            return value(samples, gauge, namespace="/"), value(samples, gauge, namespace="/admin")

        async def settled(expected: tuple[float, float]) -> tuple[float, float]:
            for _ in range(100):  # a disconnect is handled by the server a moment later
                now = await connections()
                if now == expected:
                    break
                await asyncio.sleep(0.05)
            return now

        devices, staff = await connections()
        await identify_device(http, tenant, "gauge-phone", "gauge-ann")
        agent = await signed_in(socket_server.runtime, http, tenant, "AGENT")
        phone, desk = Recorder(), Recorder()
        await phone.connect(socket_server.url, device_auth(tenant, "gauge-phone"))
        assert await connections() == (devices + 1, staff)
        await desk.connect(socket_server.url, {"token": agent.access}, namespace="/admin")
        assert await connections() == (devices + 1, staff + 1)
        bad_key = device_auth(tenant, "gauge-phone") | {"api_key": "rhq_sdk_wrong"}
        assert (await refused(socket_server.url, bad_key))["code"] == "INVALID_CREDENTIALS"
        assert await refused(socket_server.url, {}, "/admin")
        assert await connections() == (devices + 1, staff + 1)

        await phone.close()
        assert await settled((devices, staff + 1)) == (devices, staff + 1)
        await desk.close()
        assert await settled((devices, staff)) == (devices, staff)
