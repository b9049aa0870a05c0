"""Staff sign-in: passwords, login, refresh-token rotation with reuse detection, logout, and the
check every access token passes on every request.

Login is the one cross-tenant path here: an e-mail address does not name its app, so the address
alone is looked up with `system_session()`; everything after that runs in the app's tenant session.

Refresh tokens rotate: each is spent once by a conditional UPDATE (`used_at IS NULL`), so two
concurrent uses of one token cannot both win (the second waits for the first's row lock and then
finds it spent). Presenting a spent token again means it was copied: the whole sign-in is revoked,
including the access tokens issued from it, whoever holds them.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import bcrypt
import structlog
from sqlalchemy import and_, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from replyhq.accounts import tokens
from replyhq.accounts.models import RefreshToken, StaffSession, StaffUser
from replyhq.accounts.permissions import Role, StaffPrincipal
from replyhq.apps.models import App
from replyhq.db import on_commit
from replyhq.errors import BadRequest, Conflict, Unauthorized
from replyhq.events import Revoke, record
from replyhq.observability.errors import identify

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from replyhq.accounts.verifier import StaffVerifier
    from replyhq.runtime import Runtime
    from replyhq.settings import Settings

log = structlog.get_logger(__name__)

MAX_PASSWORD_BYTES = 72  # bcrypt's limit; longer passwords are refused when set


class InvalidCredentials(Unauthorized):
    code = "INVALID_CREDENTIALS"
    message = "The e-mail address or password is wrong."


class AppRequired(BadRequest):
    code = "APP_REQUIRED"
    message = "This address belongs to several apps: choose one and send its app_id."


__all__ = ["StaffPrincipal", "verify_access_token"]


# --- passwords ---------------------------------------------------------------------------------


def normalize_email(email: str) -> str:
    return email.strip().lower()


def hash_password(password: str, rounds: int) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds)).decode()


@lru_cache(maxsize=8)
def _dummy_hash(rounds: int) -> bytes:
    return bcrypt.hashpw(b"replyhq-no-such-staff-user", bcrypt.gensalt(rounds))


def check_password(password: str, stored: str | None, rounds: int) -> bool:
    """bcrypt's answer; with no stored hash (or an over-long password) the same work is done
    against a dummy hash, so that a miss takes what a hit takes."""
    raw = password.encode()
    usable = stored is not None and len(raw) <= MAX_PASSWORD_BYTES
    expected = stored.encode() if usable and stored else _dummy_hash(rounds)
    ok = bcrypt.checkpw(raw[:MAX_PASSWORD_BYTES], expected)
    return ok and usable


async def hash_password_async(password: str, rounds: int) -> str:
    return await asyncio.to_thread(hash_password, password, rounds)


# --- staff users ---------------------------------------------------------------------------------


async def create_staff(
    session: AsyncSession,
    app_id: uuid.UUID,
    *,
    email: str,
    password_hash: str,
    role: Role,
    name: str | None = None,
    verified: bool = True,
) -> StaffUser:
    """A new staff user of `app_id`; 409 when the address is already on the app's team.
    `verified=False`: the address is not proven yet (a self-service sign-up)."""
    unproven = {} if verified else {"email_verified_at": None}
    staff_id = await session.scalar(
        insert(StaffUser)
        .values(
            app_id=app_id,
            email=normalize_email(email),
            name=name,
            password_hash=password_hash,
            role=role.value,
            **unproven,
        )
        .on_conflict_do_nothing(index_elements=["app_id", "email"])
        .returning(StaffUser.id)
    )
    if staff_id is None:
        raise Conflict(
            "Someone with this e-mail address is already on the team.", code="STAFF_EXISTS"
        )
    staff = await session.get(StaffUser, staff_id)
    assert staff is not None
    return staff


# --- change notifications ------------------------------------------------------------------------


@dataclass(frozen=True)
class StaffChanges:
    """Tells every process, after commit, that a staff user's access changed: live sockets are
    ended (a Revoke event) and `{prefix}staff-changed` carries a JSON note for other listeners:
    `{app_id, staff_id, reason, session_id?}` with reason one of role_changed, deactivated,
    session_revoked."""

    redis: Redis | None
    channel: str
    verifier: StaffVerifier | None = None

    @classmethod
    def of(cls, runtime: Runtime) -> StaffChanges:
        return cls(runtime.redis, channel(runtime.settings), runtime.staff)

    def announce(
        self,
        session: AsyncSession,
        app_id: uuid.UUID,
        staff_id: uuid.UUID,
        reason: str,
        session_id: uuid.UUID | None = None,
    ) -> None:
        if session_id is None:
            record(session, Revoke(app_id, staff_id=staff_id))
        else:
            record(session, Revoke(app_id, staff_session_id=session_id))
        note: dict[str, Any] = {"app_id": str(app_id), "staff_id": str(staff_id), "reason": reason}
        if session_id is not None:
            note["session_id"] = str(session_id)
        verifier = self.verifier
        if verifier is not None:  # this process at once; the others when they hear the note

            async def evict() -> None:
                verifier.evict(staff_id)

            on_commit(session, evict)
        redis = self.redis
        if redis is not None:
            on_commit(session, lambda: _publish(redis, self.channel, note))


async def end_staff_access(
    session: AsyncSession,
    app_id: uuid.UUID,
    staff_id: uuid.UUID,
    reason: str,
    changes: StaffChanges,
) -> int:
    """Make every access token of the member stale and end their live sockets, in every process,
    once this transaction commits (password reset, sign-out everywhere; role changes and
    deactivation do the same). Bumps `token_version`, the member's access generation (returned),
    in this transaction: each staff socket re-checks it on its events and periodically, so the
    sockets end even if Redis cannot carry the news at that instant. Sign-ins (refresh chains)
    are ended separately, by revoke_sessions."""
    version: int = (
        await session.execute(
            update(StaffUser)
            .where(StaffUser.app_id == app_id, StaffUser.id == staff_id)
            .values(token_version=StaffUser.token_version + 1, updated_at=func.now())
            .returning(StaffUser.token_version)
        )
    ).scalar_one()
    changes.announce(session, app_id, staff_id, reason)
    return version


def channel(settings: Settings) -> str:
    return settings.redis_prefix + "staff-changed"


async def _publish(redis: Redis, name: str, note: dict[str, Any]) -> None:
    await redis.publish(name, json.dumps(note))


# --- sign-in sessions and token pairs ------------------------------------------------------------


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    refresh_expires_in: int
    staff: StaffUser


class SignInExpired(Unauthorized):
    code = "SIGN_IN_EXPIRED"
    message = "This sign-in has reached its maximum age; sign in again."


async def _issue_pair(
    session: AsyncSession,
    settings: Settings,
    staff: StaffUser,
    session_id: uuid.UUID,
    not_after: datetime,
) -> TokenPair:
    """A new refresh token in the sign-in `session_id` (extending it, never past `not_after`,
    the sign-in's absolute end) and an access token."""
    now = datetime.now(UTC)
    ttl = max(0, min(settings.refresh_token_ttl_seconds, int((not_after - now).total_seconds())))
    expires = now + timedelta(seconds=ttl)
    refresh = tokens.issue_refresh_token(
        settings,
        staff_id=staff.id,
        app_id=staff.app_id,
        session_id=session_id,
        expires_at=int(expires.timestamp()),
    )
    session.add(
        RefreshToken(
            app_id=staff.app_id,
            session_id=session_id,
            token_hash=tokens.token_hash(refresh),
            expires_at=expires,
        )
    )
    await session.execute(
        update(StaffSession)
        .where(StaffSession.app_id == staff.app_id, StaffSession.id == session_id)
        .values(expires_at=expires)
    )
    access = tokens.issue_access_token(
        settings,
        staff_id=staff.id,
        app_id=staff.app_id,
        session_id=session_id,
        role=staff.role,
        version=staff.token_version,
    )
    return TokenPair(access, refresh, settings.access_token_ttl_seconds, ttl, staff)


async def start_session(session: AsyncSession, settings: Settings, staff: StaffUser) -> TokenPair:
    """A new sign-in for an active staff user: a fresh refresh-token chain and its first pair."""
    now = datetime.now(UTC)
    expires = now + timedelta(seconds=settings.refresh_token_ttl_seconds)
    sign_in = StaffSession(app_id=staff.app_id, staff_id=staff.id, expires_at=expires)
    session.add(sign_in)
    await session.execute(
        update(StaffUser)
        .where(StaffUser.app_id == staff.app_id, StaffUser.id == staff.id)
        .values(last_login_at=func.now())
    )
    await session.flush()
    await session.refresh(staff)
    not_after = now + timedelta(seconds=settings.staff_session_max_age_seconds)
    return await _issue_pair(session, settings, staff, sign_in.id, not_after)


async def revoke_sessions(
    session: AsyncSession,
    app_id: uuid.UUID,
    reason: str,
    *,
    session_id: uuid.UUID | None = None,
    staff_id: uuid.UUID | None = None,
) -> list[uuid.UUID]:
    """End sign-ins (one, or all of a staff user's): their refresh and access tokens stop."""
    stmt = update(StaffSession).where(
        StaffSession.app_id == app_id, StaffSession.revoked_at.is_(None)
    )
    if session_id is not None:
        stmt = stmt.where(StaffSession.id == session_id)
    if staff_id is not None:
        stmt = stmt.where(StaffSession.staff_id == staff_id)
    ended = await session.scalars(
        stmt.values(revoked_at=func.now(), revoked_reason=reason).returning(StaffSession.id)
    )
    return list(ended)


# --- login -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Candidate:
    staff_id: uuid.UUID
    app_id: uuid.UUID
    app_name: str
    password_hash: str
    active: bool


async def login(
    runtime: Runtime, email: str, password: str, app_id: uuid.UUID | None = None
) -> TokenPair:
    """Tokens for the staff user with this address and password. Wrong address and wrong
    password are the same 401, after the same bcrypt work. When the password opens accounts in
    several apps and no app_id says which, 400 APP_REQUIRED lists those apps (and only those:
    the caller has proven the password for each)."""
    settings = runtime.settings
    address = normalize_email(email)
    stmt = (
        select(StaffUser.id, StaffUser.app_id, App.name, StaffUser.password_hash, StaffUser.active)
        .join(App, App.id == StaffUser.app_id)
        .where(StaffUser.email == address)
        .order_by(StaffUser.created_at)
        .limit(20)
    )
    if app_id is not None:
        stmt = stmt.where(StaffUser.app_id == app_id)
    async with runtime.db.system_session() as session:  # the address alone, across apps
        candidates = [_Candidate(*row) for row in (await session.execute(stmt)).all()]

    rounds = settings.bcrypt_rounds
    if not candidates:
        await asyncio.to_thread(check_password, password, None, rounds)
        raise InvalidCredentials()
    checks = await asyncio.gather(
        *(asyncio.to_thread(check_password, password, c.password_hash, rounds) for c in candidates)
    )
    matched = [c for c, ok in zip(candidates, checks, strict=True) if ok and c.active]
    if not matched:
        raise InvalidCredentials()
    if len(matched) > 1:
        apps = [{"id": str(c.app_id), "name": c.app_name} for c in matched]
        raise AppRequired(apps=apps)
    chosen = matched[0]
    async with runtime.db.tenant_session(chosen.app_id) as session:
        staff = await session.scalar(
            select(StaffUser)
            .where(
                StaffUser.app_id == chosen.app_id,
                StaffUser.id == chosen.staff_id,
                StaffUser.active.is_(True),
            )
            .with_for_update()
        )
        pair = await start_session(session, settings, staff) if staff is not None else None
    if pair is None:  # deactivated in the meantime
        raise InvalidCredentials()
    return pair


# --- refresh and logout ------------------------------------------------------------------------


async def refresh(runtime: Runtime, refresh_token: str) -> TokenPair:
    """Spend `refresh_token` and return a new pair in the same sign-in."""
    settings = runtime.settings
    claims = tokens.decode_refresh_token(settings, refresh_token)
    digest = tokens.token_hash(refresh_token)
    reused = too_old = False
    pair: TokenPair | None = None
    async with runtime.db.tenant_session(claims.app_id) as session:
        spent = await session.scalar(
            update(RefreshToken)
            .where(
                RefreshToken.app_id == claims.app_id,
                RefreshToken.token_hash == digest,
                RefreshToken.used_at.is_(None),
                RefreshToken.expires_at > func.now(),
            )
            .values(used_at=func.now())
            .returning(RefreshToken.session_id)
        )
        if spent is None:
            used_at = await session.scalar(
                select(RefreshToken.used_at).where(
                    RefreshToken.app_id == claims.app_id, RefreshToken.token_hash == digest
                )
            )
            if used_at is not None:
                # A spent token presented again: someone has a copy. End the whole sign-in.
                reused = True
                ended = await revoke_sessions(
                    session, claims.app_id, "refresh_reuse", session_id=claims.session_id
                )
                changes = StaffChanges.of(runtime)
                for session_id in ended:
                    changes.announce(
                        session, claims.app_id, claims.staff_id, "session_revoked", session_id
                    )
        else:
            live = await _live_staff(session, claims.app_id, spent)
            if live is not None:
                staff, started = live
                not_after = started + timedelta(seconds=settings.staff_session_max_age_seconds)
                if not_after <= datetime.now(UTC):
                    too_old = True
                    for gone in await revoke_sessions(
                        session, claims.app_id, "max_age", session_id=spent
                    ):
                        StaffChanges.of(runtime).announce(
                            session, claims.app_id, staff.id, "session_revoked", gone
                        )
                else:
                    pair = await _issue_pair(session, settings, staff, spent, not_after)
    if reused:
        log.warning(
            "refresh_token_reused", app_id=str(claims.app_id), staff_id=str(claims.staff_id)
        )
        raise Unauthorized(
            "This refresh token was already used; the sign-in has been ended. Log in again.",
            code="REFRESH_TOKEN_REUSED",
        )
    if too_old:
        raise SignInExpired()
    if pair is None:
        raise Unauthorized(
            "The refresh token is not valid; log in again.", code="INVALID_REFRESH_TOKEN"
        )
    return pair


async def _live_staff(
    session: AsyncSession, app_id: uuid.UUID, session_id: uuid.UUID
) -> tuple[StaffUser, datetime] | None:
    """The staff user of a sign-in that is neither revoked nor expired, if still active, and
    when the sign-in started."""
    row = (
        await session.execute(
            select(StaffUser, StaffSession.created_at)
            .join(
                StaffSession,
                and_(
                    StaffSession.staff_id == StaffUser.id, StaffSession.app_id == StaffUser.app_id
                ),
            )
            .where(
                StaffSession.app_id == app_id,
                StaffSession.id == session_id,
                StaffSession.revoked_at.is_(None),
                StaffSession.expires_at > func.now(),
                StaffUser.active.is_(True),
            )
        )
    ).first()
    return None if row is None else (row[0], row[1])


async def logout(runtime: Runtime, *, access_token: str | None, refresh_token: str | None) -> None:
    """End the sign-in named by a genuine, unexpired access token or refresh token (either will
    do: a token made stale by a role change can still end its own sign-in). Idempotent."""
    settings = runtime.settings
    claims: tokens.AccessClaims | tokens.RefreshClaims | None = None
    failure: Unauthorized | None = None
    if access_token is not None:
        try:
            claims = tokens.decode_access_token(settings, access_token)
        except Unauthorized as exc:
            failure = exc
    if claims is None and refresh_token is not None:
        claims = tokens.decode_refresh_token(settings, refresh_token)
    if claims is None:
        raise failure or Unauthorized(
            "Send the access token or the refresh token to log out.", code="AUTH_REQUIRED"
        )
    async with runtime.db.tenant_session(claims.app_id) as session:
        ended = await revoke_sessions(
            session, claims.app_id, "logout", session_id=claims.session_id
        )
        changes = StaffChanges.of(runtime)
        for session_id in ended:
            changes.announce(session, claims.app_id, claims.staff_id, "session_revoked", session_id)


# --- every request -------------------------------------------------------------------------------


async def verify_access_token(runtime: Runtime, token: str) -> StaffPrincipal:
    """The staff user an access token speaks for, as of now: the signature, audience, issuer and
    expiry are checked, then (one indexed read, remembered per process until the member's access
    changes; see replyhq.accounts.verifier) that the member is active, their role and standing
    have not changed since the token was issued (`token_version`), and the sign-in has not
    ended. Raises Unauthorized otherwise. Used by HTTP and Socket.IO alike."""
    claims = tokens.decode_access_token(runtime.settings, token)
    state = await runtime.staff.check(claims)
    if state == "TOKEN_REVOKED":
        raise Unauthorized("This sign-in has ended; log in again.", code="TOKEN_REVOKED")
    if isinstance(state, str):
        raise Unauthorized("Your access changed; refresh the token.", code="TOKEN_STALE")
    identify(app_id=claims.app_id, staff_id=claims.staff_id, role=state.role)  # logs, Sentry
    return StaffPrincipal(
        app_id=claims.app_id,
        role=Role(state.role),
        staff_id=claims.staff_id,
        session_id=claims.session_id,
        email=state.email,
        name=state.name,
        expires_at=claims.expires_at,
    )
