"""Jobs used by the job tests, loaded by worker processes through JOB_IMPORT_PATHS.

Each records what it did in a file named by its arguments, so a test can see every run, in
whichever process it happened.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import structlog
from sqlalchemy import text

from replyhq.jobs import JobRun, job

log = structlog.get_logger(__name__)


def _record(path: str, line: str) -> None:
    with Path(path).open("a") as file:
        file.write(line + "\n")


@job("test.record")
async def record(run: JobRun, path: str, value: str) -> None:
    _record(path, f"{value} job={run.id} attempt={run.attempt} pid={os.getpid()}")


@job("test.tenant_count")
async def tenant_count(run: JobRun, app_id: str, path: str, secret: str) -> None:
    """Opens its own tenant session and logs (with a secret that must never reach the logs)."""
    async with run.tenant_session(app_id) as session:
        apps = await session.scalar(text("SELECT count(*) FROM apps"))
    log.info("tenant_job_ran", visible_apps=apps, push_token=secret, details={"password": secret})
    _record(path, f"apps={apps}")


@job("test.flaky", max_attempts=3)
async def flaky(run: JobRun, path: str, fixed: str, api_key: str) -> None:
    """Fails (quoting a key in its error) until the file `fixed` exists."""
    _record(path, f"attempt={run.attempt}")
    if not Path(fixed).exists():
        raise RuntimeError(f"attempt {run.attempt} failed calling out with {api_key}")


@job("test.slow_first")
async def slow_first(run: JobRun, path: str) -> None:
    """The first run hangs (the test kills its worker); later runs finish at once."""
    _record(path, f"start attempt={run.attempt} pid={os.getpid()}")
    if run.attempt == 1:
        await asyncio.sleep(120)
    _record(path, f"done attempt={run.attempt} pid={os.getpid()}")
