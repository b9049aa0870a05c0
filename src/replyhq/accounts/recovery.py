"""Password resets and e-mail address changes, both proven by a link sent by e-mail.

A link carries a single-use token (`rhq_pwr_…` / `rhq_eml_…`, 256 random bits, stored as its
SHA-256) that expires soon (PASSWORD_RESET_TTL_SECONDS, EMAIL_CHANGE_TTL_SECONDS). A token is
spent by a conditional UPDATE (`used_at IS NULL`), so of two concurrent uses at most one wins.

- A reset request names only an address; `request_password_reset` (run as a job, so that the
  request costs the same whether or not the address exists) mails a link to each active
  account with that address. Setting the new password spends every outstanding reset token of
  the member and ends all their sign-ins, exactly as deactivation does: every refresh token,
  access token and live socket stops.
- An e-mail change takes effect only when the link mailed to the new address is followed; the
  old address is then told.
"""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from replyhq.accounts import link_tokens, mails, tokens
from replyhq.accounts.models import StaffToken, StaffUser
from replyhq.accounts.service import (
    StaffChanges,
    end_staff_access,
    normalize_email,
    revoke_sessions,
)
from replyhq.apps.models import App
from replyhq.db import Database
from replyhq.errors import BadRequest, Conflict
from replyhq.settings import Settings

PASSWORD_RESET = "password_reset"  # noqa: S105 - a purpose, not a secret
EMAIL_CHANGE = "email_change"


def invalid_reset() -> BadRequest:
    return BadRequest(
        "This password-reset link is not valid: it may have expired or been used. "
        "Ask for a new one.",
        code="RESET_TOKEN_INVALID",
    )


def invalid_email_change() -> BadRequest:
    return BadRequest(
        "This confirmation link is not valid: it may have expired or been used.",
        code="EMAIL_CHANGE_TOKEN_INVALID",
    )


def address_taken() -> Conflict:
    return Conflict("Someone with this e-mail address is already on the team.", code="STAFF_EXISTS")


async def _spend(
    session: AsyncSession, app_id: uuid.UUID, token: str, purpose: str
) -> tuple[StaffUser, StaffToken] | None:
    """Spend a live token: its (active, row-locked) member and row, or None."""
    spent = await link_tokens.spend(session, app_id, token, purpose)
    if spent is None:
        return None
    staff: StaffUser | None = await session.scalar(
        select(StaffUser)
        .where(
            StaffUser.app_id == app_id,
            StaffUser.id == spent.staff_id,
            StaffUser.active.is_(True),
        )
        .with_for_update()
    )
    return (staff, spent) if staff is not None else None


# --- password reset ------------------------------------------------------------------------------


async def request_password_reset(db: Database, settings: Settings, email: str) -> int:
    """Mail a reset link to every active account with this address; how many were sent."""
    address = normalize_email(email)
    async with db.system_session() as session:  # an address alone names no app
        accounts = (
            await session.execute(
                select(StaffUser.id, StaffUser.app_id)
                .join(App, App.id == StaffUser.app_id)
                .where(StaffUser.email == address, StaffUser.active.is_(True))
                .limit(20)
            )
        ).all()
    for staff_id, app_id in accounts:
        async with db.tenant_session(app_id) as session:
            staff = await session.get(StaffUser, staff_id, with_for_update=True)
            if staff is None or not staff.active or staff.email != address:
                continue
            token = await link_tokens.issue(
                session,
                staff,
                PASSWORD_RESET,
                tokens.RESET_PREFIX,
                settings.password_reset_ttl_seconds,
            )
            await mails.password_reset(session, settings, app_id, email=address, token=token)
    return len(accounts)


async def reset_password(
    session: AsyncSession,
    app_id: uuid.UUID,
    token: str,
    password_hash: str,
    changes: StaffChanges,
) -> StaffUser:
    """Set a new password with a reset token; every sign-in of the member ends."""
    found = await _spend(session, app_id, token, PASSWORD_RESET)
    if found is None:
        raise invalid_reset()
    staff, _ = found
    staff.password_hash = password_hash
    await session.flush()
    await link_tokens.spend_all(session, staff, PASSWORD_RESET)
    await revoke_sessions(session, app_id, "password_reset", staff_id=staff.id)
    # As deactivation: access tokens go stale and live sockets end, even without Redis.
    await end_staff_access(session, app_id, staff.id, "password_reset", changes)
    await session.refresh(staff)
    return staff


# --- e-mail change -------------------------------------------------------------------------------


async def _address_free(
    session: AsyncSession, app_id: uuid.UUID, address: str, staff_id: uuid.UUID
) -> bool:
    taken = await session.scalar(
        select(StaffUser.id).where(
            StaffUser.app_id == app_id, StaffUser.email == address, StaffUser.id != staff_id
        )
    )
    return taken is None


async def request_email_change(
    session: AsyncSession, settings: Settings, staff: StaffUser, new_email: str
) -> str:
    """Mail a confirmation link to the new address; nothing changes until it is followed."""
    address = normalize_email(new_email)
    if address == staff.email:
        raise BadRequest("This is already your e-mail address.", code="SAME_EMAIL")
    if not await _address_free(session, staff.app_id, address, staff.id):
        raise address_taken()
    token = await link_tokens.issue(
        session,
        staff,
        EMAIL_CHANGE,
        tokens.EMAIL_CHANGE_PREFIX,
        settings.email_change_ttl_seconds,
        new_email=address,
    )
    await mails.email_change(
        session, settings, staff.app_id, old_email=staff.email, new_email=address, token=token
    )
    return address


async def confirm_email_change(
    session: AsyncSession, app_id: uuid.UUID, token: str, changes: StaffChanges
) -> StaffUser:
    """Switch the member to the address the token was mailed to, and tell the old address."""
    found = await _spend(session, app_id, token, EMAIL_CHANGE)
    if found is None:
        raise invalid_email_change()
    staff, spent = found
    assert spent.new_email is not None
    if not await _address_free(session, app_id, spent.new_email, staff.id):
        raise address_taken()
    old_email = staff.email
    staff.email = spent.new_email
    staff.email_verified_at = func.now()  # the link's mail reached the new address
    staff.updated_at = func.now()
    await session.flush()
    await mails.email_changed(session, app_id, old_email=old_email, new_email=spent.new_email)
    changes.announce(session, app_id, staff.id, "email_changed")  # caches forget the address
    await session.refresh(staff)
    return staff
