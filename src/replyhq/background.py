"""What each server process runs beside HTTP and Socket.IO: its process metrics, and (when
JOBS_IN_PROCESS, the default with the embedded database) a job worker."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator

from replyhq.observability.metrics import keep_process_metrics
from replyhq.runtime import Runtime, cancel_and_wait
from replyhq.settings import Settings


@contextlib.asynccontextmanager
async def server_background(settings: Settings, runtime: Runtime) -> AsyncIterator[None]:
    metrics = asyncio.create_task(keep_process_metrics(), name="process-metrics")
    worker = None
    if settings.jobs_in_process:
        from replyhq.jobs.worker import JobWorker

        worker = JobWorker(settings, runtime, name=f"server-{os.getpid()}")
        worker.start()
    try:
        yield
    finally:
        if worker is not None:
            await worker.aclose()  # running jobs finish, or go back to the queue
        await cancel_and_wait(metrics)
