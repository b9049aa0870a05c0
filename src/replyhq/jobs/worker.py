"""A job worker: runs queued jobs until told to stop (`replyhq worker`, or inside a server).

- Each run gets its own log context (job id, task, attempt, the request that enqueued it, the app
  it concerns), its metrics, and a Sentry scope; a failure is logged, reported, and its redacted
  error kept for `replyhq jobs failed`.
- Heartbeats mark the worker alive; every JOB_STALLED_CHECK_SECONDS a worker requeues the jobs
  of workers silent for JOB_STALLED_AFTER_SECONDS (killed, frozen, lost their network).
- Stopping (SIGTERM/SIGINT, or `stop()`) takes no new job, lets running ones finish for up to
  JOB_SHUTDOWN_TIMEOUT_SECONDS, then cancels them and puts them back in the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
import traceback
import uuid
from typing import Any

import procrastinate
import sentry_sdk
import structlog
from procrastinate.worker import Worker

from replyhq.jobs import admin
from replyhq.jobs.app import Backoff, build_app
from replyhq.jobs.registry import TaskDef, load_tasks, split_paths
from replyhq.observability.metrics import JOB_DURATION, JOB_FAILURES, JOB_RUNS
from replyhq.runtime import Runtime, cancel_and_wait
from replyhq.settings import Settings

log = structlog.get_logger(__name__)


def _traced(task: str) -> contextlib.AbstractContextManager[Any]:
    """A Sentry transaction per job run (sampled like requests), when Sentry is on."""
    if not sentry_sdk.get_client().is_active():
        return contextlib.nullcontext()
    return sentry_sdk.start_transaction(op="queue.process", name=task, source="task")


class JobWorker:
    def __init__(
        self,
        settings: Settings,
        runtime: Runtime,
        *,
        name: str = "worker",
        concurrency: int | None = None,
        queues: list[str] | None = None,
        install_signal_handlers: bool = False,
    ) -> None:
        self.settings = settings
        self.runtime = runtime
        self.name = name
        self.concurrency = concurrency or settings.job_concurrency
        self.queues = queues or None
        self.install_signal_handlers = install_signal_handlers
        self.tasks: dict[str, TaskDef] = load_tasks(split_paths(settings.job_import_paths))
        # procrastinate's own connections: fetching, finishing, heartbeats, periodic deferral.
        self.app = build_app(settings, self.tasks, pool_size=min(self.concurrency, 8) + 2)
        self._worker: Worker | None = None
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    # --- running ----------------------------------------------------------------------------------

    def _new_worker(self) -> Worker:
        settings = self.settings
        return Worker(
            self.app,
            queues=self.queues,
            name=self.name,
            concurrency=self.concurrency,
            wait=True,
            fetch_job_polling_interval=settings.job_poll_seconds,
            shutdown_graceful_timeout=settings.job_shutdown_timeout_seconds,
            listen_notify=True,
            delete_jobs="successful" if settings.job_delete_succeeded else "never",
            additional_context={"runtime": self.runtime},
            install_signal_handlers=False,  # ours (run()): a signal must stop, not restart
            update_heartbeat_interval=settings.job_heartbeat_seconds,
            stalled_worker_timeout=settings.job_stalled_after_seconds,
            worker_middleware=[self._observe],
        )

    async def run(self) -> None:
        """Work until stopped; returns once running jobs are finished or released. A worker that
        fails (database unreachable, forgotten by the others after a freeze) starts again after
        a pause, so a server's in-process worker never silently stops."""
        if self.install_signal_handlers:
            self._handle_signals()
        async with self.app.open_async():
            recovery = asyncio.create_task(self._recover_forever(), name="job-recovery")
            log.info(
                "worker_started",
                worker=self.name,
                concurrency=self.concurrency,
                tasks=sorted(self.tasks),
            )
            failures = 0
            try:
                while not self._stopping:
                    self._worker = self._new_worker()
                    started = time.monotonic()
                    try:
                        await self._worker.run()  # type: ignore[no-untyped-call]
                        error: Exception | None = None
                    except Exception as exc:
                        error = exc
                    if self._stopping:
                        break
                    # Not asked to stop: it failed, or procrastinate stopped it because one of
                    # its side tasks (heartbeat, LISTEN, periodic deferrer) failed.
                    failures = 1 if time.monotonic() - started > 60 else failures + 1
                    pause = min(30.0, 0.5 * 2**failures)
                    log.error("worker_failed_restarting", error=repr(error), pause_s=pause)
                    await asyncio.sleep(pause)
            finally:
                await cancel_and_wait(recovery)
                log.info("worker_stopped", worker=self.name)

    def _handle_signals(self) -> None:
        """SIGTERM or SIGINT: stop gracefully; a second one acts as if we had not caught it."""
        loop = asyncio.get_running_loop()

        def stop_once() -> None:
            for number in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(number)
            log.info("worker_stopping", worker=self.name)
            self.stop()

        for number in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(number, stop_once)

    def start(self) -> None:
        """Run in the background of the current event loop (a server's in-process worker)."""
        self._task = asyncio.create_task(self.run(), name=f"jobs-{self.name}")

    def stop(self) -> None:
        self._stopping = True
        if self._worker is not None:
            self._worker.stop()  # type: ignore[no-untyped-call]

    async def aclose(self) -> None:
        """Stop and wait for the background worker (bounded by the shutdown timeout)."""
        self.stop()
        if self._task is None:
            return
        try:
            await asyncio.wait_for(
                asyncio.shield(self._task), self.settings.job_shutdown_timeout_seconds + 10
            )
        except TimeoutError:
            with contextlib.suppress(Exception):
                await cancel_and_wait(self._task)
        except Exception:
            log.exception("worker_failed", worker=self.name)

    # --- each job ---------------------------------------------------------------------------------

    def _max_attempts(self, task_name: str) -> int:
        task = self.tasks.get(task_name)
        return (task.max_attempts if task else None) or self.settings.job_max_attempts

    async def _observe(self, call_next: Any, context: procrastinate.JobContext, _: Any) -> Any:
        job = context.job
        assert job.id is not None
        meta = job.task_kwargs.get("_meta")
        meta = meta if isinstance(meta, dict) else {}
        fields: dict[str, Any] = {
            "request_id": meta.get("request_id") or uuid.uuid4().hex,
            "job_id": job.id,
            "task": job.task_name,
            "attempt": job.attempts + 1,
        }
        if isinstance(job.task_kwargs.get("app_id"), str):
            fields["app_id"] = job.task_kwargs["app_id"]
        started = time.perf_counter()
        JOB_RUNS.labels(job.task_name).inc()
        with (
            structlog.contextvars.bound_contextvars(**fields),
            sentry_sdk.isolation_scope() as scope,
            _traced(job.task_name),
        ):
            for key, value in fields.items():
                scope.set_tag(key, str(value))
            try:
                result = await call_next()
            except BaseException as exc:
                await self._failed(context, exc, time.perf_counter() - started)
                raise
            finally:
                JOB_DURATION.labels(job.task_name).observe(time.perf_counter() - started)
            log.info("job_succeeded", duration_ms=round((time.perf_counter() - started) * 1000, 2))
            return result

    async def _failed(
        self, context: procrastinate.JobContext, exc: BaseException, seconds: float
    ) -> None:
        job = context.job
        assert job.id is not None
        duration_ms = round(seconds * 1000, 2)
        if isinstance(exc, asyncio.CancelledError):
            log.warning("job_released", duration_ms=duration_ms, reason="worker shutting down")
            return
        JOB_FAILURES.labels(job.task_name).inc()
        task = context.app.tasks.get(job.task_name)
        strategy = task.retry_strategy if task else None
        retry = isinstance(strategy, Backoff) and strategy.will_retry(job)
        (log.warning if retry else log.error)(
            "job_failed", duration_ms=duration_ms, will_retry=retry, error=repr(exc), exc_info=exc
        )
        sentry_sdk.capture_exception(exc)
        text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        try:
            async with self.runtime.db.engine.begin() as connection:
                await admin.record_error(connection, job.id, job.attempts + 1, text)
        except Exception as error:
            log.warning("job_error_not_recorded", error=repr(error))

    # --- jobs of dead workers ---------------------------------------------------------------------

    async def recover_stalled(self) -> list[int]:
        alive = self._worker.worker_id if self._worker is not None else None
        async with self.runtime.db.engine.begin() as connection:
            recovered = await admin.recover_stalled(
                connection,
                self.settings.job_stalled_after_seconds,
                self._max_attempts,
                alive_worker_id=alive,
            )
        if recovered:
            log.warning("stalled_jobs_requeued", job_ids=recovered)
        return recovered

    async def _recover_forever(self) -> None:
        while True:
            try:
                await self.recover_stalled()
            except Exception as error:
                log.warning("stalled_job_recovery_failed", error=repr(error))
            await asyncio.sleep(self.settings.job_stalled_check_seconds)
