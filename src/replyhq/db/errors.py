"""Which database failures mean "PostgreSQL is not there right now" rather than a bug: the
server is down, restarting or unreachable, it dropped our connection, or every pooled
connection is busy. Those are a 503 with Retry-After for the caller, not a 500."""

from __future__ import annotations

import psycopg
from sqlalchemy import exc as sa_exc

# SQLSTATE classes of a lost or refused connection: 08 (connection exception) and 57P
# (admin/crash shutdown, cannot connect now, database dropped). Not 57014 (query canceled).
_UNAVAILABLE_STATES = ("08", "57P")


def dropped(error: BaseException | None) -> bool:
    """psycopg's error for a connection that is gone or was never made (no SQLSTATE: the
    client's own "connection refused/closed"), as opposed to an error of the statement."""
    if not isinstance(error, psycopg.OperationalError):
        return False
    state = error.sqlstate
    return state is None or state.startswith(_UNAVAILABLE_STATES)


def unavailable(error: BaseException) -> bool:
    if isinstance(error, sa_exc.TimeoutError):  # the pool: no connection freed in time
        return True
    if isinstance(error, sa_exc.DBAPIError):
        return error.connection_invalidated or dropped(error.orig)
    return dropped(error)
