"""Apply Alembic migrations programmatically (used by `replyhq migrate`, `serve` and tests)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.pool import NullPool

from replyhq.settings import Settings

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(owner_url: str, settings: Settings) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    url = make_url(owner_url).set(drivername="postgresql+psycopg")
    # Alembic's config is ConfigParser-backed: '%' must be doubled.
    config.set_main_option(
        "sqlalchemy.url", url.render_as_string(hide_password=False).replace("%", "%%")
    )
    config.attributes["app_role"] = settings.database_app_role
    config.attributes["app_role_password"] = settings.app_database_password
    config.attributes["system_role"] = settings.database_system_role
    config.attributes["system_role_password"] = settings.system_database_password
    return config


def upgrade(owner_url: str, settings: Settings) -> None:
    command.upgrade(alembic_config(owner_url, settings), "heads")


AUTOVACUUM_OFF = (
    "autovacuum is off: turn it on, or run ANALYZE on a schedule (docs/operations.md); "
    "without current statistics a send reads its whole app"
)


def autovacuum_is_on(connection: Connection) -> bool:
    """The send keeps PostgreSQL's cached plan (migration 0230), which is right only while the
    tables' statistics follow their growth: autovacuum's ANALYZE, or a scheduled one."""
    return bool(connection.execute(text("SHOW autovacuum")).scalar_one() == "on")


def autovacuum_is_on_at(owner_url: str) -> bool:
    """autovacuum_is_on, on a connection of its own (the CLI, after migrating)."""
    engine = create_engine(
        make_url(owner_url).set(drivername="postgresql+psycopg"), poolclass=NullPool
    )
    try:
        with engine.connect() as connection:
            return autovacuum_is_on(connection)
    finally:
        engine.dispose()
