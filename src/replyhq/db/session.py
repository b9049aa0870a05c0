"""Engines and the only two ways to open a transaction: bound to one tenant, or system-wide.

The tenant is bound with `set_config(..., true)`, which lasts for the transaction only, so a pooled
connection never carries one request's tenant into the next (even after a failed transaction).
System-wide transactions run as another role (DATABASE_SYSTEM_ROLE), the only one the policies let
see every tenant: no setting the runtime role can change by SQL widens what it sees.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import structlog
from psycopg.rows import dict_row
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.util import greenlet_spawn

from replyhq.db.errors import dropped
from replyhq.observability.instruments import InstrumentedPool
from replyhq.settings import Settings

log = structlog.get_logger(__name__)

AfterCommit = Callable[[], Awaitable[None]]
_AFTER_COMMIT = "replyhq.after_commit"
EVENT_SINK = "replyhq.event_sink"

_BIND_TENANT = text("SELECT set_config('app.current_tenant', :tenant, true)")
# Binds nothing: the role alone decides. A first statement all the same, so that a dropped pooled
# connection is met and retried before any work (_begin_bound).
_BEGIN_SYSTEM = text("SELECT 1")
SYSTEM_POOL_SIZE = 5  # cross-tenant work is rare: setup, sign-in lookups, housekeeping
_BIND_TENANT_DRIVER = "SELECT set_config('app.current_tenant', %s, true)"


def async_url(url: str) -> str:
    """The SQLAlchemy URL for psycopg 3, whatever scheme the operator wrote."""
    parsed = make_url(url)
    return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def _role_url(explicit: str | None, owner_url: str, role: str, password: str | None) -> str:
    """A role's URL: explicit, or the owner's URL with the role (and its password) swapped in."""
    if explicit:
        return async_url(explicit)
    parsed = make_url(owner_url).set(
        drivername="postgresql+psycopg", username=role, password=password
    )
    return parsed.render_as_string(hide_password=False)


def runtime_url(settings: Settings, owner_url: str) -> str:
    """The runtime role's URL (RLS applies to it)."""
    return _role_url(
        settings.app_database_url,
        owner_url,
        settings.database_app_role,
        settings.app_database_password,
    )


def system_url(settings: Settings, owner_url: str) -> str:
    """The system role's URL (cross-tenant work)."""
    return _role_url(
        settings.system_database_url,
        owner_url,
        settings.database_system_role,
        settings.system_database_password,
    )


def on_commit(session: AsyncSession, effect: AfterCommit) -> None:
    """Run `effect` once the session's transaction has committed; never if it rolls back."""
    session.info.setdefault(_AFTER_COMMIT, []).append(effect)


class Database:
    def __init__(
        self,
        url: str,
        *,
        system: str | None = None,
        pool_size: int = 10,
        max_overflow: int = 0,
        pool_timeout: float = 10.0,
        prepared_statements: bool = True,
    ) -> None:
        """`url`: the runtime role's; `system`: the system role's, for system_session().
        `prepared_statements=False` for a transaction-mode pooler that cannot carry them (a
        statement prepared on one server connection is run on another)."""
        # psycopg prepares a query on its 5th run on a connection (its default threshold).
        connect_args = {} if prepared_statements else {"prepare_threshold": None}
        self.engine: AsyncEngine = create_async_engine(
            async_url(url),
            connect_args=connect_args,
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_timeout=pool_timeout,
            # A dropped connection is retried once where that is safe (see _begin_bound and
            # tenant_statement) rather than pinged before every use: a round trip per request.
            pool_pre_ping=False,
            hide_parameters=True,  # errors and their log lines never carry the values sent
            pool_recycle=1800,
            poolclass=InstrumentedPool,  # db_pool_connections_in_use, db_pool_waiting
        )
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self.system_engine: AsyncEngine | None = None
        self._system_sessions: async_sessionmaker[AsyncSession] | None = None
        if system is not None:
            self.system_engine = create_async_engine(
                async_url(system),
                connect_args=connect_args,
                pool_size=SYSTEM_POOL_SIZE,
                max_overflow=SYSTEM_POOL_SIZE,
                pool_timeout=pool_timeout,
                pool_pre_ping=False,
                hide_parameters=True,
                pool_recycle=1800,
            )
            self._system_sessions = async_sessionmaker(self.system_engine, expire_on_commit=False)
        # Receives domain events after commit (see replyhq.events); None drops them.
        self.event_sink: Callable[[Any], Awaitable[None]] | None = None

    @classmethod
    def from_settings(cls, settings: Settings, owner_url: str) -> Database:
        return cls(
            runtime_url(settings, owner_url),
            system=system_url(settings, owner_url),
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            pool_timeout=settings.db_pool_timeout,
            prepared_statements=settings.db_prepared_statements,
        )

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self.system_engine is not None:
            await self.system_engine.dispose()

    @asynccontextmanager
    async def tenant_session(self, app_id: uuid.UUID) -> AsyncIterator[AsyncSession]:
        """A transaction that can see and touch only `app_id`'s rows."""
        async with self._transaction(_BIND_TENANT, {"tenant": str(app_id)}) as session:
            yield session

    @asynccontextmanager
    async def system_session(self) -> AsyncIterator[AsyncSession]:
        """A transaction across tenants (as the system role): setup, sign-in lookups, periodic
        jobs. Use sparingly."""
        if self._system_sessions is None:
            raise RuntimeError("this Database was made without the system role's URL")
        async with self._transaction(_BEGIN_SYSTEM, {}, self._system_sessions) as session:
            yield session

    async def tenant_statement(
        self, app_id: uuid.UUID, sql: str, params: Mapping[str, Any]
    ) -> list[dict[str, Any]]:
        """Run one statement (psycopg's `%(name)s` parameters) as a transaction of its own that
        can see and touch only `app_id`'s rows, in one round trip; its rows.

        For hot paths whose work fits one statement (a send's data-modifying CTE, the inbox's
        page query): the binding and the statement are pipelined up to a single Sync, which
        makes them one implicit transaction (the binding lasts until the Sync, as in
        tenant_session). Were they ever split, the statement would run with no tenant bound and
        RLS would show it nothing. No SQLAlchemy session: its machinery cost more CPU than the
        statement. Run effects after it with `after_commit`.

        A connection the server dropped while it sat in the pool (a restart, a failover) fails
        before the statement runs; it is run once more on a fresh connection. Its callers'
        statements are safe to repeat anyway (a send is idempotent by client_msg_id)."""
        (rows,) = await self.tenant_statements(app_id, [(sql, params)])
        return rows

    async def tenant_statements(
        self, app_id: uuid.UUID, statements: Sequence[tuple[str, Mapping[str, Any]]]
    ) -> list[list[dict[str, Any]]]:
        """Like tenant_statement, for several statements run in order in one transaction and
        one round trip (each sees what the ones before it did); each one's rows ([] for a
        statement that returns none). The callers' statements must be safe to repeat (a
        dropped connection)."""
        try:
            return await self._statements_once(app_id, statements)
        except psycopg.OperationalError as error:
            if not dropped(error):
                raise
            return await self._statements_once(app_id, statements)

    async def tenant_function(self, sql: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """tenant_statement for a statement that binds its tenant itself: a call of one of our
        functions that starts with the binding (`replyhq_send_from_device`, migration 0180), so
        one command, without the pipeline (whose machinery cost more CPU than the round trip).
        Its own transaction as tenant_statement's, with the same clean-up and retry."""
        try:
            (rows,) = await self._statements_once(None, [(sql, params)])
        except psycopg.OperationalError as error:
            if not dropped(error):
                raise
            (rows,) = await self._statements_once(None, [(sql, params)])
        return rows

    async def _statements_once(
        self, app_id: uuid.UUID | None, statements: Sequence[tuple[str, Mapping[str, Any]]]
    ) -> list[list[dict[str, Any]]]:
        entry = await self.engine.raw_connection()
        connection: psycopg.AsyncConnection[Any] = entry.driver_connection  # type: ignore[assignment]
        clean = False
        try:
            await connection.set_autocommit(True)  # no BEGIN: the Sync ends the transaction
            # The pipeline's exit sends the one Sync and reads every result; a pipeline.sync()
            # inside the block would be answered, and then the exit would send a second Sync
            # and wait for its reply: a second round trip.
            cursors = []
            if app_id is None:  # one statement that binds its tenant (tenant_function)
                ((sql, params),) = statements
                cursors.append(connection.cursor(row_factory=dict_row))
                await cursors[0].execute(sql, params)
            else:
                async with connection.pipeline():
                    await connection.execute(_BIND_TENANT_DRIVER, (str(app_id),))
                    for sql, params in statements:
                        cursor = connection.cursor(row_factory=dict_row)
                        await cursor.execute(sql, params)
                        cursors.append(cursor)
            rows = [
                await cursor.fetchall() if cursor.description is not None else []
                for cursor in cursors
            ]
            await connection.set_autocommit(False)  # as SQLAlchemy expects its connections
            clean = True
        except psycopg.Error as error:
            # A failed statement leaves the connection idle and reusable (the Sync rolled back).
            clean = connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
            if clean:
                await connection.set_autocommit(False)
            elif dropped(error):
                # As SQLAlchemy does for its own disconnects: every connection pooled before
                # now is as dead as this one, so each is replaced when next checked out.
                self.engine.pool._invalidate(entry, error, _checkin=False)
            raise
        finally:
            if not clean:
                # Broken or interrupted half way (cancelled): never hand it to another request.
                await greenlet_spawn(entry.invalidate)
            await greenlet_spawn(entry.close)
        return rows

    async def after_commit(self, effects: Iterable[AfterCommit]) -> None:
        """Run effects of committed work; a failure is logged, never raised."""
        for effect in effects:
            try:
                await effect()
            except Exception:
                # The data is committed; a failed side effect must not turn into a failed request.
                log.exception("after_commit_failed")

    @asynccontextmanager
    async def _transaction(
        self,
        bind: object,
        params: dict[str, str],
        sessions: async_sessionmaker[AsyncSession] | None = None,
    ) -> AsyncIterator[AsyncSession]:
        async with (sessions or self._sessions)() as session:
            session.info[EVENT_SINK] = self.event_sink
            await _begin_bound(session, bind, params)
            yield session  # an exception rolls back: closing the session does
            await session.commit()
            effects: list[AfterCommit] = session.info.pop(_AFTER_COMMIT, [])
        await self.after_commit(effects)


async def _begin_bound(session: AsyncSession, bind: object, params: dict[str, str]) -> None:
    """Begin the session's transaction with `bind` as its first statement. A pooled connection
    the server dropped (a restart, a failover) fails right there, before any work: SQLAlchemy
    has then invalidated every older pooled connection, so it begins once more, on a new one."""
    try:
        await session.execute(bind, params)  # type: ignore[call-overload]
    except DBAPIError as error:
        if not error.connection_invalidated:
            raise
        await session.rollback()
        await session.execute(bind, params)  # type: ignore[call-overload]
