"""The process' shared resources, built once at start-up and handed to routes through app.state."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from redis.asyncio import BlockingConnectionPool, Redis

from replyhq.accounts.verifier import StaffVerifier
from replyhq.analytics.ingest import EventWriter
from replyhq.apps.keys import KeyVerifier
from replyhq.db import Database
from replyhq.observability.instruments import CountingRetry
from replyhq.settings import Settings
from replyhq.web.ratelimit import RateLimiter

if TYPE_CHECKING:  # imported at build time: realtime imports this module
    from replyhq.realtime.delivery import WriterSink


@dataclass
class Runtime:
    settings: Settings
    db: Database
    redis: Redis
    keys: KeyVerifier
    limiter: RateLimiter
    staff: StaffVerifier
    publisher: WriterSink  # the event sink until a Socket.IO server replaces it
    events: EventWriter  # tracked events' batched writes (replyhq.analytics)
    # Resources a domain builds on first use and that close with the process (each has an
    # async aclose()): the push senders' connections.
    resources: dict[str, Any] = field(default_factory=dict)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    def build(cls, settings: Settings, database_url: str, redis_url: str) -> Runtime:
        from replyhq.attachments import signing
        from replyhq.realtime.delivery import WriterSink

        signing.configure(settings)  # the key of attachments' signed URLs
        db = Database.from_settings(settings, database_url)
        redis = redis_client(settings, redis_url, retry=CountingRetry("app"))  # redis_errors_total
        keys = KeyVerifier(
            db, redis, settings.redis_prefix + "keys-rotated", settings.api_key_cache_ttl_seconds
        )
        # Committed events reach live sockets from any process: a server's realtime layer
        # replaces this with its own delivery; workers and CLI commands publish through Redis.
        publisher = WriterSink(settings, redis_url, redis)
        db.event_sink = publisher
        staff = StaffVerifier(db, redis, settings.redis_prefix + "staff-changed")
        limiter = RateLimiter(settings, redis_url)
        events = EventWriter(db, settings)
        return cls(settings, db, redis, keys, limiter, staff, publisher, events)

    def start(self) -> None:
        self._tasks.append(asyncio.create_task(self.keys.listen(), name="key-rotation-listener"))
        self._tasks.append(asyncio.create_task(self.staff.listen(), name="staff-change-listener"))

    async def close(self) -> None:
        for task in self._tasks:
            await cancel_and_wait(task)
        await self.events.close()  # pending events are written before the pool goes
        for resource in self.resources.values():
            await resource.aclose()
        await self.redis.aclose()
        await self.publisher.aclose()
        await self.limiter.close()
        await self.db.dispose()


def redis_client(settings: Settings, redis_url: str, **options: Any) -> Redis:
    """A Redis client whose pool holds at most REDIS_MAX_CONNECTIONS and makes callers past it
    wait (up to REDIS_POOL_TIMEOUT_SECONDS). redis-py's default pool raises "Too many
    connections" past 100 instead: 1,000 sockets closing at once lost their presence writes."""
    pool = BlockingConnectionPool.from_url(
        redis_url,
        max_connections=settings.redis_max_connections,
        timeout=settings.redis_pool_timeout_seconds,
        **options,
    )
    return Redis.from_pool(pool)


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancel `task` and wait for its end. On Python 3.11 `asyncio.wait_for` can swallow a
    cancellation that lands as its inner future completes (redis-py opening a connection), so a
    single cancel() may leave the task running forever: cancel again until it has ended."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=0.1)
    with contextlib.suppress(asyncio.CancelledError):
        await task
