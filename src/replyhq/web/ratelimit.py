"""Redis-backed rate limits (exact moving windows), with the RateLimit-* headers.

Limits are written in the `limits` notation ("100/15minutes") and parsed by that library; the
counting is our own Lua script because a request checks several limits (per address, failed
authentications, per device) and `limits` asks Redis once or twice per limit: the script checks
all of a request's limits in one round trip.

Limits fail open: when Redis is unreachable a request is served, not refused, because losing a
customer's message is worse than briefly losing a limit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import structlog
from limits import RateLimitItem, parse
from redis.asyncio import BlockingConnectionPool, Redis

from replyhq.errors import RateLimited
from replyhq.observability.metrics import RATE_LIMIT_REFUSALS, REDIS_ERRORS
from replyhq.settings import Settings

log = structlog.get_logger(__name__)

REDIS_CONNECTIONS = 100  # per process
REDIS_WAIT_SECONDS = 10.0  # for a free connection, before the check fails open

# One list per limit and key: the times (ms, newest first) of the requests counted in the last
# window, so its length is the count (entries that left the window are dropped from the tail as
# they are met: each is dropped once). The checks run in order and stop at the first refusal,
# so a refused request is not counted by the limits after it.
# (Every key of a request in one script: with Redis Cluster they would need one hash slot.)
# KEYS: the lists. ARGV: for each key its limit, window (ms) and 1 to count a request or 0 only
# to test. Returns, for each check made: allowed (1/0), remaining, ms until a slot frees up.
_SCRIPT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local out = {}
for i, key in ipairs(KEYS) do
    local limit = tonumber(ARGV[3 * i - 2])
    local window = tonumber(ARGV[3 * i - 1])
    local counting = ARGV[3 * i] == '1'
    local oldest = redis.call('LINDEX', key, -1)
    while oldest and tonumber(oldest) <= now - window do
        redis.call('RPOP', key)
        oldest = redis.call('LINDEX', key, -1)
    end
    local count = redis.call('LLEN', key)
    if count >= limit then
        -- Full: a slot frees up when the entry `limit` places from the newest leaves the window.
        local freeing = tonumber(redis.call('LINDEX', key, limit - count - 1) or now)
        table.insert(out, 0)
        table.insert(out, 0)
        table.insert(out, freeing + window - now)
        return out
    end
    if counting then
        redis.call('LPUSH', key, now)
        redis.call('PEXPIRE', key, window)
        count = count + 1
        oldest = oldest or now
    end
    table.insert(out, 1)
    table.insert(out, limit - count)
    table.insert(out, oldest and (tonumber(oldest) + window - now) or 0)
end
return out
"""


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


@dataclass(frozen=True)
class Check:
    """One limit for one key: `count` a request against it, or only test that it has room.
    `refusal` is the 429's message when this check refuses (None: the generic one)."""

    item: RateLimitItem
    keys: tuple[str, ...]
    count: bool = True
    refusal: str | None = None


def wait_words(seconds: int) -> str:
    """How long to wait, as a person would say it: "45 seconds", "1 minute", "15 minutes"."""
    if seconds < 60:
        return "1 second" if seconds == 1 else f"{seconds} seconds"
    minutes = math.ceil(seconds / 60)
    return "1 minute" if minutes == 1 else f"{minutes} minutes"


def refusal(message: str | None, verdict: Verdict) -> RateLimited:
    """The 429 for a refused verdict: the message says how long to wait, as `Retry-After` does
    (and `retry_after`, in seconds, for programs)."""
    wait = max(verdict.reset_after, 1)
    text = f"{message or RateLimited.message} Try again in {wait_words(wait)}."
    return RateLimited(text, headers=verdict.headers(), retry_after=wait)


class RateLimiter:
    def __init__(self, settings: Settings, redis_url: str) -> None:
        self.enabled = settings.rate_limit_enabled
        self.auth = parse(settings.rate_limit_auth)
        self.login_account = parse(settings.rate_limit_login_account)
        self.login_address = parse(settings.rate_limit_login_address)
        self.login_device = parse(settings.rate_limit_login_device)
        self.tokens = parse(settings.rate_limit_token_failures)
        self.setup = parse(settings.rate_limit_setup)
        self.v1 = parse(settings.rate_limit_v1)
        self.v1_ip = parse(settings.rate_limit_v1_ip)
        self._prefix = settings.redis_prefix + "limits:"
        # A blocking pool: a burst of concurrent requests waits for a free connection. redis-py's
        # default pool refuses past 100 connections ("Too many connections"), and every refused
        # check would fail open: a burst of 1,000 concurrent requests switched the limits off.
        pool = BlockingConnectionPool.from_url(
            redis_url, max_connections=REDIS_CONNECTIONS, timeout=REDIS_WAIT_SECONDS
        )
        self._redis = Redis(connection_pool=pool)
        self._script = self._redis.register_script(_SCRIPT)

    async def close(self) -> None:
        await self._redis.aclose()

    def _key(self, item: RateLimitItem, keys: tuple[str, ...]) -> str:
        # The limit's amount and window are part of the key: a changed setting starts afresh.
        return f"{self._prefix}{'/'.join(keys)}/{item.amount}/{item.get_expiry()}"

    async def check(self, *checks: Check) -> list[Verdict]:
        """The verdicts of `checks`, in one round trip. They are made in order and stop at the
        first refusal, which is then the last verdict; fewer verdicts than checks means that."""
        if not self.enabled or not checks:
            return [Verdict(True, c.item.amount, c.item.amount, 0) for c in checks]
        args: list[int] = []
        for c in checks:
            args += [c.item.amount, c.item.get_expiry() * 1000, int(c.count)]
        try:
            raw = await self._script(keys=[self._key(c.item, c.keys) for c in checks], args=args)
        except Exception as exc:
            REDIS_ERRORS.labels("ratelimit").inc()
            log.warning("rate_limit_unavailable", error=str(exc))
            return [Verdict(True, c.item.amount, c.item.amount, 0) for c in checks]
        verdicts = []
        for i in range(0, len(raw), 3):
            item = checks[i // 3].item
            allowed, remaining, reset_ms = int(raw[i]), int(raw[i + 1]), int(raw[i + 2])
            reset_after = max(0, math.ceil(reset_ms / 1000))
            verdicts.append(Verdict(bool(allowed), item.amount, max(0, remaining), reset_after))
        return verdicts

    async def enforce_all(self, *checks: Check) -> list[Verdict]:
        """`check`, raising RateLimited (429 with the refusing limit's headers) on a refusal."""
        verdicts = await self.check(*checks)
        if verdicts and not verdicts[-1].allowed:
            refusing = checks[len(verdicts) - 1]
            RATE_LIMIT_REFUSALS.labels(refusing.keys[0]).inc()
            raise refusal(refusing.refusal, verdicts[-1])
        return verdicts

    async def hit(self, item: RateLimitItem, *keys: str) -> Verdict:
        """Count one request against `item` for `keys`."""
        return (await self.check(Check(item, keys)))[0]

    async def blocked(self, item: RateLimitItem, *keys: str) -> Verdict | None:
        """A refusal when `keys` have no room left under `item`, without counting a request."""
        verdict = (await self.check(Check(item, keys, count=False)))[0]
        if verdict.allowed:
            return None
        RATE_LIMIT_REFUSALS.labels(keys[0]).inc()
        return verdict

    async def enforce(self, item: RateLimitItem, *keys: str) -> Verdict:
        return (await self.enforce_all(Check(item, keys)))[0]
