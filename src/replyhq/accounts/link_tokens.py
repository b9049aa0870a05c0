"""Single-use tokens that a link in an e-mail carries (password reset, e-mail change, e-mail
verification): 256 random bits with a prefix naming the purpose, stored as their SHA-256, expiring
soon. A token is spent by a conditional UPDATE (`used_at IS NULL`), so of two concurrent uses at
most one wins; issuing a new one spends the member's earlier unspent tokens of that purpose."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, update
from sqlalchemy.ext.asyncio import AsyncSession

from replyhq.accounts import tokens
from replyhq.accounts.models import StaffToken, StaffUser


async def issue(
    session: AsyncSession,
    staff: StaffUser,
    purpose: str,
    prefix: str,
    ttl_seconds: int,
    new_email: str | None = None,
) -> str:
    """A new link token; any earlier unspent one of the same purpose stops working."""
    await spend_all(session, staff, purpose)
    token = tokens.new_link_token(prefix, staff.app_id)
    session.add(
        StaffToken(
            app_id=staff.app_id,
            staff_id=staff.id,
            purpose=purpose,
            token_hash=tokens.token_hash(token),
            new_email=new_email,
            expires_at=datetime.now(UTC) + timedelta(seconds=ttl_seconds),
        )
    )
    await session.flush()
    return token


async def spend_all(session: AsyncSession, staff: StaffUser, purpose: str) -> None:
    await session.execute(
        update(StaffToken)
        .where(
            StaffToken.app_id == staff.app_id,
            StaffToken.staff_id == staff.id,
            StaffToken.purpose == purpose,
            StaffToken.used_at.is_(None),
        )
        .values(used_at=func.now())
    )


async def spend(
    session: AsyncSession, app_id: uuid.UUID, token: str, purpose: str
) -> StaffToken | None:
    """Spend a live token of `purpose`: its row, or None (unknown, used or expired)."""
    spent: StaffToken | None = await session.scalar(
        update(StaffToken)
        .where(
            StaffToken.app_id == app_id,
            StaffToken.token_hash == tokens.token_hash(token),
            StaffToken.purpose == purpose,
            StaffToken.used_at.is_(None),
            StaffToken.expires_at > func.now(),
        )
        .values(used_at=func.now())
        .returning(StaffToken)
    )
    return spent
