"""`replyhq worker` and `replyhq jobs failed|retry|stats`; and what `serve` prepares for jobs,
logs and metrics before its server processes start.

Kept light at import time: `replyhq.cli` imports this module to register the commands.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from pathlib import Path
from typing import Any

from replyhq.settings import Settings, get_settings


def add_commands(commands: Any) -> None:
    """Register `worker` and `jobs` on the top-level sub-parsers of `replyhq`."""
    worker = commands.add_parser("worker", help="run background jobs until SIGTERM or Ctrl-C")
    worker.add_argument("--concurrency", type=int, help="jobs at once (JOB_CONCURRENCY)")
    worker.add_argument(
        "--queue", action="append", dest="queues", help="only this queue (repeatable)"
    )
    worker.set_defaults(func=cmd_worker)

    jobs = commands.add_parser("jobs", help="inspect and retry background jobs").add_subparsers(
        dest="jobs_command", required=True
    )
    failed = jobs.add_parser("failed", help="list dead jobs (failed on their last attempt)")
    failed.add_argument("--limit", type=int, default=50)
    failed.add_argument("--json", action="store_true")
    failed.set_defaults(func=cmd_jobs_failed)
    retry = jobs.add_parser("retry", help="put dead jobs back in the queue, with fresh attempts")
    retry.add_argument("ids", nargs="*", type=int, metavar="JOB_ID")
    retry.add_argument("--all", action="store_true", help="every dead job")
    retry.set_defaults(func=cmd_jobs_retry)
    stats = jobs.add_parser("stats", help="jobs waiting, running and dead, by queue")
    stats.add_argument("--json", action="store_true")
    stats.set_defaults(func=cmd_jobs_stats)


# --- serve -----------------------------------------------------------------------------------


def prepare_serve(embedded_postgres: bool, workers: int) -> Settings:
    """Before `serve` starts its processes: run jobs in-process when the database is embedded
    (unless JOBS_IN_PROCESS says otherwise), give several processes a shared metrics directory
    (emptied: counts start again with the server), and log JSON from the first line."""
    from replyhq.observability.logging import configure_logging

    settings = get_settings()
    if settings.jobs_in_process is None and embedded_postgres:
        os.environ["JOBS_IN_PROCESS"] = "true"
    explicit = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if workers > 1 or explicit:
        directory = Path(
            explicit or settings.prometheus_multiproc_dir or Path(settings.data_dir) / "prometheus"
        ).resolve()
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink()
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    get_settings.cache_clear()
    settings = get_settings()
    configure_logging(settings.log_level)
    return settings


# --- worker ----------------------------------------------------------------------------------


def cmd_worker(args: argparse.Namespace) -> None:
    from replyhq import cli

    with cli.services(get_settings()) as (database_url, _, embedded_postgres):
        if embedded_postgres:
            cli._migrate(database_url)
        settings = get_settings()
        asyncio.run(_work(settings, args.concurrency, args.queues))


async def _work(settings: Settings, concurrency: int | None, queues: list[str] | None) -> None:
    from replyhq.jobs.worker import JobWorker
    from replyhq.observability.errors import configure_sentry
    from replyhq.observability.logging import configure_logging
    from replyhq.observability.metrics import serve_metrics
    from replyhq.runtime import Runtime

    configure_logging(settings.log_level)
    configure_sentry(settings, "worker")
    if settings.worker_metrics_port:
        serve_metrics(settings.worker_metrics_host, settings.worker_metrics_port)
    assert settings.database_url and settings.redis_url
    runtime = Runtime.build(settings, settings.database_url, settings.redis_url)
    try:
        worker = JobWorker(
            settings, runtime, concurrency=concurrency, queues=queues, install_signal_handlers=True
        )
        await worker.run()
    finally:
        await runtime.close()


# --- jobs ------------------------------------------------------------------------------------


def _query(work: Any) -> Any:
    """Run `work(connection)` on the runtime role's database, in one transaction."""
    from replyhq import cli

    async def run(_: Settings, runtime: Any) -> Any:
        async with runtime.db.engine.begin() as connection:
            return await work(connection)

    with cli.services(get_settings(), redis=False) as (database_url, _, embedded_postgres):
        if embedded_postgres:
            cli._migrate(database_url)
        return cli._run(run, redis=False)


def cmd_jobs_failed(args: argparse.Namespace) -> None:
    from replyhq.jobs import admin

    dead = _query(lambda connection: admin.dead_jobs(connection, args.limit))
    if args.json:
        print(json.dumps([job.as_json() for job in dead]))
        return
    if not dead:
        print("no dead jobs")
        return
    for job in dead:
        failed_at = job.failed_at.isoformat(timespec="seconds") if job.failed_at else "-"
        error = (job.error or "").splitlines()[-1:] or [""]
        print(
            f"{job.id:>8}  {job.task:32} attempts={job.attempts:<3} {failed_at}  "
            f"app={job.app_id or '-'}  {error[0][:120]}"
        )


def cmd_jobs_retry(args: argparse.Namespace) -> None:
    from replyhq.cli import CliError
    from replyhq.jobs import admin

    if not args.ids and not args.all:
        raise CliError("give job ids, or --all")
    ids = None if args.all else list(args.ids)
    requeued: list[int] = _query(lambda connection: admin.retry_dead(connection, ids))
    missing = sorted(set(ids or []) - set(requeued))
    if requeued:
        print(f"requeued {len(requeued)} job(s): {', '.join(map(str, requeued))}")
    elif args.all:
        print("no dead jobs")
    if missing:
        raise CliError(f"not dead jobs (unknown, waiting or done): {', '.join(map(str, missing))}")


def cmd_jobs_stats(args: argparse.Namespace) -> None:
    from replyhq.jobs import admin

    depth = _query(admin.queue_depth)
    if args.json:
        print(json.dumps([{"queue": q, "status": s, "jobs": n} for q, s, n in depth]))
        return
    if not depth:
        print("the queue is empty")
    for queue, status, count in depth:
        print(f"{queue:24} {status:8} {count}")
