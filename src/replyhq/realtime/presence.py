"""Live sessions and presence in Redis.

Each socket is a member of sorted sets whose scores are expiry times (its person's, its app's,
its device's), refreshed by its process' heartbeat. A crashed process stops refreshing, so its
sockets fall out of every set by themselves; a sweeper (one process per tick, under a short lock)
reports who went offline that way. Online and offline are reported only on change: the first live
socket of a person, or the last one gone.

Writes are Lua scripts (one EVALSHA each). They keep two hashes per app and kind beside the sets,
so that each lookup is one round trip of native commands:

- `people-expiry:<app>:<kind>`: person id (16 bytes) → the latest expiry among their sockets,
  as 13 digits of milliseconds (compared as text), kept exact by connect, disconnect and
  heartbeat: a person is online exactly when it is not in the past, so `online()` is one HMGET;
- `live-sessions:<app>:<kind>`: sid → the socket's expiry (13 digits of milliseconds, pushed
  back by heartbeats) followed by its session as a JSON object, so `active_sessions()` is one
  HVALS: the rows not yet expired, joined into one JSON array for one `json.loads`.

Measured for 1,000 people (docs/benchmarks-realtime.md): ZMSCORE formats a double per member and
took ~0.8 ms inside Redis against ~0.15 ms for HMGET; splitting arguments in Lua cost ~1 µs per
person; redis-py packs a command argument by argument, ~1.5 µs each in Python. Hence the HMGET
packed here, and no Lua on the read path.

Scripts name the keys they derive (a socket's sets) in their arguments: presence lives on one
Redis node, not a Redis Cluster. Entries of crashed processes are pruned by the next connect of
their app (sessions) and by the sweeper (people).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, cast

from redis.asyncio import Redis

Kind = Literal["user", "staff"]


@dataclass(frozen=True)
class LiveSession:
    sid: str
    app_id: uuid.UUID
    kind: Kind
    person_id: uuid.UUID  # end user id, or staff user id
    device_id: str | None = None
    proven: bool = True  # a device identified with a user_hash (staff: always)


@dataclass(frozen=True)
class PresenceChange:
    app_id: uuid.UUID
    kind: Kind
    person_id: uuid.UUID
    online: bool


def _millis(at: float) -> bytes:
    """An expiry as the hashes store it: fixed width, so text order is time order."""
    return b"%013d" % int(at * 1000)


# KEYS: index, sessions, people, then the socket's sets (its person's, its app's, its device's).
# ARGV: now, expiry, key TTL (s), sid, person id, index member, session JSON, expiry in millis.
# Returns 1 when the person has just come online.
_CONNECT = """
local now, expires, ttl, sid = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local dead = redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', '(' .. now)  -- crashed processes'
for first = 1, #dead, 1000 do  -- unpack() has a stack limit: by thousands
  redis.call('HDEL', KEYS[2], unpack(dead, first, math.min(first + 999, #dead)))
end
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', '(' .. now)
redis.call('HSET', KEYS[2], sid, ARGV[8] .. ARGV[7])
redis.call('EXPIRE', KEYS[2], ttl)
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
local first = redis.call('ZCARD', KEYS[4]) == 0
for k = 4, #KEYS do
  redis.call('ZADD', KEYS[k], expires, sid)
  redis.call('EXPIRE', KEYS[k], ttl)
end
local latest = redis.call('HGET', KEYS[3], ARGV[5])
if not latest or latest < ARGV[8] then redis.call('HSET', KEYS[3], ARGV[5], ARGV[8]) end
redis.call('EXPIRE', KEYS[3], ttl)
redis.call('ZADD', KEYS[1], 'GT', expires, ARGV[6])
return first and 1 or 0
"""

# KEYS: as _CONNECT. ARGV: now, sid, person id, index member.
# Returns 1 when the person has no live socket left (then reported here, not by the sweeper).
_DISCONNECT = """
for k = 4, #KEYS do redis.call('ZREM', KEYS[k], ARGV[2]) end
redis.call('HDEL', KEYS[2], ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', ARGV[1])
local latest = redis.call('ZRANGE', KEYS[4], -1, -1, 'WITHSCORES')
if #latest == 0 then
  redis.call('HDEL', KEYS[3], ARGV[3])
  redis.call('ZREM', KEYS[1], ARGV[4])
  return 1
end
-- the person's latest expiry, lowered: they go offline (and are swept) when that one expires
local millis = string.format('%013d', math.floor(tonumber(latest[2]) * 1000))
redis.call('HSET', KEYS[3], ARGV[3], millis)
redis.call('ZADD', KEYS[1], latest[2], ARGV[4])
return 0
"""

# KEYS[1]: the index. ARGV: expiry, key TTL (s), expiry in millis, then per socket: sid, sessions
# key, person id, people key, index member, how many sets, the sets (its person's first). Entries
# are only ever pushed back (XX GT): a socket that closed meanwhile is not brought back, and only
# a socket still in its person's set refreshes that person in `people` and in the index (so the
# sweeper never reports a person offline twice). A session's row gets the new expiry unless it is
# gone (the socket closed). Each key's TTL is pushed back once per call.
_HEARTBEAT = """
local expires, ttl, millis, i, seen = ARGV[1], ARGV[2], ARGV[3], 4, {}
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
  local row = redis.call('HGET', ARGV[i + 1], sid)
  if row and string.sub(row, 1, 13) < millis then
    redis.call('HSET', ARGV[i + 1], sid, millis .. string.sub(row, 14))
  end
  keep(ARGV[i + 1])
  if live then
    local latest = redis.call('HGET', ARGV[i + 3], ARGV[i + 2])
    if not latest or latest < millis then redis.call('HSET', ARGV[i + 3], ARGV[i + 2], millis) end
    keep(ARGV[i + 3])
    redis.call('ZADD', KEYS[1], 'GT', expires, ARGV[i + 4])
  end
  i = i + 6 + count
end
return 0
"""

# KEYS[1]: people. ARGV: person id, now in millis. Forgets a person the sweeper found offline,
# unless they came back meanwhile.
_FORGET = """
local latest = redis.call('HGET', KEYS[1], ARGV[1])
if latest and latest < ARGV[2] then redis.call('HDEL', KEYS[1], ARGV[1]) end
return 0
"""

HEARTBEAT_BATCH = 1000  # sockets per script call: each call blocks Redis for its duration


class PresenceStore:
    def __init__(self, redis: Redis, prefix: str, ttl_seconds: float = 60.0) -> None:
        self.redis = redis
        self.prefix = prefix + "rt:"
        self.ttl = ttl_seconds
        self._connect = redis.register_script(_CONNECT)
        self._disconnect = redis.register_script(_DISCONNECT)
        self._heartbeat = redis.register_script(_HEARTBEAT)
        self._forget = redis.register_script(_FORGET)
        self._heartbeat_args: dict[str, list[bytes]] = {}

    # --- keys --------------------------------------------------------------------------------

    def _sessions_key(self, app_id: uuid.UUID, kind: Kind) -> str:
        # not `sessions:`, whose rows earlier releases kept without their expiry
        return f"{self.prefix}live-sessions:{app_id}:{kind}"

    def _person_key(self, app_id: uuid.UUID, kind: Kind, person_id: uuid.UUID) -> str:
        return f"{self.prefix}online:{app_id}:{kind}:{person_id}"

    def _people_key(self, app_id: uuid.UUID, kind: Kind) -> str:
        # not `people:`, where earlier releases kept a sorted set: both can run side by side
        return f"{self.prefix}people-expiry:{app_id}:{kind}"

    def _device_key(self, app_id: uuid.UUID, device_id: str) -> str:
        return f"{self.prefix}device:{app_id}:{device_id}"

    def _app_key(self, app_id: uuid.UUID, kind: Kind) -> str:
        return f"{self.prefix}app:{app_id}:{kind}"

    @property
    def _index_key(self) -> str:
        return f"{self.prefix}index"

    def _keys(self, s: LiveSession) -> list[str]:
        """The socket's sets: its person's, its app's, its device's."""
        keys = [self._person_key(s.app_id, s.kind, s.person_id), self._app_key(s.app_id, s.kind)]
        if s.device_id is not None:
            keys.append(self._device_key(s.app_id, s.device_id))
        return keys

    def _all_keys(self, s: LiveSession) -> list[str]:
        """KEYS of the connect and disconnect scripts."""
        head = [
            self._index_key,
            self._sessions_key(s.app_id, s.kind),
            self._people_key(s.app_id, s.kind),
        ]
        return head + self._keys(s)

    @staticmethod
    def _index_member(s: LiveSession) -> str:
        return f"{s.app_id}|{s.kind}|{s.person_id}"

    # --- writes ------------------------------------------------------------------------------

    async def connect(self, session: LiveSession) -> bool:
        """Record a live socket; True when its person has just come online."""
        now = time.time()
        expires = now + self.ttl
        row = {
            "sid": session.sid,
            "person_id": str(session.person_id),
            "device_id": session.device_id or "",
            "proven": "1" if session.proven else "0",
            "connected_at": str(now),
        }
        first = await self._connect(
            keys=self._all_keys(session),
            args=[
                now,
                expires,
                int(self.ttl * 2),
                session.sid,
                session.person_id.bytes,
                self._index_member(session),
                json.dumps(row),
                _millis(expires),
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
                session.person_id.bytes,
                self._index_member(session),
            ],
        )
        return bool(offline)

    async def heartbeat(self, sessions: Iterable[LiveSession]) -> None:
        """Push back the expiry of this process' sockets: one script call per HEARTBEAT_BATCH."""
        expires = time.time() + self.ttl
        head: list[bytes | float | int] = [expires, int(self.ttl * 2), _millis(expires)]
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
        fields: list[str | bytes] = [
            s.sid,
            self._sessions_key(s.app_id, s.kind),
            s.person_id.bytes,
            self._people_key(s.app_id, s.kind),
            self._index_member(s),
            str(len(keys)),
            *keys,
        ]
        return [field if isinstance(field, bytes) else field.encode() for field in fields]

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
                    await self._forget(
                        keys=[self._people_key(app_id, kind)],
                        args=[person_id.bytes, _millis(now)],
                        client=pipe,
                    )
            await pipe.execute()
        return changes

    # --- reads -------------------------------------------------------------------------------

    async def online(
        self, app_id: uuid.UUID, kind: Kind, person_ids: Sequence[uuid.UUID]
    ) -> list[bool]:
        """Whether each of `person_ids` has a live socket now, in their order (one HMGET). A
        list, not a dict: hashing 1,000 UUIDs took a quarter of the call."""
        if not person_ids:
            return []
        now = _millis(time.time())
        fields = [p.int.to_bytes(16, "big") for p in person_ids]  # UUID.bytes, minus a call
        latest = await self._hmget(self._people_key(app_id, kind), fields)
        return [at is not None and at >= now for at in latest]

    async def _hmget(self, key: str, fields: list[bytes]) -> list[bytes | None]:
        """HMGET of 16-byte fields, packed here in two joins: redis-py packs a command argument
        by argument, which for 1,000 fields cost several times Redis' whole answer."""
        name = key.encode()
        packed = b"*%d\r\n$5\r\nHMGET\r\n$%d\r\n%s\r\n$16\r\n%s\r\n" % (
            len(fields) + 2,
            len(name),
            name,
            b"\r\n$16\r\n".join(fields),
        )
        pool = self.redis.connection_pool
        connection = await pool.get_connection()  # type: ignore[no-untyped-call]

        async def exchange() -> list[bytes | None]:
            await connection.send_packed_command(packed)
            return await connection.read_response()  # type: ignore[no-any-return]

        async def drop(_error: Exception) -> None:
            await connection.disconnect()  # a reply left half read must reach no one

        try:  # under the client's retry policy, as its own commands are
            reply: list[bytes | None] = await connection.retry.call_with_retry(exchange, drop)
        except BaseException:
            await connection.disconnect()
            raise
        finally:
            await pool.release(connection)
        return reply

    async def sids_of_device(self, app_id: uuid.UUID, device_id: str) -> list[str]:
        return await self._live_sids(self._device_key(app_id, device_id))

    async def sids_of_person(
        self, app_id: uuid.UUID, kind: Kind, person_id: uuid.UUID
    ) -> list[str]:
        return await self._live_sids(self._person_key(app_id, kind, person_id))

    async def sids_of_app(self, app_id: uuid.UUID, kind: Kind) -> list[str]:
        return await self._live_sids(self._app_key(app_id, kind))

    async def active_sessions(self, app_id: uuid.UUID, kind: Kind) -> list[dict[str, str]]:
        """Every live session of the app and kind: sid, person_id, device_id, connected_at (one
        round trip). Rows of a crashed process' sockets stay until pruned, but expired."""
        rows = cast(list[bytes], await self.redis.hvals(self._sessions_key(app_id, kind)))
        now = _millis(time.time())
        found: list[dict[str, str]] = json.loads(
            b"[" + b",".join([row[13:] for row in rows if row[:13] >= now]) + b"]"
        )
        return found

    async def _live_sids(self, key: str) -> list[str]:
        sids = await self.redis.zrangebyscore(key, time.time(), "+inf")
        return [_text(sid) for sid in sids]


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _parse_member(member: str) -> tuple[uuid.UUID, Kind, uuid.UUID]:
    app_id, kind, person_id = member.split("|")
    return uuid.UUID(app_id), kind, uuid.UUID(person_id)  # type: ignore[return-value]
