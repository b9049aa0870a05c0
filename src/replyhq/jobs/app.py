"""The procrastinate app of one worker: our declared jobs, retry policy and database connection."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from typing import Any

import procrastinate
import structlog
from procrastinate import exceptions as procrastinate_errors
from procrastinate.jobs import Job
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool
from sqlalchemy.engine import make_url

from replyhq.db.session import runtime_url
from replyhq.jobs import admin
from replyhq.jobs.registry import JobRun, TaskDef
from replyhq.runtime import Runtime
from replyhq.settings import Settings

log = structlog.get_logger(__name__)


class Backoff(procrastinate.BaseRetryStrategy):
    """Retry after base·2^n seconds (n = runs so far), capped and jittered to 50-100% so that
    jobs failing together do not come back together; dead after `max_attempts` runs. A job
    released by a shutting-down worker is retried at once."""

    def __init__(self, max_attempts: int, base: float, cap: float) -> None:
        self.max_attempts = max_attempts
        self.base = base
        self.cap = cap

    def will_retry(self, job: Job) -> bool:
        return job.attempts + 1 < self.max_attempts

    def delay(self, attempts: int) -> float:
        delay = min(self.cap, self.base * 2.0 ** int(attempts))
        return float(delay * random.uniform(0.5, 1.0))  # noqa: S311

    def get_retry_decision(
        self, *, exception: BaseException, job: Job
    ) -> procrastinate.RetryDecision | None:
        if not self.will_retry(job):
            return None
        released = isinstance(exception, (asyncio.CancelledError, procrastinate_errors.JobAborted))
        seconds = 0.0 if released else self.delay(job.attempts)
        retry_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)
        decision: procrastinate.RetryDecision = procrastinate.RetryDecision(retry_at=retry_at)
        return decision


def libpq_url(settings: Settings, owner_url: str) -> str:
    """The runtime role's URL for psycopg itself (no SQLAlchemy driver suffix)."""
    url = make_url(runtime_url(settings, owner_url)).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def _runner(task: TaskDef) -> Any:
    """The function procrastinate calls: builds the JobRun, enforces once-per-tick for periodic
    jobs, and hides our envelope (`_meta`) from the job's own arguments."""

    async def run(context: procrastinate.JobContext, **arguments: Any) -> None:
        arguments.pop("_meta", None)
        job = context.job
        assert job.id is not None
        runtime: Runtime = context.additional_context["runtime"]
        if task.schedule is not None:
            # procrastinate defers one job per tick across workers, except when a worker falls a
            # whole period behind; the claim makes "once per tick" hold even then (and a retry
            # of the owning job still owns its tick).
            tick = int(arguments["timestamp"])
            async with runtime.db.engine.begin() as connection:
                if not await admin.claim_tick(connection, task.name, tick, job.id):
                    log.info("job_skipped_duplicate_tick", tick=tick)
                    return
        run_info = JobRun(id=job.id, task=task.name, attempt=job.attempts + 1, runtime=runtime)
        await task.func(run_info, **arguments)

    run.__name__ = run.__qualname__ = task.name.replace(".", "_")
    return run


async def _autocommit(connection: AsyncConnection[Any]) -> None:
    await connection.set_autocommit(True)


def _pool_without_checks(**options: Any) -> AsyncConnectionPool:
    options.pop("check", None)
    return AsyncConnectionPool(**options)


def build_app(
    settings: Settings, tasks: dict[str, TaskDef], *, pool_size: int
) -> procrastinate.App:
    """A procrastinate App (not yet open) that knows `tasks` and connects as the runtime role."""
    assert settings.database_url, "DATABASE_URL must be set"
    connector = procrastinate.PsycopgConnector(
        conninfo=libpq_url(settings, settings.database_url),
        min_size=1,
        max_size=pool_size,
        # Each of procrastinate's queries is one statement: in autocommit it costs one round
        # trip, not three (a liveness check on checkout, the query, a COMMIT on return). A
        # connection that died fails one query; the pool drops it and the worker starts again.
        kwargs={"application_name": "replyhq-worker"},
        configure=_autocommit,
        pool_factory=_pool_without_checks,
    )
    app = procrastinate.App(connector=connector)
    for task in tasks.values():
        retry = Backoff(
            task.max_attempts or settings.job_max_attempts,
            settings.job_retry_base_seconds,
            settings.job_retry_max_seconds,
        )
        registered = app.task(
            name=task.name,
            queue=task.queue,
            priority=task.priority,
            lock=task.lock,
            queueing_lock=task.queueing_lock,
            retry=retry,
            pass_context=True,
        )(_runner(task))
        if task.schedule is not None:
            app.periodic(cron=task.schedule)(registered)
    return app
