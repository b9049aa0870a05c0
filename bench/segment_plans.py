"""The five previews of bench_analytics, in process, on its kept database: their times, and
with `explain` the plans of the statements each ran (EXPLAIN (ANALYZE, BUFFERS), as the runtime
role under RLS, in a tenant transaction like the route's).

    BENCH_ANALYTICS_DB=<name> python -m bench.segment_plans [explain] [ROUNDS] [LABEL...]

(LABEL: the start of a query's label, e.g. `nested`: only those queries.)

It calls whichever `replyhq.segments.service` is importable: PYTHONPATH=<another checkout>/src
times another version's previews on the same data in the same run (docs/analytics.md compares
main's with this one's that way).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any

import psycopg
from sqlalchemy import event
from sqlalchemy.engine import make_url

from bench import common
from bench.bench_analytics import QUERIES, _kept
from replyhq.segments import service


async def _main(explain: bool, rounds: int, only: list[str]) -> None:
    name = os.environ["BENCH_ANALYTICS_DB"]
    base = common.services().postgres_url
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    users = int(os.environ.get("BENCH_ANALYTICS_USERS", "100000"))
    events = int(os.environ.get("BENCH_ANALYTICS_EVENTS", "1000000"))
    limit = int(os.environ.get("SEGMENT_TIMEOUT_MS", "20000"))
    tenant = _kept(url, users, events)
    assert tenant is not None, f"no dataset of {users} users and {events} events in {name}"
    db = common.database(url)
    ran: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        ran.append((statement, parameters))

    print(f"{service.__file__}  load: {os.getloadavg()}")
    try:
        for label, query in QUERIES.items():
            if only and not any(label.startswith(start) for start in only):
                continue
            times = []
            count = None
            for _ in range(rounds):
                started = time.perf_counter()
                try:
                    async with db.tenant_session(tenant.id) as session:
                        count = (await service.preview(session, tenant.id, query, limit)).count
                except service.SegmentTimeout:
                    count = None
                times.append((time.perf_counter() - started) * 1000)
            shown = "timeout" if count is None else f"{count:,}"
            print(
                f"{label:26} count {shown:>7}  p50 {common.percentile(times, 50):8.1f} ms"
                f"  p95 {common.percentile(times, 95):8.1f} ms"
            )
            if not explain:
                continue
            event.listen(db.engine.sync_engine, "before_cursor_execute", record)
            ran.clear()
            try:
                async with db.tenant_session(tenant.id) as session:
                    await service.preview(session, tenant.id, query, limit)
            except service.SegmentTimeout:
                pass
            event.remove(db.engine.sync_engine, "before_cursor_execute", record)
            async with db.tenant_session(tenant.id) as session:
                raw = await session.connection()
                driver = await raw.get_raw_connection()
                cursor = driver.driver_connection.cursor()  # type: ignore[union-attr]
                for statement, parameters in ran:
                    if "set_config" in statement:  # the transaction's settings: as they were
                        await cursor.execute(statement, parameters)
                        continue
                    try:
                        await cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters)
                        plan = "\n".join(line for (line,) in await cursor.fetchall())
                    except psycopg.errors.QueryCanceled:
                        print(f"--- {statement}\n(past the {limit} ms timeout)\n")
                        break
                    print(f"--- {statement}\n{parameters}\n{plan}\n")
    finally:
        await db.dispose()


if __name__ == "__main__":
    args = sys.argv[1:]
    explain = "explain" in args
    rounds = int(next((a for a in args if a.isdigit()), "10"))
    only = [a for a in args if a != "explain" and not a.isdigit()]
    asyncio.run(_main(explain, rounds, only))
