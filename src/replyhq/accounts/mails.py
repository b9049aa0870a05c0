"""The e-mails of staff accounts (invitations, password resets, e-mail changes): which template,
with which values and which dashboard link. Each is queued in the caller's transaction."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from replyhq.accounts.permissions import StaffPrincipal
from replyhq.apps.models import App
from replyhq.mail.service import link, send_mail
from replyhq.settings import Settings


async def app_name(session: AsyncSession, app_id: uuid.UUID) -> str:
    return str(await session.scalar(select(App.name).where(App.id == app_id)) or "ReplyHQ")


def dashboard_link(settings: Settings, screen: str, token: str) -> str:
    """The dashboard screen that spends `token`; the token in the fragment, never sent over HTTP."""
    if settings.dashboard_url:
        return f"{settings.dashboard_url.rstrip('/')}/{screen}#token={token}"
    return link(settings, f"/dashboard/{screen}#token={token}")


def duration(seconds: int) -> str:
    """ "30 minutes", "24 hours", "1 hour": how long a link works, for people."""
    if seconds % 3600 == 0:
        hours = seconds // 3600
        return f"{hours} hour{'s' if hours != 1 else ''}"
    minutes = max(1, seconds // 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


async def invitation(
    session: AsyncSession,
    settings: Settings,
    actor: StaffPrincipal,
    *,
    email: str,
    role: str,
    token: str,
    expires_at: datetime,
) -> None:
    context = {
        "inviter": actor.name or actor.email or "Your team",
        "app_name": await app_name(session, actor.app_id),
        "role": role,
        "link": dashboard_link(settings, "invite", token),
        "expires_at": _when(expires_at),
    }
    await send_mail(session, email, "invite", context, app_id=actor.app_id)


async def password_reset(
    session: AsyncSession, settings: Settings, app_id: uuid.UUID, *, email: str, token: str
) -> None:
    context = {
        "app_name": await app_name(session, app_id),
        "email": email,
        "valid_for": duration(settings.password_reset_ttl_seconds),
        "link": dashboard_link(settings, "reset-password", token),
    }
    await send_mail(session, email, "password_reset", context, app_id=app_id)


async def email_change(
    session: AsyncSession,
    settings: Settings,
    app_id: uuid.UUID,
    *,
    old_email: str,
    new_email: str,
    token: str,
) -> None:
    context = {
        "app_name": await app_name(session, app_id),
        "old_email": old_email,
        "new_email": new_email,
        "valid_for": duration(settings.email_change_ttl_seconds),
        "link": dashboard_link(settings, "confirm-email", token),
    }
    await send_mail(session, new_email, "email_change", context, app_id=app_id)


async def email_changed(
    session: AsyncSession, app_id: uuid.UUID, *, old_email: str, new_email: str
) -> None:
    context = {
        "app_name": await app_name(session, app_id),
        "old_email": old_email,
        "new_email": new_email,
    }
    await send_mail(session, old_email, "email_changed", context, app_id=app_id)
