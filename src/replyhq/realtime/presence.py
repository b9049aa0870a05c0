"""Live sessions and presence in Redis.

Each socket is a member of sorted sets whose scores are expiry times, refreshed by its process'
heartbeat. A crashed process stops refreshing, so its sockets fall out of every set by themselves;
a sweeper (one process per tick, under a short lock) reports who went offline that way. Online and
offline are reported only on change: the first live socket of a person, or the last one gone.
Lookups for N people or sessions are one pipeline, never N round trips.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from redis.asyncio import Redis

Kind = Literal["user", "staff"]


@dataclass(frozen=True)
class LiveSession:
    sid: str
    app_id: uuid.UUID
    kind: Kind
    person_id: uuid.UUID  # end user id, or staff user id
    device_id: str | None = None


@dataclass(frozen=True)
class PresenceChange:
    app_id: uuid.UUID
    kind: Kind
    person_id: uuid.UUID
    online: bool


class PresenceStore:
    def __init__(self, redis: Redis, prefix: str, ttl_seconds: float = 60.0) -> None:
        self.redis = redis
        self.prefix = prefix + "rt:"
        self.ttl = ttl_seconds

    # --- keys --------------------------------------------------------------------------------

    def _session_key(self, sid: str) -> str:
        return f"{self.prefix}sess:{sid}"

    def _person_key(self, app_id: uuid.UUID, kind: Kind, person_id: uuid.UUID) -> str:
        return f"{self.prefix}online:{app_id}:{kind}:{person_id}"

    def _device_key(self, app_id: uuid.UUID, device_id: str) -> str:
        return f"{self.prefix}device:{app_id}:{device_id}"

    def _app_key(self, app_id: uuid.UUID, kind: Kind) -> str:
        return f"{self.prefix}app:{app_id}:{kind}"

    @property
    def _index_key(self) -> str:
        return f"{self.prefix}index"

    def _keys(self, s: LiveSession) -> list[str]:
        keys = [self._person_key(s.app_id, s.kind, s.person_id), self._app_key(s.app_id, s.kind)]
        if s.device_id is not None:
            keys.append(self._device_key(s.app_id, s.device_id))
        return keys

    @staticmethod
    def _index_member(s: LiveSession) -> str:
        return f"{s.app_id}|{s.kind}|{s.person_id}"

    # --- writes ------------------------------------------------------------------------------

    async def connect(self, session: LiveSession) -> bool:
        """Record a live socket; True when its person has just come online."""
        now = time.time()
        expires = now + self.ttl
        person = self._person_key(session.app_id, session.kind, session.person_id)
        fields: dict[Any, Any] = {
            "app_id": str(session.app_id),
            "kind": session.kind,
            "person_id": str(session.person_id),
            "device_id": session.device_id or "",
            "connected_at": str(now),
        }
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._session_key(session.sid), mapping=fields)
            pipe.expire(self._session_key(session.sid), int(self.ttl * 2))
            pipe.zremrangebyscore(person, "-inf", now)
            pipe.zcard(person)
            for key in self._keys(session):
                pipe.zadd(key, {session.sid: expires})
                pipe.expire(key, int(self.ttl * 2))
            pipe.zadd(self._index_key, {self._index_member(session): expires}, gt=True)
            results = await pipe.execute()
        return int(results[3]) == 0

    async def disconnect(self, session: LiveSession) -> bool:
        """Forget a socket; True when its person has no live socket left."""
        now = time.time()
        person = self._person_key(session.app_id, session.kind, session.person_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            for key in self._keys(session):
                pipe.zrem(key, session.sid)
            pipe.delete(self._session_key(session.sid))
            pipe.zremrangebyscore(person, "-inf", now)
            pipe.zcard(person)
            results = await pipe.execute()
        offline = int(results[-1]) == 0
        if offline:  # reported now; the sweeper must not report it again
            await self.redis.zrem(self._index_key, self._index_member(session))
        return offline

    async def heartbeat(self, sessions: Iterable[LiveSession]) -> None:
        """Push back the expiry of this process' sockets (one pipeline for all of them)."""
        expires = time.time() + self.ttl
        async with self.redis.pipeline(transaction=False) as pipe:
            for s in sessions:
                for key in self._keys(s):
                    pipe.zadd(key, {s.sid: expires}, xx=True)
                    pipe.expire(key, int(self.ttl * 2))
                pipe.expire(self._session_key(s.sid), int(self.ttl * 2))
                pipe.zadd(self._index_key, {self._index_member(s): expires}, gt=True)
            await pipe.execute()

    async def sweep(self) -> list[PresenceChange]:
        """People whose every socket expired (their process died): report them offline once."""
        lock = f"{self.prefix}sweep-lock"
        if not await self.redis.set(lock, "1", nx=True, px=int(self.ttl * 1000 / 6)):
            return []
        now = time.time()
        found = await self.redis.zrangebyscore(self._index_key, "-inf", now)
        members = [_text(m) for m in found]
        if not members:
            return []
        people = [_parse_member(m) for m in members]
        async with self.redis.pipeline(transaction=False) as pipe:
            for app_id, kind, person_id in people:
                key = self._person_key(app_id, kind, person_id)
                pipe.zremrangebyscore(key, "-inf", now)
                pipe.zcard(key)
            counts = (await pipe.execute())[1::2]
        changes = []
        async with self.redis.pipeline(transaction=False) as pipe:
            for member, (app_id, kind, person_id), count in zip(
                members, people, counts, strict=True
            ):
                pipe.zrem(self._index_key, member)
                if int(count) == 0:
                    changes.append(PresenceChange(app_id, kind, person_id, online=False))
            await pipe.execute()
        return changes

    # --- reads -------------------------------------------------------------------------------

    async def online(
        self, app_id: uuid.UUID, kind: Kind, person_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, bool]:
        """Who among `person_ids` has a live socket now (one round trip)."""
        now = time.time()
        async with self.redis.pipeline(transaction=False) as pipe:
            for person_id in person_ids:
                pipe.zcount(self._person_key(app_id, kind, person_id), now, "+inf")
            counts = await pipe.execute()
        return {p: int(c) > 0 for p, c in zip(person_ids, counts, strict=True)}

    async def sids_of_device(self, app_id: uuid.UUID, device_id: str) -> list[str]:
        return await self._live_sids(self._device_key(app_id, device_id))

    async def sids_of_person(
        self, app_id: uuid.UUID, kind: Kind, person_id: uuid.UUID
    ) -> list[str]:
        return await self._live_sids(self._person_key(app_id, kind, person_id))

    async def sids_of_app(self, app_id: uuid.UUID, kind: Kind) -> list[str]:
        return await self._live_sids(self._app_key(app_id, kind))

    async def active_sessions(self, app_id: uuid.UUID, kind: Kind) -> list[dict[str, str]]:
        """Every live session of the app: one range read, then one pipeline of hash reads."""
        sids = await self.sids_of_app(app_id, kind)
        async with self.redis.pipeline(transaction=False) as pipe:
            for sid in sids:
                pipe.hgetall(self._session_key(sid))
            rows = await pipe.execute()
        return [
            {"sid": sid, **{k.decode(): v.decode() for k, v in row.items()}}
            for sid, row in zip(sids, rows, strict=True)
            if row
        ]

    async def _live_sids(self, key: str) -> list[str]:
        sids = await self.redis.zrangebyscore(key, time.time(), "+inf")
        return [_text(sid) for sid in sids]


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _parse_member(member: str) -> tuple[uuid.UUID, Kind, uuid.UUID]:
    app_id, kind, person_id = member.split("|")
    return uuid.UUID(app_id), kind, uuid.UUID(person_id)  # type: ignore[return-value]
