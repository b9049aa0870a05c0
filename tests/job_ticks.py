"""A periodic job for the once-per-tick test; only the worker processes of that test load it."""

from __future__ import annotations

import os
from pathlib import Path

from replyhq.jobs import JobRun, job


@job("test.tick", schedule="* * * * * *", queue="ticks")
async def tick(run: JobRun, timestamp: int) -> None:
    with Path(os.environ["TEST_TICK_FILE"]).open("a") as file:
        file.write(f"{timestamp} pid={os.getpid()} job={run.id}\n")
