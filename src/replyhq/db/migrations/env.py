"""Alembic environment: runs as the schema owner, one migrator at a time across processes."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, text

from replyhq.db.models import metadata

# Any fixed number: two servers starting together must not both run the same migration.
MIGRATION_LOCK = 7_313_001


def run_migrations_online() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    assert url is not None
    engine = create_engine(url)
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
        connection.commit()
        try:
            context.configure(connection=connection, target_metadata=metadata)
            with context.begin_transaction():
                context.run_migrations()
            connection.commit()
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
            connection.commit()
    engine.dispose()


run_migrations_online()
