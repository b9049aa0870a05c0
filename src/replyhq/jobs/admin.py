"""Operating the queue: dead jobs (list, retry), depth, jobs of dead workers, clean-up.

A job is *dead* when it failed on its last allowed run (status `failed`) or was released by a
shutdown with no run left (`aborted`). Retrying a dead job gives it a fresh set of attempts.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncConnection

from replyhq.observability.redact import redact, redact_text

DEAD = ("failed", "aborted")
STALLED_ERROR = "The worker running this job stopped responding (killed or stalled)."


@dataclass(frozen=True)
class DeadJob:
    id: int
    task: str
    queue: str
    attempts: int
    app_id: str | None
    arguments: dict[str, Any]
    failed_at: dt.datetime | None
    error: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "task": self.task,
            "queue": self.queue,
            "attempts": self.attempts,
            "app_id": self.app_id,
            "arguments": self.arguments,
            "failed_at": self.failed_at.isoformat() if self.failed_at else None,
            "error": self.error,
        }


async def dead_jobs(connection: AsyncConnection, limit: int = 50) -> list[DeadJob]:
    rows = await connection.execute(
        text(
            "SELECT j.id, j.task_name, j.queue_name, j.attempts, j.args, "
            "  COALESCE(e.failed_at, ev.at) AS failed_at, e.error "
            "FROM procrastinate_jobs j "
            "LEFT JOIN job_errors e ON e.job_id = j.id "
            "LEFT JOIN LATERAL (SELECT max(at) AS at FROM procrastinate_events "
            "  WHERE job_id = j.id) ev ON true "
            "WHERE j.status IN ('failed', 'aborted') ORDER BY j.id DESC LIMIT :limit"
        ),
        {"limit": limit},
    )
    jobs = []
    for row in rows:
        arguments = {k: v for k, v in (row.args or {}).items() if k != "_meta"}
        jobs.append(
            DeadJob(
                id=row.id,
                task=row.task_name,
                queue=row.queue_name,
                attempts=row.attempts,
                app_id=arguments.get("app_id"),
                arguments=redact(arguments),
                failed_at=row.failed_at,
                error=row.error,
            )
        )
    return jobs


async def retry_dead(connection: AsyncConnection, ids: Sequence[int] | None) -> list[int]:
    """Put dead jobs back in the queue (all of them when `ids` is None); the ids requeued."""
    params: dict[str, Any] = {}
    stmt = (
        "UPDATE procrastinate_jobs SET status = 'todo', attempts = 0, scheduled_at = NULL, "
        "abort_requested = false, worker_id = NULL WHERE status IN ('failed', 'aborted')"
    )
    if ids is not None:
        stmt += " AND id IN :ids"
        params["ids"] = list(ids)
    query = text(stmt + " RETURNING id, queue_name")
    if ids is not None:
        query = query.bindparams(bindparam("ids", expanding=True))
    rows = (await connection.execute(query, params)).all()
    for row in rows:
        await _wake_workers(connection, row.id, row.queue_name)
    return sorted(row.id for row in rows)


async def _wake_workers(connection: AsyncConnection, job_id: int, queue: str) -> None:
    # The same notification procrastinate sends for a new job: idle workers fetch at once.
    payload = json.dumps({"type": "job_inserted", "job_id": job_id})
    await connection.execute(
        text("SELECT pg_notify(:queue_channel, :payload), pg_notify(:any_channel, :payload)"),
        {
            "queue_channel": f"procrastinate_queue_v1#{queue}",
            "any_channel": "procrastinate_any_queue_v1",
            "payload": payload,
        },
    )


async def queue_depth(connection: AsyncConnection) -> list[tuple[str, str, int]]:
    """(queue, status, jobs) for the jobs waiting, running and dead."""
    rows = await connection.execute(
        text(
            "SELECT queue_name, status::text AS status, count(*) AS jobs FROM procrastinate_jobs "
            "WHERE status IN ('todo', 'doing', 'failed', 'aborted') GROUP BY 1, 2"
        )
    )
    depth: dict[tuple[str, str], int] = {}
    for row in rows:
        status = "failed" if row.status in DEAD else row.status
        depth[(row.queue_name, status)] = depth.get((row.queue_name, status), 0) + row.jobs
    return [(queue, status, count) for (queue, status), count in sorted(depth.items())]


async def record_error(connection: AsyncConnection, job_id: int, attempt: int, error: str) -> None:
    await connection.execute(
        text(
            "INSERT INTO job_errors (job_id, attempt, error) VALUES (:job_id, :attempt, :error) "
            "ON CONFLICT (job_id) DO UPDATE SET attempt = EXCLUDED.attempt, "
            "error = EXCLUDED.error, failed_at = now()"
        ),
        {"job_id": job_id, "attempt": attempt, "error": redact_text(error)[:4000]},
    )


async def recover_stalled(
    connection: AsyncConnection,
    stalled_after: float,
    max_attempts_of: Callable[[str], int],
    alive_worker_id: int | None = None,
) -> list[int]:
    """Requeue (or declare dead) the jobs of workers that stopped sending heartbeats.

    Forgetting a dead worker detaches its jobs (worker_id becomes NULL); a running job always has
    a worker, so `doing` with none is an orphan. The row locks make two workers recovering at
    once harmless, and a job fetched again meanwhile is no longer an orphan.

    `alive_worker_id`, the caller's own worker, is marked alive first (and registered again if
    others forgot it while it was frozen), so that a worker never declares itself dead.
    """
    if alive_worker_id is not None:
        await connection.execute(
            text(
                "INSERT INTO procrastinate_workers (id, last_heartbeat) OVERRIDING SYSTEM VALUE "
                "VALUES (:id, now()) ON CONFLICT (id) DO UPDATE SET last_heartbeat = now()"
            ),
            {"id": alive_worker_id},
        )
    await connection.execute(
        text("SELECT procrastinate_prune_stalled_workers_v1(:seconds)"), {"seconds": stalled_after}
    )
    orphans = (
        await connection.execute(
            text(
                "SELECT id, task_name, queue_name, attempts FROM procrastinate_jobs "
                "WHERE status = 'doing' AND worker_id IS NULL FOR UPDATE SKIP LOCKED"
            )
        )
    ).all()
    recovered = []
    for orphan in orphans:
        dead = orphan.attempts + 1 >= max_attempts_of(orphan.task_name)
        await connection.execute(
            text(
                "UPDATE procrastinate_jobs SET status = CAST(:status AS procrastinate_job_status), "
                "attempts = attempts + 1, scheduled_at = NULL WHERE id = :id"
            ),
            {"status": "failed" if dead else "todo", "id": orphan.id},
        )
        await record_error(connection, orphan.id, orphan.attempts + 1, STALLED_ERROR)
        if not dead:
            await _wake_workers(connection, orphan.id, orphan.queue_name)
        recovered.append(orphan.id)
    return recovered


async def claim_tick(connection: AsyncConnection, task: str, tick: int, job_id: int) -> bool:
    """Whether `job_id` is the one job that runs `task` for `tick` (the first to claim it)."""
    params = {"task": task, "tick": tick, "job_id": job_id}
    await connection.execute(
        text(
            "INSERT INTO job_schedule_runs (task_name, periodic_id, scheduled_for, job_id) "
            "VALUES (:task, '', :tick, :job_id) ON CONFLICT DO NOTHING"
        ),
        params,
    )
    owner = await connection.scalar(
        text(
            "SELECT job_id FROM job_schedule_runs "
            "WHERE task_name = :task AND periodic_id = '' AND scheduled_for = :tick"
        ),
        params,
    )
    return bool(owner == job_id)


async def prune(connection: AsyncConnection, older_than: dt.timedelta) -> int:
    """Delete finished jobs (and schedule claims) older than `older_than`; how many jobs."""
    cutoff = dt.datetime.now(dt.UTC) - older_than
    deleted = await connection.execute(
        text(
            "DELETE FROM procrastinate_jobs j WHERE j.status IN "
            "('succeeded', 'failed', 'aborted', 'cancelled') AND NOT EXISTS ("
            "  SELECT 1 FROM procrastinate_events e WHERE e.job_id = j.id AND e.at >= :cutoff)"
        ),
        {"cutoff": cutoff},
    )
    await connection.execute(
        text("DELETE FROM job_schedule_runs WHERE claimed_at < :cutoff"), {"cutoff": cutoff}
    )
    return int(deleted.rowcount or 0)
