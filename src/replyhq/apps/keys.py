"""API keys: generation, bcrypt storage, and verification that costs one bcrypt per key, not
per request.

A verified key is remembered by the SHA-256 digest of (kind, app id, key) for a short TTL.
Rotation evicts it in every process at once through a Redis channel; while that channel is not
subscribed, nothing is cached, so a rotation can never be missed. Verification is single-flight
per digest: requests that arrive with one key while its bcrypt runs wait for that check instead
of each paying their own (a restart, or an expired entry, under many clients of one app).
A wrong key is remembered too (REJECTED_TTL_SECONDS), under the same eviction rules: a client
retrying it costs no bcrypt, and its failure counts once towards the address' limit.

A verified key in use is checked again before its entry runs out (in the last REFRESH_AHEAD of its
TTL, by the first request that finds it there, in the background): requests go on being answered
from the entry meanwhile, which the check renews (or drops, if the key no longer verifies). An
entry that simply ran out made every request with that key wait for one bcrypt (~250 ms at cost
12), once a TTL: a 200-400 ms stall of a busy app's whole SDK traffic every minute (issue 21).
No verdict is trusted longer than the TTL: an entry not renewed by then is gone as before.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Literal

import bcrypt
import structlog
from redis.asyncio import Redis
from sqlalchemy import select

from replyhq.apps.models import App
from replyhq.db import Database
from replyhq.errors import Unauthorized

log = structlog.get_logger(__name__)

KeyKind = Literal["sdk", "secret"]
PREFIXES: dict[KeyKind, str] = {"sdk": "rhq_sdk_", "secret": "rhq_sk_"}
MAX_KEY_LENGTH = 72  # bcrypt's own limit; every key we issue is far shorter
# Checked against when the app does not exist, so that a miss costs what a hit costs. A constant
# (cost 12, of random bytes) rather than hashed at import: that cost every process 0.3 s to start.
_DUMMY_HASH = b"$2b$12$zgN2hNbFXxrmtbsTwYjh2OjKMxbO52B1DaLgoZE49mAvxHhw.VIZm"
# A wrong key is remembered this long: a client repeating it (a tab still holding a rotated key)
# is answered without bcrypt, and its failure is counted once, not at every retry.
REJECTED_TTL_SECONDS = 900.0
MAX_REJECTED = 10_000  # then forgotten all at once: a bound, not an eviction policy
# The last share of a verified entry's TTL in which a request using it starts its re-check.
REFRESH_AHEAD = 0.2


class RepeatedKeyFailure(Unauthorized):
    """A key already found wrong, answered from memory (its failure was counted the first time)."""

    code = "INVALID_CREDENTIALS"
    message = "Missing or invalid API key."


@dataclass(frozen=True)
class AppKeys:
    sdk_key: str
    secret_key: str
    identity_secret: str


def generate_keys() -> AppKeys:
    return AppKeys(
        sdk_key=PREFIXES["sdk"] + secrets.token_urlsafe(32),
        secret_key=PREFIXES["secret"] + secrets.token_urlsafe(32),
        identity_secret=secrets.token_hex(32),
    )


def hash_key(key: str, rounds: int) -> str:
    return bcrypt.hashpw(key.encode(), bcrypt.gensalt(rounds)).decode()


def parse_app_id(raw: str | None) -> uuid.UUID:
    try:
        return uuid.UUID(raw or "")
    except ValueError:
        raise Unauthorized("Missing or invalid app id.", code="INVALID_CREDENTIALS") from None


class KeyVerifier:
    def __init__(self, db: Database, redis: Redis, channel: str, ttl_seconds: float) -> None:
        self._db = db
        self._redis = redis
        self.channel = channel
        self._ttl = ttl_seconds
        self._cache: dict[bytes, tuple[uuid.UUID, float]] = {}
        self._rejected: dict[bytes, tuple[uuid.UUID, float]] = {}  # wrong keys, same shape
        # Checks in progress, by digest: later callers with the same key await the same task.
        self._checking: dict[bytes, tuple[uuid.UUID, asyncio.Task[bool]]] = {}
        # Bumped by every eviction, so a check that read the hash before a rotation is not cached.
        self._generation = 0
        self._listening = False
        self.bcrypt_checks = 0  # bcrypt verifications run by this process (tests, benchmarks)

    @property
    def caching(self) -> bool:
        """Whether verified keys are being remembered (only while rotations can be heard)."""
        return self._listening and self._ttl > 0

    async def verify(self, app_id: uuid.UUID, key: str | None, kind: KeyKind) -> uuid.UUID:
        """The app id when `key` is the app's current key of `kind`; Unauthorized otherwise."""
        digest = self.digest(app_id, key, kind)
        if digest is None:
            raise Unauthorized("Missing or invalid API key.", code="INVALID_CREDENTIALS")
        assert key is not None
        if self.cached(digest, key, kind) is None:
            if _fresh(self._rejected.get(digest)):
                raise RepeatedKeyFailure()
            # Shielded: a caller that goes away (client disconnect) must not cancel the check
            # that other callers with the same key are waiting for.
            if not await asyncio.shield(self._checking_task(digest, app_id, key, kind)):
                raise Unauthorized("Missing or invalid API key.", code="INVALID_CREDENTIALS")
        return app_id

    def digest(self, app_id: uuid.UUID, key: str | None, kind: KeyKind) -> bytes | None:
        """The cache key of a well-formed key; None for one that can never verify."""
        if not key or len(key) > MAX_KEY_LENGTH or not key.startswith(PREFIXES[kind]):
            return None
        # Every claim a cached verdict vouches for: the app, the kind and the key. (The kinds'
        # prefixes already differ; naming the kind keeps that from being load-bearing.)
        return hashlib.sha256(f"{kind}:{app_id}:{key}".encode()).digest()

    def cached(
        self, digest: bytes, key: str | None = None, kind: KeyKind = "sdk"
    ) -> uuid.UUID | None:
        """The app id of a key verified recently, without waiting for any I/O; None when not
        cached. Given the key itself (`digest`'s), an entry in the last REFRESH_AHEAD of its
        life is checked again in the background, so that it is renewed before it runs out."""
        cached = self._cache.get(digest)
        if cached is None:
            return None
        app_id, until = cached
        left = until - time.monotonic()
        if left <= 0:
            return None
        if key is not None and left < self._ttl * REFRESH_AHEAD and digest not in self._checking:
            self._checking_task(digest, app_id, key, kind).add_done_callback(_refresh_done)
        return app_id

    async def _check(
        self, digest: bytes, app_id: uuid.UUID, key: str, kind: KeyKind, generation: int
    ) -> bool:
        async with self._db.tenant_session(app_id) as session:
            column = App.sdk_key_hash if kind == "sdk" else App.secret_key_hash
            stored = await session.scalar(select(column).where(App.id == app_id))
        expected = stored.encode() if stored else _DUMMY_HASH
        self.bcrypt_checks += 1
        ok = await asyncio.to_thread(bcrypt.checkpw, key.encode(), expected)
        ok = ok and stored is not None
        if not ok:
            self._cache.pop(digest, None)  # a re-check in the background found it wrong
        if self.caching and generation == self._generation:
            if ok:
                self._cache[digest] = (app_id, time.monotonic() + self._ttl)
            else:
                if len(self._rejected) >= MAX_REJECTED:
                    self._rejected.clear()
                self._rejected[digest] = (app_id, time.monotonic() + REJECTED_TTL_SECONDS)
        return ok

    def _checking_task(
        self, digest: bytes, app_id: uuid.UUID, key: str, kind: KeyKind
    ) -> asyncio.Task[bool]:
        """The check of this digest in progress, or a new one."""
        found = self._checking.get(digest)
        if found is not None:
            return found[1]
        task = asyncio.create_task(self._check(digest, app_id, key, kind, self._generation))
        self._checking[digest] = (app_id, task)

        def forget(_: object) -> None:
            if self._checking.get(digest, (None, None))[1] is task:
                del self._checking[digest]

        task.add_done_callback(forget)
        return task

    def evict(self, app_id: uuid.UUID) -> None:
        self._generation += 1
        for remembered in (self._cache, self._rejected):
            for digest in [d for d, (a, _) in remembered.items() if a == app_id]:
                remembered.pop(digest, None)
        # A check in flight may have read the old hash: later callers start a fresh one.
        for digest in [d for d, (a, _) in self._checking.items() if a == app_id]:
            self._checking.pop(digest, None)

    async def announce_rotation(self, app_id: uuid.UUID) -> None:
        self.evict(app_id)
        await self._redis.publish(self.channel, str(app_id))

    async def listen(self) -> None:
        """Evict rotated apps' keys as other processes announce them; runs for the process' life."""
        delay = 0.2
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(self.channel)
                    self._listening = True
                    delay = 0.2
                    async for message in pubsub.listen():
                        if message["type"] == "message":
                            self.evict(uuid.UUID(message["data"].decode()))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("key_rotation_listener_lost", error=str(exc))
            finally:
                # Without the channel a rotation elsewhere could go unheard: trust nothing cached.
                self._listening = False
                self._cache.clear()
                self._rejected.clear()
                self._generation += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


def _refresh_done(task: asyncio.Task[bool]) -> None:
    """A background re-check's end: nobody awaits it, so its failure (PostgreSQL away) is
    logged here; the entry then runs out as before and the next request checks in the open."""
    if not task.cancelled() and task.exception() is not None:
        log.warning("key_refresh_failed", error=str(task.exception()))


def _fresh(entry: tuple[uuid.UUID, float] | None) -> bool:
    return entry is not None and entry[1] > time.monotonic()
