"""What the ingest flush pays for `event_latest.recent` (migration 0210): the flush statement as
it is, against the same statement whose `event_latest` upsert writes `last_at` only (as before
0210; `recent` a constant), alternating rounds on bench_analytics' kept database.

    BENCH_ANALYTICS_DB=<name> python -m bench.flush_cost [ROUNDS] [FLUSHES]

Each flush is one statement in its own transaction, as the EventWriter runs it (commit and its
fsync included), of BATCH events named `tap` (no preview reads that name) from devices taken in
turn among DEVICES: after the first round every upsert meets its person's row and merges into it.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.engine import make_url

from bench import common
from bench.bench_analytics import _kept
from replyhq.analytics import ingest

BATCH = 10
DEVICES = 1000

_MERGED = """  ON CONFLICT (app_id, name, end_user_id)
  DO UPDATE SET last_at = greatest(l.last_at, excluded.last_at),
    recent = replyhq_merge_recent(
      l.recent, (l.last_at AT TIME ZONE 'UTC')::date,
      excluded.recent, (excluded.last_at AT TIME ZONE 'UTC')::date)"""
_LAST_ONLY = """  ON CONFLICT (app_id, name, end_user_id)
  DO UPDATE SET last_at = excluded.last_at WHERE l.last_at < excluded.last_at"""
_COUNTED = "replyhq_recent_counts(array_agg((occurred_at AT TIME ZONE 'UTC')::date))"


def _without_recent(flush: str) -> str:
    assert _MERGED in flush and _COUNTED in flush, "the flush statement changed: update me"
    return flush.replace(_MERGED, _LAST_ONLY).replace(_COUNTED, "'{1}'::integer[]")


async def _main(rounds: int, flushes: int) -> None:
    name = os.environ["BENCH_ANALYTICS_DB"]
    url = make_url(common.services().postgres_url).set(database=name)
    owner = url.render_as_string(hide_password=False)
    users = int(os.environ.get("BENCH_ANALYTICS_USERS", "100000"))
    events = int(os.environ.get("BENCH_ANALYTICS_EVENTS", "1000000"))
    tenant = _kept(owner, users, events)
    assert tenant is not None, f"no dataset of {users} users and {events} events in {name}"
    db = common.database(owner)
    variants = {"with recent": ingest._FLUSH, "last_at only": _without_recent(ingest._FLUSH)}
    times: dict[str, list[float]] = {label: [] for label in variants}
    device = 0
    print(f"load: {os.getloadavg()}")
    try:
        for round_ in range(rounds + 1):  # round 0: warm-up, not counted
            order = list(variants.items())
            for label, sql in order if round_ % 2 else order[::-1]:
                for _ in range(flushes):
                    now = datetime.now(UTC)
                    ids = [f"d{1 + (device + i) % DEVICES}" for i in range(BATCH)]
                    device += BATCH
                    params: dict[str, Any] = {
                        "app_id": tenant.id,
                        "device_ids": ids,
                        "names": ["tap"] * BATCH,
                        "properties": ["{}"] * BATCH,
                        # Today and the days before: new anchors and late events both.
                        "occurred_at": [now - timedelta(days=i % 3) for i in range(BATCH)],
                        "senders": sorted(set(ids)),
                        "job_queue": ingest.TRIGGER_JOB_QUEUE,
                        "job_task": ingest.TRIGGER_JOB_TASK,
                        "job_args": json.dumps({"app_id": str(tenant.id), "_meta": {}}),
                    }
                    started = time.perf_counter()
                    await db.tenant_statement(tenant.id, sql, params)
                    if round_:
                        times[label].append((time.perf_counter() - started) * 1000)
        base = common.percentile(times["last_at only"], 50)
        for label, samples in times.items():
            p50 = common.percentile(samples, 50)
            print(
                f"{label:14} flushes {len(samples):5}  p50 {p50:6.2f} ms  "
                f"p95 {common.percentile(samples, 95):6.2f} ms  mean "
                f"{sum(samples) / len(samples):6.2f} ms  ({p50 / base:.2f}x)"
            )
        print(f"load: {os.getloadavg()}")
    finally:
        await db.dispose()


if __name__ == "__main__":
    numbers = [int(a) for a in sys.argv[1:] if a.isdigit()]
    asyncio.run(_main(*(numbers + [6, 200][len(numbers) :])[:2]))
