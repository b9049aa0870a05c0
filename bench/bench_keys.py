"""API key verification: the cached path (KeyVerifier.verify, warm cache) against one bcrypt
check at cost 12, the price every request would pay without the cache."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import bcrypt
from redis.asyncio import Redis

from bench import common
from replyhq.apps.keys import KeyVerifier

CACHED_ITERATIONS = 50_000
BCRYPT_ITERATIONS = 5
ROUNDS = 12  # Settings.bcrypt_rounds' default
STAMPEDE = 8  # concurrent first requests with one key


async def _stampede(verifier: KeyVerifier, tenant: common.Tenant) -> dict[str, float]:
    """STAMPEDE requests with one key reach a process whose cache does not hold it (a restart,
    or the entry's TTL just ran out): how many bcrypt checks they cost, and how long."""
    verifier.evict(tenant.id)
    checks = verifier.bcrypt_checks
    began = time.perf_counter()
    await asyncio.gather(
        *(verifier.verify(tenant.id, tenant.sdk_key, "sdk") for _ in range(STAMPEDE))
    )
    elapsed = time.perf_counter() - began
    calls = verifier.bcrypt_checks - checks
    return {"herd_checks": float(calls), "herd_seconds": elapsed}


async def _measure(owner_url: str) -> dict[str, float]:
    db = common.database(owner_url, pool_size=2)
    redis = Redis.from_url(common.services().redis_url)
    verifier = KeyVerifier(db, redis, common.redis_prefix("keys") + "keys-rotated", 60.0)
    listener = asyncio.create_task(verifier.listen())
    try:
        tenant = await common.create_tenant(db, rounds=ROUNDS)
        deadline = time.monotonic() + 10
        while not verifier.caching and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert verifier.caching, "the rotation channel was never subscribed"

        began = time.perf_counter()
        await verifier.verify(tenant.id, tenant.sdk_key, "sdk")  # cold: database + bcrypt
        cold = time.perf_counter() - began

        herd = await _stampede(verifier, tenant)

        for _ in range(1000):  # warm up
            await verifier.verify(tenant.id, tenant.sdk_key, "sdk")
        began = time.perf_counter()
        for _ in range(CACHED_ITERATIONS):
            await verifier.verify(tenant.id, tenant.sdk_key, "sdk")
        cached = (time.perf_counter() - began) / CACHED_ITERATIONS
    finally:
        await common.cancel(listener)
        await redis.aclose()
        await db.dispose()

    stored = bcrypt.hashpw(tenant.sdk_key.encode(), bcrypt.gensalt(ROUNDS))
    timings = []
    for _ in range(BCRYPT_ITERATIONS):
        began = time.perf_counter()
        assert bcrypt.checkpw(tenant.sdk_key.encode(), stored)
        timings.append(time.perf_counter() - began)
    return {"cached": cached, "bcrypt": common.median(timings), "cold": cold, **herd}


def run() -> list[dict[str, Any]]:
    with common.throwaway_database("keys") as owner_url:
        measured = common.run_async(_measure(owner_url))
    cached_us = measured["cached"] * 1e6
    bcrypt_us = measured["bcrypt"] * 1e6
    return [
        common.row(
            "keys",
            "verify, cached (warm)",
            cached_us,
            "µs",
            baseline=bcrypt_us,
            ratio=cached_us / bcrypt_us,
            goal="<= 50 µs",
            ok=cached_us <= 50,
            note=f"mean of {CACHED_ITERATIONS:,} calls; baseline = one bcrypt.checkpw at cost "
            f"{ROUNDS} (median of {BCRYPT_ITERATIONS}); the cache is "
            f"{measured['bcrypt'] / measured['cached']:,.0f}x faster",
        ),
        common.row("keys", f"bcrypt checkpw, cost {ROUNDS}", bcrypt_us, "µs"),
        common.row(
            "keys",
            f"{STAMPEDE} concurrent verifies, cold cache: bcrypt checks",
            measured["herd_checks"],
            "count",
            goal="1 (one per key)",
            ok=measured["herd_checks"] <= 1,
            note=f"all {STAMPEDE} answered in {measured['herd_seconds']:.2f} s; requests that "
            "arrive while a key's check runs wait for it (single-flight per key digest) "
            "instead of each paying a bcrypt (after a restart, or when the entry's TTL runs out)",
        ),
        common.row(
            "keys",
            "verify, first call (db + bcrypt)",
            measured["cold"] * 1e6,
            "µs",
        ),
    ]
