"""Background jobs: enqueued with the data that causes them, retried with backoff, dead jobs listed
and retried from the CLI, released on shutdown, recovered after a worker is killed, and periodic
jobs run once per tick however many workers there are."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from replyhq.jobs import enqueue
from replyhq.jobs.app import Backoff
from replyhq.jobs.worker import JobWorker
from replyhq.runtime import Runtime
from tests import job_tasks
from tests.conftest import Servers, server_env
from tests.jobs_support import FAST, lines, wait_for

FAST_ENV = {key.upper(): str(value) for key, value in FAST.items()}


async def job_status(runtime: Runtime, job_id: int) -> str | None:
    async with runtime.db.engine.connect() as connection:
        status = await connection.scalar(
            text("SELECT status::text FROM procrastinate_jobs WHERE id = :id"), {"id": job_id}
        )
    return str(status) if status is not None else None


async def test_a_job_exists_only_if_its_transaction_commits(
    job_worker: JobWorker, runtime: Runtime, job_queue: str, tmp_path: Path
) -> None:
    path = tmp_path / "runs"
    with pytest.raises(RuntimeError):
        async with runtime.db.system_session() as session:
            rolled_back = await enqueue(
                session, job_tasks.record, path=str(path), value="rolled-back", queue=job_queue
            )
            raise RuntimeError("the request failed after enqueueing")

    async with runtime.db.system_session() as session:
        held = await enqueue(
            session, job_tasks.record, path=str(path), value="held", queue=job_queue
        )
        await asyncio.sleep(1.0)  # the worker is idle and listening, yet cannot see it
        assert lines(path) == []

    await wait_for(lambda: len(lines(path)) == 1)
    await asyncio.sleep(0.5)  # time enough for a wrongly visible job to run as well
    assert [line.split()[0] for line in lines(path)] == ["held"]
    assert rolled_back is not None and held is not None
    async with runtime.db.engine.connect() as connection:
        rows = await connection.scalar(
            text("SELECT count(*) FROM procrastinate_jobs WHERE id = :id"), {"id": rolled_back}
        )
    assert rows == 0


async def test_a_job_opens_its_own_tenant_session(
    job_worker: JobWorker, runtime: Runtime, job_queue: str, tmp_path: Path, make_tenant: object
) -> None:
    tenant = await make_tenant("Jobs tenant")  # type: ignore[operator]
    await make_tenant("Another tenant")  # type: ignore[operator]
    path = tmp_path / "tenant"
    async with runtime.db.tenant_session(tenant.id) as session:
        await enqueue(
            session,
            job_tasks.tenant_count,
            app_id=tenant.id,
            path=str(path),
            secret="s3cr3t",
            queue=job_queue,
        )
    await wait_for(lambda: bool(lines(path)))
    assert lines(path) == ["apps=1"]  # RLS: the job sees its own tenant's app, no other


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    backoff = Backoff(max_attempts=10, base=2.0, cap=60.0)
    for attempts, ceiling in [(0, 2.0), (1, 4.0), (2, 8.0), (3, 16.0), (8, 60.0)]:
        delays = [backoff.delay(attempts) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert max(delays) - min(delays) > ceiling / 10  # jittered, not lock-step


async def cli(servers: Servers, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The real CLI, in a thread: the test's event loop (and its worker) keeps running."""
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "replyhq.cli", *args],
        env=server_env(servers, **env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_failures_are_retried_then_dead_and_the_cli_lists_and_retries_them(
    job_worker: JobWorker, runtime: Runtime, servers: Servers, job_queue: str, tmp_path: Path
) -> None:
    path, fixed = tmp_path / "attempts", tmp_path / "fixed"
    key = "rhq_sk_" + "k" * 32
    async with runtime.db.system_session() as session:
        job_id = await enqueue(
            session, job_tasks.flaky, path=str(path), fixed=str(fixed), api_key=key, queue=job_queue
        )
    assert job_id is not None
    await wait_for(lambda: len(lines(path)) == 3)  # max_attempts=3
    deadline = time.monotonic() + 5
    while await job_status(runtime, job_id) != "failed":
        assert time.monotonic() < deadline, "the job never became dead"
        await asyncio.sleep(0.05)
    assert lines(path) == ["attempt=1", "attempt=2", "attempt=3"]
    async with runtime.db.engine.connect() as connection:
        retries = await connection.scalar(
            text(
                "SELECT count(*) FROM procrastinate_events "
                "WHERE job_id = :id AND type = 'deferred_for_retry'"
            ),
            {"id": job_id},
        )
    assert retries == 2

    listed = await cli(servers, "jobs", "failed", "--json")
    assert listed.returncode == 0, listed.stderr
    dead = {job["id"]: job for job in json.loads(listed.stdout)}
    assert dead[job_id]["task"] == "test.flaky"
    assert dead[job_id]["attempts"] == 3
    assert "RuntimeError: attempt 3 failed" in dead[job_id]["error"]
    assert key not in listed.stdout  # neither in the error nor in the arguments

    fixed.touch()
    retried = await cli(servers, "jobs", "retry", str(job_id))
    assert retried.returncode == 0, retried.stderr
    assert f"requeued 1 job(s): {job_id}" in retried.stdout
    await wait_for(lambda: len(lines(path)) == 4)
    assert lines(path)[-1] == "attempt=1"  # a retried dead job starts a fresh set of attempts
    deadline = time.monotonic() + 5
    while await job_status(runtime, job_id) is not None:  # succeeded jobs are deleted
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)

    again = await cli(servers, "jobs", "retry", str(job_id))
    assert again.returncode == 1
    assert f"not dead jobs (unknown, waiting or done): {job_id}" in again.stderr


async def test_a_worker_forgotten_by_the_others_carries_on(
    job_worker: JobWorker, runtime: Runtime, job_queue: str, tmp_path: Path
) -> None:
    """A worker frozen past JOB_STALLED_AFTER_SECONDS is forgotten by the others (its jobs go to
    someone else); when it wakes up it must register again, not crash or stop taking jobs."""
    await wait_for(
        lambda: job_worker._worker is not None and job_worker._worker.worker_id is not None
    )
    async with runtime.db.engine.begin() as connection:
        await connection.execute(text("DELETE FROM procrastinate_workers"))
    path = tmp_path / "after"
    for value in ("one", "two"):
        async with runtime.db.system_session() as session:
            await enqueue(session, job_tasks.record, path=str(path), value=value, queue=job_queue)
        await asyncio.sleep(0.3)
    await wait_for(lambda: len(lines(path)) == 2)
    assert sorted(line.split()[0] for line in lines(path)) == ["one", "two"]


# --- worker processes ----------------------------------------------------------------------------


class WorkerProcess:
    def __init__(self, servers: Servers, log: Path, *args: str, **env: str) -> None:
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, "-m", "replyhq.cli", "worker", *args],
            env=server_env(servers, **{**FAST_ENV, "JOB_IMPORT_PATHS": "tests.job_tasks", **env}),
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )

    def started(self) -> bool:
        return self.log.exists() and "worker_started" in self.log.read_text()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture
def spawn(servers: Servers, tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start(*args: str, **env: str) -> WorkerProcess:
        worker = WorkerProcess(servers, tmp_path / f"worker-{len(started)}.log", *args, **env)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


async def enqueue_slow(runtime: Runtime, path: Path, job_queue: str) -> int:
    async with runtime.db.system_session() as session:
        job_id = await enqueue(session, job_tasks.slow_first, path=str(path), queue=job_queue)
    assert job_id is not None
    return job_id


@pytest.mark.slow
async def test_a_killed_worker_leaves_its_job_to_be_retried(
    spawn: Callable[..., WorkerProcess], runtime: Runtime, job_queue: str, tmp_path: Path
) -> None:
    path = tmp_path / "slow"
    first = spawn("--queue", job_queue)
    await wait_for(first.started, timeout=30)
    await enqueue_slow(runtime, path, job_queue)
    await wait_for(lambda: any("start attempt=1" in line for line in lines(path)))

    first.process.send_signal(signal.SIGKILL)  # no goodbye, no heartbeat ever again
    first.process.wait(timeout=10)
    second = spawn("--queue", job_queue)
    await wait_for(lambda: any("done attempt=2" in line for line in lines(path)), timeout=30)

    runs = lines(path)
    assert runs[0] == f"start attempt=1 pid={first.process.pid}"
    assert runs[1:] == [
        f"start attempt=2 pid={second.process.pid}",
        f"done attempt=2 pid={second.process.pid}",
    ]
    assert "stalled_jobs_requeued" in second.log.read_text()


@pytest.mark.slow
async def test_sigterm_releases_a_running_job_for_another_worker(
    spawn: Callable[..., WorkerProcess], runtime: Runtime, job_queue: str, tmp_path: Path
) -> None:
    path = tmp_path / "slow"
    first = spawn("--queue", job_queue)
    await wait_for(first.started, timeout=30)
    job_id = await enqueue_slow(runtime, path, job_queue)
    await wait_for(lambda: any("start attempt=1" in line for line in lines(path)))

    first.process.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(first.process.wait, 15) == 0  # exits cleanly, and promptly
    assert await job_status(runtime, job_id) == "todo"  # released, not lost and not dead
    log = first.log.read_text()
    assert "job_released" in log and "worker_stopped" in log

    second = spawn("--queue", job_queue)
    await wait_for(lambda: any("done attempt=2" in line for line in lines(path)), timeout=30)
    assert lines(path)[-1] == f"done attempt=2 pid={second.process.pid}"


@pytest.mark.slow
async def test_a_periodic_job_runs_once_per_tick_across_two_workers(
    spawn: Callable[..., WorkerProcess], runtime: Runtime, tmp_path: Path
) -> None:
    ticks = tmp_path / "ticks"
    env = {"JOB_IMPORT_PATHS": "tests.job_ticks", "TEST_TICK_FILE": str(ticks)}
    workers = [spawn("--queue", "ticks", **env), spawn("--queue", "ticks", **env)]
    await wait_for(lambda: all(w.started() for w in workers), timeout=30)
    both_up = len(lines(ticks))
    await wait_for(lambda: len(lines(ticks)) >= both_up + 3, timeout=20)
    await asyncio.sleep(1.5)  # let both deferrers race over a few more ticks
    for worker in workers:
        worker.process.send_signal(signal.SIGTERM)
    for worker in workers:
        assert await asyncio.to_thread(worker.process.wait, 15) == 0

    runs = [line.split() for line in lines(ticks)]
    timestamps = [int(run[0]) for run in runs]
    assert len(timestamps) == len(set(timestamps)), f"a tick ran twice: {runs}"
    ordered = sorted(timestamps)
    assert len(ordered) >= 4
    assert ordered == list(range(ordered[0], ordered[0] + len(ordered)))  # none skipped either
    async with runtime.db.engine.connect() as connection:
        claims = await connection.scalar(
            text("SELECT count(*) FROM job_schedule_runs WHERE task_name = 'test.tick'")
        )
    assert claims == len(timestamps)
