"""Operations: what the job queue sustains, and what logging plus metrics cost per request.

1. Jobs: producers enqueue no-op jobs, each in its own transaction (as a request would), while one
   `replyhq worker` process (default JOB_CONCURRENCY) runs them; jobs enqueued and completed per
   second, end to end, beside pgbench's single-row insert rate with as many clients on this
   machine's PostgreSQL (one committed insert: the floor under any transactional queue).
2. Logging and metrics: message POSTs against the real server app with everything on (a JSON
   access line and a latency observation per request, message counter, pool and Redis
   instrumentation) and stripped (bench/ops_server.py --bare), alternating runs; the ratio of the
   medians. Goal: at least 0.9.

Standalone: `python -m bench.bench_ops`.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg

from bench import bench_http, common

ROOT = Path(__file__).resolve().parent.parent
JOBS = 4000
PRODUCERS = 10
HTTP_CLIENTS = 100
ROUNDS = 5  # with / without, alternating, per round (the machine's noise is several %)


def _log(message: str) -> None:
    print(f"   ops: {message}", flush=True)


# --- jobs ------------------------------------------------------------------------------------


def _worker_env(owner_url: str) -> dict[str, str]:
    return common.server_env(
        owner_url,
        common.services().redis_url,
        common.redis_prefix("ops"),
        JOB_IMPORT_PATHS="bench.ops_tasks",
        JOB_POLL_SECONDS="1",
    )


def _start_worker(owner_url: str, log: Path) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "replyhq.cli", "worker", "--queue", "bench"],
        env=_worker_env(owner_url),
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    deadline = time.monotonic() + 60
    while "worker_started" not in (log.read_text() if log.exists() else ""):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"worker did not start: {log.read_text()[-2000:]}")
        time.sleep(0.1)
    return process


def _pending(owner_url: str) -> tuple[int, int]:
    with psycopg.connect(owner_url) as connection:
        row = connection.execute(
            "SELECT count(*) FILTER (WHERE status IN ('todo', 'doing')), "
            "count(*) FILTER (WHERE status = 'failed') FROM procrastinate_jobs"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


async def _produce(owner_url: str, jobs: int, producers: int) -> float:
    """Enqueue `jobs` jobs from `producers` concurrent transactions; seconds it took."""
    from bench import ops_tasks
    from replyhq.jobs import enqueue

    db = common.database(owner_url, pool_size=producers, max_overflow=0)
    counter = iter(range(jobs))

    async def producer() -> None:
        for n in counter:
            async with db.system_session() as session:
                await enqueue(session, ops_tasks.noop, n=n)

    began = time.perf_counter()
    try:
        await asyncio.gather(*(producer() for _ in range(producers)))
    finally:
        await db.dispose()
    return time.perf_counter() - began


def jobs_rows(owner_url: str) -> list[dict[str, Any]]:
    work = Path(tempfile.mkdtemp(prefix="replyhq-bench-ops-"))
    worker = _start_worker(owner_url, work / "worker.log")
    try:
        cpu_before = common._cpu_seconds(worker.pid)
        began = time.perf_counter()
        enqueue_seconds = common.run_async(_produce(owner_url, JOBS, PRODUCERS))
        while _pending(owner_url)[0]:
            time.sleep(0.02)
        elapsed = time.perf_counter() - began
        worker_cpu = (common._cpu_seconds(worker.pid) - cpu_before) / elapsed
        failed = _pending(owner_url)[1]
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        if not os.environ.get("BENCH_KEEP_LOGS"):
            shutil.rmtree(work, ignore_errors=True)
    rate = JOBS / elapsed
    _log(
        f"{JOBS} jobs enqueued and completed in {elapsed:.1f} s ({rate:.0f}/s; enqueueing alone "
        f"{JOBS / enqueue_seconds:.0f}/s), worker {worker_cpu:.2f} cores, failed {failed}"
    )
    pgbench = bench_http.pgbench(owner_url, PRODUCERS)
    tps = pgbench["tps"] if pgbench else float("nan")
    _log(f"pgbench single-row insert, {PRODUCERS} clients: {tps:.0f} tx/s")
    ratio = rate / tps if tps == tps and tps else float("nan")
    return [
        common.row(
            "ops",
            f"jobs enqueued+completed, 1 worker process, {PRODUCERS} producers",
            rate,
            "jobs/s",
            baseline=tps,
            ratio=ratio,
            note=f"baseline: pgbench single-row insert, {PRODUCERS} clients, same PostgreSQL "
            f"(tx/s). Each job is committed by its producer's own transaction, fetched, run and "
            f"deleted by the worker (about 4 writes); worker {worker_cpu:.2f} cores; enqueueing "
            f"alone {JOBS / enqueue_seconds:.0f} jobs/s; failed {failed}",
        ),
        common.row("ops", "jobs failed", float(failed), "count", goal="= 0", ok=failed == 0),
    ]


# --- logging and metrics ---------------------------------------------------------------------


def _start_server(owner_url: str, *, bare: bool) -> common.Server:
    tmp = Path(tempfile.mkdtemp(prefix="replyhq-bench-ops-server-"))
    port = common.free_port()
    log = tmp / "server.log"
    env = common.server_env(
        owner_url,
        common.services().redis_url,
        common.redis_prefix("ops"),
        DATA_DIR=str(tmp / "data"),
        DB_POOL_SIZE="20",
        DB_MAX_OVERFLOW="10",
        LOG_LEVEL="INFO",
    )
    command = [sys.executable, "-m", "bench.ops_server", "--port", str(port)]
    process = subprocess.Popen(
        command + (["--bare"] if bare else []),
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    server = common.Server(f"http://{common.HOST}:{port}", process, log, tmp)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(server.url + "/readyz", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"server did not start: {log.read_text()[-2000:]}")


def _post_throughput(
    owner_url: str, tenant: common.Tenant, devices: list[common.Device], *, bare: bool
) -> tuple[float, float]:
    """(requests per second, server CPU milliseconds per request)."""
    server = _start_server(owner_url, bare=bare)
    try:
        # One authenticated call first: its bcrypt check warms the key cache, as on any server
        # that has been up for more than a moment (100 cold checks at once would dominate).
        warm = httpx.get(
            server.url + "/v1/conversations", headers=tenant.headers(devices[0].device_id)
        )
        warm.raise_for_status()
        result = bench_http.load(server, bench_http.message_clients(tenant, devices), expect=201)
        lines = sum(1 for _ in server.log.open("rb"))
    finally:
        server.stop()
    label = "without logging+metrics" if bare else "with logging+metrics"
    _log(
        f"POST message {label}: {result['throughput']:.0f} req/s, p99 "
        f"{result['p99'] * 1e3:.1f} ms, errors {result['errors']}, server "
        f"{result.server_cpu:.2f} cores, {lines} log lines"
    )
    if result["errors"]:
        raise RuntimeError(f"errors under load: {result['error_samples']}")
    throughput = float(result["throughput"])
    return throughput, result.server_cpu / throughput * 1e3 if throughput else float("nan")


async def _tenant_and_devices(
    owner_url: str, count: int
) -> tuple[common.Tenant, list[common.Device]]:
    db = common.database(owner_url, pool_size=2)
    try:
        tenant = await common.create_tenant(db)
        return tenant, await common.create_devices(db, tenant.id, count)
    finally:
        await db.dispose()


def observability_rows(owner_url: str) -> list[dict[str, Any]]:
    tenant, devices = common.run_async(_tenant_and_devices(owner_url, HTTP_CLIENTS))
    with_obs: list[tuple[float, float]] = []
    without: list[tuple[float, float]] = []
    for _ in range(ROUNDS):
        with_obs.append(_post_throughput(owner_url, tenant, devices, bare=False))
        without.append(_post_throughput(owner_url, tenant, devices, bare=True))
    on = common.median([rate for rate, _ in with_obs])
    off = common.median([rate for rate, _ in without])
    cpu_on = common.median([cpu for _, cpu in with_obs])
    cpu_off = common.median([cpu for _, cpu in without])
    ratio = on / off if off else float("nan")
    return [
        common.row(
            "ops",
            f"POST message with logging+metrics, {HTTP_CLIENTS} clients",
            on,
            "req/s",
            baseline=off,
            ratio=ratio,
            goal="ratio >= 0.90",
            ok=ratio >= 0.9,
            note=f"baseline: the same app with logging and metrics stripped (bench/ops_server.py "
            f"--bare); medians of {ROUNDS} alternating runs of {bench_http.DURATION:g} s, one "
            f"server process: with {', '.join(f'{r:.0f}' for r, _ in with_obs)}; without "
            f"{', '.join(f'{r:.0f}' for r, _ in without)}",
        ),
        common.row(
            "ops",
            "server CPU per message POST, with / without logging+metrics",
            cpu_on,
            "ms",
            baseline=cpu_off,
            ratio=cpu_on / cpu_off if cpu_off else float("nan"),
            note="medians over the same runs (CPU time of the server process per request)",
        ),
    ]


def run() -> list[dict[str, Any]]:
    common.raise_open_files()
    rows: list[dict[str, Any]] = []
    with common.throwaway_database("ops") as owner_url:
        rows += jobs_rows(owner_url)
        rows += observability_rows(owner_url)
    return rows


if __name__ == "__main__":
    from bench.__main__ import table

    print(table(run()))
