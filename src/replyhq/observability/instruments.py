"""Counting at the edges of our clients: the database pool and Redis connections."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry

from replyhq.observability.metrics import DB_POOL_IN_USE, DB_POOL_WAITING, REDIS_ERRORS

T = TypeVar("T")

# SQLAlchemy names a pool's logger after its class and quiets its own ("sqlalchemy.*") to
# WARNING; the subclass below lives under our name, so it gets the same treatment here.
logging.getLogger(__name__).setLevel(logging.WARNING)


class InstrumentedPool(AsyncAdaptedQueuePool):
    """SQLAlchemy's asyncio pool, keeping `db_pool_connections_in_use` and `db_pool_waiting`."""

    def _do_get(self) -> ConnectionPoolEntry:
        # Only an exhausted pool (overflow used up) makes a caller wait.
        waits = self._max_overflow > -1 and self._overflow >= self._max_overflow
        if waits:
            DB_POOL_WAITING.inc()
        try:
            entry = super()._do_get()
        finally:
            if waits:
                DB_POOL_WAITING.dec()
        DB_POOL_IN_USE.inc()
        return entry

    def _do_return_conn(self, record: ConnectionPoolEntry) -> None:
        DB_POOL_IN_USE.dec()
        super()._do_return_conn(record)


class CountingRetry(Retry):
    """redis-py's default retry policy (10 retries, jittered exponential backoff from 10 ms to
    1 s), counting each failed attempt (connection refused, reset, timed out) in
    `redis_errors_total{client}`."""

    def __init__(self, client: str = "app", retries: int = 10) -> None:
        super().__init__(ExponentialWithJitterBackoff(base=0.01, cap=1), retries)
        self.client = client

    async def call_with_retry(
        self,
        do: Callable[[], Awaitable[T]],
        fail: Callable[..., Any],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> T:
        def counted(*args: Any) -> Any:
            REDIS_ERRORS.labels(self.client).inc()
            return fail(*args)

        return await super().call_with_retry(do, counted, is_retryable, with_failure_count)
