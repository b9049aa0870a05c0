"""The test console's cost on the send path: POST /v1/conversations/{id}/messages with and
without a console open on the app (an OWNER's /admin socket subscribed to `console:entries`).

Phases alternate (off, on, off, on, ...) in one run against one `replyhq serve`, so that the
shared machine's noise falls on both; the ratio of medians is the figure (goal <= 1.05x).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import socketio

from bench import common

ROUNDS = 3
MESSAGES = 300  # per phase
CONCURRENCY = 4
PASSWORD = "violet harbour tractor 42"


async def _phase(
    http: httpx.AsyncClient, headers: dict[str, str], path: str
) -> tuple[list[float], float]:
    latencies: list[float] = []
    queue = list(range(MESSAGES))

    async def client() -> None:
        while queue:
            queue.pop()
            started = time.perf_counter()
            response = await http.post(
                path, headers=headers, json={"body": "Hello", "client_msg_id": uuid.uuid4().hex}
            )
            latencies.append(time.perf_counter() - started)
            assert response.status_code == 201, response.text

    began = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(CONCURRENCY)))
    return latencies, MESSAGES / (time.perf_counter() - began)


async def _measure(url: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        signed = await http.post(
            "/admin/signup",
            json={
                "email": f"bench-{uuid.uuid4().hex[:8]}@example.com",
                "password": PASSWORD,
                "name": "Bench",
                "app_name": "Bench",
            },
        )
        signed.raise_for_status()
        body = signed.json()
        app = body["app"]
        headers = {"X-App-Id": app["id"], "X-Api-Key": app["sdk_key"], "X-Device-Id": "bench"}
        (
            await http.post("/v1/identify", headers=headers, json={"platform": "web"})
        ).raise_for_status()
        started = await http.post("/v1/conversations", headers=headers, json={})
        started.raise_for_status()
        path = f"/v1/conversations/{started.json()['id']}/messages"
        await _phase(http, headers, path)  # warm-up: key cache, checklist steps, pools

        watcher = socketio.AsyncClient(reconnection=False)
        received = 0

        async def entry(batch: Any) -> None:
            nonlocal received
            received += len(batch["entries"])

        watcher.on("console:entries", entry, namespace="/admin")
        await watcher.connect(
            url,
            auth={"token": body["access_token"]},
            namespaces=["/admin"],
            transports=["websocket"],
        )
        results: dict[str, list[float]] = {"off": [], "on": []}
        rates: dict[str, list[float]] = {"off": [], "on": []}
        try:
            for _ in range(ROUNDS):
                for phase in ("off", "on"):
                    event = "console:subscribe" if phase == "on" else "console:unsubscribe"
                    ack = await watcher.call(event, {}, namespace="/admin", timeout=10)
                    assert ack == {"ok": True}, ack
                    latencies, rate = await _phase(http, headers, path)
                    results[phase] += latencies
                    rates[phase].append(rate)
            await asyncio.sleep(0.5)
        finally:
            await watcher.disconnect()
    return {"results": results, "rates": rates, "entries": received}


def run() -> list[dict[str, Any]]:
    services = common.services()
    with common.throwaway_database("console") as owner_url:
        server = common.start_server(
            owner_url,
            services.redis_url,
            common.redis_prefix("console"),
            RATE_LIMIT_SIGNUP="1000/minute",
            RATE_LIMIT_SIGNUP_IP="1000/minute",
        )
        try:
            measured = common.run_async(_measure(server.url))
        finally:
            server.stop()
    off, on = measured["results"]["off"], measured["results"]["on"]
    off_ms, on_ms = common.median(off) * 1000, common.median(on) * 1000
    off_p95, on_p95 = common.percentile(off, 95) * 1000, common.percentile(on, 95) * 1000
    rate_off = common.median(measured["rates"]["off"])
    rate_on = common.median(measured["rates"]["on"])
    ratio = on_ms / off_ms
    note = (
        f"{ROUNDS} alternating rounds of {MESSAGES} POSTs, {CONCURRENCY} concurrent clients, one "
        f"server process, shared noisy machine; {measured['entries']} console entries received"
    )
    return [
        common.row(
            "console",
            "message POST median, console open",
            on_ms,
            "ms",
            baseline=off_ms,
            ratio=ratio,
            goal="<= 1.05x",
            ok=ratio <= 1.05,
            note=note,
        ),
        common.row(
            "console",
            "message POST p95, console open",
            on_p95,
            "ms",
            baseline=off_p95,
            ratio=on_p95 / off_p95,
        ),
        common.row(
            "console",
            "messages/s, console open",
            rate_on,
            "1/s",
            baseline=rate_off,
            ratio=rate_on / rate_off,
        ),
    ]
