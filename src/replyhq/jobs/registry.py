"""Declaring background jobs. A domain's `tasks.py` declares its jobs with `@job(...)`:

    @job("push.send_message")
    async def send_message_push(run: JobRun, app_id: str, message_id: str) -> None:
        async with run.tenant_session(app_id) as session:
            ...

and the code that causes one enqueues it inside its own transaction with
`replyhq.jobs.enqueue(session, send_message_push, app_id=..., message_id=...)`.

Arguments travel as JSON (UUIDs and datetimes arrive as strings). A job may run more than once
(a retry after an error, or after its worker died mid-run), so it must be safe to repeat.
A periodic job (`schedule="0 3 * * *"`) receives `timestamp`, the tick it runs for, and runs once
per tick however many workers there are.
"""

from __future__ import annotations

import importlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from replyhq.observability.errors import identify

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from replyhq.runtime import Runtime

# Modules whose jobs every worker knows. A domain with a tasks.py adds itself here.
TASK_MODULES: tuple[str, ...] = (
    "replyhq.jobs.schedules",
    "replyhq.mail.tasks",
    "replyhq.accounts.tasks",
    "replyhq.analytics.tasks",
    "replyhq.campaigns.tasks",
    "replyhq.triggered.tasks",
    "replyhq.billing.tasks",
    "replyhq.push.tasks",
    "replyhq.attachments.tasks",
)

JobFunction = Callable[..., Awaitable[None]]


@dataclass(frozen=True)
class JobRun:
    """What a running job knows about itself, and the worker process' shared resources."""

    id: int
    task: str
    attempt: int  # 1 on the first run
    runtime: Runtime

    @asynccontextmanager
    async def tenant_session(self, app_id: uuid.UUID | str) -> AsyncIterator[AsyncSession]:
        """A transaction bound to the tenant this job concerns (and its id on every log line)."""
        tenant = app_id if isinstance(app_id, uuid.UUID) else uuid.UUID(app_id)
        identify(app_id=tenant)
        async with self.runtime.db.tenant_session(tenant) as session:
            yield session

    def system_session(self) -> Any:
        """A cross-tenant transaction, for housekeeping jobs only."""
        return self.runtime.db.system_session()


@dataclass(frozen=True)
class TaskDef:
    name: str
    func: JobFunction
    queue: str = "default"
    priority: int = 0
    lock: str | None = None
    queueing_lock: str | None = None
    max_attempts: int | None = None  # None: JOB_MAX_ATTEMPTS
    schedule: str | None = None  # cron; a 6th field gives seconds


TASKS: dict[str, TaskDef] = {}


def job(
    name: str,
    *,
    queue: str = "default",
    priority: int = 0,
    lock: str | None = None,
    queueing_lock: str | None = None,
    max_attempts: int | None = None,
    schedule: str | None = None,
) -> Callable[[JobFunction], TaskDef]:
    """Declare `async def f(run: JobRun, **arguments)` as the job `name`.

    lock: jobs sharing a lock never run at the same time. queueing_lock: at most one job with it
    waits in the queue. max_attempts: runs before the job is dead. schedule: a cron expression
    (a 6th field gives seconds) for a periodic job.
    """

    def register(func: JobFunction) -> TaskDef:
        if name in TASKS and TASKS[name].func is not func:
            raise ValueError(f"two jobs are named {name!r}")
        task = TaskDef(name, func, queue, priority, lock, queueing_lock, max_attempts, schedule)
        TASKS[name] = task
        return task

    return register


def load_tasks(extra_modules: Iterable[str] = ()) -> dict[str, TaskDef]:
    """Import every module that declares jobs; the jobs a worker can run."""
    for module in (*TASK_MODULES, *extra_modules):
        if module:
            importlib.import_module(module)
    return dict(TASKS)


def split_paths(raw: str) -> list[str]:
    return [part.strip() for part in raw.split(",") if part.strip()]
