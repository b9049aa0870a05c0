"""What the application sends to PostgreSQL, seen at the driver: every statement executed by a
psycopg cursor, whether through SQLAlchemy or raw (Database.tenant_statement), which
SQLAlchemy's `before_cursor_execute` event does not see."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import psycopg

Sent = list[tuple[str, Any]]


@contextlib.contextmanager
def sent_statements() -> Iterator[Sent]:
    """(statement, parameters) of each execute on a psycopg async cursor while the block runs."""
    sent: Sent = []
    execute = psycopg.AsyncCursor.execute

    async def recording(self: Any, query: Any, params: Any = None, **kwargs: Any) -> Any:
        sent.append((query if isinstance(query, str) else repr(query), params))
        return await execute(self, query, params, **kwargs)

    psycopg.AsyncCursor.execute = recording  # type: ignore[method-assign]
    try:
        yield sent
    finally:
        psycopg.AsyncCursor.execute = execute  # type: ignore[method-assign]
