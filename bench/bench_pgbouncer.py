"""Server processes behind one PgBouncer in transaction pooling mode (issue 21): the database
connection count stays flat as processes are added.

`replyhq serve --workers N` (N = 1, 2, 4), its runtime and system roles' URLs pointed at a
PgBouncer of this run's own (bench/pgbouncer.py; DB_PREPARED_STATEMENTS=false, as PgBouncer 1.18
requires), carries the e2e generator's load (bench/node/loadgen.cjs, as bench_e2e) at a rate the
machine can carry; then the same N processes straight to PostgreSQL, for contrast. Reported per
run: the database's backends at the end of the load (pg_stat_database.numbackends), the rate,
e2e p99, lost/duplicated/errors.

Knobs: BENCH_PGB_PROCESSES ("1,2,4"), BENCH_PGB_RATE (150), BENCH_PGB_SECONDS (5),
BENCH_PGB_POOL (server connections per role in PgBouncer, 6), BENCH_PGB_DIRECT ("4": process
counts also run without PgBouncer).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench import bench_e2e, common
from bench.pgbouncer import PgBouncer
from replyhq.db.session import runtime_url, system_url
from replyhq.settings import Settings


def _log(message: str) -> None:
    print(f"[pgbouncer] {message}", file=sys.stderr, flush=True)


def _numbers(name: str) -> list[int]:
    return [int(n) for n in os.environ.get(name, "").split(",") if n.strip()]


def run() -> list[dict[str, Any]]:
    processes = _numbers("BENCH_PGB_PROCESSES") or [1, 2, 4]
    direct = _numbers("BENCH_PGB_DIRECT") if "BENCH_PGB_DIRECT" in os.environ else [4]
    rate = int(os.environ.get("BENCH_PGB_RATE", "150"))
    seconds = int(os.environ.get("BENCH_PGB_SECONDS", "5"))
    pool = int(os.environ.get("BENCH_PGB_POOL", "6"))
    common.raise_open_files()
    tmp = Path(tempfile.mkdtemp(prefix="replyhq-bench-pgb-"))
    rows: list[dict[str, Any]] = []
    base = Settings()
    users = [base.database_app_role, base.database_system_role]
    plan = [(n, True) for n in processes] + [(n, False) for n in direct]
    try:
        with PgBouncer(common.services().postgres_url, users, pool_size=pool) as bouncer:
            for count, pooled in plan:
                extra: dict[str, str] = {}
                if pooled:
                    extra["DB_PREPARED_STATEMENTS"] = "false"
                label = f"{count} process{'es' if count > 1 else ''} " + (
                    f"via PgBouncer (pool {pool}/role)" if pooled else "direct"
                )
                with bench_e2e.replyhq(
                    f"pgb{count}{'p' if pooled else 'd'}",
                    tmp,
                    count,
                    extra,
                    database_env=(lambda url: _pooled(bouncer, url)) if pooled else None,
                ) as system:
                    result = bench_e2e.offer(system, rate, seconds)
                _log(
                    f"{label}: {result['achieved_rate']} msg/s, e2e p99 {result['e2e_ms']['p99']}"
                    f" ms, backends {result['db_connections']}, lost {result['lost']}, dup "
                    f"{result['duplicates']}, errors {result['http_errors']}"
                )
                bad = result["lost"] + result["duplicates"] + result["http_errors"]
                note = f"{result['achieved_rate']} msg/s, e2e p99 {result['e2e_ms']['p99']} ms"
                rows.append(
                    common.row(
                        f"pgbouncer {label}",
                        f"database backends @{rate} msg/s",
                        float(result["db_connections"]),
                        "conns",
                        note=f"{note}, lost+dup+errors {bad}",
                    )
                )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rows


def _pooled(bouncer: PgBouncer, owner_url: str) -> dict[str, str]:
    """The server's runtime and system URLs through `bouncer`."""
    settings = Settings()
    return {
        "APP_DATABASE_URL": bouncer.url(runtime_url(settings, owner_url)),
        "SYSTEM_DATABASE_URL": bouncer.url(system_url(settings, owner_url)),
    }


if __name__ == "__main__":
    from bench.__main__ import table

    print(table(run()))
