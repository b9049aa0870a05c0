"""The job the operations benchmark runs: nothing, so that the queue itself is measured."""

from __future__ import annotations

from replyhq.jobs import JobRun, job


@job("bench.noop", queue="bench")
async def noop(run: JobRun, n: int) -> None:
    return None
