"""Rate limits hold under a burst of concurrent requests (more than one Redis pool's worth):
they must not fail open because the process ran out of Redis connections."""

from __future__ import annotations

import asyncio

from replyhq.web.ratelimit import REDIS_CONNECTIONS, RateLimiter
from tests.conftest import Servers, make_settings

BURST = 3 * REDIS_CONNECTIONS
LIMIT = 50


async def test_a_burst_beyond_the_redis_pool_is_still_limited(servers: Servers) -> None:
    settings = make_settings(servers, rate_limit_v1=f"{LIMIT}/minute")
    limiter = RateLimiter(settings, servers.redis_url)

    verdicts = await asyncio.gather(
        *(limiter.hit(limiter.v1, "v1", "burst-app", "burst-device") for _ in range(BURST))
    )

    assert sum(v.allowed for v in verdicts) == LIMIT
    refused = [v for v in verdicts if not v.allowed]
    assert len(refused) == BURST - LIMIT
    assert all(v.headers()["Retry-After"] for v in refused)


async def test_failed_authentications_in_a_burst_are_all_counted(servers: Servers) -> None:
    settings = make_settings(servers, rate_limit_auth="5/minute")
    limiter = RateLimiter(settings, servers.redis_url)

    await asyncio.gather(
        *(limiter.hit(limiter.auth, "auth-failures", "203.0.113.9") for _ in range(BURST))
    )

    assert await limiter.blocked(limiter.auth, "auth-failures", "203.0.113.9") is not None
