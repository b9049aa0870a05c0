"""The per-request check of an access token, paid once per sign-in and role version per process.

An access token is checked against the database (active member, sign-in not ended, same
`token_version`) once; the answer is then remembered for a short while, keyed by every claim it
vouches for: (staff user, app, sign-in, version). A token that differs from a checked one in any
of them (another `app`, say) is checked on its own, never answered from the other's verdict.
Every change of access is announced on `{prefix}staff-changed` after commit: the announcing
process evicts at once, the others as soon as they hear it. While the channel is not subscribed
nothing is cached, and a read that raced with an eviction is not cached either, so a change is
never missed for longer than a message takes to cross Redis.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass

import structlog
from redis.asyncio import Redis
from sqlalchemy import and_, select

from replyhq.accounts.models import StaffSession, StaffUser
from replyhq.accounts.tokens import AccessClaims
from replyhq.db import Database

log = structlog.get_logger(__name__)

CACHE_SECONDS = 30.0
# What a cached verdict vouches for: (staff id, app id, sign-in id, token version). The staff id
# leads, so that evict() finds a member's entries.
_Claims = tuple[uuid.UUID, uuid.UUID, uuid.UUID, int]


@dataclass(frozen=True)
class StaffState:
    role: str
    email: str
    name: str | None


class StaffVerifier:
    def __init__(
        self, db: Database, redis: Redis, channel: str, ttl: float = CACHE_SECONDS
    ) -> None:
        self._db = db
        self._redis = redis
        self.channel = channel
        self._ttl = ttl
        self._cache: dict[_Claims, tuple[StaffState, float]] = {}
        self._generation = 0
        self._listening = False

    async def check(self, claims: AccessClaims) -> StaffState | str:
        """The member's current state, or the refusal code (TOKEN_REVOKED, TOKEN_STALE)."""
        key = (claims.staff_id, claims.app_id, claims.session_id, claims.version)
        cached = self._cache.get(key)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        generation = self._generation
        async with self._db.tenant_session(claims.app_id) as session:
            row = (
                await session.execute(
                    select(
                        StaffUser.role,
                        StaffUser.active,
                        StaffUser.token_version,
                        StaffUser.email,
                        StaffUser.name,
                        StaffSession.revoked_at,
                    )
                    .join(
                        StaffSession,
                        and_(
                            StaffSession.staff_id == StaffUser.id,
                            StaffSession.app_id == StaffUser.app_id,
                        ),
                    )
                    .where(
                        StaffUser.app_id == claims.app_id,
                        StaffUser.id == claims.staff_id,
                        StaffSession.id == claims.session_id,
                    )
                )
            ).first()
        if row is None or not row.active or row.revoked_at is not None:
            return "TOKEN_REVOKED"
        if row.token_version != claims.version:
            return "TOKEN_STALE"
        state = StaffState(row.role, row.email, row.name)
        if self._listening and self._ttl > 0 and generation == self._generation:
            self._cache[key] = (state, time.monotonic() + self._ttl)
        return state

    def evict(self, staff_id: uuid.UUID) -> None:
        self._generation += 1
        for key in [k for k in self._cache if k[0] == staff_id]:
            self._cache.pop(key, None)

    async def listen(self) -> None:
        """Evict members whose access changed, as processes announce it; runs for the process'
        life."""
        delay = 0.2
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(self.channel)
                    self._listening = True
                    delay = 0.2
                    async for message in pubsub.listen():
                        if message["type"] == "message":
                            self._heard(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("staff_change_listener_lost", error=str(exc))
            finally:
                self._listening = False
                self._generation += 1
                self._cache.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    def _heard(self, data: bytes) -> None:
        try:
            self.evict(uuid.UUID(json.loads(data)["staff_id"]))
        except (ValueError, KeyError, TypeError):
            log.warning("staff_change_unreadable")
            self._generation += 1
            self._cache.clear()
