"""Redis-backed rate limits (moving windows from `limits`), with the RateLimit-* headers.

Limits fail open: when Redis is unreachable a request is served, not refused, because losing a
customer's message is worse than briefly losing a limit.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import structlog
from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.asyncio import BlockingConnectionPool

from replyhq.errors import RateLimited
from replyhq.observability.metrics import RATE_LIMIT_REFUSALS, REDIS_ERRORS
from replyhq.settings import Settings

log = structlog.get_logger(__name__)

REDIS_CONNECTIONS = 100  # per process
REDIS_WAIT_SECONDS = 10.0  # for a free connection, before the check fails open


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    reset_after: int

    def headers(self) -> dict[str, str]:
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_after),
        }
        if not self.allowed:
            headers["Retry-After"] = str(max(self.reset_after, 1))
        return headers


class RateLimiter:
    def __init__(self, settings: Settings, redis_url: str) -> None:
        self.enabled = settings.rate_limit_enabled
        self.auth = parse(settings.rate_limit_auth)
        self.setup = parse(settings.rate_limit_setup)
        self.v1 = parse(settings.rate_limit_v1)
        self.v1_ip = parse(settings.rate_limit_v1_ip)
        uri = (
            "async+" + redis_url
            if not redis_url.startswith("unix://")
            else ("async+redis+unix://" + redis_url.removeprefix("unix://"))
        )
        # A blocking pool: a burst of concurrent requests waits for a free connection. redis-py's
        # default pool refuses past 100 connections ("Too many connections"), and every refused
        # check would fail open: a burst of 1,000 concurrent requests switched the limits off.
        pool = BlockingConnectionPool.from_url(
            redis_url, max_connections=REDIS_CONNECTIONS, timeout=REDIS_WAIT_SECONDS
        )
        self._storage = RedisStorage(
            uri,
            implementation="redispy",
            key_prefix=settings.redis_prefix + "limits",
            connection_pool=pool,  # type: ignore[arg-type]
        )
        self._limiter = MovingWindowRateLimiter(self._storage)

    async def hit(self, item: RateLimitItem, *keys: str) -> Verdict:
        """Count one request against `item` for `keys`."""
        if not self.enabled:
            return Verdict(True, item.amount, item.amount, 0)
        try:
            allowed = await self._limiter.hit(item, *keys)
            stats = await self._limiter.get_window_stats(item, *keys)
        except Exception as exc:
            REDIS_ERRORS.labels("ratelimit").inc()
            log.warning("rate_limit_unavailable", error=str(exc))
            return Verdict(True, item.amount, item.amount, 0)
        reset_after = max(0, math.ceil(stats.reset_time - time.time()))
        return Verdict(allowed, item.amount, stats.remaining, reset_after)

    async def blocked(self, item: RateLimitItem, *keys: str) -> Verdict | None:
        """A refusal when `keys` have no room left under `item`, without counting a request."""
        if not self.enabled:
            return None
        try:
            if await self._limiter.test(item, *keys):
                return None
            stats = await self._limiter.get_window_stats(item, *keys)
        except Exception as exc:
            REDIS_ERRORS.labels("ratelimit").inc()
            log.warning("rate_limit_unavailable", error=str(exc))
            return None
        RATE_LIMIT_REFUSALS.labels(keys[0]).inc()
        return Verdict(False, item.amount, 0, max(1, math.ceil(stats.reset_time - time.time())))

    async def enforce(self, item: RateLimitItem, *keys: str) -> Verdict:
        verdict = await self.hit(item, *keys)
        if not verdict.allowed:
            RATE_LIMIT_REFUSALS.labels(keys[0]).inc()
            raise RateLimited(headers=verdict.headers())
        return verdict
