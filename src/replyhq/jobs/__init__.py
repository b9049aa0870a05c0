"""Background jobs on a PostgreSQL queue (procrastinate): declare with `job`, enqueue in the
transaction that causes them with `enqueue`, run with `replyhq worker`.

The names load on first use, so that `replyhq --help` and the CLI stay quick to start.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from replyhq.jobs.defer import enqueue
    from replyhq.jobs.registry import JobRun, TaskDef, job

__all__ = ["JobRun", "TaskDef", "enqueue", "job"]

_HOMES = {
    "enqueue": "replyhq.jobs.defer",
    "JobRun": "replyhq.jobs.registry",
    "TaskDef": "replyhq.jobs.registry",
    "job": "replyhq.jobs.registry",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'replyhq.jobs' has no attribute {name!r}")
