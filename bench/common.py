"""What every benchmark needs: the PostgreSQL and Redis to use, throwaway databases built by the
real migrations, server processes, tenants and devices made through the real services, and rows.

PostgreSQL and Redis come from DATABASE_URL / REDIS_URL when set, else embedded ones are started
once per process (and stopped at exit), as `replyhq serve` would.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from replyhq import embedded
from replyhq.apps import service as apps_service
from replyhq.db import Database
from replyhq.db.migrate import upgrade
from replyhq.db.session import runtime_url, system_url
from replyhq.messaging import service as messaging
from replyhq.messaging.service import Participant
from replyhq.settings import Settings
from replyhq.users import service as users
from replyhq.users.schemas import IdentifyIn

HOST = "127.0.0.1"

# --- PostgreSQL and Redis --------------------------------------------------------------------


@dataclass(frozen=True)
class Services:
    postgres_url: str  # an owner's URL of an existing database (throwaway ones are made beside it)
    redis_url: str
    embedded: bool


_services: Services | None = None


def plain(url: str) -> str:
    """A libpq/psycopg URL, whatever driver name the operator wrote."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def services() -> Services:
    """The PostgreSQL and Redis of this run: the environment's, or embedded ones."""
    global _services
    if _services is None:
        base_db = os.environ.get("DATABASE_URL")
        redis_url = os.environ.get("REDIS_URL")
        data_dir = Path(tempfile.mkdtemp(prefix="replyhq-bench-"))
        started = embedded.start(data_dir, need_postgres=not base_db, need_redis=not redis_url)

        def stop() -> None:
            started.stop()
            shutil.rmtree(data_dir, ignore_errors=True)

        atexit.register(stop)
        _services = Services(
            plain(base_db or started.database_url),
            redis_url or started.redis_url,
            embedded=not (base_db and redis_url),
        )
    return _services


def redis_prefix(label: str) -> str:
    """A Redis key prefix of its own, so that runs never collide (nothing is flushed)."""
    return f"rhqbench:{label}:{uuid.uuid4().hex[:8]}:"


@contextlib.contextmanager
def throwaway_database(label: str) -> Iterator[str]:
    """A fresh database built by the real migrations; its owner URL; dropped afterwards."""
    base = services().postgres_url
    name = f"replyhq_bench_{label}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(base, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url, Settings())
        with autovacuum_stand_in(url):
            yield url
    finally:
        drop_database(name)


# autovacuum's rule for analysing a table: rows changed since its last ANALYZE above
# autovacuum_analyze_threshold (50) + autovacuum_analyze_scale_factor (0.1) x its rows.
_DUE_FOR_ANALYZE = """
SELECT s.schemaname, s.relname FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
WHERE c.relkind = 'r' AND s.n_mod_since_analyze > 50 + 0.1 * greatest(c.reltuples, 0)
"""


@contextlib.contextmanager
def autovacuum_stand_in(url: str, every_seconds: float = 5.0) -> Iterator[None]:
    """A benchmark measures the product as deployed, where autovacuum analyses tables as they
    grow (docs/operations.md requires it: the send's cached plan follows the statistics). Where
    the cluster runs without it (this machine's does), analyse what autovacuum would have, every
    few seconds, for as long as the database is in use."""
    with psycopg.connect(plain(url), autocommit=True) as connection:
        if connection.execute("SHOW autovacuum").fetchone() == ("on",):
            yield
            return
    stop = threading.Event()

    def analyse() -> None:
        with psycopg.connect(plain(url), autocommit=True) as connection:
            while not stop.wait(every_seconds):
                for schema, table in connection.execute(_DUE_FOR_ANALYZE).fetchall():
                    connection.execute(
                        sql.SQL("ANALYZE {}.{}").format(
                            sql.Identifier(schema), sql.Identifier(table)
                        )
                    )

    thread = threading.Thread(target=analyse, name="autovacuum-stand-in", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=60)


def drop_database(name: str) -> None:
    with psycopg.connect(services().postgres_url, autocommit=True) as connection:
        connection.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@contextlib.contextmanager
def kept_database(name: str) -> Iterator[str]:
    """The database `name` beside the base one, made if missing and brought up to the newest
    migration, never dropped: for data that takes minutes to generate, reused by later runs."""
    base = services().postgres_url
    with psycopg.connect(base, autocommit=True) as connection:
        if not connection.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
        ).fetchone():
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    upgrade(url, Settings())
    yield url


def database(owner_url: str, **pool: Any) -> Database:
    """The server's own Database (runtime role, RLS applies) on `owner_url`'s database."""
    return Database(
        runtime_url(Settings(), owner_url), system=system_url(Settings(), owner_url), **pool
    )


def system_dsn(owner_url: str) -> str:
    """The system role's URL for psycopg: it alone sees every tenant (migration 0008)."""
    return system_url(Settings(), owner_url).replace("postgresql+psycopg://", "postgresql://", 1)


# --- tenants and devices, through the real services ------------------------------------------


@dataclass(frozen=True)
class Tenant:
    id: uuid.UUID
    sdk_key: str
    secret_key: str

    def headers(self, device_id: str) -> dict[str, str]:
        return {"X-App-Id": str(self.id), "X-Api-Key": self.sdk_key, "X-Device-Id": device_id}


async def create_tenant(db: Database, name: str = "Bench", *, rounds: int = 12) -> Tenant:
    """An app whose keys are stored as in production (bcrypt cost 12 unless told)."""
    async with db.system_session() as session:
        app, keys = await apps_service.create_app(session, name, rounds=rounds)
    return Tenant(app.id, keys.sdk_key, keys.secret_key)


@dataclass(frozen=True)
class Device:
    device_id: str
    end_user_id: uuid.UUID
    conversation_id: uuid.UUID


async def create_devices(db: Database, app_id: uuid.UUID, count: int) -> list[Device]:
    """`count` identified devices, each with its own end user and one conversation."""
    devices: list[Device] = []
    batch = 100
    for start in range(0, count, batch):
        async with db.tenant_session(app_id) as session:
            for index in range(start, min(start + batch, count)):
                device_id = f"bench-device-{index}"
                user = await users.identify(
                    session, app_id, device_id, IdentifyIn(platform="ios", name=f"User {index}")
                )
                conversation_id, _ = await messaging.start_conversation(
                    session,
                    app_id,
                    Participant("user", user.id, user.name),
                    subject=None,
                    first_message=("Hello", uuid.uuid4().hex),
                )
                devices.append(Device(device_id, user.id, conversation_id))
    return devices


def bulk_devices(owner_url: str, app_id: uuid.UUID, count: int) -> list[Device]:
    """Like create_devices (without a first message), by COPY as the owner: seconds instead of
    minutes for thousands of devices. For load tests, whose subject is not how devices came."""
    devices = [
        Device(f"bench-device-{index}", uuid.uuid4(), uuid.uuid4()) for index in range(count)
    ]
    with psycopg.connect(owner_url) as connection:
        connection.execute("SELECT set_config('app.current_tenant', %s, true)", (str(app_id),))
        with connection.cursor() as cursor:
            with cursor.copy("COPY end_users (id, app_id, name) FROM STDIN") as copy:
                for index, device in enumerate(devices):
                    copy.write_row((device.end_user_id, app_id, f"User {index}"))
            columns = "id, app_id, device_id, end_user_id, platform"
            with cursor.copy(f"COPY devices ({columns}) FROM STDIN") as copy:
                for device in devices:
                    copy.write_row(
                        (uuid.uuid4(), app_id, device.device_id, device.end_user_id, "ios")
                    )
            with cursor.copy("COPY conversations (id, app_id, end_user_id) FROM STDIN") as copy:
                for device in devices:
                    copy.write_row((device.conversation_id, app_id, device.end_user_id))
        connection.execute("ANALYZE end_users, devices, conversations")
    return devices


# --- server processes ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def raise_open_files(wanted: int = 65536) -> int:
    """Lift this process' (and so its children's) open-file limit towards `wanted`."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    _tmp: Path = field(repr=False)
    problems: list[str] = field(default_factory=list)  # warnings and errors logged, once stopped

    def cpu_seconds(self) -> float:
        """CPU time (user + system) of the server and every process under it."""
        return sum(_cpu_seconds(pid) for pid in _tree(self.process.pid))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.problems = _problems(self.log)
        if not os.environ.get("BENCH_KEEP_LOGS"):
            shutil.rmtree(self._tmp, ignore_errors=True)


def _problems(log: Path) -> list[str]:
    """The distinct warning and error events of a server's JSON log, with their counts."""
    counts: dict[str, int] = {}
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("level") in {"warning", "error", "critical"}:
            key = f"{entry['level']}: {str(entry.get('event'))[:120]}"
            counts[key] = counts.get(key, 0) + 1
    return [f"{key} (x{count})" for key, count in sorted(counts.items())]


def server_env(owner_url: str, redis_url: str, prefix: str, **extra: str) -> dict[str, str]:
    """Settings for a server under load: limits high enough never to refuse the benchmark."""
    env = {
        **os.environ,
        "DATABASE_URL": owner_url,
        "REDIS_URL": redis_url,
        "REDIS_PREFIX": prefix,
        "RATE_LIMIT_AUTH": "1000000/minute",
        "RATE_LIMIT_SETUP": "1000000/minute",
        "RATE_LIMIT_V1": "1000000/minute",
        "RATE_LIMIT_V1_IP": "100000000/minute",
        "DB_POOL_TIMEOUT": "60",
        "SENTRY_DSN": "",
    }
    env.update(extra)
    return env


def start_server(
    owner_url: str,
    redis_url: str,
    prefix: str,
    *,
    workers: int = 1,
    module: str = "replyhq.cli",
    **env: str,
) -> Server:
    """`replyhq serve` in its own process on 127.0.0.1; returns once /healthz answers.
    (`module`: another entry point taking the same arguments, e.g. bench/stage_server.py.)"""
    tmp = Path(tempfile.mkdtemp(prefix="replyhq-bench-server-"))
    port = free_port()
    log = tmp / "server.log"
    environment = server_env(owner_url, redis_url, prefix, DATA_DIR=str(tmp / "data"), **env)
    command = [sys.executable, "-m", module, "serve", "--host", HOST, "--port", str(port)]
    command += ["--workers", str(workers), "--no-migrate"]
    process = subprocess.Popen(
        command, env=environment, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    server = Server(f"http://{HOST}:{port}", process, log, tmp)
    deadline = time.monotonic() + 60
    ready = 0
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()[-2000:]}")
        try:
            # With several workers, each must be up: ask a few times in a row.
            if httpx.get(server.url + "/readyz", timeout=2).status_code == 200:
                ready += 1
                if ready >= 2 * workers:
                    return server
                continue
        except httpx.HTTPError:
            pass
        ready = 0
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"server did not start: {log.read_text()[-2000:]}")


def _tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo.extend(children.get(pid, []))
    return pids


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime


# --- numbers and rows ------------------------------------------------------------------------


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), nearest-rank on the sorted samples."""
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[rank]


def median(samples: Sequence[float]) -> float:
    return statistics.median(samples) if samples else float("nan")


def row(
    name: str,
    metric: str,
    value: float,
    unit: str,
    *,
    baseline: float | None = None,
    ratio: float | None = None,
    goal: str | None = None,
    ok: bool | None = None,
    note: str | None = None,
) -> dict[str, Any]:
    """One line of the results table (see bench/__init__.py)."""
    return {
        "name": name,
        "metric": metric,
        "value": value,
        "unit": unit,
        "baseline": baseline,
        "ratio": ratio,
        "goal": goal,
        "pass": ok,
        "note": note,
    }


def run_async(coro: Any) -> Any:
    """asyncio.run with uvloop when present, as the server runs."""
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:
        return asyncio.run(coro)


async def cancel(task: asyncio.Task[Any]) -> None:
    """Cancel `task` and wait until it has ended (see replyhq.runtime.cancel_and_wait)."""
    from replyhq.runtime import cancel_and_wait

    await cancel_and_wait(task)
