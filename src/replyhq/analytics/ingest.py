"""Batched writes of tracked events: many requests' events in one statement per app.

A request hands its events to the app's buffer and waits. A flush starts when fewer than
EVENT_FLUSH_CONCURRENCY are running for that app (after EVENT_FLUSH_DELAY_MS, 0 by default) and
takes everything pending (up to EVENT_FLUSH_MAX_EVENTS, whole requests only); events arriving
while every flush slot is busy wait for the next one. So under
load a flush writes many requests' events, a batch need not wait for the commit (the WAL's
fsync) of the flush before it, and alone a request waits for one statement.

Durability: one flush is one statement in one transaction (Database.tenant_statement). A request
is answered 202 only after the transaction holding its events committed; if the process dies
before, the request gets no answer (its client retries) and nothing of it was stored. An
accepted event is therefore never lost; a retry after a 202 that never reached the client may
store the event twice (at least once, as every analytics pipeline without client event ids).

The same statement resolves each device to its end user (refusing a device that has not
identified, or may not speak for its user, as a message send does), adds the events to the
per-user daily counts and to each person's latest occurrence of each name (with their counts of
its last 32 days), so segment
conditions on "did X (N times) in D days" read those and never the raw events (the dashboard's
catalog of event names counts them there too, when asked: no row is written by every flush of
an app, so its concurrent flushes do not queue on a row lock held until the commit); and it
claims the people that the app's active event-triggered messages on those names should reach,
queueing the job that sends them (replyhq.triggered), so a trigger costs ingest one index lookup
and never a message send.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
import structlog

from replyhq.analytics import partitions
from replyhq.db import Database
from replyhq.errors import DeviceUnknown, DeviceUnverified
from replyhq.observability.metrics import (
    EVENT_FLUSH_SECONDS,
    EVENT_FLUSH_SIZE,
    EVENT_QUEUE_SECONDS,
    EVENTS_STORED,
    JOBS_ENQUEUED,
)
from replyhq.settings import Settings

log = structlog.get_logger(__name__)

# replyhq.triggered.tasks.send_triggered (named here: analytics must not import that domain's
# job module, which imports segments and messaging; tests check the names agree).
TRIGGER_JOB_TASK = "triggered_messages.send"
TRIGGER_JOB_QUEUE = "messages"

_FLUSH = """
WITH batch AS (
  SELECT b.device_id, b.name, b.properties, b.occurred_at
  FROM unnest(
    %(device_ids)s::text[], %(names)s::text[], %(properties)s::jsonb[],
    %(occurred_at)s::timestamptz[]
  ) AS b (device_id, name, properties, occurred_at)
), senders AS (
  SELECT d.device_id, d.end_user_id, d.platform, d.app_version,
         d.verified OR NOT (u.verified OR a.identity_verification_required) AS allowed
  FROM devices d
  JOIN end_users u ON u.id = d.end_user_id AND u.app_id = d.app_id
  JOIN apps a ON a.id = d.app_id
  WHERE d.app_id = %(app_id)s AND d.device_id = ANY(%(senders)s::text[])
), stored AS (
  INSERT INTO events (
    app_id, end_user_id, device_id, platform, app_version, name, properties, occurred_at
  )
  SELECT %(app_id)s, s.end_user_id, b.device_id, s.platform, s.app_version, b.name,
         b.properties, b.occurred_at
  FROM batch b JOIN senders s ON s.device_id = b.device_id AND s.allowed
  RETURNING end_user_id, name, occurred_at
), counted AS (
  INSERT INTO event_daily_counts AS c (app_id, name, day, end_user_id, count, last_at)
  SELECT %(app_id)s, name, (occurred_at AT TIME ZONE 'UTC')::date, end_user_id, count(*),
         max(occurred_at)
  FROM stored GROUP BY 2, 3, 4 ORDER BY 2, 3, 4  -- one lock order for every writer
  ON CONFLICT (app_id, name, day, end_user_id)
  DO UPDATE SET count = c.count + excluded.count, last_at = greatest(c.last_at, excluded.last_at)
), latest AS (
  -- When each person last did each name, and how many times in the 32 days up to that day
  -- (migration 0210): "did X (N times) in the last D days" reads one row per person.
  INSERT INTO event_latest AS l (app_id, name, end_user_id, last_at, recent)
  SELECT %(app_id)s, name, end_user_id, max(occurred_at),
         replyhq_recent_counts(array_agg((occurred_at AT TIME ZONE 'UTC')::date))
  FROM stored GROUP BY 2, 3 ORDER BY 2, 3
  ON CONFLICT (app_id, name, end_user_id)
  DO UPDATE SET last_at = greatest(l.last_at, excluded.last_at),
    recent = replyhq_merge_recent(
      l.recent, (l.last_at AT TIME ZONE 'UTC')::date,
      excluded.recent, (excluded.last_at AT TIME ZONE 'UTC')::date)
), triggered AS (
  -- Event-triggered messages (replyhq.triggered): claim each (trigger, person) once; the
  -- primary key is what makes it once per person across concurrent batches and processes.
  INSERT INTO triggered_message_sends AS t (triggered_message_id, end_user_id, app_id, event_at)
  SELECT r.id, s.end_user_id, %(app_id)s, min(s.occurred_at)
  FROM stored s
  JOIN triggered_messages r ON r.app_id = %(app_id)s AND r.status = 'active'
   AND r.event_name = s.name AND s.occurred_at >= r.created_at
  GROUP BY 1, 2 ORDER BY 1, 2
  ON CONFLICT DO NOTHING
  RETURNING 1
), queued AS (
  -- The job that sends what was claimed, queued in this transaction (none when nobody was).
  SELECT procrastinate_defer_jobs_v1(ARRAY[ROW(
    %(job_queue)s::varchar, %(job_task)s::varchar, 0, NULL::text, NULL::text,
    %(job_args)s::jsonb, NULL::timestamptz
  )]::procrastinate_job_to_defer_v1[]) AS ids
  WHERE EXISTS (SELECT FROM triggered)
)
SELECT device_id, allowed, (SELECT count(*) FROM queued) AS queued FROM senders
"""


@dataclass(frozen=True)
class Row:
    name: str
    properties: str  # JSON
    occurred_at: datetime


@dataclass
class _Request:
    device_id: str
    rows: Sequence[Row]
    done: asyncio.Future[None]
    queued_at: float = field(default_factory=time.perf_counter)


@dataclass
class _AppBuffer:
    pending: list[_Request] = field(default_factory=list)
    flushing: set[asyncio.Task[None]] = field(default_factory=set)


class EventWriter:
    """One per process: a buffer per app, flushed as described above."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.delay = settings.event_flush_delay_ms / 1000
        self.max_rows = settings.event_flush_max_events
        self.concurrency = settings.event_flush_concurrency
        self._buffers: dict[uuid.UUID, _AppBuffer] = {}
        self._closed = False

    async def write(self, app_id: uuid.UUID, device_id: str, rows: Sequence[Row]) -> None:
        """Return once `rows` are committed; raise (and store none of them) otherwise."""
        if self._closed:
            raise RuntimeError("the event writer is closed")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        buffer = self._buffers.setdefault(app_id, _AppBuffer())
        buffer.pending.append(_Request(device_id, rows, done))
        if len(buffer.flushing) < self.concurrency:
            task = asyncio.create_task(self._drain(app_id, buffer))
            buffer.flushing.add(task)
        # Shielded: a caller that goes away must not cancel the others' flush.
        await asyncio.shield(done)

    async def close(self) -> None:
        """Write what is pending and stop taking more (the process is shutting down)."""
        self._closed = True
        tasks = [task for b in self._buffers.values() for task in b.flushing]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _drain(self, app_id: uuid.UUID, buffer: _AppBuffer) -> None:
        try:
            while buffer.pending:
                if self.delay:
                    await asyncio.sleep(self.delay)
                if not buffer.pending:  # another slot took them meanwhile
                    break
                batch = _take(buffer.pending, self.max_rows)
                await self._flush(app_id, batch)
        finally:
            task = asyncio.current_task()
            if task is not None:
                buffer.flushing.discard(task)
            if not buffer.pending and not buffer.flushing:
                self._buffers.pop(app_id, None)

    async def _flush(self, app_id: uuid.UUID, batch: list[_Request]) -> None:
        started = time.perf_counter()
        for request in batch:
            EVENT_QUEUE_SECONDS.observe(started - request.queued_at)
        try:
            allowed = await self._store(app_id, batch)
            EVENT_FLUSH_SECONDS.observe(time.perf_counter() - started)
        except BaseException as error:  # cancelled too: nobody may wait forever
            failure = error if isinstance(error, Exception) else RuntimeError("flush cancelled")
            for request in batch:
                if not request.done.done():
                    request.done.set_exception(failure)
            if not isinstance(error, Exception):
                raise
            log.warning("event_flush_failed", error=type(error).__name__, requests=len(batch))
            return
        stored = 0
        for request in batch:
            if request.done.done():
                continue
            verdict = allowed.get(request.device_id)
            if verdict is None:
                request.done.set_exception(DeviceUnknown())
            elif not verdict:
                request.done.set_exception(DeviceUnverified())
            else:
                stored += len(request.rows)
                request.done.set_result(None)
        EVENTS_STORED.inc(stored)
        EVENT_FLUSH_SIZE.observe(sum(len(r.rows) for r in batch))

    async def _store(self, app_id: uuid.UUID, batch: list[_Request]) -> dict[str, bool]:
        device_ids: list[str] = []
        names: list[str] = []
        properties: list[str] = []
        occurred_at: list[datetime] = []
        for request in batch:
            for row in request.rows:
                device_ids.append(request.device_id)
                names.append(row.name)
                properties.append(row.properties)
                occurred_at.append(row.occurred_at)
        params = {
            "app_id": app_id,
            "device_ids": device_ids,
            "names": names,
            "properties": properties,
            "occurred_at": occurred_at,
            "senders": sorted({r.device_id for r in batch}),
            "job_queue": TRIGGER_JOB_QUEUE,
            "job_task": TRIGGER_JOB_TASK,
            "job_args": json.dumps({"app_id": str(app_id), "_meta": {}}),
        }
        try:
            rows = await self.db.tenant_statement(app_id, _FLUSH, params)
        except psycopg.errors.CheckViolation as error:
            # No partition for one of these days (the periodic job has not run since midnight):
            # make the partitions and write again; nothing of the failed statement was stored.
            if "no partition" not in str(error):
                raise
            await partitions.ensure_for(self.db, app_id, min(occurred_at), max(occurred_at))
            rows = await self.db.tenant_statement(app_id, _FLUSH, params)
        if rows and rows[0]["queued"]:
            JOBS_ENQUEUED.labels(TRIGGER_JOB_TASK).inc()
        return {row["device_id"]: bool(row["allowed"]) for row in rows}


def _take(pending: list[_Request], max_rows: int) -> list[_Request]:
    """The oldest whole requests holding at most `max_rows` events (at least one request)."""
    taken = 0
    count = 0
    for request in pending:
        if count and taken + len(request.rows) > max_rows:
            break
        taken += len(request.rows)
        count += 1
    batch = pending[:count]
    del pending[:count]
    return batch


def to_json(properties: Mapping[str, Any] | None) -> str:
    return json.dumps(properties or {}, ensure_ascii=False, separators=(",", ":"))
