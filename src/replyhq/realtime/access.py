"""Each live socket's access, re-checked against PostgreSQL, so that revocation never depends on
Redis carrying the news at the instant of the change.

A socket remembers the generation it was let in at (its `Grant`): for a device, its app's
`access_generation` (bumped by key rotation), which a device identified without proof holds only
while the app does not require identity verification (turning it on ends those alone); for staff,
the member's `token_version` (bumped by role change, deactivation, password reset, sign-out
everywhere) and its sign-in, which must not have ended. Each change bumps the number in the
transaction of the change. The Redis path (a Revoke event) still cuts sockets at once; this one
catches what it missed: every event a socket sends checks its grant against the current number,
read at most once per SOCKET_ACCESS_CACHE_SECONDS per process (a dict lookup otherwise, since the
send path is hot), and a sweep every SOCKET_ACCESS_SWEEP_SECONDS re-reads the numbers of every
socket of the process, idle ones included.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from replyhq.db import Database

# (app, staff member, sign-in, unproven): the staff parts are None for a device; `unproven` for
# a device identified without a user_hash.
Key = tuple[uuid.UUID, uuid.UUID | None, uuid.UUID | None, bool]

_APP_GENERATION = "SELECT access_generation AS generation FROM apps WHERE id = %(app)s"
_UNPROVEN_GENERATION = (
    "SELECT CASE WHEN identity_verification_required THEN NULL ELSE access_generation END"
    " AS generation FROM apps WHERE id = %(app)s"
)
_STAFF_GENERATION = (
    "SELECT u.token_version AS generation FROM staff_users u"
    " JOIN staff_sessions s ON s.staff_id = u.id AND s.app_id = u.app_id"
    " WHERE u.app_id = %(app)s AND u.id = %(staff)s AND s.id = %(signin)s"
    " AND u.active AND s.revoked_at IS NULL"
)

REVOKED_ACK = {
    "ok": False,
    "code": "SESSION_REVOKED",
    "error": "This session's access has been revoked; connect again.",
}


@dataclass(frozen=True)
class Grant:
    """What a socket was let in at."""

    app_id: uuid.UUID
    generation: int
    staff_id: uuid.UUID | None = None
    signin_id: uuid.UUID | None = None
    unproven: bool = False  # a device identified without a user_hash

    @property
    def key(self) -> Key:
        return (self.app_id, self.staff_id, self.signin_id, self.unproven)


class AccessChecks:
    """The current generation of each key, read from PostgreSQL and remembered for `ttl`
    seconds; one read at a time per key (callers arriving meanwhile await it)."""

    def __init__(self, db: Database, ttl: float) -> None:
        self._db = db
        self._ttl = ttl
        self._current: dict[Key, tuple[int | None, float]] = {}
        self._reading: dict[Key, asyncio.Task[int | None]] = {}
        self._forgotten = 0  # bumped by forget(): a read begun before it is not remembered

    async def allows(self, grant: Grant) -> bool:
        """Whether the socket's grant is still current: the hot path, a dict lookup while the
        generation read last is fresh."""
        cached = self._current.get(grant.key)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0] == grant.generation
        return await self.current(grant.key) == grant.generation

    async def current(self, key: Key) -> int | None:
        """The key's generation as of now (None: the member or sign-in is gone)."""
        task = self._reading.get(key)
        if task is None:
            task = asyncio.create_task(self._read(key))
            self._reading[key] = task
            task.add_done_callback(lambda _: self._done(key, task))
        # Shielded: a caller going away must not cancel the read others wait for.
        return await asyncio.shield(task)

    def _done(self, key: Key, task: asyncio.Task[int | None]) -> None:
        if self._reading.get(key) is task:
            del self._reading[key]

    async def _read(self, key: Key) -> int | None:
        app_id, staff_id, signin_id, unproven = key
        forgotten = self._forgotten
        if staff_id is None:
            sql = _UNPROVEN_GENERATION if unproven else _APP_GENERATION
            rows = await self._db.tenant_statement(app_id, sql, {"app": app_id})
        else:
            params = {"app": app_id, "staff": staff_id, "signin": signin_id}
            rows = await self._db.tenant_statement(app_id, _STAFF_GENERATION, params)
        generation: int | None = rows[0]["generation"] if rows else None
        if self._ttl > 0 and forgotten == self._forgotten:
            self._current[key] = (generation, time.monotonic() + self._ttl)
        return generation

    def forget(self, app_id: uuid.UUID) -> None:
        """Drop what is remembered of the app's keys: it changed, read it again."""
        self._forgotten += 1
        for key in [k for k in self._current if k[0] == app_id]:
            del self._current[key]
        for key in [k for k in self._reading if k[0] == app_id]:
            del self._reading[key]  # a read in flight may predate the change

    async def stale(self, grants: Iterable[tuple[str, Grant]]) -> list[str]:
        """The sids among `grants` whose access has moved on, each key read afresh."""
        grants = list(grants)
        current: dict[Key, int | None] = {}
        for key in {grant.key for _, grant in grants}:
            self._current.pop(key, None)
            current[key] = await self.current(key)
        return [sid for sid, grant in grants if current[grant.key] != grant.generation]

    def prune(self) -> None:
        """Forget expired entries (keys of sockets long gone)."""
        now = time.monotonic()
        for key in [k for k, (_, until) in self._current.items() if until <= now]:
            del self._current[key]
