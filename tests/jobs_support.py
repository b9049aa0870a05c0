"""Fixtures for tests that run jobs in the test process: a worker on a queue of the test's own."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from replyhq.jobs.worker import JobWorker
from replyhq.runtime import Runtime
from tests.conftest import Servers, make_settings

# Fast clocks, so that retries, heartbeats and recovery happen within a test.
FAST = {
    "job_poll_seconds": 0.2,
    "job_retry_base_seconds": 0.2,
    "job_heartbeat_seconds": 0.3,
    "job_stalled_after_seconds": 1.5,
    "job_stalled_check_seconds": 0.5,
    "job_shutdown_timeout_seconds": 0.5,
}


async def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.05)


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


@pytest.fixture
def job_queue() -> str:
    """A queue of this test's own, so that no other test's worker takes its jobs."""
    return f"q-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def job_worker(
    servers: Servers, runtime: Runtime, job_queue: str
) -> AsyncIterator[JobWorker]:
    """A worker in the test process, on `job_queue` only, with fast clocks."""
    worker = JobWorker(make_settings(servers, **FAST), runtime, queues=[job_queue], concurrency=4)
    worker.start()
    yield worker
    await worker.aclose()
