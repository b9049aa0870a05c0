"""Self-service sign-up: an app, its first OWNER signed in at once, and the owner's address proven
later by the link of a verification e-mail (an unverified owner uses the product meanwhile).

Sign-up is a cross-tenant path like POST /setup/apps (the app does not exist yet): it runs in one
`system_session()` transaction, so either the app, its owner, its onboarding row, the sign-in
and the queued verification mail all exist, or none does.
"""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from zxcvbn import zxcvbn

from replyhq.accounts import link_tokens, mails, tokens
from replyhq.accounts import service as accounts
from replyhq.accounts.models import StaffUser
from replyhq.accounts.permissions import Role
from replyhq.accounts.service import TokenPair, normalize_email
from replyhq.apps import service as apps
from replyhq.apps.keys import AppKeys
from replyhq.apps.models import App
from replyhq.billing import service as billing
from replyhq.errors import BadRequest, Conflict, Forbidden
from replyhq.mail.service import send_mail
from replyhq.onboarding.models import OnboardingState

if TYPE_CHECKING:
    from replyhq.runtime import Runtime
    from replyhq.settings import Settings

EMAIL_VERIFY = "email_verify"
MAX_PASSWORD_BYTES = 72


class SignupDisabled(Forbidden):
    code = "SIGNUP_DISABLED"
    message = "Sign-up is turned off on this server: ask its operator for an account."


class EmailInUse(Conflict):
    # Says no more than that: neither which app nor whether the account is active.
    code = "EMAIL_IN_USE"
    message = "This e-mail address is already in use."


class AlreadyVerified(Conflict):
    code = "EMAIL_ALREADY_VERIFIED"
    message = "Your e-mail address is already verified."


def invalid_verification() -> BadRequest:
    return BadRequest(
        "This verification link is not valid: it may have expired or been used (an address "
        "is verified once). Sign in and ask for a new one if your address is still unverified.",
        code="VERIFY_TOKEN_INVALID",
    )


def check_password_strength(password: str, minimum: int, *hints: str) -> None:
    """400 `WEAK_PASSWORD` when zxcvbn scores the password below `minimum` (0-4); the address,
    name and app name count as guessable words."""
    words = [*hints, *(w for hint in hints for w in re.split(r"[\s@.+_-]+", hint) if w)]
    result = zxcvbn(password.encode()[:MAX_PASSWORD_BYTES].decode(errors="ignore"), words)
    if result["score"] >= minimum:
        return
    feedback = result.get("feedback") or {}
    reasons = [feedback.get("warning") or "", *(feedback.get("suggestions") or [])]
    reason = " ".join(r for r in reasons if r) or "is too easy to guess"
    raise BadRequest(
        "This password is too easy to guess: use a longer one, e.g. several unrelated words.",
        code="WEAK_PASSWORD",
        details=[{"field": "password", "reason": reason}],
    )


async def signup(
    runtime: Runtime, *, email: str, password: str, name: str, app_name: str
) -> tuple[TokenPair, App, AppKeys]:
    """A new app with `email` as its OWNER, signed in; 409 `EMAIL_IN_USE` when any team has
    the address. The verification e-mail is queued in the same transaction."""
    settings = runtime.settings
    if not settings.signup_enabled:
        raise SignupDisabled()
    check_password_strength(password, settings.signup_min_password_score, email, name, app_name)
    address = normalize_email(email)
    password_hash = await accounts.hash_password_async(password, settings.bcrypt_rounds)
    async with runtime.db.system_session() as session:
        # Two sign-ups with one address at once: the second waits, then finds the first's.
        await session.execute(
            select(func.pg_advisory_xact_lock(func.hashtextextended(f"signup:{address}", 0)))
        )
        taken = await session.scalar(
            select(StaffUser.id).where(StaffUser.email == address).limit(1)
        )
        if taken is not None:
            raise EmailInUse()
        app, keys = await apps.create_app(session, app_name, rounds=settings.bcrypt_rounds)
        staff = await accounts.create_staff(
            session,
            app.id,
            email=address,
            password_hash=password_hash,
            role=Role.OWNER,
            name=name,
            verified=False,
        )
        session.add(OnboardingState(app_id=app.id))
        if settings.billing_enabled:  # the trial starts with the app (BILLING_TRIAL_DAYS)
            await billing.subscription_of(session, settings, app.id)
        await send_verification(session, settings, staff, app.name)
        pair = await accounts.start_session(session, settings, staff)
    return pair, app, keys


async def send_verification(
    session: AsyncSession, settings: Settings, staff: StaffUser, app_name: str
) -> None:
    """Mail a fresh verification link to the member's address (earlier links stop working)."""
    ttl = settings.email_verify_ttl_seconds
    # new_email: the address this link proves (a later change of address voids it)
    token = await link_tokens.issue(
        session, staff, EMAIL_VERIFY, tokens.VERIFY_PREFIX, ttl, new_email=staff.email
    )
    context = {
        "app_name": app_name,
        "name": staff.name or "",
        "email": staff.email,
        "valid_for": mails.duration(ttl),
        "link": mails.dashboard_link(settings, "verify-email", token),
    }
    await send_mail(session, staff.email, "verify_email", context, app_id=staff.app_id)


async def resend_verification(
    session: AsyncSession, settings: Settings, app_id: uuid.UUID, staff_id: uuid.UUID
) -> StaffUser:
    staff = await session.get(StaffUser, staff_id, with_for_update=True)
    if staff is None or staff.app_id != app_id or not staff.active:
        raise invalid_verification()
    if staff.email_verified_at is not None:
        raise AlreadyVerified()
    await send_verification(session, settings, staff, await mails.app_name(session, app_id))
    return staff


async def verify_email(session: AsyncSession, app_id: uuid.UUID, token: str) -> StaffUser:
    """Spend a verification token: its member's address is verified (once; a later link of an
    already verified address changes nothing). A link for an address the member has since
    changed proves nothing."""
    spent = await link_tokens.spend(session, app_id, token, EMAIL_VERIFY)
    if spent is None:
        raise invalid_verification()
    staff: StaffUser | None = await session.scalar(
        update(StaffUser)
        .where(
            StaffUser.app_id == app_id,
            StaffUser.id == spent.staff_id,
            StaffUser.active.is_(True),
            StaffUser.email == spent.new_email,
        )
        .values(email_verified_at=func.coalesce(StaffUser.email_verified_at, func.now()))
        .returning(StaffUser)
    )
    if staff is None:
        raise invalid_verification()
    return staff
