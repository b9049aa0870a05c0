"""Where a message POST spends its CPU: the whole request in-process (ASGI, no sockets) and its
parts, each as CPU time per call of this process (time.process_time), which other work on the
machine disturbs far less than wall time. Explains the HTTP figures: a server core serves about
1 / (CPU per request) requests a second."""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from asgi_lifespan import LifespanManager

from bench import common
from bench.bench_rls import Side, list_messages, send
from replyhq.app import create_app
from replyhq.events import Event
from replyhq.messaging.service import send_device_message
from replyhq.settings import Settings
from replyhq.web.ratelimit import Check

ITERATIONS = 300
WARMUP = 30


async def _cpu_per_call(call: Callable[[], Awaitable[Any]]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) per call, after a warm-up."""
    for _ in range(WARMUP):
        await call()
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(ITERATIONS):
        await call()
    return (time.process_time() - cpu) / ITERATIONS, (time.perf_counter() - wall) / ITERATIONS


async def _measure(owner_url: str) -> dict[str, tuple[float, float]]:
    db = common.database(owner_url, pool_size=2)
    try:
        tenant = await common.create_tenant(db, rounds=4)
        devices = await common.create_devices(db, tenant.id, 10)
    finally:
        await db.dispose()
    settings = Settings(
        database_url=owner_url,
        redis_url=common.services().redis_url,
        redis_prefix=common.redis_prefix("cpu"),
        rate_limit_v1="1000000/minute",
        rate_limit_v1_ip="1000000/minute",
        log_level="WARNING",
    )
    app = create_app(settings)
    results: dict[str, tuple[float, float]] = {}
    async with LifespanManager(app):
        runtime = app.state.runtime
        realtime = app.state.realtime
        device = devices[0]
        headers = tenant.headers(device.device_id)
        path = f"/v1/conversations/{device.conversation_id}/messages"
        side = Side("cpu", runtime.db, tenant.id, devices)
        quiet = common.database(owner_url, pool_size=2)  # no event sink: nothing is emitted
        limiter = runtime.limiter
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:

            async def post() -> None:
                body = {"body": "How do I reset my password?", "client_msg_id": uuid.uuid4().hex}
                response = await client.post(path, headers=headers, json=body)
                assert response.status_code == 201, response.text

            async def get_messages() -> None:
                response = await client.get(path, headers=headers, params={"limit": 50})
                assert response.status_code == 200, response.text

            async def healthz() -> None:
                assert (await client.get("/healthz")).status_code == 200

            async def rate_limits() -> None:  # what require_sdk_app asks Redis on every call
                await limiter.enforce_all(
                    Check(limiter.v1_ip, ("v1-ip", "127.0.0.1")),
                    Check(limiter.auth, ("auth-failures", "127.0.0.1"), count=False),
                    Check(limiter.v1, ("v1", str(tenant.id), device.device_id)),
                )

            async def verify_key() -> None:
                await runtime.keys.verify(tenant.id, tenant.sdk_key, "sdk")

            async def send_statement() -> None:  # what the SDK's POST does, without the emit
                device = side.next_device()
                await send_device_message(
                    quiet,
                    tenant.id,
                    device.conversation_id,
                    device.device_id,
                    "How do I reset my password?",
                    uuid.uuid4().hex,
                )

            async def empty_transaction() -> None:
                async with runtime.db.tenant_session(tenant.id):
                    pass

            event = Event("message:new", tenant.id, {"message": {"body": "x"}}, device.end_user_id)
            event = Event(event.name, event.app_id, event.data, event.end_user_id, agents=True)

            async def emit() -> None:
                await realtime.deliver(event)

            calls: dict[str, Callable[[], Awaitable[Any]]] = {
                "POST message (whole request, in-process)": post,
                "GET messages, 50 (whole request)": get_messages,
                "GET /healthz (whole request)": healthz,
                "send, SDK path: one statement, one round trip (no emit)": send_statement,
                "send in a tenant_session (agents, sockets; services only)": lambda: send(side),
                "list_messages transaction (services only)": lambda: list_messages(side),
                "empty tenant_session": empty_transaction,
                "rate limits of an SDK call (3 checks, one round trip)": rate_limits,
                "API key verify (cached)": verify_key,
                "emit message:new (2 rooms, Redis)": emit,
            }
            for name, call in calls.items():
                results[name] = await _cpu_per_call(call)
        await quiet.dispose()
    return results


def run() -> list[dict[str, Any]]:
    with common.throwaway_database("cpu") as owner_url:
        measured = common.run_async(_measure(owner_url))
    health_cpu = measured["GET /healthz (whole request)"][0]
    rows = []
    for name, (cpu, wall) in measured.items():
        rows.append(
            common.row(
                "cpu",
                name,
                cpu * 1e3,
                "ms CPU",
                baseline=health_cpu * 1e3,
                ratio=cpu / health_cpu,
                note=f"wall {wall * 1e3:.2f} ms; at most {1 / cpu:,.0f} a second per core"
                if name.endswith("request)") or "whole request" in name
                else None,
            )
        )
    return rows
