"""An app's team: listing, invitations, role changes and deactivation.

Changes to the team of one app are serialised by a transaction-level advisory lock, so that the
rule "an app always keeps an active OWNER" holds even when two owners demote each other at once.
Every change of role or standing bumps the staff user's `token_version` (their access tokens stop
at once) and is announced after commit (live sockets end; `staff-changed` is published).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from replyhq.accounts import tokens
from replyhq.accounts.models import StaffInvite, StaffUser
from replyhq.accounts.permissions import Role, StaffPrincipal
from replyhq.accounts.service import StaffChanges, normalize_email, revoke_sessions
from replyhq.errors import BadRequest, Conflict, NotFound
from replyhq.events import Event, record


async def _lock_team(session: AsyncSession, app_id: uuid.UUID) -> None:
    await session.execute(
        select(func.pg_advisory_xact_lock(func.hashtextextended(f"team:{app_id}", 0)))
    )


async def list_team(session: AsyncSession, app_id: uuid.UUID) -> list[StaffUser]:
    return list(
        await session.scalars(
            select(StaffUser)
            .where(StaffUser.app_id == app_id)
            .order_by(StaffUser.created_at, StaffUser.id)
        )
    )


async def active_staff(
    session: AsyncSession, app_id: uuid.UUID, staff_id: uuid.UUID
) -> StaffUser | None:
    staff: StaffUser | None = await session.scalar(
        select(StaffUser).where(
            StaffUser.app_id == app_id, StaffUser.id == staff_id, StaffUser.active.is_(True)
        )
    )
    return staff


async def _member(session: AsyncSession, app_id: uuid.UUID, staff_id: uuid.UUID) -> StaffUser:
    staff: StaffUser | None = await session.scalar(
        select(StaffUser)
        .where(StaffUser.app_id == app_id, StaffUser.id == staff_id)
        .with_for_update()
    )
    if staff is None:
        raise NotFound("No such team member.", code="STAFF_NOT_FOUND")
    return staff


async def _other_active_owners(session: AsyncSession, app_id: uuid.UUID, but: uuid.UUID) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(StaffUser)
        .where(
            StaffUser.app_id == app_id,
            StaffUser.role == Role.OWNER.value,
            StaffUser.active.is_(True),
            StaffUser.id != but,
        )
    )
    return int(count or 0)


async def _keep_an_owner(session: AsyncSession, staff: StaffUser) -> None:
    if (
        staff.role == Role.OWNER.value
        and staff.active
        and await _other_active_owners(session, staff.app_id, staff.id) == 0
    ):
        raise Conflict("An app must keep at least one active OWNER.", code="LAST_OWNER")


async def change_role(
    session: AsyncSession,
    actor: StaffPrincipal,
    staff_id: uuid.UUID,
    role: Role,
    changes: StaffChanges,
) -> StaffUser:
    await _lock_team(session, actor.app_id)
    staff = await _member(session, actor.app_id, staff_id)
    if staff.role == role.value:
        return staff
    if Role.OWNER in (role, Role(staff.role)):
        actor.require("team:owners")
    if role != Role.OWNER:
        await _keep_an_owner(session, staff)
    staff.role = role.value
    staff.token_version += 1
    staff.updated_at = func.now()
    await session.flush()
    await session.refresh(staff)
    changes.announce(session, actor.app_id, staff.id, "role_changed")
    return staff


async def deactivate(
    session: AsyncSession, actor: StaffPrincipal, staff_id: uuid.UUID, changes: StaffChanges
) -> None:
    """Take a member off the team: sign-ins end and tokens stop now. Idempotent."""
    await _lock_team(session, actor.app_id)
    staff = await _member(session, actor.app_id, staff_id)
    if not staff.active:
        return
    if staff.role == Role.OWNER.value:
        actor.require("team:owners")
    await _keep_an_owner(session, staff)
    staff.active = False
    staff.token_version += 1
    staff.updated_at = func.now()
    await session.flush()
    await revoke_sessions(session, actor.app_id, "deactivated", staff_id=staff.id)
    changes.announce(session, actor.app_id, staff.id, "deactivated")
    from replyhq.workspace import assignment  # it builds on messaging, which builds on this

    await assignment.reassign_from(session, actor.app_id, staff.id)


async def reactivate(
    session: AsyncSession, actor: StaffPrincipal, staff_id: uuid.UUID
) -> StaffUser:
    """Bring a deactivated member back with their role and password; they sign in again (their
    old sign-ins stay ended). Idempotent. Bringing back an OWNER needs `team:owners`."""
    await _lock_team(session, actor.app_id)
    staff = await _member(session, actor.app_id, staff_id)
    if staff.active:
        return staff
    if staff.role == Role.OWNER.value:
        actor.require("team:owners")
    staff.active = True
    staff.updated_at = func.now()
    await session.flush()
    await session.refresh(staff)
    return staff


# --- invitations ---------------------------------------------------------------------------------


async def list_invites(session: AsyncSession, app_id: uuid.UUID) -> list[StaffInvite]:
    """Invitations that can still be accepted."""
    return list(
        await session.scalars(
            select(StaffInvite)
            .where(
                StaffInvite.app_id == app_id,
                StaffInvite.accepted_at.is_(None),
                StaffInvite.revoked_at.is_(None),
                StaffInvite.expires_at > func.now(),
            )
            .order_by(StaffInvite.created_at, StaffInvite.id)
        )
    )


async def invite(
    session: AsyncSession,
    actor: StaffPrincipal,
    email: str,
    role: Role,
    *,
    ttl_seconds: int,
) -> tuple[StaffInvite, str]:
    """A single-use invitation to `email`; any earlier pending one to that address is revoked."""
    if role == Role.OWNER:
        actor.require("team:owners")
    address = normalize_email(email)
    await _lock_team(session, actor.app_id)
    member = await session.scalar(
        select(StaffUser.id).where(
            StaffUser.app_id == actor.app_id,
            StaffUser.email == address,
            StaffUser.active.is_(True),
        )
    )
    if member is not None:
        raise Conflict(
            "Someone with this e-mail address is already on the team.", code="STAFF_EXISTS"
        )
    await session.execute(
        update(StaffInvite)
        .where(
            StaffInvite.app_id == actor.app_id,
            StaffInvite.email == address,
            StaffInvite.accepted_at.is_(None),
            StaffInvite.revoked_at.is_(None),
        )
        .values(revoked_at=func.now())
    )
    token = tokens.new_invite_token(actor.app_id)
    pending = StaffInvite(
        app_id=actor.app_id,
        email=address,
        role=role.value,
        token_hash=tokens.token_hash(token),
        invited_by=actor.staff_id,
        expires_at=datetime.now(UTC) + timedelta(seconds=ttl_seconds),
    )
    session.add(pending)
    await session.flush()
    await session.refresh(pending)
    # Heard by no socket as such: the onboarding checklist reacts to it.
    record(session, Event("team:invited", actor.app_id, {"role": role.value}))
    return pending, token


async def revoke_invite(session: AsyncSession, app_id: uuid.UUID, invite_id: uuid.UUID) -> None:
    revoked = await session.scalar(
        update(StaffInvite)
        .where(
            StaffInvite.app_id == app_id,
            StaffInvite.id == invite_id,
            StaffInvite.accepted_at.is_(None),
        )
        .values(revoked_at=func.coalesce(StaffInvite.revoked_at, func.now()))
        .returning(StaffInvite.id)
    )
    if revoked is None:
        raise NotFound("No such pending invitation.", code="INVITE_NOT_FOUND")


async def accept_invite(
    session: AsyncSession,
    app_id: uuid.UUID,
    token: str,
    *,
    password_hash: str,
    name: str,
    changes: StaffChanges,
) -> StaffUser:
    """Spend the invitation and put its address on the team with the invited role (a former,
    deactivated member comes back with the new password)."""
    await _lock_team(session, app_id)
    accepted = (
        await session.execute(
            update(StaffInvite)
            .where(
                StaffInvite.app_id == app_id,
                StaffInvite.token_hash == tokens.token_hash(token),
                StaffInvite.accepted_at.is_(None),
                StaffInvite.revoked_at.is_(None),
                StaffInvite.expires_at > func.now(),
            )
            .values(accepted_at=func.now())
            .returning(StaffInvite.email, StaffInvite.role)
        )
    ).first()
    if accepted is None:
        raise invalid_invite()
    existing = await session.scalar(
        select(StaffUser)
        .where(StaffUser.app_id == app_id, StaffUser.email == accepted.email)
        .with_for_update()
    )
    if existing is not None and existing.active:
        raise Conflict("You are already on this team; log in instead.", code="STAFF_EXISTS")
    if existing is not None:
        existing.active = True
        existing.role = accepted.role
        existing.name = name
        existing.password_hash = password_hash
        existing.token_version += 1
        existing.updated_at = func.now()
        await session.flush()
        await session.refresh(existing)
        changes.announce(session, app_id, existing.id, "role_changed")
        return existing
    staff = StaffUser(
        app_id=app_id,
        email=accepted.email,
        name=name,
        password_hash=password_hash,
        role=accepted.role,
    )
    session.add(staff)
    await session.flush()
    await session.refresh(staff)
    return staff


def invalid_invite() -> BadRequest:
    return BadRequest(
        "This invitation is not valid: it may have expired or been used.", code="INVITE_INVALID"
    )
