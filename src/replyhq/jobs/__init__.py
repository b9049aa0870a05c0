"""Background jobs on a PostgreSQL queue (procrastinate): declare with `job`, enqueue in the
transaction that causes them with `enqueue`, run with `replyhq worker`."""

from replyhq.jobs.enqueue import enqueue
from replyhq.jobs.registry import JobRun, TaskDef, job

__all__ = ["JobRun", "TaskDef", "enqueue", "job"]
