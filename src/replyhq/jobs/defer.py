"""Enqueue a job inside the caller's transaction: it exists if and only if that transaction commits.

The job row is inserted through the session's own connection, so a rollback takes it away with
the data that caused it, and no worker can see it before the commit. Workers hear of it through
procrastinate's NOTIFY, which PostgreSQL delivers at commit.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import structlog
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from replyhq.db.session import on_commit
from replyhq.jobs.registry import TaskDef
from replyhq.observability.metrics import JOBS_ENQUEUED

_DEFER = text(
    "SELECT unnest(procrastinate_defer_jobs_v1(ARRAY[ROW("
    "CAST(:queue AS varchar), CAST(:task AS varchar), CAST(:priority AS integer), "
    "CAST(:lock AS text), CAST(:queueing_lock AS text), CAST(:args AS jsonb), "
    "CAST(:scheduled_at AS timestamptz)"
    ")]::procrastinate_job_to_defer_v1[])) AS id"
)


def _json_default(value: object) -> str:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    raise TypeError(f"a job argument must be JSON, not {type(value).__name__}")


async def enqueue(
    session: AsyncSession,
    task: TaskDef,
    /,
    *,
    delay: dt.timedelta | None = None,
    queueing_lock: str | None = None,
    queue: str | None = None,
    **arguments: Any,
) -> int | None:
    """Queue `task(**arguments)` in the session's transaction; its job id.

    delay: run no sooner than this from now. queueing_lock: when a job with this lock is already
    waiting, enqueue nothing and return None (the transaction carries on). queue: another queue
    than the task's own.
    """
    meta = {}
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    if request_id:
        meta["request_id"] = request_id  # the job's log lines carry the request that caused it
    params = {
        "queue": queue or task.queue,
        "task": task.name,
        "priority": task.priority,
        "lock": task.lock,
        "queueing_lock": queueing_lock or task.queueing_lock,
        "args": json.dumps({**arguments, "_meta": meta}, default=_json_default),
        "scheduled_at": dt.datetime.now(dt.UTC) + delay if delay else None,
    }
    if params["queueing_lock"] is None:
        job_id = await session.scalar(_DEFER, params)
    else:
        try:
            async with session.begin_nested():  # a duplicate must not abort the caller's work
                job_id = await session.scalar(_DEFER, params)
        except IntegrityError:
            return None
    assert job_id is not None

    async def count() -> None:
        JOBS_ENQUEUED.labels(task.name).inc()

    on_commit(session, count)
    return int(job_id)


_DEFER_UNIQUE = text(
    "INSERT INTO procrastinate_jobs "
    "(queue_name, task_name, priority, lock, queueing_lock, args, scheduled_at) "
    "SELECT CAST(:queue AS varchar), CAST(:task AS varchar), CAST(:priority AS integer), "
    "CAST(:lock AS text), item.queueing_lock, item.args, CAST(:scheduled_at AS timestamptz) "
    "FROM unnest(CAST(:locks AS text[]), CAST(:args AS jsonb[])) AS item(queueing_lock, args) "
    "ON CONFLICT (queueing_lock) WHERE status = 'todo' DO NOTHING"
)


async def enqueue_unique(
    session: AsyncSession,
    task: TaskDef,
    /,
    items: list[tuple[str, dict[str, Any]]],
    *,
    delay: dt.timedelta | None = None,
) -> None:
    """Queue `task(**arguments)` for each (queueing_lock, arguments) in one statement, in the
    session's transaction; an item whose queueing lock has a job waiting already is skipped.
    For a job that many rows of one transaction may each cause (one per person, say)."""
    if not items:
        return
    meta = {}
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    if request_id:
        meta["request_id"] = request_id
    await session.execute(
        _DEFER_UNIQUE,
        {
            "queue": task.queue,
            "task": task.name,
            "priority": task.priority,
            "lock": task.lock,
            "locks": [lock for lock, _ in items],
            "args": [
                json.dumps({**arguments, "_meta": meta}, default=_json_default)
                for _, arguments in items
            ],
            "scheduled_at": dt.datetime.now(dt.UTC) + delay if delay else None,
        },
    )
