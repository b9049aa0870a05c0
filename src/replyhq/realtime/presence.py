"""Live sessions and presence in Redis.

Each socket is a member of sorted sets whose scores are expiry times, refreshed by its process'
heartbeat. A crashed process stops refreshing, so its sockets fall out of every set by themselves;
a sweeper (one process per tick, under a short lock) reports who went offline that way. Online and
offline are reported only on change: the first live socket of a person, or the last one gone.

Lookups for N people or sessions, and a process' heartbeat, are one Lua script call each (EVALSHA)
answering in one compact reply: a pipeline of N commands cost tens of milliseconds of Python
packing and parsing for 1,000 people. The scripts name the keys they derive (session hashes, a
socket's sets) in their arguments: presence lives on one Redis node, not a Redis Cluster (the
connect transaction spans many slots already).
"""

from __future__ import annotations

import json
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


# KEYS: each person's set; ARGV[1]: now. One "0"/"1" per person, in order.
_ONLINE = """
local now, flags = ARGV[1], {}
for i, key in ipairs(KEYS) do
  flags[i] = redis.call('ZCOUNT', key, now, '+inf') > 0 and '1' or '0'
end
return table.concat(flags)
"""

# KEYS[1]: the app's set; ARGV: now, the session hash prefix. A JSON array of the live sessions'
# hashes, each with its "sid" (a session whose hash is gone is left out).
_ACTIVE_SESSIONS = """
local sids, rows = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], '+inf'), {}
for _, sid in ipairs(sids) do
  local fields = redis.call('HGETALL', ARGV[2] .. sid)
  if #fields > 0 then
    local row = {sid = sid}
    for i = 1, #fields, 2 do row[fields[i]] = fields[i + 1] end
    rows[#rows + 1] = row
  end
end
if #rows == 0 then return '[]' end  -- cjson would encode an empty table as {}
return cjson.encode(rows)
"""

# KEYS[1]: the index; ARGV: expiry score, key TTL in seconds, then per socket: sid, session hash,
# index member, how many sets, the sets (its person's first). Only sockets still in their sets
# are refreshed (XX), and only those refresh their person in the index: a socket that
# disconnected meanwhile is neither brought back nor reported offline a second time by the
# sweeper. Each key's TTL is pushed back once per call.
_HEARTBEAT = """
local expires, ttl, i, seen = ARGV[1], ARGV[2], 3, {}
local function keep(key)
  if not seen[key] then seen[key] = true; redis.call('EXPIRE', key, ttl) end
end
while i <= #ARGV do
  local sid, count = ARGV[i], tonumber(ARGV[i + 3])
  local live = redis.call('ZADD', ARGV[i + 4], 'XX', 'CH', expires, sid) == 1
  keep(ARGV[i + 4])
  for k = i + 5, i + 3 + count do
    redis.call('ZADD', ARGV[k], 'XX', expires, sid)
    keep(ARGV[k])
  end
  keep(ARGV[i + 1])
  if live then redis.call('ZADD', KEYS[1], 'GT', expires, ARGV[i + 2]) end
  i = i + 4 + count
end
return 0
"""

HEARTBEAT_BATCH = 1000  # sockets per script call: each call blocks Redis for its duration


class PresenceStore:
    def __init__(self, redis: Redis, prefix: str, ttl_seconds: float = 60.0) -> None:
        self.redis = redis
        self.prefix = prefix + "rt:"
        self.ttl = ttl_seconds
        self._online = redis.register_script(_ONLINE)
        self._active_sessions = redis.register_script(_ACTIVE_SESSIONS)
        self._heartbeat = redis.register_script(_HEARTBEAT)

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
        """Push back the expiry of this process' sockets: one script call per HEARTBEAT_BATCH."""
        expires = time.time() + self.ttl
        head: list[str | float | int] = [expires, int(self.ttl * 2)]
        args: list[str | float | int] = []
        count = 0
        for s in sessions:
            keys = self._keys(s)
            args += [s.sid, self._session_key(s.sid), self._index_member(s), len(keys), *keys]
            count += 1
            if count == HEARTBEAT_BATCH:
                await self._heartbeat(keys=[self._index_key], args=head + args)
                args, count = [], 0
        if count:
            await self._heartbeat(keys=[self._index_key], args=head + args)

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
        """Who among `person_ids` has a live socket now (one script call)."""
        if not person_ids:
            return {}
        keys = [self._person_key(app_id, kind, p) for p in person_ids]
        flags: bytes = await self._online(keys=keys, args=[time.time()])
        return {p: flag == 49 for p, flag in zip(person_ids, flags, strict=True)}  # b"1"

    async def sids_of_device(self, app_id: uuid.UUID, device_id: str) -> list[str]:
        return await self._live_sids(self._device_key(app_id, device_id))

    async def sids_of_person(
        self, app_id: uuid.UUID, kind: Kind, person_id: uuid.UUID
    ) -> list[str]:
        return await self._live_sids(self._person_key(app_id, kind, person_id))

    async def sids_of_app(self, app_id: uuid.UUID, kind: Kind) -> list[str]:
        return await self._live_sids(self._app_key(app_id, kind))

    async def active_sessions(self, app_id: uuid.UUID, kind: Kind) -> list[dict[str, str]]:
        """Every live session of the app, with its recorded fields (one script call)."""
        reply = await self._active_sessions(
            keys=[self._app_key(app_id, kind)], args=[time.time(), self._session_key("")]
        )
        sessions: list[dict[str, str]] = json.loads(reply)
        return sessions

    async def _live_sids(self, key: str) -> list[str]:
        sids = await self.redis.zrangebyscore(key, time.time(), "+inf")
        return [_text(sid) for sid in sids]


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _parse_member(member: str) -> tuple[uuid.UUID, Kind, uuid.UUID]:
    app_id, kind, person_id = member.split("|")
    return uuid.UUID(app_id), kind, uuid.UUID(person_id)  # type: ignore[return-value]
