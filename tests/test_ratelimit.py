"""The rate limiter's moving windows against a real Redis: several limits checked in one call,
in order, stopping at the first refusal; a test that counts nothing; Retry-After as the time
until a slot frees up."""

from __future__ import annotations

import asyncio
import uuid

from replyhq.web.ratelimit import Check, RateLimiter
from tests.conftest import Servers, make_settings


def _limiter(servers: Servers, **limits: str) -> RateLimiter:
    # A fresh prefix: counters of earlier runs never leak in.
    prefix = f"{servers.prefix}rl-{uuid.uuid4().hex[:8]}:"
    return RateLimiter(make_settings(servers, redis_prefix=prefix, **limits), servers.redis_url)


async def test_checks_run_in_order_and_stop_at_the_first_refusal(servers: Servers) -> None:
    limiter = _limiter(servers, rate_limit_v1_ip="2/minute", rate_limit_v1="5/minute")
    per_address = Check(limiter.v1_ip, ("v1-ip", "10.1.0.1"))
    per_device = Check(limiter.v1, ("v1", "app", "device"))
    try:
        for remaining in (1, 0):
            verdicts = await limiter.check(per_address, per_device)
            assert [v.allowed for v in verdicts] == [True, True]
            assert verdicts[0].remaining == remaining
            assert (verdicts[0].limit, verdicts[1].limit) == (2, 5)

        refused = await limiter.check(per_address, per_device)
        assert len(refused) == 1  # the device's limit was not reached, nor counted
        assert not refused[0].allowed
        assert refused[0].remaining == 0
        assert 1 <= int(refused[0].headers()["Retry-After"]) <= 60

        device = (await limiter.check(Check(limiter.v1, ("v1", "app", "device"), count=False)))[0]
        assert device.allowed
        assert device.remaining == 3  # two requests counted, not three
    finally:
        await limiter.close()


async def test_a_test_only_check_counts_nothing_and_refuses_once_full(servers: Servers) -> None:
    limiter = _limiter(servers, rate_limit_auth="2/minute")
    try:
        for _ in range(5):
            assert await limiter.blocked(limiter.auth, "auth-failures", "10.1.0.2") is None
        await limiter.hit(limiter.auth, "auth-failures", "10.1.0.2")
        assert await limiter.blocked(limiter.auth, "auth-failures", "10.1.0.2") is None
        await limiter.hit(limiter.auth, "auth-failures", "10.1.0.2")
        refusal = await limiter.blocked(limiter.auth, "auth-failures", "10.1.0.2")
        assert refusal is not None
        assert refusal.headers()["RateLimit-Remaining"] == "0"
    finally:
        await limiter.close()


async def test_the_window_moves_retry_after_is_when_the_oldest_request_leaves(
    servers: Servers,
) -> None:
    limiter = _limiter(servers, rate_limit_v1="2/3seconds")
    try:
        assert (await limiter.hit(limiter.v1, "v1", "a", "d")).allowed
        await asyncio.sleep(1.5)
        second = await limiter.hit(limiter.v1, "v1", "a", "d")
        assert second.allowed
        assert second.remaining == 0
        assert second.reset_after <= 2  # the first request leaves the window ~1.5 s from now

        refused = await limiter.hit(limiter.v1, "v1", "a", "d")
        assert not refused.allowed
        assert 1 <= refused.reset_after <= 2  # a fixed 3 s window would say 3
        await asyncio.sleep(refused.reset_after + 0.1)
        # One slot freed (the first request's), not the whole window.
        assert (await limiter.hit(limiter.v1, "v1", "a", "d")).allowed
        assert not (await limiter.hit(limiter.v1, "v1", "a", "d")).allowed
    finally:
        await limiter.close()
