"""Live sessions and presence in Redis.

Each socket is a member of sorted sets whose scores are expiry times (its person's, its app's,
its device's), refreshed by its process' heartbeat. A crashed process stops refreshing, so its
sockets fall out of every set by themselves; a sweeper (one process per tick, under a short lock)
reports who went offline that way. Online and offline are reported only on change: the first live
socket of a person, or the last one gone.

Every operation is one Lua script call (EVALSHA) answering in one compact reply: a pipeline of one
command per person cost tens of milliseconds of Python packing and parsing for 1,000 people, and
a script calling a command per person still cost milliseconds inside Redis. So the scripts keep
two summaries beside the sets, each answering a lookup with one native command:

- `people:<app>:<kind>`, a sorted set of person ids (32 hex digits) scored by the latest expiry
  among their sockets, kept exact by connect, disconnect and heartbeat: a person is online
  exactly when their score is not in the past, so `online()` is one ZMSCORE;
- `session:<sid>`, each session as one JSON array `[sid, person_id, device_id, connected_at]`
  (its app and kind are those of the app's set that lists it), so `active_sessions()` is one
  range read and one MGET, returned as one JSON array of them.

Scripts name the keys they derive (session keys, a socket's sets) in their arguments: presence
lives on one Redis node, not a Redis Cluster.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

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


# KEYS: index, session, people, then the socket's sets (its person's first).
# ARGV: now, expiry, key TTL (s), sid, person id, index member, session JSON.
# Returns 1 when the person has just come online.
_CONNECT = """
local now, expires, ttl, sid = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
redis.call('SET', KEYS[2], ARGV[7], 'EX', ttl)
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
local first = redis.call('ZCARD', KEYS[4]) == 0
for k = 4, #KEYS do
  redis.call('ZADD', KEYS[k], expires, sid)
  redis.call('EXPIRE', KEYS[k], ttl)
end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. now)  -- people gone by expiry
redis.call('ZADD', KEYS[3], 'GT', expires, ARGV[5])
redis.call('EXPIRE', KEYS[3], ttl)
redis.call('ZADD', KEYS[1], 'GT', expires, ARGV[6])
return first and 1 or 0
"""

# KEYS: as _CONNECT. ARGV: now, sid, person id, index member.
# Returns 1 when the person has no live socket left (then reported here, not by the sweeper).
_DISCONNECT = """
for k = 4, #KEYS do redis.call('ZREM', KEYS[k], ARGV[2]) end
redis.call('DEL', KEYS[2])
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', ARGV[1])
local latest = redis.call('ZRANGE', KEYS[4], -1, -1, 'WITHSCORES')
if #latest == 0 then
  redis.call('ZREM', KEYS[3], ARGV[3])
  redis.call('ZREM', KEYS[1], ARGV[4])
  return 1
end
-- the person's latest expiry, lowered: they go offline (and are swept) when that one expires
redis.call('ZADD', KEYS[3], latest[2], ARGV[3])
redis.call('ZADD', KEYS[1], latest[2], ARGV[4])
return 0
"""

# KEYS[1]: the index. ARGV: expiry, key TTL (s), then per socket: sid, session key, person id,
# people key, index member, how many sets, the sets (its person's first). Entries are only ever
# pushed back (XX GT): a socket that closed meanwhile is not brought back, and only a socket still
# in its person's set refreshes that person in `people` and in the index (so the sweeper never
# reports a person offline twice). Each key's TTL is pushed back once per call.
_HEARTBEAT = """
local expires, ttl, i, seen = ARGV[1], ARGV[2], 3, {}
local function keep(key)
  if not seen[key] then seen[key] = true; redis.call('EXPIRE', key, ttl) end
end
while i <= #ARGV do
  local sid, count = ARGV[i], tonumber(ARGV[i + 5])
  local live = redis.call('ZADD', ARGV[i + 6], 'XX', 'GT', 'CH', expires, sid) == 1
  keep(ARGV[i + 6])
  for k = i + 7, i + 5 + count do
    redis.call('ZADD', ARGV[k], 'XX', 'GT', expires, sid)
    keep(ARGV[k])
  end
  keep(ARGV[i + 1])
  if live then
    redis.call('ZADD', ARGV[i + 3], 'GT', expires, ARGV[i + 2])
    keep(ARGV[i + 3])
    redis.call('ZADD', KEYS[1], 'GT', expires, ARGV[i + 4])
  end
  i = i + 6 + count
end
return 0
"""

# KEYS[1]: people. ARGV: now, the person ids (32 hex digits each) end to end. One "0"/"1" per
# person, in order.
_ONLINE = """
local now, ids, flags = tonumber(ARGV[1]), {}, {}
for at = 1, #ARGV[2], 32 do ids[#ids + 1] = string.sub(ARGV[2], at, at + 31) end
for first = 1, #ids, 1000 do  -- unpack() has a stack limit: ZMSCORE by thousands
  local scores = redis.call('ZMSCORE', KEYS[1], unpack(ids, first, math.min(first + 999, #ids)))
  for k = 1, #scores do
    flags[first + k - 1] = (scores[k] and tonumber(scores[k]) >= now) and '1' or '0'
  end
end
return table.concat(flags)
"""

# KEYS[1]: the app's set. ARGV: now, the session key prefix. The live sessions' JSON, as one
# JSON array (a session whose key is gone is left out).
_ACTIVE_SESSIONS = """
local sids, found = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], '+inf'), {}
for first = 1, #sids, 1000 do
  local keys = {}
  for k = first, math.min(first + 999, #sids) do keys[#keys + 1] = ARGV[2] .. sids[k] end
  local values = redis.call('MGET', unpack(keys))
  for k = 1, #values do
    if values[k] then found[#found + 1] = values[k] end
  end
end
return '[' .. table.concat(found, ',') .. ']'
"""

_ONE = ord("1")
HEARTBEAT_BATCH = 1000  # sockets per script call: each call blocks Redis for its duration


class PresenceStore:
    def __init__(self, redis: Redis, prefix: str, ttl_seconds: float = 60.0) -> None:
        self.redis = redis
        self.prefix = prefix + "rt:"
        self.ttl = ttl_seconds
        self._connect = redis.register_script(_CONNECT)
        self._disconnect = redis.register_script(_DISCONNECT)
        self._heartbeat = redis.register_script(_HEARTBEAT)
        self._online = redis.register_script(_ONLINE)
        self._active_sessions = redis.register_script(_ACTIVE_SESSIONS)
        self._heartbeat_args: dict[str, list[bytes]] = {}

    # --- keys --------------------------------------------------------------------------------

    def _session_key(self, sid: str) -> str:
        return f"{self.prefix}session:{sid}"

    def _person_key(self, app_id: uuid.UUID, kind: Kind, person_id: uuid.UUID) -> str:
        return f"{self.prefix}online:{app_id}:{kind}:{person_id}"

    def _people_key(self, app_id: uuid.UUID, kind: Kind) -> str:
        return f"{self.prefix}people:{app_id}:{kind}"

    def _device_key(self, app_id: uuid.UUID, device_id: str) -> str:
        return f"{self.prefix}device:{app_id}:{device_id}"

    def _app_key(self, app_id: uuid.UUID, kind: Kind) -> str:
        return f"{self.prefix}app:{app_id}:{kind}"

    @property
    def _index_key(self) -> str:
        return f"{self.prefix}index"

    def _keys(self, s: LiveSession) -> list[str]:
        """The socket's sets, its person's first."""
        keys = [self._person_key(s.app_id, s.kind, s.person_id), self._app_key(s.app_id, s.kind)]
        if s.device_id is not None:
            keys.append(self._device_key(s.app_id, s.device_id))
        return keys

    def _all_keys(self, s: LiveSession) -> list[str]:
        """KEYS of the connect and disconnect scripts."""
        head = [self._index_key, self._session_key(s.sid), self._people_key(s.app_id, s.kind)]
        return head + self._keys(s)

    @staticmethod
    def _index_member(s: LiveSession) -> str:
        return f"{s.app_id}|{s.kind}|{s.person_id}"

    # --- writes ------------------------------------------------------------------------------

    async def connect(self, session: LiveSession) -> bool:
        """Record a live socket; True when its person has just come online."""
        now = time.time()
        row = [session.sid, str(session.person_id), session.device_id or "", str(now)]
        first = await self._connect(
            keys=self._all_keys(session),
            args=[
                now,
                now + self.ttl,
                int(self.ttl * 2),
                session.sid,
                session.person_id.hex,
                self._index_member(session),
                json.dumps(row),
            ],
        )
        return bool(first)

    async def disconnect(self, session: LiveSession) -> bool:
        """Forget a socket; True when its person has no live socket left."""
        offline = await self._disconnect(
            keys=self._all_keys(session),
            args=[
                time.time(),
                session.sid,
                session.person_id.hex,
                self._index_member(session),
            ],
        )
        return bool(offline)

    async def heartbeat(self, sessions: Iterable[LiveSession]) -> None:
        """Push back the expiry of this process' sockets: one script call per HEARTBEAT_BATCH."""
        head: list[bytes | float | int] = [time.time() + self.ttl, int(self.ttl * 2)]
        previous, self._heartbeat_args = self._heartbeat_args, {}
        args: list[bytes | float | int] = []
        count = 0
        for s in sessions:
            mine = previous.get(s.sid) or self._socket_args(s)
            self._heartbeat_args[s.sid] = mine  # sockets gone since the last beat are dropped
            args += mine
            count += 1
            if count == HEARTBEAT_BATCH:
                await self._heartbeat(keys=[self._index_key], args=head + args)
                args, count = [], 0
        if count:
            await self._heartbeat(keys=[self._index_key], args=head + args)

    def _socket_args(self, s: LiveSession) -> list[bytes]:
        """A socket's part of _HEARTBEAT's arguments: the same at every beat, so built (and
        encoded) once."""
        keys = self._keys(s)
        fields = [
            s.sid,
            self._session_key(s.sid),
            s.person_id.hex,
            self._people_key(s.app_id, s.kind),
            self._index_member(s),
            str(len(keys)),
            *keys,
        ]
        return [field.encode() for field in fields]

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
        ids = "".join([p.hex for p in person_ids])  # str() of 1,000 UUIDs costs a millisecond
        flags: bytes = await self._online(
            keys=[self._people_key(app_id, kind)], args=[time.time(), ids]
        )
        return dict(zip(person_ids, map(_ONE.__eq__, flags), strict=True))

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
        app, rows = str(app_id), json.loads(reply)
        return [
            {
                "sid": sid,
                "app_id": app,
                "kind": kind,
                "person_id": person_id,
                "device_id": device_id,
                "connected_at": connected_at,
            }
            for sid, person_id, device_id, connected_at in rows
        ]

    async def _live_sids(self, key: str) -> list[str]:
        sids = await self.redis.zrangebyscore(key, time.time(), "+inf")
        return [_text(sid) for sid in sids]


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _parse_member(member: str) -> tuple[uuid.UUID, Kind, uuid.UUID]:
    app_id, kind, person_id = member.split("|")
    return uuid.UUID(app_id), kind, uuid.UUID(person_id)  # type: ignore[return-value]
